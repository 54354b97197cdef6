"""The reward service under load: admission control, abandoned work, probes, SIGTERM, clients that back off, and a
short soak (bench/bench_soak.py with the length scorer)."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402

from flr.serving.service import ServiceLimits, create_app  # noqa: E402

WAIT = 600  # seconds a test waits for something that must happen: generous, the machine may be loaded


class HeldScorer:
    """Scores by response length; every call is recorded and held until the test releases it."""

    name = "held"

    def __init__(self):
        self.calls, self.started, self.release = [], threading.Event(), threading.Event()

    def score(self, records, **kwargs):
        self.calls.append([r["response"] for r in records])
        self.started.set()
        assert self.release.wait(WAIT), "the test never released the scoring call"
        return [SimpleNamespace(reward=float(len(r["response"])), categories={}, truncated=False) for r in records]

    def describe(self):
        return {"scorer": "held"}

    def fingerprint(self):
        return "held"


def rec(response: str) -> dict:
    return {"prompt": "Q?", "response": response}


async def until(condition) -> None:
    """Event-loop turns (then short sleeps, for a scoring thread) until ``condition()``."""
    for i in range(WAIT * 1000):
        if condition():
            return
        await asyncio.sleep(0 if i < 10_000 else 0.001)
    pytest.fail("the condition never came true")


def run_held(app, held, body):
    """Run ``body(client)`` with a first request ("first") held in the scorer; release it after ``body``."""

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flr") as client:
            first = asyncio.ensure_future(client.post("/score", json={"records": [rec("first")]}))
            assert await asyncio.to_thread(held.started.wait, WAIT), "the first request was never scored"
            out = await body(client)
            held.release.set()
            await first
            await until(lambda: not app.state.service.scheduler.running)
            app.state.service.scheduler.seconds_per_record = None  # forget the held call's time
            third = await client.post("/score", json={"records": [rec("third")]})  # the worker went past the rest
            assert third.status_code == 200, third.text
            return out

    try:
        return asyncio.run(go())
    finally:
        held.release.set()


@pytest.mark.parametrize("micro_batch", ["off", "on"])
def test_a_request_whose_deadline_passes_while_queued_gets_503_and_is_never_scored(micro_batch):
    held = HeldScorer()
    app = create_app(held, limits=ServiceLimits(request_timeout=2.0, micro_batch=micro_batch))

    async def second(client):
        return await client.post("/score", json={"records": [rec("second")]})  # waits behind "first"

    reply = run_held(app, held, second)
    assert reply.status_code == 503 and "longer than 2 s" in reply.json()["detail"]
    assert "Retry-After" in reply.headers
    assert held.calls == [["first"], ["third"]]  # "second" never reached the model


@pytest.mark.parametrize("micro_batch", ["off", "on"])
def test_a_request_that_cannot_finish_in_time_is_refused_at_once(micro_batch):
    """With a measured 50 s per record and one record running, 2 more records cannot finish within 120 s: 503 and
    Retry-After while the first is still held (so at once, not after waiting); 3 records could not finish even
    alone: 503 with the number that fits (FLR-Max-Records). --max-queue bounds the requests in."""
    held = HeldScorer()
    app = create_app(held, limits=ServiceLimits(request_timeout=120.0, micro_batch=micro_batch))
    service = app.state.service

    async def refused(client):
        service.scheduler.seconds_per_record = 50.0  # as measured by earlier calls
        busy = await client.post("/score", json={"records": [rec("a"), rec("b")]})
        alone = await client.post("/score", json={"records": [rec("a"), rec("b"), rec("c")]})
        service.limits.max_queue = 1
        full = await client.post("/score", json={"records": [rec("a")]})
        service.limits.max_queue = 256
        service.scheduler.seconds_per_record = None
        return busy, alone, full

    busy, alone, full = run_held(app, held, refused)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "50" and "busy" in busy.json()["detail"]
    assert alone.status_code == 503 and alone.headers["FLR-Max-Records"] == "2"
    assert "fewer records" in alone.json()["detail"]
    assert full.status_code == 503 and "--max-queue 1" in full.json()["detail"] and "Retry-After" in full.headers
    assert held.calls == [["first"], ["third"]]


def asgi_post(app, path: str, payload: dict, leave: asyncio.Event):
    """A raw ASGI POST whose client disconnects when ``leave`` is set (httpx's test transport cannot)."""
    body, sent, messages = json.dumps(payload).encode(), False, []

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    return app(scope, receive, send), messages


@pytest.mark.parametrize("micro_batch", ["off", "on"])
def test_a_disconnected_clients_request_is_not_scored(micro_batch):
    held = HeldScorer()
    app = create_app(held, limits=ServiceLimits(micro_batch=micro_batch))
    scheduler = app.state.service.scheduler

    async def leaves(client):
        leave = asyncio.Event()
        call, messages = asgi_post(app, "/score", {"records": [rec("gone"), rec("gone too")]}, leave)
        task = asyncio.ensure_future(call)
        await until(lambda: scheduler.backlog() == 3)  # "first" running, the two queued behind it
        leave.set()
        await task
        assert scheduler.backlog() == 1  # dropped from the queue's count at once
        return messages[0]["status"]

    assert run_held(app, held, leaves) == 499
    assert held.calls == [["first"], ["third"]]


def test_probes_need_no_token_and_show_no_details_info_does():
    from fastapi.testclient import TestClient

    held = HeldScorer()
    held.release.set()
    client = TestClient(create_app(held, api_key="s3cret"))
    assert client.get("/health").json() == {"status": "ok"}  # no token, nothing more
    assert client.get("/ready").json() == {"ready": True}
    assert client.get("/info").status_code == 401
    info = client.get("/info", headers={"Authorization": "Bearer s3cret"}).json()
    assert info["scorer"] == {"scorer": "held"} and info["limits"]["max_queue"] == 256 and info["records_queued"] == 0
    client.app.state.service.close()  # as on SIGTERM
    assert client.get("/ready").status_code == 503 and client.get("/health").status_code == 200
    reply = client.post("/score", json={"records": [rec("x")]}, headers={"Authorization": "Bearer s3cret"})
    assert reply.status_code == 503 and "shutting down" in reply.json()["detail"]


# -- SIGTERM: a real server process -------------------------------------------------------------------------------

SLOW_SERVER = """
import sys, time
from types import SimpleNamespace
from flr.serving.app import serve
from flr.serving.service import ServiceLimits, create_app

class Slow:
    name = "slow"
    def score(self, records, **kwargs):
        time.sleep(float(sys.argv[2]))
        return [SimpleNamespace(reward=1.0, categories={}, truncated=False) for _ in records]
    def describe(self):
        return {"scorer": "slow"}
    def fingerprint(self):
        return "slow"

serve(create_app(Slow(), limits=ServiceLimits(chunk_records=1)), "127.0.0.1", int(sys.argv[1]), float(sys.argv[3]))
"""


def queued(url: str, records: int) -> None:
    """Wait until the server has ``records`` records running or queued."""
    for _ in range(WAIT * 10):
        if httpx.get(f"{url}/info", timeout=WAIT).json()["records_queued"] == records:
            return
        time.sleep(0.1)
    pytest.fail(f"never {records} records queued")


@pytest.mark.parametrize(("call_seconds", "shutdown_timeout"), [(4.0, 8.0), (120.0, 2.0)])
def test_sigterm_with_a_queue_answers_503_and_exits_in_bounded_time(call_seconds, shutdown_timeout, tmp_path):
    """A model call of 4 s finishes and is answered; one of 120 s cannot: its request gets 503 and the process
    exits without it at the shutdown timeout. Queued requests get 503 at once either way."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_soak import free_port, wait_ready

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    argv = [sys.executable, "-c", SLOW_SERVER, str(port), str(call_seconds), str(shutdown_timeout)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, process, WAIT)
        replies = {}

        def post(i):
            try:
                replies[i] = httpx.post(
                    f"http://127.0.0.1:{port}/score", json={"records": [rec(str(i))]}, timeout=WAIT
                )
            except httpx.TransportError as exc:
                replies[i] = exc

        threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        queued(f"http://127.0.0.1:{port}", 4)  # one running, three queued
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=WAIT)
        seconds = time.monotonic() - start
        for t in threads:
            t.join(WAIT)
    finally:
        if process.poll() is None:
            process.kill()
    assert seconds < shutdown_timeout + 5  # the margin is for a loaded machine, not the work
    statuses = sorted(r.status_code if isinstance(r, httpx.Response) else "gone" for r in replies.values())
    if call_seconds < shutdown_timeout:
        assert statuses == [200, 503, 503, 503]  # the running call finished and was answered
    else:
        assert statuses == [503, 503, 503, 503]  # the running call's request too, and the process left without it


def test_a_client_that_closes_its_connection_is_not_scored_by_a_real_server():
    """The same with uvicorn: the server notices the closed socket while the request waits, and drops it."""
    import socket

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_soak import free_port, wait_ready

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    process = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(port), "3.0", "5"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(port, process, WAIT)
        first = threading.Thread(target=httpx.post, args=(f"{url}/score",), kwargs={"json": {"records": [rec("a")]}})
        first.start()
        queued(url, 1)  # "a" is running
        body = json.dumps({"records": [rec("b")]}).encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = (
                f"POST /score HTTP/1.1\r\nHost: flr\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            )
            sock.sendall(head.encode() + b"\r\n\r\n" + body)
            queued(url, 2)  # "b" waits behind it; then its client leaves
        first.join(WAIT)
        assert httpx.get(f"{url}/info").json()["scoring_calls"] == 1  # "b" left before its turn: never scored
    finally:
        process.kill()
        process.wait()


# -- clients that back off ----------------------------------------------------------------------------------------


@pytest.fixture
def fake_service():
    """A local HTTP server answering POST /score with ``answer(n_records) -> (status, headers)``; it records the
    number of records of each request it gets."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            n = len(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["records"])
            server.seen.append(n)
            status, headers = server.answer(n)
            body = json.dumps({"rewards": [0.5] * n} if status == 200 else {"detail": f"status {status}"}).encode()
            self.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_client_retries_503_then_gets_200(fake_service):
    from flr.rl import RemoteRewardFunction

    server, url = fake_service
    answers = iter([(503, {"Retry-After": "0"}), (429, {}), (200, {})])
    server.answer = lambda n: next(answers)
    assert RemoteRewardFunction(url, max_wait=WAIT)(["Q?", "Q?"], ["a", "b"]) == [0.5, 0.5]
    assert server.seen == [2, 2, 2]


def test_the_client_splits_on_413_and_on_a_503_asking_for_fewer(fake_service):
    from flr.rl import RemoteRewardFunction

    server, url = fake_service
    server.answer = lambda n: (413, {"FLR-Max-Records": "2"}) if n > 2 else (200, {})
    assert RemoteRewardFunction(url, max_wait=WAIT)(["Q?"] * 5, list("abcde")) == [0.5] * 5
    assert server.seen == [5, 2, 2, 1]
    server.seen.clear()
    server.answer = lambda n: (503, {"FLR-Max-Records": "1"}) if n > 1 else (200, {})
    assert RemoteRewardFunction(url, max_wait=WAIT)(["Q?"] * 3, list("abc")) == [0.5] * 3
    assert server.seen == [3, 1, 1, 1]
    server.seen.clear()
    server.answer = lambda n: (413, {})  # halves, then a single record is refused for good
    with pytest.raises(RuntimeError, match="refused a single record: 413"):
        RemoteRewardFunction(url, max_wait=WAIT)(["Q?"] * 2, ["a", "b"])
    assert server.seen == [2, 1]


def test_the_client_gives_up_after_max_wait_with_one_error(fake_service):
    from flr.rl import RemoteRewardFunction, RewardServiceError

    server, url = fake_service
    server.answer = lambda n: (503, {"Retry-After": "0.2"})
    start = time.monotonic()
    with pytest.raises(RewardServiceError, match=r"did not score 1 records within 1 s \(\d+ attempts\); last.*503"):
        RemoteRewardFunction(url, max_wait=1.0)(["Q?"], ["a"])
    assert time.monotonic() - start < WAIT and len(server.seen) >= 2
    server.seen.clear()
    server.answer = lambda n: (422, {})
    with pytest.raises(RewardServiceError, match="refused 1 records: 422 status 422"):  # bad input: no retry
        RemoteRewardFunction(url, max_wait=WAIT)(["Q?"], ["a"])
    assert server.seen == [1]
    server.shutdown()
    server.server_close()
    with pytest.raises(RewardServiceError, match="ConnectError"):  # nothing listens any more
        RemoteRewardFunction(url, max_wait=0.5)(["Q?"], ["a"])


def test_verl_compute_score_backs_off(fake_service, monkeypatch):
    import flr.rl.reward as rl

    server, url = fake_service
    answers = iter([(503, {"Retry-After": "0"}), (200, {})])
    server.answer = lambda n: next(answers)
    monkeypatch.setenv("FLR_URL", url)
    monkeypatch.setattr(rl, "_VERL_CLIENT", None)
    assert rl.compute_score("any", "Hi there!", None, {"prompt": "Say hi."}) == 0.5
    assert server.seen == [1, 1]


# -- the soak, short ----------------------------------------------------------------------------------------------


def test_short_soak_every_request_answered_within_its_deadline(tmp_path):
    """bench/bench_soak.py with the length scorer, for seconds: valid and malformed requests mixed, no client
    timeouts, every answer within --request-timeout plus a margin, malformed ones 4xx, SIGTERM exits."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_soak import run

    result = run(
        ["--scorer", "length"],
        clients=16,
        seconds=4.0,
        client_timeout=60.0,
        request_timeout=10.0,
        shutdown_timeout=5.0,
        sigterm_after=1.0,
        ready_timeout=WAIT,
        log=tmp_path / "serve.log",
    )
    assert result["client_timeouts"] == 0 and result["connection_errors"] == 0
    assert result["slowest_answer_s"] < 10.0 + 5.0 and result["late_answers"] == 0
    assert set(result["status_valid"]) <= {"200", "503"} and result["status_valid"].get("200", 0) > 0
    assert all(key.split(":")[1] in ("401", "413", "422") for key in result["status_malformed"])
    assert result["probe_after_storm_status"] == 200
    assert result["sigterm_seconds"] < 5.0 + 5.0


def test_the_soak_measures_growth_on_the_memory_kept_between_calls():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_soak import floor_growth

    # a call in flight lifts single samples; the minimum of each minute is what the server keeps
    samples = [[0, 100.0], [15, 160.0], [30, 101.0], [60, 105.0], [75, 190.0], [119, 104.0]]
    assert floor_growth(samples) == pytest.approx(0.04)
    assert floor_growth([[0, 100.0], [30, 120.0]]) is None  # one minute: no growth to measure

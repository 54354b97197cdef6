"""Soak test of ``flr serve`` on loopback: many clients for a while, valid and malformed requests mixed.

Starts ``flr serve`` as its own process (so that its memory and SIGTERM are real), then:

1. idle: the latency of one small valid request, on an idle server (median of 3);
2. storm: C clients for D seconds, each sending requests one after another: 80% valid (1-4 short records), 20%
   malformed (not JSON, a record without a response, a record over --max-record-chars, too many records, no
   token). A client honours Retry-After after a 503 (as RemoteRewardFunction does) and gives up on a request
   after --client-timeout; at the end the clients leave, abandoning what they were waiting for;
3. probe: the latency of one small valid request right after the storm (nothing abandoned should still run);
4. SIGTERM under load: the clients come back for a few seconds, then SIGTERM; the seconds until the process exits.

Reported: status counts (valid and malformed), latency percentiles of the 200s, the slowest answer of any kind
against --request-timeout, client timeouts, RSS over time, the probe latencies and the SIGTERM seconds.

    PYTHONPATH=src python bench/bench_soak.py --clients 64 --seconds 300                 # docs/PERFORMANCE.md
    PYTHONPATH=src python bench/bench_soak.py --clients 16 --seconds 5 -- --scorer length   # seconds, no model

Arguments after ``--`` go to ``flr serve``. Results go to bench/results/soak_<scorer>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

PROMPTS = ["What is 2+2?", "Name a colour.", "Say hi.", "How do I boil an egg?", "What is the capital of France?"]
RESPONSES = ["4.", "Blue.", "Hi there!", "Boil it for 8 minutes, then cool it in cold water.", "Paris.", "A fish."]
KEY = "soak-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def floor_growth(samples: list[list[float]]) -> float | None:
    """Growth of the memory the server keeps between calls: the minimum RSS of the last minute over that of the
    first (``samples``: ``[seconds, MB]``). One sample can fall inside a model call, whose working memory
    (+-150 MB with the embedded model) is freed after it; the minimum of a minute is the retained memory."""
    minutes: dict[int, list[float]] = {}
    for t, mb in samples:
        minutes.setdefault(int(t // 60), []).append(mb)
    if len(minutes) < 2:
        return None
    first, last = min(minutes[min(minutes)]), min(minutes[max(minutes)])
    return (last - first) / first


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def valid_records(rng: random.Random, n: int) -> list[dict]:
    return [{"prompt": rng.choice(PROMPTS), "response": rng.choice(RESPONSES)} for _ in range(n)]


def request(rng: random.Random, max_records: int, max_record_chars: int) -> tuple[str, dict]:
    """(kind, httpx keyword arguments) of one request of the mix."""
    auth = {"Authorization": f"Bearer {KEY}"}
    if rng.random() < 0.8:
        return "valid", {"json": {"records": valid_records(rng, rng.randint(1, 4))}, "headers": auth}
    kind = rng.choice(["not_json", "no_response", "oversized", "too_many", "no_token"])
    body = {
        "not_json": {"content": b"{records: oops", "headers": auth},
        "no_response": {"json": {"records": [{"prompt": "Hi"}]}, "headers": auth},
        "oversized": {"json": {"records": [{"prompt": "x" * max_record_chars, "response": "y"}]}, "headers": auth},
        "too_many": {"json": {"records": valid_records(rng, max_records + 1)}, "headers": auth},
        "no_token": {"json": {"records": valid_records(rng, 1)}},
    }[kind]
    return kind, body


async def storm(port: int, clients: int, seconds: float, client_timeout: float, seed: int, limits: dict) -> list:
    """C clients for ``seconds``; each answer as (kind, status | "timeout" | "error", seconds, records)."""
    import httpx

    answers = []
    end = time.monotonic() + seconds

    async def client(i: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed * 1000 + i)
        while time.monotonic() < end:
            kind, kwargs = request(rng, limits["max_records"], limits["max_record_chars"])
            start = time.monotonic()
            try:
                reply = await http.post("/score", timeout=client_timeout, **kwargs)
                status = reply.status_code
            except httpx.TimeoutException:
                status, reply = "timeout", None
            except httpx.TransportError:
                status, reply = "error", None
            n = len(kwargs.get("json", {}).get("records", [])) if kind == "valid" else 0
            answers.append((kind, status, time.monotonic() - start, n))
            after = reply.headers.get("Retry-After") if reply is not None and status == 503 else None
            if after is not None:  # as RemoteRewardFunction does: wait as told, spread by up to 25%
                await asyncio.sleep(min(float(after) * rng.uniform(1.0, 1.25), max(end - time.monotonic(), 0)))

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=httpx.Limits(max_connections=clients + 4)
    ) as http:
        tasks = [asyncio.create_task(client(i, http)) for i in range(clients)]
        await asyncio.sleep(seconds)
        for task in tasks:  # the clients leave: what they wait for is abandoned (connections closed)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return answers


def probe(port: int, timeout: float = 600.0) -> tuple[int, float]:
    import httpx

    start = time.monotonic()
    reply = httpx.post(
        f"http://127.0.0.1:{port}/score",
        json={"records": [{"prompt": "What is 2+2?", "response": "4."}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=timeout,
    )
    return reply.status_code, time.monotonic() - start


def wait_ready(port: int, process: subprocess.Popen, timeout: float) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"flr serve exited with {process.returncode} before it was ready")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"flr serve not ready after {timeout:g} s")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run(
    serve_args: list[str],
    *,
    clients: int = 64,
    seconds: float = 60.0,
    client_timeout: float = 300.0,
    request_timeout: float = 120.0,
    shutdown_timeout: float = 10.0,
    sigterm_after: float = 3.0,
    max_records: int = 16,
    max_record_chars: int = 2000,
    ready_timeout: float = 900.0,
    seed: int = 0,
    log: Path | None = None,
) -> dict:
    """One soak against a fresh ``flr serve <serve_args>`` process; returns the figures."""
    port = free_port()
    limits = {"max_records": max_records, "max_record_chars": max_record_chars}
    cmd = [sys.executable, "-m", "flr.cli", "serve", "--port", str(port), "--request-timeout", str(request_timeout)]
    cmd += ["--shutdown-timeout", str(shutdown_timeout), "--max-records", str(max_records)]
    cmd += ["--max-record-chars", str(max_record_chars), *serve_args]
    env = {**os.environ, "FLR_API_KEY": KEY}
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, process, ready_timeout)
        idle = sorted(probe(port)[1] for _ in range(3))[1]
        rss, stop = [], threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not stop.wait(max(seconds / 60, 0.25)):
                rss.append((round(time.monotonic() - start, 1), rss_mb(process.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        rss.append((0.0, rss_mb(process.pid)))
        sampler.start()
        answers = asyncio.run(storm(port, clients, seconds, client_timeout, seed, limits))
        stop.set()
        sampler.join()
        import httpx

        auth = {"Authorization": f"Bearer {KEY}"}
        left = httpx.get(f"http://127.0.0.1:{port}/info", headers=auth, timeout=60).json()["records_queued"]
        after_status, after = probe(port)
        # SIGTERM under load: the clients come back, and the signal comes while they wait
        load = threading.Thread(
            target=lambda: asyncio.run(storm(port, clients, sigterm_after + 2, 30, seed + 1, limits)), daemon=True
        )
        load.start()
        time.sleep(sigterm_after)
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=shutdown_timeout + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        sigterm_seconds = time.monotonic() - start
        load.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if log:
            out.close()
    ok = [seconds_ for kind, status, seconds_, _ in answers if status == 200]
    answered = [seconds_ for _, status, seconds_, _ in answers if isinstance(status, int)]
    memory = [mb for _, mb in rss if mb is not None]
    return {
        "bench": "soak",
        "command": cmd[2:],
        "clients": clients,
        "seconds": seconds,
        "client_timeout": client_timeout,
        "request_timeout": request_timeout,
        "status_valid": dict(Counter(str(s) for kind, s, _, _ in answers if kind == "valid")),
        "status_malformed": dict(Counter(f"{kind}:{s}" for kind, s, _, _ in answers if kind != "valid")),
        "client_timeouts": sum(s == "timeout" for _, s, _, _ in answers),
        "connection_errors": sum(s == "error" for _, s, _, _ in answers),
        "latency_200_s": {"p50": percentile(ok, 50), "p95": percentile(ok, 95), "p99": percentile(ok, 99)},
        "slowest_answer_s": max(answered, default=None),
        "late_answers": sum(s > request_timeout + 5 for s in answered),
        "records_200_per_s": sum(n for _, s, _, n in answers if s == 200) / seconds,
        "rss_mb": rss,
        "rss_growth": (memory[-1] - memory[0]) / memory[0] if memory else None,
        "rss_floor_growth": floor_growth(rss),
        "rss_max_mb": max(memory, default=None),
        "records_left_after_storm": left,
        "probe_idle_s": idle,
        "probe_after_storm_s": after,
        "probe_after_storm_status": after_status,
        "sigterm_seconds": sigterm_seconds,
        "exit_code": process.returncode,
    }


def main() -> None:
    argv = sys.argv[1:]
    serve_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=300.0, help="length of the storm")
    ap.add_argument("--client-timeout", type=float, default=300.0)
    ap.add_argument("--request-timeout", type=float, default=120.0)
    ap.add_argument("--shutdown-timeout", type=float, default=10.0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--log", default=None, help="flr serve's output goes here")
    args = ap.parse_args(argv)
    result = run(
        serve_args,
        clients=args.clients,
        seconds=args.seconds,
        client_timeout=args.client_timeout,
        request_timeout=args.request_timeout,
        shutdown_timeout=args.shutdown_timeout,
        log=Path(args.log) if args.log else None,
    )
    scorer = serve_args[serve_args.index("--scorer") + 1] if "--scorer" in serve_args else "flr"
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"soak_{scorer}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mb"}, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()

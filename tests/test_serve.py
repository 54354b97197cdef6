"""The online-RL surfaces: TRL-style reward function and the HTTP reward service."""

import pytest

from flr.rl import FLRRewardFunction
from flr.scorers import FollowUpReward, ScorerConfig


@pytest.fixture(scope="module")
def scorer(tiny):
    model, tokenizer = tiny
    return FollowUpReward(model, tokenizer, ScorerConfig(categories="understanding"), model_name="tiny")


def test_reward_function_matches_scorer_for_both_trl_formats(scorer):
    prompts = ["Say hi.", [{"role": "user", "content": "Name a colour."}]]
    completions = ["Hi there!", [{"role": "assistant", "content": "Blue."}]]
    reward = FLRRewardFunction(scorer, scale=2.0)
    values = reward(prompts, completions, completion_ids=None)
    expected = scorer.score(
        [{"prompt": "Say hi.", "response": "Hi there!"}, {"prompt": prompts[1], "response": "Blue."}]
    )
    assert values == pytest.approx([2 * r.reward for r in expected])
    assert reward.__name__ == "flr"


def test_http_service(scorer):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from flr.serving.service import create_app

    client = TestClient(create_app(scorer, max_records=3))
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/info").json()["fingerprint"] == scorer.fingerprint()
    records = [{"prompt": "What is 2+2?", "response": "4."}, {"prompt": "What is 2+2?", "response": "Fish."}]
    body = client.post("/score", json={"records": records}).json()
    expected = [r.reward for r in scorer.score(records)]
    assert body["rewards"] == pytest.approx(expected)
    assert set(body["categories"][0]) == {"understanding"} and body["truncated"] == [False, False]
    assert client.post("/score", json={"records": [{"prompt": 3, "response": "x"}]}).status_code == 422
    assert client.post("/score", json={"records": records * 2}).status_code == 413


def test_http_service_bounds_validates_and_authenticates(scorer):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from flr.serving.service import ServiceLimits, create_app, is_loopback

    limits = ServiceLimits(max_records=50, max_request_bytes=20_000, max_record_chars=2_000, chunk_records=2)
    client = TestClient(create_app(scorer, limits=limits, api_key="s3cret"))
    ok = {"Authorization": "Bearer s3cret"}
    record = {"prompt": "What is 2+2?", "response": "4."}
    assert client.post("/score", json={"records": [record]}).status_code == 401
    assert client.post("/score", json={"records": [record]}, headers={"Authorization": "Bearer no"}).status_code == 401
    assert client.post("/score", json={"records": [record]}, headers=ok).status_code == 200
    for bad in (
        {"prompt": "", "response": "4."},
        {"prompt": "Hi", "response": " "},
        {"prompt": None, "response": "x"},
    ):
        reply = client.post("/score", json={"records": [record, bad]}, headers=ok)
        assert reply.status_code == 422 and "request:2" in reply.json()["detail"]
    huge = {"prompt": "x" * 3_000, "response": "y"}
    assert client.post("/score", json={"records": [huge]}, headers=ok).status_code == 413  # characters
    many = [{"prompt": f"q{i}", "response": "a"} for i in range(51)]
    assert client.post("/score", json={"records": many}, headers=ok).status_code == 413  # records
    big = {"records": [{"prompt": "z" * 1_900, "response": "a"}] * 12}
    assert client.post("/score", json=big, headers=ok).status_code == 413  # bytes
    slow = create_app(scorer, limits=ServiceLimits(chunk_records=1, request_timeout=1e-6))
    assert TestClient(slow).post("/score", json={"records": [record] * 3}).status_code == 503  # stops, not 20 min
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("0.0.0.0")


def test_serve_refuses_an_open_address_without_a_token(monkeypatch, capsys):
    from flr.cli import main

    monkeypatch.delenv("FLR_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--scorer", "length"]) == 2
    assert "--api-key" in capsys.readouterr().err


def test_openrlhf_get_reward_matches_score(scorer):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from flr.serving.service import create_app

    client = TestClient(create_app(scorer))
    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    queries = [prompt + "It is 4.<|im_end|>", prompt + "Fish.<|im_end|>"]
    got = client.post("/get_reward", json={"query": queries, "prompts": [prompt, prompt]}).json()["rewards"]
    alone = client.post("/get_reward", json={"query": queries}).json()["rewards"]
    expected = [
        r.reward for r in scorer.score([{"prompt": "What is 2+2?", "response": t} for t in ("It is 4.", "Fish.")])
    ]
    assert got == pytest.approx(expected) and alone == pytest.approx(expected)
    assert client.post("/get_reward", json={"query": ["no markers"]}).status_code == 422


def test_remote_reward_function_and_truncation_penalty(scorer, monkeypatch):
    pytest.importorskip("fastapi")
    import httpx
    from fastapi.testclient import TestClient

    from flr.rl import RemoteRewardFunction
    from flr.serving.service import create_app

    client = TestClient(create_app(scorer, api_key="k"))
    monkeypatch.setattr(httpx, "post", lambda url, **kw: client.post(url.replace("http://flr", ""), **kw))
    remote = RemoteRewardFunction("http://flr", api_key="k", batch_size=1, truncation_penalty=-1.0)
    local = FLRRewardFunction(scorer)
    prompts, completions = ["Say hi.", "Say bye."], ["Hi there!", "Bye"]
    assert remote(prompts, completions) == pytest.approx(local(prompts, completions))
    cut = remote(prompts, completions, completion_ids=[[5, 2], [5, 6]], eos_token_id=2)
    assert cut[1] == -1.0 and cut[0] == pytest.approx(local(prompts, completions)[0])
    assert remote.__name__ == "flr" and local.__name__ == "flr"


def test_verl_compute_score_calls_the_service(scorer, monkeypatch):
    pytest.importorskip("fastapi")
    import httpx
    from fastapi.testclient import TestClient

    import flr.rl.reward as rl
    from flr.serving.service import create_app

    client = TestClient(create_app(scorer))
    monkeypatch.setattr(httpx, "post", lambda url, **kw: client.post(url.replace("http://flr:1", ""), **kw))
    monkeypatch.setenv("FLR_URL", "http://flr:1")
    monkeypatch.setattr(rl, "_VERL_CLIENT", None)
    value = rl.compute_score("any", "Hi there!", None, {"prompt": "Say hi."})
    assert value == pytest.approx(scorer.score([{"prompt": "Say hi.", "response": "Hi there!"}])[0].reward)
    with pytest.raises(ValueError, match="prompt"):
        rl.compute_score("any", "Hi", None, {})


def test_concurrent_requests_are_micro_batched_with_identical_results(scorer, monkeypatch):
    """The first scoring call is held until every request has queued its records, so the calls after it take full
    batches across requests, whatever order the event loop ran them in; each record is scored exactly once, and
    each request gets what it would get alone."""
    pytest.importorskip("fastapi")
    import asyncio
    import threading

    import httpx

    from flr.serving.service import ServiceLimits, create_app

    app = create_app(scorer, limits=ServiceLimits(chunk_records=2, batch_records=4, micro_batch="on"))
    requests = [
        [{"prompt": f"What is {i} + {i}?", "response": r} for r in (f"{2 * i}.", "A fish.")[: 1 + i % 2]]
        for i in range(12)
    ]
    total = sum(len(r) for r in requests)  # 18 records, one chunk (of 1 or 2) per request
    owner = {(r["prompt"], r["response"]): i for i, records in enumerate(requests) for r in records}
    calls, started, release = [], threading.Event(), threading.Event()
    score = scorer.score

    def held_score(records, **kwargs):  # runs in the worker's thread
        calls.append([(r["prompt"], r["response"]) for r in records])
        started.set()
        assert release.wait(timeout=600), "the test never released the first scoring call"
        return score(records, **kwargs)

    monkeypatch.setattr(scorer, "score", held_score)

    async def load():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://flr") as client:
            posts = [asyncio.ensure_future(client.post("/score", json={"records": r})) for r in requests]
            assert await asyncio.to_thread(started.wait, 600), "no scoring call"
            queue = app.state.service.scheduler.queue
            for _ in range(100_000):  # event-loop turns, not time: the requests are handled on this loop
                if len(calls[0]) + len(queue) == total:
                    break
                await asyncio.sleep(0)
            else:
                pytest.fail(f"records never all queued: {len(calls[0])} held, {len(queue)} queued")
            release.set()
            replies = await asyncio.gather(*posts)
            health = (await client.get("/info")).json()
        return replies, health

    try:
        replies, health = asyncio.run(load())
    finally:
        release.set()
    assert all(reply.status_code == 200 for reply in replies)  # no request lost
    for records, reply in zip(requests, replies):
        alone = [r.reward for r in score(records)]
        assert reply.json()["rewards"] == pytest.approx(alone, abs=1e-5)  # as if scored alone
    assert sorted(x for c in calls for x in c) == sorted(owner)  # every record scored once, none twice
    assert 1 <= len(calls[0]) <= 4  # what the worker found queued when it started: depends on the schedule
    rest = total - len(calls[0])  # queued while the first call was held: from here on the schedule does not matter
    # full batches of 4, so across requests (each has 1 or 2 records): a batcher that does not merge fails here
    assert [len(c) for c in calls[1:]] == [4] * (rest // 4) + ([rest % 4] if rest % 4 else [])
    assert health["scoring_calls"] == len(calls) < len(requests)

"""The online-RL surfaces: TRL-style reward function and the HTTP reward service."""

import pytest

from flr.rl import FLRRewardFunction
from flr.scorers import FLRConfig, FollowUpReward


@pytest.fixture(scope="module")
def scorer(tiny):
    model, tokenizer = tiny
    return FollowUpReward(model, tokenizer, FLRConfig(categories="understanding"), model_name="tiny")


def test_reward_function_matches_scorer_for_both_trl_formats(scorer):
    prompts = ["Say hi.", [{"role": "user", "content": "Name a colour."}]]
    completions = ["Hi there!", [{"role": "assistant", "content": "Blue."}]]
    reward = FLRRewardFunction(scorer, scale=2.0)
    values = reward(prompts, completions, completion_ids=None)
    expected = scorer.score(
        [{"prompt": "Say hi.", "response": "Hi there!"}, {"prompt": prompts[1], "response": "Blue."}]
    )
    assert values == pytest.approx([2 * r.reward for r in expected])
    assert reward.__name__ == "flr_flr"


def test_http_service(scorer):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from flr.serve import create_app

    client = TestClient(create_app(scorer, max_records=3))
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["fingerprint"] == scorer.fingerprint()
    records = [{"prompt": "What is 2+2?", "response": "4."}, {"prompt": "What is 2+2?", "response": "Fish."}]
    body = client.post("/score", json={"records": records}).json()
    expected = [r.reward for r in scorer.score(records)]
    assert body["rewards"] == pytest.approx(expected)
    assert set(body["categories"][0]) == {"understanding"} and body["truncated"] == [False, False]
    assert client.post("/score", json={"records": [{"prompt": 3, "response": "x"}]}).status_code == 422
    assert client.post("/score", json={"records": records * 2}).status_code == 413

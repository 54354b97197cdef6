"""Scorers: FLR's aggregation checked by hand, the direct and length baselines, build_scorer, fingerprints."""

from __future__ import annotations

import pytest
import torch

from flr.errors import FLRError
from flr.scorers import (
    DirectLikelihood,
    FollowUpReward,
    LengthBaseline,
    Scorer,
    ScorerConfig,
    ScoreResult,
    build_scorer,
)

RECORDS = [
    {"prompt": "What is the capital of France?", "response": "The capital of France is Paris."},
    {"prompt": "What is the capital of France?", "response": "I like turtles."},
    {
        "prompt": [
            {"role": "system", "content": "You answer in one line."},
            {"role": "user", "content": "Name a prime number."},
            {"role": "assistant", "content": "7."},
            {"role": "user", "content": "Another one?"},
        ],
        "response": "11.",
    },
]
CATEGORIES = ("understanding", "engagingness", "instruction_following")


def by_hand(details: list[dict], key: str, weights: dict[str, float]) -> tuple[float, dict[str, float]]:
    cats = {}
    for c in weights:
        pos = [d[key] for d in details if d["category"] == c and d["polarity"] == "positive"]
        neg = [d[key] for d in details if d["category"] == c and d["polarity"] == "negative"]
        assert pos and neg
        cats[c] = sum(pos) / len(pos) - sum(neg) / len(neg)
    reward = sum(weights[c] * cats[c] for c in weights) / sum(weights.values())
    return reward, cats


@pytest.fixture(scope="module")
def flr_default(tiny):
    model, tokenizer = tiny
    scorer = FollowUpReward(model, tokenizer)
    return scorer, scorer.score(RECORDS)


def test_default_aggregation(flr_default):
    scorer, results = flr_default
    assert isinstance(scorer, Scorer)
    assert list(scorer.weights) == list(CATEGORIES)
    for res in results:
        assert len(res.details) == 60  # flr's default set: the paper's 60
        assert list(res.categories) == list(CATEGORIES)
        for c in CATEGORIES:
            assert sum(d["category"] == c and d["polarity"] == "positive" for d in res.details) == 10
            assert sum(d["category"] == c and d["polarity"] == "negative" for d in res.details) == 10
        for d in res.details:
            assert d["tokens"] > 0
            assert d["logprob_mean"] == pytest.approx(d["logprob_sum"] / d["tokens"], rel=1e-5)
        reward, cats = by_hand(res.details, "logprob_mean", dict.fromkeys(CATEGORIES, 1.0))
        assert res.reward == pytest.approx(reward, abs=1e-6)
        assert res.categories == pytest.approx(cats, abs=1e-6)
        assert res.reward == pytest.approx(sum(cats.values()) / 3, abs=1e-6)
        assert not res.truncated
    assert len({round(r.reward, 4) for r in results}) == len(results)


def test_details_match_the_kernel(tiny, flr_default):
    """Each detail's numbers are the teacher-forced log-probs of that follow-up, in the set's order."""
    from flr.kernel.logprobs import reference_logprobs

    scorer, results = flr_default
    item = scorer.renderer.followup_item(RECORDS[0]["prompt"], RECORDS[0]["response"], [scorer.utterances[7][2]])
    (lp,) = reference_logprobs(tiny[0], [item])[0]
    detail = results[0].details[7]
    assert detail["text"] == scorer.utterances[7][2]
    assert detail["tokens"] == len(lp)
    assert detail["logprob_sum"] == pytest.approx(float(lp.sum()), abs=1e-4)


def test_weights(tiny, flr_default):
    model, tokenizer = tiny
    _, unweighted = flr_default
    scorer = FollowUpReward(model, tokenizer, ScorerConfig(weights="1,2,5"))
    assert scorer.weights == dict(zip(CATEGORIES, (1.0, 2.0, 5.0)))
    for res, base in zip(scorer.score(RECORDS), unweighted):
        reward, cats = by_hand(res.details, "logprob_mean", scorer.weights)
        assert res.reward == pytest.approx(reward, abs=1e-6)
        assert res.categories == pytest.approx(base.categories, abs=1e-5)  # weights change the mix only
        c = res.categories
        assert res.reward == pytest.approx(
            (c["understanding"] + 2 * c["engagingness"] + 5 * c["instruction_following"]) / 8, abs=1e-6
        )
    for bad in ("1,2", "1,two,3", "1,-1,0"):
        with pytest.raises(FLRError, match="weights"):
            FollowUpReward(model, tokenizer, ScorerConfig(weights=bad))


def test_statistic_sum(tiny, flr_default):
    model, tokenizer = tiny
    _, mean_results = flr_default
    scorer = FollowUpReward(model, tokenizer, ScorerConfig(statistic="sum"))
    for res, mean_res in zip(scorer.score(RECORDS), mean_results):
        reward, cats = by_hand(res.details, "logprob_sum", scorer.weights)
        assert res.reward == pytest.approx(reward, abs=1e-4)
        assert res.categories == pytest.approx(cats, abs=1e-4)
        # the details are the same either way; only the statistic used changes
        for a, b in zip(res.details, mean_res.details):
            assert a["logprob_sum"] == pytest.approx(b["logprob_sum"], abs=1e-4)
        assert res.reward != pytest.approx(mean_res.reward, abs=1e-3)


def test_categories_subset(tiny, flr_default):
    model, tokenizer = tiny
    _, full = flr_default
    scorer = FollowUpReward(model, tokenizer, ScorerConfig(categories="engagingness"))
    for res, base in zip(scorer.score(RECORDS), full):
        assert list(res.categories) == ["engagingness"]
        assert len(res.details) == 20 and {d["category"] for d in res.details} == {"engagingness"}
        assert res.reward == pytest.approx(base.categories["engagingness"], abs=1e-5)
    with pytest.raises(FLRError, match="unknown follow-up category"):
        FollowUpReward(model, tokenizer, ScorerConfig(categories="nope"))


def test_custom_followup_file(tiny, tmp_path):
    model, tokenizer = tiny
    path = tmp_path / "mine.json"
    path.write_text('{"polite": {"positive": ["Thank you!", "Great, thanks."], "negative": ["That is wrong."]}}')
    scorer = FollowUpReward(model, tokenizer, ScorerConfig(followups=str(path), categories="all"))
    (res,) = scorer.score(RECORDS[:1])
    assert [d["text"] for d in res.details] == ["Thank you!", "Great, thanks.", "That is wrong."]
    d = res.details
    assert res.reward == pytest.approx((d[0]["logprob_mean"] + d[1]["logprob_mean"]) / 2 - d[2]["logprob_mean"])


def test_truncated_flag(tiny):
    model, tokenizer = tiny
    long = {"prompt": "word " * 300, "response": "fine"}
    scorer = FollowUpReward(model, tokenizer, ScorerConfig(max_length=64, categories="understanding"))
    short, cut = scorer.score([RECORDS[0], long])
    assert not short.truncated and cut.truncated
    assert cut.to_fields()["truncated"] is True


def test_direct_equals_hand_computed(tiny):
    """The direct baseline == mean log-prob of the response tokens, from one plain forward pass."""
    model, tokenizer = tiny
    results = DirectLikelihood(model, tokenizer).score(RECORDS)
    summed = DirectLikelihood(model, tokenizer, ScorerConfig(statistic="sum")).score(RECORDS)
    for record, res, res_sum in zip(RECORDS, results, summed):
        conv = record["prompt"]
        conv = [{"role": "user", "content": conv}] if isinstance(conv, str) else conv
        prompt = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(record["response"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + response_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float()
        logprobs = torch.log_softmax(logits[:-1], dim=-1)
        targets = ids[0, 1:]
        per_token = logprobs[torch.arange(len(targets)), targets][len(prompt_ids) - 1 :]
        assert len(per_token) == len(response_ids)
        assert res.reward == pytest.approx(float(per_token.mean()), abs=1e-4)
        assert res_sum.reward == pytest.approx(float(per_token.sum()), abs=1e-3)
        assert res.categories == {} and res.details is None
        assert res.to_fields("direct") == {"direct_reward": res.reward, "truncated": False}


def test_length_baseline():
    scorer = build_scorer("length")
    assert isinstance(scorer, LengthBaseline)
    results = scorer.score(RECORDS)
    assert [r.reward for r in results] == [float(len(r["response"])) for r in RECORDS]
    assert scorer.compare("q", "a longer answer", "short") == len("a longer answer") - len("short")
    assert scorer.compare("q", "short", "a longer answer") < 0


def test_compare_sign(tiny, flr_default):
    model, tokenizer = tiny
    scorer, results = flr_default
    prompt = RECORDS[0]["prompt"]
    a, b = RECORDS[0]["response"], RECORDS[1]["response"]
    diff = scorer.compare(prompt, a, b)
    assert diff == pytest.approx(results[0].reward - results[1].reward, abs=1e-5)
    assert scorer.compare(prompt, b, a) == pytest.approx(-diff, abs=1e-6)
    assert diff != 0


def test_iter_score_chunks(tiny):
    scorer = build_scorer("length")
    chunks = list(scorer.iter_score(RECORDS * 3, chunk_size=4))
    assert [len(c) for c in chunks] == [4, 4, 1]
    assert [r.reward for c in chunks for r in c] == [r.reward for r in scorer.score(RECORDS * 3)]


def test_build_scorer(tiny):
    model, tokenizer = tiny
    assert isinstance(build_scorer("flr", model, tokenizer), FollowUpReward)
    assert isinstance(build_scorer("direct", model, tokenizer), DirectLikelihood)
    scorer = build_scorer("flr", model, tokenizer, config=ScorerConfig(statistic="sum"), model_name="tiny")
    assert scorer.config.statistic == "sum" and scorer.describe()["model"] == "tiny"
    for bad in ("flrr", "rm", "Direct", ""):
        with pytest.raises(FLRError, match="unknown scorer"):
            build_scorer(bad, model, tokenizer)


def test_build_scorer_loads_a_model(tiny_model_dir):
    from flr.kernel.models import ModelConfig

    scorer = build_scorer("direct", model_config=ModelConfig(model=str(tiny_model_dir), device="cpu"))
    assert isinstance(scorer, DirectLikelihood)
    assert scorer.describe()["model"] == str(tiny_model_dir)
    assert scorer.score(RECORDS[:1])[0].reward < 0


def test_fingerprint(tiny, tmp_path):
    model, tokenizer = tiny

    def fp(**kwargs) -> str:
        return FollowUpReward(model, tokenizer, ScorerConfig(**kwargs), model_name="tiny").fingerprint()

    base = fp()
    assert base == fp()  # stable
    # settings that cannot change a score do not change the fingerprint (so a resumed run may change them)
    assert (
        base
        == fp(batch_size=3)
        == fp(token_budget=999)
        == fp(share_prefix=0)
        == fp(max_padding=1.0)
        == fp(method="reference")
    )
    assert base == fp(categories="understanding,engagingness,instruction_following")
    changed = {
        "statistic": fp(statistic="sum"),
        "include_eot": fp(include_eot=True),
        "max_length": fp(max_length=512),
        "weights": fp(weights="1,2,3"),
        "categories": fp(categories="understanding"),
    }
    path = tmp_path / "set.yaml"
    path.write_text("c:\n  positive: [Great]\n  negative: [Wrong]\n")
    changed["followups"] = fp(followups=str(path))
    changed["model"] = FollowUpReward(model, tokenizer, model_name="other").fingerprint()
    changed["scorer"] = DirectLikelihood(model, tokenizer, model_name="tiny").fingerprint()
    assert base not in changed.values()
    assert len(set(changed.values())) == len(changed)
    direct = DirectLikelihood(model, tokenizer, model_name="tiny")
    assert direct.fingerprint() != DirectLikelihood(model, tokenizer, ScorerConfig(statistic="sum")).fingerprint()
    assert build_scorer("length").fingerprint() == LengthBaseline().fingerprint()


def test_score_result_fields():
    res = ScoreResult(reward=1.5, categories={"a": 1.0}, truncated=True, details=[{"x": 1}])
    assert res.to_fields() == {"flr_reward": 1.5, "flr_categories": {"a": 1.0}, "truncated": True}
    assert res.to_fields(details=True)["flr_details"] == [{"x": 1}]
    assert ScoreResult(reward=2.0).to_fields("length") == {"length_reward": 2.0, "truncated": False}


def test_classifier_reward(tokenizer, tmp_path):
    """rm:<folder> loads any sequence-classification model; rewards do not depend on padding."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from flr.kernel.models import ModelConfig

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    spec = f"rm:{tmp_path / 'rm'}"
    one = build_scorer(spec, model_config=ModelConfig(device="cpu"), config=ScorerConfig(batch_size=1))
    many = build_scorer(spec, model_config=ModelConfig(device="cpu"), config=ScorerConfig(batch_size=8))
    a, b = one.score(RECORDS), many.score(RECORDS)
    assert [r.reward for r in a] == pytest.approx([r.reward for r in b], abs=1e-4)
    assert len({round(r.reward, 5) for r in a}) > 1
    assert one.fingerprint() == many.fingerprint()

"""Learned FLR on the tiny model: weighted follow-up sets, fitting, PMI calibration, the per-follow-up cache,
preference tuning, the classifier anchor, and cache invalidation when an adapter is retrained in place."""

import json

import numpy as np
import pytest

from flr.errors import FLRError, InputError
from flr.followups import dump_followups, load_followups
from flr.followups.fitting import fit_weights, weighted_set
from flr.kernel.models import load_model, weights_fingerprint
from flr.scorers import FollowUpReward, ScorerConfig, build_scorer
from flr.scorers.cache import ScoreCache
from flr.training import train
from flr.training.args import from_mapping

SIDES = ("chosen", "rejected")
PAIRS = [
    {"prompt": "What is 2+2?", "chosen": "It is 4.", "rejected": "I like turtles."},
    {"prompt": [{"role": "user", "content": "Name a color."}], "chosen": "Blue.", "rejected": "No."},
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _configs(method: str, **keys) -> tuple:
    """``(data, trainer config, model)`` as ``flr train <method> --config`` builds them from these keys."""
    return from_mapping(method, {"use_cpu": True, **keys}, "test")


def test_weighted_set_loads_and_changes_rewards(tiny, tmp_path):
    model, tokenizer = tiny
    path = tmp_path / "w.yaml"
    path.write_text(
        "a:\n  positive: [{text: 'Thanks!', weight: 2.0}, {text: 'Great.', weight: -0.5}]\n"
        "  negative: [{text: 'Wrong.', weight: 1.0}]\n"
    )
    fset = load_followups(str(path))
    assert fset.weighted and fset.coefficients == [2.0, -0.5, 1.0]
    weighted = FollowUpReward(model, tokenizer, ScorerConfig(followups=str(path)))
    (res,) = weighted.score(PAIRS[:1] and [{"prompt": "Hi", "response": "Hello!"}])
    d = [x["logprob_mean"] for x in res.details]
    assert res.reward == pytest.approx(2.0 * d[0] - 0.5 * d[1] - 1.0 * d[2], abs=1e-6)
    plain = tmp_path / "p.yaml"
    plain.write_text("a:\n  positive: ['Thanks!', 'Great.']\n  negative: ['Wrong.']\n")
    (unweighted,) = FollowUpReward(model, tokenizer, ScorerConfig(followups=str(plain))).score(
        [{"prompt": "Hi", "response": "Hello!"}]
    )
    assert unweighted.reward == pytest.approx((d[0] + d[1]) / 2 - d[2], abs=1e-6)
    assert weighted.fingerprint() != FollowUpReward(model, tokenizer, ScorerConfig(followups=str(plain))).fingerprint()


@pytest.mark.parametrize(
    "body, field",
    [
        ("a:\n  positive: [{text: 'x', weight: 1}, 'y']\n  negative: [{text: 'z', weight: 1}]\n", "a.positive"),
        (
            "a:\n  positive: [{text: 'x', weight: 'big'}]\n  negative: [{text: 'z', weight: 1}]\n",
            "a.positive[0].weight",
        ),
        ("a:\n  positive: [{text: 'x', weight: 1}]\n  negative: ['z']\n", "a"),
    ],
)
def test_bad_weights_are_one_line_errors(tmp_path, body, field):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(InputError) as err:
        load_followups(str(path))
    assert err.value.field == field and "\n" not in str(err.value)


def test_fit_recovers_informative_followups_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 4))
    features[:, 0] += 1.0  # only the first follow-up separates chosen from rejected
    coef, stats = fit_weights(features)
    assert coef[0] > 3 * np.abs(coef[1:]).max() and stats["cv_accuracy"] > 0.7
    fset = load_followups("compact").select("understanding")
    fitted = weighted_set(fset, coef)
    dump_followups(fitted, tmp_path / "f.yaml", extra={"fit": stats})
    again = load_followups(str(tmp_path / "f.yaml"))
    assert again.coefficients == pytest.approx([c * 1 for c in coef], abs=1e-5)  # one category: scale 1
    with pytest.raises(FLRError):
        weighted_set(fset, coef[:3])  # weights for another follow-up set
    with pytest.raises(FLRError):
        fit_weights(features[:3])


def test_pmi_keeps_pairwise_margins_and_moves_rewards(tiny):
    model, tokenizer = tiny
    plain = FollowUpReward(model, tokenizer, ScorerConfig(followups="compact"))
    pmi = FollowUpReward(model, tokenizer, ScorerConfig(followups="compact", calibration="pmi"))
    recs = [{"prompt": p["prompt"], "response": p[s]} for p in PAIRS for s in ("chosen", "rejected")]
    a, b = plain.score(recs), pmi.score(recs)
    for i in (0, 2):  # the content-free baseline cancels between two responses to one prompt
        assert a[i].reward - a[i + 1].reward == pytest.approx(b[i].reward - b[i + 1].reward, abs=1e-5)
    assert abs(a[0].reward - b[0].reward) > 1e-4 and "calibrated" in b[0].details[0]
    assert plain.fingerprint() != pmi.fingerprint()
    with pytest.raises(FLRError):
        FollowUpReward(model, tokenizer, ScorerConfig(calibration="zscore"))


def test_followup_cache_reuses_logprobs_across_sets(tiny, tmp_path, monkeypatch):
    import flr.scorers.flr as followup

    model, tokenizer = tiny
    cache = ScoreCache(tmp_path / "c.db")
    recs = [{"prompt": "Hi", "response": "Hello!"}, {"prompt": "Bye", "response": "Goodbye."}]
    full = FollowUpReward(model, tokenizer, ScorerConfig(followups="compact"))
    full.attach_cache(cache)
    first = full.score(recs)
    calls = []
    real = followup.continuation_logprobs
    monkeypatch.setattr(followup, "continuation_logprobs", lambda *a, **k: calls.append(1) or real(*a, **k))
    subset = FollowUpReward(model, tokenizer, ScorerConfig(followups="compact", categories="understanding"))
    subset.attach_cache(cache)
    again = subset.score(recs)
    assert not calls  # every log-prob came from the cache
    assert again[0].details[0]["logprob_mean"] == pytest.approx(first[0].details[0]["logprob_mean"])
    uncached = FollowUpReward(model, tokenizer, ScorerConfig(followups="compact", categories="understanding"))
    assert uncached.score(recs)[0].reward == pytest.approx(again[0].reward, abs=1e-5)
    cache.close()


def test_signed_margins_signs(tiny):
    model, tokenizer = tiny
    scorer = FollowUpReward(model, tokenizer, ScorerConfig(followups="compact", categories="understanding"))
    X = scorer.signed_margins(PAIRS, progress=False)
    rewards = scorer.score([{"prompt": p["prompt"], "response": p[s]} for p in PAIRS for s in ("chosen", "rejected")])
    # the unweighted reward margin is the coefficient-weighted sum of the features
    coef = np.array(scorer.coefficients)
    assert X.shape == (2, 4)
    assert X @ coef == pytest.approx([rewards[0].reward - rewards[1].reward, rewards[2].reward - rewards[3].reward])


def _margin(model_dir_or_model, tokenizer=None):
    if tokenizer is None:
        model, tokenizer = load_model(str(model_dir_or_model), device="cpu", dtype="float32")
    else:
        model = model_dir_or_model
    scorer = FollowUpReward(model, tokenizer, ScorerConfig(followups="compact"))
    r = scorer.score([{"prompt": p["prompt"], "response": p[s]} for p in PAIRS for s in ("chosen", "rejected")])
    return (r[0].reward - r[1].reward) + (r[2].reward - r[3].reward)


def test_preference_tuning_raises_the_margin_and_scores_as_a_model(tiny_model_dir, tmp_path):
    data = _write(tmp_path / "pairs.jsonl", PAIRS)
    before = _margin(tiny_model_dir)
    out = tmp_path / "flr"
    configs = _configs(
        "flr", data=data, model=str(tiny_model_dir), output_dir=str(out), max_steps=8, per_device_train_batch_size=2,
        learning_rate=3e-2, max_length=256, save_steps=4, resume_from_checkpoint="none", lora_r=8,
        followups_per_step=2, kl_coef=0.1, lora_layers=None,
    )  # fmt: skip
    summary = train("flr", *configs)
    assert summary["steps"] == 8 and summary["seconds_per_step"] > 0 and (out / "training.png").exists()
    assert "kl" in summary["final"] and (out / "flr_followups.yaml").exists()
    after = _margin(out)  # the output folder is a model spec; FLR scores with the adapter's follow-up set
    assert after > before + 1e-3
    model, _ = load_model(str(out), device="cpu")
    scorer = build_scorer("flr", model, load_model(str(out), device="cpu")[1])
    assert scorer.followups.name == "flr-compact"


UNEVEN = "a:\n  positive: [Thanks!]\n  negative: [That is wrong., 'Huh?', 'No, that is not what I asked.']\n"
TWO_CATEGORIES = UNEVEN + "b:\n  positive: ['Great, that helps.', Perfect.]\n  negative: ['What?']\n"


@pytest.mark.parametrize("body, weights", [(UNEVEN, None), (TWO_CATEGORIES, "3,1")], ids=["uneven", "weighted"])
def test_the_trained_reward_is_the_scored_reward(tiny_model_dir, tmp_path, body, weights):
    """FLRTrainer's reward is FollowUpReward's: each follow-up weighted by its coefficient (1/len of its list), the
    categories by --weights. A set whose positive and negative lists differ in length is the case that tells."""
    import torch

    from flr.training.flr import FLRConfig, FLRTrainer

    path = tmp_path / "set.yaml"
    path.write_text(body)
    model, tokenizer = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    config = ScorerConfig(followups=str(path), weights=weights, max_length=256)
    args = FLRConfig(  # every follow-up, every step
        output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", followups_per_step=3, kl_coef=0.0
    )
    trainer = FLRTrainer(model=model, args=args, processing_class=tokenizer, flr_config=config)
    with torch.no_grad():
        trainer.compute_loss(model, {"records": PAIRS})
    scored = FollowUpReward(model, tokenizer, config).score(
        [{"prompt": p["prompt"], "response": p[s]} for p in PAIRS for s in ("chosen", "rejected")]
    )
    rewards = [r.reward for r in scored]
    margin = (rewards[0] - rewards[1] + rewards[2] - rewards[3]) / 2
    assert trainer.stats["rewards/margins"] == [pytest.approx(margin, abs=1e-4)]
    assert abs(margin) > 1e-3  # the comparison has something to tell apart
    assert trainer.stats["rewards/chosen"] == [pytest.approx((rewards[0] + rewards[2]) / 2, abs=1e-4)]
    assert trainer.stats["rewards/rejected"] == [pytest.approx((rewards[1] + rewards[3]) / 2, abs=1e-4)]


@pytest.mark.parametrize("per_list", [1, 2, 3])
def test_a_sampled_subset_estimates_the_full_reward_without_bias(tmp_path, per_list):
    """--followups-per-step below a list's length: the subset's reward, averaged over every equally likely draw,
    is the full set's reward (exactly, not by sampling); with every follow-up drawn it is the full reward."""
    import itertools
    import random

    from flr.scorers.flr import followup_reward, sample_followups

    path = tmp_path / "set.yaml"
    path.write_text(TWO_CATEGORIES)
    fset = load_followups(str(path))
    values = [-1.0, -2.0, -4.0, -7.0, -0.5, -3.0, -6.0]  # one per follow-up, in fset.utterances order
    weights = {"a": 3.0, "b": 1.0}
    full, _ = followup_reward(values, fset.utterances, fset.coefficients, weights)

    class Draw:  # an rng whose sample() returns one planned draw per list
        def __init__(self, picks):
            self.picks = iter(picks)

        def sample(self, population, k):
            return list(next(self.picks))

    lengths = [len(texts) for c in fset.categories.values() for texts in (c.positive, c.negative)]  # 1, 3, 2, 1
    outcomes = list(itertools.product(*(itertools.combinations(range(n), min(per_list, n)) for n in lengths)))
    rewards = []
    for picks in outcomes:
        indices, coefficients = sample_followups(fset, per_list, Draw(picks))
        chosen = [fset.utterances[i] for i in indices]
        rewards.append(followup_reward([values[i] for i in indices], chosen, coefficients, weights)[0])
    assert np.mean(rewards) == pytest.approx(full, abs=1e-12)
    assert (np.ptp(rewards) > 0.1) == (per_list < 3)  # a subset's reward varies; the whole set's does not
    indices, coefficients = sample_followups(fset, per_list, random.Random(0))  # the real draw: a valid subset
    assert len(indices) == sum(min(per_list, n) for n in lengths) == len(set(indices))


def test_classifier_rm_learns_the_direction_of_the_pairs(tiny_model_dir, tmp_path):
    """The RM trained on the pairs ranks their chosen responses higher than the RM trained, from the same start, on
    the same pairs with chosen and rejected swapped: an RM trained backwards fails this."""
    import torch

    def trained(name, pairs):
        out = tmp_path / name
        configs = _configs(
            "rm", data=_write(tmp_path / f"{name}.jsonl", pairs * 2), model=str(tiny_model_dir), output_dir=str(out),
            max_steps=4, per_device_train_batch_size=2, learning_rate=1e-2, max_length=128,
            resume_from_checkpoint="none",
        )  # fmt: skip
        torch.manual_seed(0)  # the fresh score head: the same start for both runs
        summary = train("rm", *configs)
        assert summary["steps"] == 4 and (out / "adapter_config.json").exists()
        scorer = build_scorer(f"rm:{out}", config=ScorerConfig(max_length=128))
        r = [x.reward for x in scorer.score([{"prompt": p["prompt"], "response": p[s]} for p in PAIRS for s in SIDES])]
        return scorer, [r[0] - r[1], r[2] - r[3]]  # margins on the (unswapped) training pairs

    scorer, forward = trained("rm", PAIRS)
    _, backward = trained("rm-swapped", [dict(p, chosen=p["rejected"], rejected=p["chosen"]) for p in PAIRS])
    assert all(f > b + 0.05 for f, b in zip(forward, backward)), (forward, backward)
    assert np.mean(forward) > 0 > np.mean(backward)
    long = {"prompt": "word " * 400, "response": "Short answer."}
    results = scorer.score([{"prompt": "What is 2+2?", "response": "It is 4."}, long])
    assert all(np.isfinite(r.reward) for r in results)


def test_flr_train_rm_takes_trl_reward_config_flags(tiny_model_dir, tmp_path, capsys):
    data = _write(tmp_path / "pairs.jsonl", PAIRS * 2)
    out = tmp_path / "rm-cli"
    argv = ["train", "rm", "--dataset-name", data, "--model-name-or-path", str(tiny_model_dir), "--max-steps", "2",
            "--per-device-train-batch-size", "2", "--lora-r", "4", "--max-length", "128", "--output-dir", str(out)]  # fmt: skip
    from flr.cli import main

    assert main(argv) == 0 and "2 steps" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["learning_rate"] == 2e-4 and "RewardConfig" in summary["trainer_config"]
    )  # flr's default, TRL's class
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    (result,) = build_scorer(f"rm:{out}", config=ScorerConfig(max_length=128)).score(
        [{"prompt": "Hi?", "response": "Hello."}]
    )
    assert np.isfinite(result.reward)


def test_retraining_in_place_changes_the_cache_key(tiny_model_dir, tmp_path):
    data = _write(tmp_path / "pairs.jsonl", PAIRS)
    out = tmp_path / "flr"

    def run(lr):
        configs = _configs(
            "flr", data=data, model=str(tiny_model_dir), output_dir=str(out), max_steps=2,
            per_device_train_batch_size=2, learning_rate=lr, max_length=256, resume_from_checkpoint="none",
            lora_layers=None,
        )  # fmt: skip
        train("flr", *configs)
        model, tokenizer = load_model(str(out), device="cpu")
        return weights_fingerprint(str(out)), build_scorer("flr", model, tokenizer).fingerprint()

    first, second = run(1e-2), run(5e-2)
    assert first[0] != second[0] and first[1] != second[1]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"prompt": "Hi", "response": "Hello"}], "field 'chosen'"),
        ([{"prompt": "Hi", "chosen": "", "rejected": "x"}], "field 'chosen': empty"),
        ([{"prompt": 3, "chosen": "a", "rejected": "b"}], "field 'prompt'"),
        ([], "no records"),
    ],
)
def test_bad_training_pairs_fail_before_the_model_loads(tmp_path, rows, message):
    data = _write(tmp_path / "pairs.jsonl", rows)
    configs = _configs("flr", data=data, output_dir=str(tmp_path / "out"), model="/nonexistent/model/folder")
    with pytest.raises(FLRError) as err:
        train("flr", *configs)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--scorers", "flr,bogus"], "unknown scorer 'bogus'"),
        (["--benchmarks", "nosuchbench"], "unknown benchmark 'nosuchbench'"),
        (["--limit", "-1"], "--limit must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_eval_rejects_bad_arguments_before_loading_a_model(argv, message, capsys):
    from flr.cli import main

    # the model spec does not exist: reaching the loader would fail with another message
    assert main(["eval", "--benchmarks", "demo", "--model", "/nonexistent/model", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_eval_rejects_a_bad_followup_file_before_loading_a_model(tmp_path, capsys):
    from flr.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("a:\n  positive: [{text: 'x', weight: 1}, 'y']\n  negative: [{text: 'z', weight: 1}]\n")
    assert main(["eval", "--benchmarks", "demo", "--model", "/nonexistent/model", "--followups", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_default_tuned_ships_and_is_selectable_by_name():
    from pathlib import Path

    from flr.kernel.models import adapter_base, is_adapter_dir, resolve_spec

    path = Path(resolve_spec("default-tuned"))
    assert is_adapter_dir(str(path)) and (path / "flr_followups.yaml").exists()
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # what PEFT alone loads
    assert adapter_base(path) == "default"  # what flr loads: the embedded model it was tuned on
    assert sum(f.stat().st_size for f in path.iterdir()) < 20_000_000  # a few MB of LoRA weights
    model, tokenizer = load_model("default-tuned", device="cpu")
    scorer = build_scorer("flr", model, tokenizer)
    assert scorer.followups.name == load_followups(str(path / "flr_followups.yaml")).name
    (result,) = scorer.score([{"prompt": "What is 2+2?", "response": "4."}])
    assert np.isfinite(result.reward)


def test_preference_tuning_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    data = _write(tmp_path / "pairs.jsonl", PAIRS * 2)

    def run(steps):
        configs = _configs(
            "flr", data=data, model=str(tiny_model_dir), output_dir=str(tmp_path / "flr"), max_steps=steps,
            per_device_train_batch_size=2, max_length=256, save_steps=2, lora_layers=1,
        )  # fmt: skip
        return train("flr", *configs)

    first = run(2)
    second = run(4)
    assert first["steps"] == 2 and second["steps"] == 4 and second["resumed_from"].endswith("checkpoint-2")

"""Length-controlled evaluation: metrics on synthetic pairs with known answers, and flr eval's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flr.eval.metrics import (
    MIN_PAIRS_FOR_CI,
    beyond_length,
    length_agreement,
    length_control_report,
    length_matched,
    matched_accuracy,
    partial_spearman,
)


def _length_labelled_pairs(n: int, seed: int, signal: float = 0.0):
    """Pairs whose human label depends on length (and, with ``signal``, on a hidden quality q).

    Returns (chosen lengths, rejected lengths, q_chosen, q_rejected): response a/b get random lengths and
    qualities; the label picks a with probability sigmoid(1.5 log(len_a/len_b) + signal (q_a - q_b)).
    """
    rng = np.random.default_rng(seed)
    len_a, len_b = rng.integers(40, 4000, n).astype(float), rng.integers(40, 4000, n).astype(float)
    q_a, q_b = rng.normal(size=n), rng.normal(size=n)
    logit = 1.5 * np.log(len_a / len_b) + signal * (q_a - q_b)
    a_wins = rng.random(n) < 1 / (1 + np.exp(-logit))
    pick = lambda x, y: np.where(a_wins, x, y)  # noqa: E731
    return pick(len_a, len_b), pick(len_b, len_a), pick(q_a, q_b), pick(q_b, q_a)


def test_noise_reward_has_no_signal_beyond_length():
    len_c, len_r, _, _ = _length_labelled_pairs(600, seed=1)
    rng = np.random.default_rng(2)
    out = beyond_length(rng.normal(size=600), rng.normal(size=600), len_c, len_r)
    assert out["n"] == 600
    assert out["ci"][0] < 0 < out["ci"][1]  # the reward's coefficient is indistinguishable from zero
    assert out["length_coef"] > 1.0  # while length explains the labels (true value 1.5)
    assert abs(out["cv_accuracy"] - out["cv_accuracy_length"]) < 0.05


def test_planted_signal_beyond_length_recovers_sign_and_size():
    len_c, len_r, q_c, q_r = _length_labelled_pairs(3000, seed=3, signal=1.0)
    # the reward is the hidden quality (scaled and shifted: the coefficient is per SD of the margin)
    out = beyond_length(10 * q_c + 5, 10 * q_r + 5, len_c, len_r)
    margin_sd = np.sqrt(np.mean((q_c - q_r) ** 2))
    assert out["ci"][0] > 0
    assert out["coef"] == pytest.approx(1.0 * margin_sd, rel=0.2)  # true: 1.0 per unit q = 1.0 * SD per SD
    assert out["length_coef"] == pytest.approx(1.5, rel=0.2)
    assert out["cv_accuracy"] > out["cv_accuracy_length"] + 0.03
    # the same reward, negated, recovers the negative sign
    assert beyond_length(-q_c, -q_r, len_c, len_r)["ci"][1] < 0


def test_length_matched_pairs_are_exactly_those_within_the_ratio():
    len_c = [100, 100, 100, 125, 0, 0, 80, 1000]
    len_r = [100, 125, 126, 100, 0, 10, 100, 799]
    assert length_matched(len_c, len_r, 1.25).tolist() == [True, True, False, True, True, False, True, False]
    assert length_matched(len_c, len_r, 1.3).tolist()[2] is True
    with pytest.raises(ValueError):
        length_matched([1], [1], 0.9)


def test_matched_accuracy_uses_only_matched_pairs_and_counts_ties_wrong():
    n = 12
    len_c = [100] * n + [500] * 5  # 12 matched pairs, then 5 unmatched ones the scorer gets all right
    len_r = [110] * n + [100] * 5
    chosen = [1.0] * 6 + [0.0] * 3 + [0.5] * 3 + [9.0] * 5
    rejected = [0.0] * 6 + [1.0] * 3 + [0.5] * 3 + [0.0] * 5
    out = matched_accuracy(chosen, rejected, len_c, len_r)
    assert out["n"] == 12 and out["accuracy"] == pytest.approx(6 / 12) and out["tie_rate"] == pytest.approx(3 / 12)
    assert out["ci"][0] < 0.5 < out["ci"][1]


def test_too_few_matched_pairs_give_n_and_no_number():
    out = matched_accuracy([1, 2, 3], [0, 0, 0], [100, 100, 900], [100, 100, 100])
    assert out == {"n": 2, "accuracy": None, "ci": None, "tie_rate": None, "ratio": 1.25}
    assert MIN_PAIRS_FOR_CI > 2
    none = length_control_report([1.0], [0.0], [1000], [10])
    assert none["matched"]["n"] == 0 and none["matched"]["accuracy"] is None
    assert none["beyond_length"]["coef"] is None  # no NaN anywhere: json.dumps with allow_nan=False accepts it
    json.dumps(none, allow_nan=False)


def test_length_agreement():
    out = length_agreement([2, 1, 5, 3, 3], [1, 2, 4, 3, 0], [10, 10, 1, 20, 7], [5, 5, 2, 10, 7])
    # pair 5 has equal lengths (left out); pair 4 is a score tie (not agreeing)
    assert out == {"share": pytest.approx(1 / 4), "n": 4}


def test_partial_spearman_removes_a_shared_confound():
    rng = np.random.default_rng(0)
    length = rng.normal(size=200)
    reward, target = length + 0.3 * rng.normal(size=200), length + 0.3 * rng.normal(size=200)
    plain = partial_spearman(reward, target, rng.normal(size=200))["spearman"]
    controlled = partial_spearman(reward, target, length)
    assert plain > 0.8 and abs(controlled["spearman"]) < 0.2 and controlled["n"] == 200
    assert partial_spearman([1, 2, 3], [1, 2, 3], [3, 2, 1])["spearman"] is None  # n < 4


def test_eval_reports_length_control_without_flags(tmp_path, tiny):
    from flr.jobs.eval import EvalConfig, run_eval
    from flr.scorers import ScorerConfig, build_scorer

    model, tokenizer = tiny
    config = ScorerConfig(categories="understanding", batch_size=4)
    scorers = {n: build_scorer(n, model, tokenizer, config=config, model_name="tiny") for n in ("flr", "length")}
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"q{i}", "chosen": "a" * (10 + i), "rejected": "b" * (10 + (i % 3) * 7)} for i in range(12)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    run_eval(EvalConfig(benchmarks=f"demo,{pairs}", output_dir=str(out), cache=str(tmp_path / "c.db")), scorers)
    summary = json.loads((out / "summary.json").read_text())
    mine = summary["results"]["pairs"]["scorers"]
    expected = [
        max(len(r["chosen"]), len(r["rejected"])) <= 1.25 * min(len(r["chosen"]), len(r["rejected"])) for r in rows
    ]
    assert mine["flr"]["length_control"]["matched"]["n"] == sum(expected)
    written = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert [w["length_matched"] for w in written] == expected
    assert mine["length"]["length_control"]["length_agreement"]["share"] == 1.0  # length agrees with itself
    assert set(summary["length_control"]["pooled"]) == {"flr", "length"}
    report = (out / "report.md").read_text()
    assert "Accuracy on length-matched pairs" in report and "Signal beyond length" in report
    assert "pooled (n=36)" in report  # demo's 24 pairs + these 12


def test_bad_length_ratio_is_one_line(tmp_path):
    from flr.errors import FLRError
    from flr.jobs.eval import EvalConfig

    with pytest.raises(FLRError, match="--length-ratio must be greater than 1"):
        EvalConfig(length_ratio=1.0)


def test_eval_length_debias_removes_the_length_trend(tmp_path):
    """--length-debias batch: a reward that is a line in log length plus a per-pair signal keeps only the signal."""
    from flr.jobs.eval import EvalConfig, run_eval
    from flr.scorers.base import ScoreResult
    from flr.scorers.baselines import LengthBaseline

    class LogLengthPlusMark(LengthBaseline):
        name = "marked"

        def _score_chunk(self, records):
            return [ScoreResult(3.0 * np.log(len(r["response"])) + ("good" in r["response"])) for r in records]

    rows = [
        {"prompt": f"q{i}", "chosen": "good " + "a" * (5 + 3 * i), "rejected": "b" * (40 + 7 * i)} for i in range(12)
    ]
    pairs = tmp_path / "p.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kwargs = dict(benchmarks=str(pairs), cache=str(tmp_path / "c.db"))
    plain = run_eval(EvalConfig(output_dir=str(tmp_path / "a"), **kwargs), {"marked": LogLengthPlusMark()})
    fair = run_eval(
        EvalConfig(output_dir=str(tmp_path / "b"), length_debias="batch", **kwargs), {"marked": LogLengthPlusMark()}
    )
    assert plain["results"]["p"]["scorers"]["marked"]["accuracy"] == 0.0  # the longer (rejected) side always wins
    assert fair["results"]["p"]["scorers"]["marked"]["accuracy"] == 1.0  # the mark alone decides once length is out


def test_eval_length_unit_tokens_measures_with_the_scorer_models_tokenizer(tmp_path, tiny_model_dir, tokenizer):
    """``flr eval --length-unit tokens``: the rows' lengths and the length-controlled metrics count the model's
    tokens, not characters."""
    import json

    from flr.cli import main

    pairs = [
        {"prompt": "q", "chosen": "A short answer here.", "rejected": "Four."},
        {"prompt": "r", "chosen": "Supercalifragilistic", "rejected": "a b c d e f g h"},
    ]
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    out = tmp_path / "run"
    argv = ["eval", "--benchmarks", str(data), "--scorers", "length", "--length-unit", "tokens"]
    assert main(argv + ["--model", str(tiny_model_dir), "-o", str(out), "--cache", str(tmp_path / "c.db")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["length_control"]["unit"] == "tokens"
    rows = [json.loads(line) for line in (out / "p.jsonl").read_text().splitlines()]

    def tokens(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    assert [r["lengths"] for r in rows] == [
        {"chosen": tokens(p["chosen"]), "rejected": tokens(p["rejected"])} for p in pairs
    ]
    assert [r["lengths"]["chosen"] for r in rows] != [len(p["chosen"]) for p in pairs]  # not characters

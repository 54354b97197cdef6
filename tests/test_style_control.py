"""Style control and LOWESS calibration: label-free debiasing on the style vector or a curve of length, and the
signal beyond style that every flr eval reports."""

from __future__ import annotations

import numpy as np
import pytest

from flr.errors import FLRError
from flr.eval.metrics import beyond_style, length_control_report
from flr.patterns import STYLE_FEATURES, style_matrix, style_vector
from flr.scorers.debias import check_mode, debias, debias_requests


def _styled_texts(rng, n):
    texts = []
    for _ in range(n):
        words = " ".join(["word"] * int(rng.integers(5, 200)))
        bullets = "".join(f"\n- item {j}" for j in range(int(rng.integers(0, 5))))
        closer = "\n\nI hope this helps! Let me know if you have any other questions." if rng.random() < 0.5 else ""
        header = "## Answer\n\n" if rng.random() < 0.3 else ""
        texts.append(header + words + bullets + closer)
    return texts


def test_style_vector_counts_what_it_names():
    text = "Great question! Here it is.\n\n## Steps\n\n- **one**\n- two\n\nI hope this helps! Does that make sense?"
    v = dict(zip(STYLE_FEATURES, style_vector(text)))
    assert v["log_length"] == pytest.approx(np.log(len(text)))
    assert (v["headers"], v["list_items"], v["bold"]) == (1, 2, 1)
    assert (v["opener"], v["closer"], v["bait_question"]) == (1, 1, 1)
    assert style_matrix([text, "plain"], [10, 1])[:, 0].tolist() == [pytest.approx(np.log(10)), 0.0]


@pytest.mark.parametrize("mode", ["batch", "prompt"])
def test_style_debiasing_removes_a_planted_style_effect_and_keeps_a_planted_quality_effect(mode):
    rng = np.random.default_rng(0)
    texts = _styled_texts(rng, 400)
    X = style_matrix(texts)
    quality = rng.normal(size=len(texts))
    rewards = quality + 0.7 * X[:, 2] + 1.5 * X[:, 5] + 0.5 * X[:, 0]  # list items, closer, length
    groups = list(np.arange(len(texts)) // 8)
    out, info = debias(rewards, [len(t) for t in texts], "none", groups, style=mode, texts=texts)
    if mode == "prompt":  # what is left is within-prompt: compare with quality centred on each prompt
        quality = quality - np.repeat(quality.reshape(-1, 8).mean(axis=1), 8)
    assert np.corrcoef(out, quality)[0, 1] > 0.95 > np.corrcoef(rewards, quality)[0, 1]
    for j in (0, 2, 5):  # nothing of the planted style is left
        assert abs(np.corrcoef(out, X[:, j])[0, 1]) < 0.1
    assert info["coefficients"]["closer"] == pytest.approx(1.5, abs=0.2)


def test_lowess_takes_a_curved_length_effect_out():
    rng = np.random.default_rng(1)
    lengths = rng.integers(10, 5000, size=500)
    quality = rng.normal(size=500)
    rewards = quality + 2 * np.sqrt(np.log(lengths))  # monotone, not a line in log length
    out, info = debias(rewards, lengths, "lowess")
    assert info["fitted"] and np.corrcoef(out, quality)[0, 1] > 0.97
    assert abs(np.corrcoef(out, np.log(lengths))[0, 1]) < 0.05
    few, info = debias([1.0, 2.0, 4.0], [5, 5, 5], "lowess")  # one length: the reward minus its mean
    assert not info["fitted"] and few.tolist() == pytest.approx([-4 / 3, -1 / 3, 5 / 3])


def test_debias_modes_are_checked_and_style_excludes_length():
    with pytest.raises(FLRError, match="--length-debias must be one of"):
        check_mode("loess")
    with pytest.raises(FLRError, match="--style-debias must be one of"):
        check_mode("none", style="lowess")
    with pytest.raises(FLRError, match="already controls for length"):
        check_mode("batch", style="batch")
    with pytest.raises(FLRError, match="needs each response's prompt"):
        debias([1.0], [1], "none", style="prompt", texts=["x"])


def test_debias_requests_groups_by_prompt_and_keeps_other_keys():
    requests = [(f"k{i}", ("p1" if i < 3 else "p2", "x" * (10 * (i + 1)))) for i in range(6)]
    rewards = {f"k{i}": float(i) for i in range(6)} | {"other": 7.0}
    doubled = {k: 2 * v for k, v in rewards.items()}
    out = debias_requests({"a": rewards, "b": doubled}, requests, style="prompt")
    assert out["a"]["other"] == 7.0 and out["b"]["other"] == 14.0
    assert sum(out["a"][f"k{i}"] for i in range(3)) == pytest.approx(0.0, abs=1e-9)  # centred on its prompt
    # each table fitted on its own: a scaled reward gives scaled residuals
    assert [out["b"][f"k{i}"] for i in range(6)] == pytest.approx([2 * out["a"][f"k{i}"] for i in range(6)])


def test_the_style_coefficient_contains_zero_when_labels_follow_style_alone():
    rng = np.random.default_rng(2)
    n = 300
    sc, sr = style_matrix(_styled_texts(rng, n)), style_matrix(_styled_texts(rng, n))
    diff = sc - sr
    # the label follows style alone; the reward is style too, plus noise the label never sees
    chosen_wins = (1.5 * diff[:, 5] + diff[:, 2] + rng.logistic(size=n)) > 0
    sc, sr = np.where(chosen_wins[:, None], sc, sr), np.where(chosen_wins[:, None], sr, sc)
    reward_c = 1.5 * sc[:, 5] + sc[:, 2] + rng.normal(scale=0.5, size=n)
    reward_r = 1.5 * sr[:, 5] + sr[:, 2] + rng.normal(scale=0.5, size=n)
    out = beyond_style(reward_c, reward_r, sc, sr)
    assert out["ci"][0] < 0 < out["ci"][1]
    assert np.mean(reward_c > reward_r) > 0.7  # the reward looks good on raw pairs: style carries it
    # a reward with signal of its own keeps a positive coefficient beyond style
    quality = rng.normal(size=n)
    wins = (quality + rng.logistic(size=n) * 0.3) > 0
    own = beyond_style(np.where(wins, quality, -quality) + reward_c, reward_r, sc, sr)
    assert own["ci"][0] > 0
    report = length_control_report(reward_c, reward_r, sc[:, 0], sr[:, 0], style_chosen=sc, style_rejected=sr)
    assert set(report) == {"matched", "length_agreement", "beyond_length", "beyond_style"}


def test_mining_by_the_style_debiased_reward_does_not_pick_the_closer():
    from flr.jobs.mine import mine_rows

    # the raw reward pays 2.0 for a polite closer, more than any quality difference: raw mining picks closers
    rng = np.random.default_rng(4)
    closer = " I hope this helps! Let me know if you have any other questions."
    rows = []
    for i in range(40):
        quality = rng.normal(scale=0.3, size=4)
        texts = [f"answer {i} version {j} " + "word " * int(rng.integers(20, 30)) for j in range(4)]
        with_closer = int(rng.integers(0, 4))
        texts[with_closer] += closer
        rewards = [q + (2.0 if j == with_closer else 0.0) for j, q in enumerate(quality)]
        rows.append({"id": str(i), "prompt": "Q", "candidates": texts, "rewards": rewards, "quality": quality})
    raw, _ = mine_rows(rows)
    assert np.mean([closer in r["chosen"][0]["content"] for r in raw]) == 1.0
    out, stats = mine_rows(rows, style_debias="prompt")
    assert stats["length_debias"]["style"] and stats["length_debias"]["coefficients"]["closer"] == pytest.approx(
        2.0, abs=0.3
    )
    best = [
        r["candidates"].index(o["chosen"][0]["content"]) == int(np.argmax(r["quality"])) for r, o in zip(rows, out)
    ]
    assert np.mean(best) > 0.6 and np.mean([closer in r["chosen"][0]["content"] for r in out]) < 0.5


def test_flr_score_writes_style_debiased_rewards(tmp_path, tiny_model_dir, capsys):
    import json

    from flr.cli import main

    rows = [{"prompt": "Q", "response": t} for t in ["a b c", "## H\n\n- a\n- b", "x " * 30, "**b** y", "z", "k " * 9]]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["score", str(src), "-o", str(out), "--scorer", "length", "--model", str(tiny_model_dir)]
    assert main([*args, "--style-debias", "batch"]) == 0
    assert "style-debiased over all responses (6 responses)" in capsys.readouterr().out
    got = [json.loads(line) for line in out.read_text().splitlines()]
    expected, _ = debias([r["length_reward"] for r in got], [len(r["response"]) for r in rows], "none", style="batch",
                         texts=[r["response"] for r in rows])  # fmt: skip
    assert [r["length_reward_debiased"] for r in got] == pytest.approx(expected)


@pytest.mark.parametrize("mode,style", [("prompt", "none"), ("none", "prompt"), ("lowess", "none"), ("none", "batch")])
def test_debias_of_no_rewards_is_empty_not_an_error(mode, style):
    from flr.scorers.debias import debias

    values, info = debias([], [], mode, [], style=style, texts=[])
    assert values.shape == (0,) and info["n"] == 0

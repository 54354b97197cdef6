"""flr compare: metrics through flr.eval.metrics, the position-swapped LLM judge, the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flr.errors import FLRError
from flr.eval.metrics import length_controlled_win_rate, win_rate
from flr.jobs.compare import CompareConfig, LLMJudge, ScorerJudge, run, summarize
from flr.jobs.generate import PromptConfig, SamplingConfig
from flr.kernel.models import ModelConfig
from flr.patterns import pattern_shares
from flr.records import read_jsonl
from flr.scorers import ScorerConfig


def _rows(prefs, len_c, len_b):
    return [{"preference": p, "len_candidate": c, "len_base": b} for p, c, b in zip(prefs, len_c, len_b, strict=True)]


def test_summarize_uses_the_shared_metrics():
    prefs = [1, 1, 1, 0.5, 0, 1, 0, 1]
    len_c = [300, 280, 350, 100, 90, 310, 120, 400]
    len_b = [100, 120, 110, 100, 130, 100, 140, 90]
    m = summarize(_rows(prefs, len_c, len_b), n_resamples=200)
    assert m["win_rate"] == pytest.approx(5.5 / 8)  # a tie counts half
    assert m["win_rate_ci"] == pytest.approx(list(win_rate(prefs)["ci"]))
    lc = length_controlled_win_rate(prefs, len_c, len_b)
    assert m["lc_win_rate"] == pytest.approx(lc)
    assert lc < m["win_rate"]  # the wins came with longer answers: length control discounts them
    assert m["lc_win_rate_ci"][0] <= lc <= m["lc_win_rate_ci"][1]
    assert (m["wins"], m["ties"], m["losses"], m["n"]) == (5, 1, 2, 8)


def test_summarize_equal_lengths_gives_plain_win_rate():
    m = summarize(_rows([1, 0, 1, 1], [5] * 4, [5] * 4), n_resamples=50)
    assert m["lc_win_rate"] == pytest.approx(0.75) == pytest.approx(m["win_rate"])


def test_llm_judge_averages_both_orders(tiny_model_dir, tmp_path):
    judge = LLMJudge(
        str(tiny_model_dir), ModelConfig(device="cpu", dtype="float32"), ScorerConfig(), str(tmp_path / "c.sqlite")
    )
    prompt = [{"role": "user", "content": "Name a colour."}]
    forward, backward, same = judge.judge(
        [prompt] * 3, ["Blue.", "Red, obviously.", "Blue."], ["Red, obviously.", "Blue.", "Blue."]
    )
    # swapping which policy gave which answer flips the sign exactly: position bias cancels
    assert forward["score_candidate"] == pytest.approx(-backward["score_candidate"])
    assert forward["margin_candidate_first"] == pytest.approx(-backward["margin_candidate_second"])
    assert {forward["preference"], backward["preference"]} == {0.0, 1.0}
    assert same["preference"] == 0.5 and same["score_candidate"] == 0.0 and same["consistent"] is None


def test_compare_end_to_end(tmp_path, tiny_model_dir):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": f"Say something about {w}."}) + "\n" for w in ("cats", "rain", "tea"))
    )
    cfg = CompareConfig(
        base=str(tiny_model_dir),
        candidate=str(tiny_model_dir),
        judge="length",
        output_dir=str(tmp_path / "c"),
        device="cpu",
        bootstrap=50,
        cache=str(tmp_path / "cache.sqlite"),
    )
    sampling = SamplingConfig(k=1, temperature=0.7, max_new_tokens=6, seed=1)
    summary = run(cfg, PromptConfig(prompts=str(prompts), offset=1), sampling, progress=False)
    rows = read_jsonl(tmp_path / "c" / "compare.jsonl")
    assert [r["id"] for r in rows] == ["1", "2"]
    for r in rows:
        expected = (
            1.0 if len(r["candidate"]) > len(r["base"]) else 0.0 if len(r["candidate"]) < len(r["base"]) else 0.5
        )
        assert r["preference"] == expected and r["len_candidate"] == len(r["candidate"])
    # same model, same seed, same prompts: both policies sample the same answers, every pair ties
    assert summary["metrics"]["ties"] == summary["metrics"]["identical"] == 2 and summary["metrics"]["win_rate"] == 0.5
    assert (tmp_path / "c" / "generations_base.jsonl").exists()
    assert (tmp_path / "c" / "compare.png").stat().st_size > 0
    assert "win rate" in (tmp_path / "c" / "report.md").read_text()
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["judge"]["judge"] == "length"
    import csv

    (board,) = list(csv.DictReader((tmp_path / "c" / "leaderboard.csv").open()))
    assert set(board) >= {"win_rate", "standard_error", "n_wins", "n_draws", "n_losses", "length_controlled_winrate"}
    assert int(board["n_wins"]) + int(board["n_draws"]) + int(board["n_losses"]) == int(board["n_total"])
    assert "# Example pairs" in (tmp_path / "c" / "examples.md").read_text()
    # what tuning did to the content-free patterns, for base and candidate
    assert summary["patterns"]["n"] == {"base": 2, "candidate": 2}
    assert summary["patterns"]["shares"]["base"] == pattern_shares([r["base"] for r in rows])
    report = (tmp_path / "c" / "report.md").read_text()
    assert "Content-free patterns in the outputs" in report and "| closer |" in report
    assert (tmp_path / "c" / "report.html").stat().st_size > 0


def test_compare_needs_one_response_per_policy(tmp_path):
    with pytest.raises(FLRError, match="--k 1"):
        run(CompareConfig(candidate="x"), PromptConfig(prompts="p.jsonl"), SamplingConfig(k=2))


def test_scorer_judge_prefers_higher_reward_and_reuses_cached_scores(tmp_path):
    judge = ScorerJudge("length", "default", ModelConfig(), ScorerConfig(), cache=str(tmp_path / "c.sqlite"))
    prompts, cands, bases = [[{"role": "user", "content": "q"}]] * 2, ["long answer", "a"], ["short", "a"]
    out = judge.judge(prompts, cands, bases)
    assert [o["preference"] for o in out] == [1.0, 0.5]
    assert np.isfinite(out[0]["score_candidate"])
    seen = []
    original = judge.scorer._score_chunk
    judge.scorer._score_chunk = lambda records: seen.extend(records) or original(records)
    assert judge.judge(prompts, cands, bases) == out and seen == []  # a re-run judges from the cache

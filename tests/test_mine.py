"""Mining: pure selection with ties and duplicates, TRL output rows, resumable scoring, the command."""

from __future__ import annotations

import json
import math

import pytest

from flr.errors import FLRError
from flr.jobs.mine import MineConfig, mine_rows, run, score_candidates, select_pair, select_unpaired
from flr.kernel.models import ModelConfig
from flr.records import read_jsonl
from flr.scorers import LengthBaseline, ScorerConfig

PROMPT = [{"role": "user", "content": "Hi?"}]


def test_select_pair_picks_best_and_worst_distinct_texts():
    sel = select_pair(["b", "a", "c", "a "], [0.2, 0.9, -0.4, 5.0])
    # "a " repeats "a" (whitespace-insensitive): its score is ignored, the first occurrence counts
    assert (sel.positive, sel.negative, sel.duplicates, sel.reason) == ([1], [2], 1, None)
    assert sel.margin == pytest.approx(1.3)


def test_select_pair_drop_reasons():
    assert select_pair(["only"], [1.0]).reason == "too_few_candidates"
    assert select_pair(["same", "same", " same"], [1.0, 2.0, 3.0]).reason == "all_identical"
    tie = select_pair(["x", "y", "z"], [0.5, 0.5, 0.5])
    assert tie.reason == "tie" and tie.positive == [] and tie.margin == 0
    assert select_pair(["x", "y"], [0.5, 0.45], min_margin=0.1).reason == "below_min_margin"
    assert select_pair(["x", "y"], [0.5, 0.3], min_margin=0.1).reason is None
    assert select_pair(["x", "y", "z"], [math.nan, 1.0, 0.0]).positive == [1]  # NaN scores are left out
    assert select_pair(["x", "y"], [math.nan, 1.0]).reason == "all_identical"  # fewer than 2 usable texts


def test_select_pair_equal_best_keeps_first_occurrence():
    sel = select_pair(["a", "b", "c"], [1.0, 1.0, 0.0])
    assert sel.positive == [0] and sel.negative == [2]


def test_select_unpaired_fractions_never_overlap_or_tie():
    cands = list("abcdefgh")
    sel = select_unpaired(cands, [8, 7, 6, 5, 4, 3, 2, 1], fraction=0.25)
    assert sel.positive == [0, 1] and sel.negative == [6, 7]
    # top-2 and bottom-2 would share the score 1.0: shrink to one each
    sel = select_unpaired(list("abcd"), [3.0, 1.0, 1.0, 1.0], fraction=0.5)
    assert sel.positive == [0] and sel.negative == [3]
    assert select_unpaired(list("ab"), [1.0, 1.0]).reason == "tie"
    with pytest.raises(FLRError):
        select_unpaired(list("ab"), [1.0, 0.0], fraction=0.8)


def _scored(i, cands, rewards):
    return {"id": str(i), "prompt": PROMPT, "candidates": cands, "rewards": rewards, "policy": "p", "seed": 3}


def test_mine_rows_counts_every_drop_and_writes_trl_rows():
    rows = [
        _scored(0, ["good", "bad", "good"], [1.0, -1.0, 1.0]),
        _scored(1, ["x", "y"], [0.2, 0.2]),
        _scored(2, ["same", "same"], [0.1, 0.1]),
        _scored(3, ["m", "n"], [0.01, 0.0]),
        _scored(4, ["solo"], [0.3]),
    ]
    out, stats = mine_rows(rows, min_margin=0.05)
    assert stats["dropped"] == {
        "too_few_candidates": 1,
        "all_identical": 1,
        "tie": 1,
        "below_min_margin": 1,
        "no_pair_in_length_band": 0,
    }
    assert stats["duplicate_candidates"] == 2 and stats["prompts"] == 5 and stats["kept_prompts"] == 1
    assert stats["yield"] == pytest.approx(0.2) and stats["length"]["pairs"] == 1
    assert out == [
        {
            "id": "0",
            "prompt": PROMPT,
            "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}],
            "chosen_score": 1.0,
            "rejected_score": -1.0,
            "margin": 2.0,
            "k": 3,
            "policy": "p",
            "seed": 3,
        }
    ]
    kto, kstats = mine_rows(rows, fmt="kto", min_margin=0.05)
    assert [(r["completion"][0]["content"], r["label"]) for r in kto] == [("good", True), ("bad", False)]
    assert kstats["rows"] == 2 and kstats["kept_prompts"] == 1


def test_cut_off_candidates_are_dropped_or_flagged():
    row = {**_scored(0, ["long best", "ok", "bad"], [2.0, 1.0, -1.0]), "finished": [False, True, True]}
    out, stats = mine_rows([row])
    assert (out[0]["chosen"][0]["content"], out[0]["rejected"][0]["content"]) == ("ok", "bad")
    assert "chosen_finished" not in out[0] and stats["unfinished_candidates"] == 1
    kept, _ = mine_rows([row], unfinished="keep")
    assert kept[0]["chosen"][0]["content"] == "long best"
    assert (kept[0]["chosen_finished"], kept[0]["rejected_finished"]) == (False, True)
    only_cut = {**_scored(1, ["a", "b"], [1.0, 0.0]), "finished": [False, True]}
    _, stats = mine_rows([only_cut])
    assert stats["dropped"]["too_few_candidates"] == 1


class CountingScorer(LengthBaseline):
    def __init__(self):
        self.seen = []

    def score(self, records, progress=False):
        self.seen += [r["response"] for r in records]
        return super().score(records)


def test_score_candidates_scores_distinct_texts_once_and_resumes(tmp_path):
    rows = [
        {"id": "a", "prompt": PROMPT, "candidates": ["xx", "xx", "yyy"]},
        {"id": "b", "prompt": PROMPT, "candidates": ["z", "zz"]},
    ]
    out = tmp_path / "scored.jsonl"
    scorer = CountingScorer()
    scored = score_candidates(rows[:1], scorer, out, progress=False)
    assert scorer.seen == ["xx", "yyy"]  # the duplicate is not scored again
    assert scored[0]["rewards"] == [2.0, 2.0, 3.0] and scored[0]["truncated"] == [False] * 3
    scorer.seen.clear()
    scored = score_candidates(rows, scorer, out, progress=False)
    assert scorer.seen == ["z", "zz"]  # row "a" came from the file
    assert [r["id"] for r in scored] == ["a", "b"] and len(read_jsonl(out)) == 2

    class Other(CountingScorer):
        def describe(self):
            return {"scorer": "other"}

    with pytest.raises(FLRError, match="another scorer"):
        score_candidates(rows, Other(), out, progress=False)


def test_run_from_generate_output(tmp_path):
    gen = tmp_path / "gen"
    gen.mkdir()
    rows = [
        {"id": "1", "prompt": PROMPT, "candidates": ["short", "a much longer answer"], "policy": "p", "seed": 0},
        {"id": "2", "prompt": "Plain string prompt", "candidates": ["same", "same"], "policy": "p", "seed": 0},
    ]
    (gen / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = MineConfig(candidates=str(gen), output_dir=str(tmp_path / "mine"), scorer="length")
    summary = run(cfg, ScorerConfig(), ModelConfig(), progress=False)
    assert summary["stats"]["dropped"]["all_identical"] == 1 and summary["stats"]["rows"] == 1
    pairs = read_jsonl(tmp_path / "mine" / "pairs.jsonl")
    assert pairs[0]["chosen"][0]["content"] == "a much longer answer" and pairs[0]["margin"] == 15.0
    on_disk = json.loads((tmp_path / "mine" / "summary.json").read_text())
    assert on_disk["stats"] == json.loads(json.dumps(summary["stats"])) and on_disk["scorer"]["scorer"] == "length"


def test_flr_scorer_on_the_tiny_model(tmp_path, tiny_model_dir):
    rows = [{"id": "1", "prompt": PROMPT, "candidates": ["Hello there!", "No.", "Hello there!"]}]
    (tmp_path / "c.jsonl").write_text(json.dumps(rows[0]) + "\n")
    cfg = MineConfig(candidates=str(tmp_path / "c.jsonl"), output_dir=str(tmp_path / "m"))
    mc = ModelConfig(model=str(tiny_model_dir), device="cpu", dtype="float32")
    summary = run(cfg, ScorerConfig(batch_size=4), mc, progress=False)
    scored = read_jsonl(tmp_path / "m" / "scored.jsonl")[0]
    assert scored["rewards"][0] == scored["rewards"][2] != scored["rewards"][1]
    assert set(scored["categories"][0]) == {"understanding", "engagingness", "instruction_following"}
    assert summary["stats"]["rows"] == 1 and summary["stats"]["duplicate_candidates"] == 1

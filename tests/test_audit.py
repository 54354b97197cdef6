"""flr audit: the metrics, the plan (input, edits), the run folder, resume through the score cache, the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flr.errors import FLRError
from flr.eval.metrics import median_abs_margin, perturbation_effect, share_ci
from flr.eval.metrics import perturbation_flagged as flagged
from flr.jobs.audit import AuditConfig, other_responses, prepare_audit, run_audit
from flr.scorers import LengthBaseline, ScorerConfig, build_scorer

PAIRS = [
    {"prompt": "What is 2+2?", "chosen": "2+2 is 4. Addition puts the numbers together.", "rejected": "5."},
    {"prompt": "Name a colour.", "chosen": "Blue is a colour. So is red.", "rejected": "A colour is blue, I think."},
    {"prompt": "Capital of Peru?", "chosen": "Lima is the capital of Peru.", "rejected": "Peru's capital: Cusco."},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# -- metrics ---------------------------------------------------------------------------------------------------


def test_perturbation_effect_counts_strict_rises_and_falls():
    effect = perturbation_effect([1, 2, 3, 4, np.nan], [2, 3, 3, 0, 5], margin=2.0)
    assert effect["n"] == 4  # the NaN row is left out
    assert effect["share_rises"] == 0.5 and effect["share_falls"] == 0.25 and effect["share_unchanged"] == 0.25
    assert effect["median_change"] == 0.5 and effect["median_change_margins"] == 0.25
    assert effect["mean_change"] == -0.5 and effect["reading"] == "mixed"
    assert effect["ci"][0] < 0.5 < effect["ci"][1]


def test_share_ci_is_wilson():
    low, high = share_ci(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0
    low, high = share_ci(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert share_ci(0, 0) is None


def test_readings_and_flags():
    rises = perturbation_effect([0] * 10, [1] * 10)
    falls = perturbation_effect([1] * 10, [0] * 10)
    same = perturbation_effect([1] * 10, [1] * 10)
    assert (rises["reading"], falls["reading"], same["reading"]) == ("rises", "falls", "mixed")
    assert flagged("content-free", rises) and not flagged("content-free", same) and not flagged("content-free", falls)
    assert flagged("destructive", same) and flagged("destructive", rises) and not flagged("destructive", falls)
    assert not flagged("custom", rises) and not flagged("content-free", perturbation_effect([], []))


def test_median_abs_margin():
    assert median_abs_margin([3, 1, 5], [1, 2, 5.5]) == 1.0
    assert median_abs_margin([1, 1], [1, 1]) is None and median_abs_margin([], []) is None


def test_other_response_is_the_next_one_for_another_prompt():
    rs = [{"prompt": "a", "response": "1"}, {"prompt": "a", "response": "2"}, {"prompt": "b", "response": "3"}]
    assert other_responses(rs) == ["3", "3", "1"]
    assert other_responses(rs[:2]) == [None, None]


# -- the run ---------------------------------------------------------------------------------------------------


def test_length_scorer_audit_on_pairs(tmp_path):
    """Length rises with every addition and falls with truncation: share 1.0 and 0.0, as the metric must say."""
    config = AuditConfig(
        input=write(tmp_path / "pairs.jsonl", PAIRS), output_dir=str(tmp_path / "run"), cache=str(tmp_path / "c.db")
    )
    summary = run_audit(config, {"length": LengthBaseline()})
    results = summary["results"]["length"]
    assert summary["kind"] == "pairwise" and summary["responses"] == 6 and summary["pairs"] == 3
    for name in ("closer", "opener", "bait_question", "restate_prompt", "markdown", "repeat_last_paragraph"):
        assert results[name]["share_rises"] == 1.0 and results[name]["reading"] == "rises", name
    assert results["truncate_half"]["share_rises"] == 0.0 and results["truncate_half"]["share_falls"] == 1.0
    assert results["shuffle_sentences"]["share_unchanged"] == 1.0  # the same characters, reordered
    margin = np.median([abs(len(p["chosen"]) - len(p["rejected"])) for p in PAIRS])
    assert summary["median_abs_margin"]["length"] == margin
    closer = len("\n\nI hope this helps! Let me know if you have any other questions.")
    assert results["closer"]["median_change"] == closer
    assert results["closer"]["median_change_margins"] == pytest.approx(closer / margin)
    assert "closer" in summary["flags"]["length"] and "truncate_half" not in summary["flags"]["length"]
    info = summary["perturbations"]["closer"]
    assert info["kind"] == "content-free" and info["edited"] == 6 and info["unchanged"] == 0
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    assert len(rows) == sum(p["edited"] for p in summary["perturbations"].values())
    assert rows[0]["length"]["change"] == rows[0]["length"]["after"] - rows[0]["length"]["before"]
    report = (run / "report.md").read_text()
    assert "| closer | content-free | 6 | 100 [61, 100] ⚠ |" in report and "![audit](audit.png)" in report
    assert "in units of each scorer's median |chosen − rejected| margin (3 labelled pairs)" in report
    assert (run / "audit.png").stat().st_size > 0 and (run / "report.html").stat().st_size > 0
    assert json.loads((run / "summary.json").read_text())["provenance"]["config"]["AuditConfig"]["input"]


def test_a_response_file_has_no_margin_unit(tmp_path):
    rows = [{"prompt": p["prompt"], "response": p["chosen"]} for p in PAIRS]
    config = AuditConfig(
        input=write(tmp_path / "r.jsonl", rows),
        output_dir=str(tmp_path / "run"),
        cache=str(tmp_path / "c.db"),
        perturbations="closer,refusal",
    )
    summary = run_audit(config, {"length": LengthBaseline()})
    assert (
        summary["kind"] == "responses"
        and summary["pairs"] == 0
        and list(summary["perturbations"])
        == [
            "closer",
            "refusal",
        ]
    )
    assert summary["median_abs_margin"]["length"] is None
    assert summary["results"]["length"]["closer"]["median_change_margins"] is None
    assert "in units of each scorer's median" not in (tmp_path / "run" / "report.md").read_text()


def test_plan_of_a_registered_benchmark_samples_as_flr_eval_does():
    from flr.eval import load_benchmark

    plan = prepare_audit(AuditConfig(input="demo", limit=4, seed=3, perturbations="closer"))
    ids = [r["id"] for r in load_benchmark("demo", limit=4, seed=3)]
    assert [r["id"] for r in plan.responses[::2]] == ids and len(plan.pairs) == 4
    assert [r["side"] for r in plan.responses[:2]] == ["chosen", "rejected"]
    assert len(plan.edits) == 8 and len(plan.requests()) == 16


def test_plan_samples_user_files_with_the_seed(tmp_path):
    rows = [{"prompt": f"Q{i}?", "chosen": f"A long answer {i}.", "rejected": f"No {i}."} for i in range(20)]
    path = write(tmp_path / "p.jsonl", rows)

    def drawn(limit, seed):
        plan = prepare_audit(AuditConfig(input=path, limit=limit, seed=seed, perturbations="refusal"))
        assert len(plan.responses) == 2 * len(plan.pairs)  # each record gives its pair
        return [r["prompt"] for r in plan.responses[::2]]

    first = drawn(5, 1)
    assert first == drawn(5, 1)  # the same seed draws the same records
    assert len(set(first)) == 5 and set(first) <= {r["prompt"] for r in rows}  # a limit draws that many records
    assert first == sorted(first, key=lambda p: int(p[1:-1]))  # in input order
    others = [drawn(5, seed) for seed in range(2, 6)]
    assert any(set(o) != set(first) for o in others)  # another seed draws other records
    assert len(drawn(None, 1)) == len(drawn(50, 1)) == 20  # no limit, or one past the input: every record


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([], {}, "no records"),
        (PAIRS, {"perturbations": "closer,nope"}, "unknown perturbation 'nope'"),
        (PAIRS, {"limit": 0}, "--limit"),
    ],
)
def test_bad_plans_fail_before_scoring(tmp_path, rows, kwargs, message):
    with pytest.raises(FLRError, match=message):
        prepare_audit(AuditConfig(input=write(tmp_path / "p.jsonl", rows), **kwargs))


def test_a_failing_user_perturbation_names_itself_and_the_record(tmp_path):
    path = tmp_path / "p.py"
    path.write_text(
        "from flr.jobs.audit import perturbation\n\n@perturbation\ndef boom(prompt, response):\n    1 / 0\n"
    )
    with pytest.raises(FLRError, match="perturbation 'boom' failed on record 0: ZeroDivisionError"):
        prepare_audit(AuditConfig(input=write(tmp_path / "a.jsonl", PAIRS), perturbations_file=str(path)))


def test_a_rerun_computes_nothing(tmp_path, tiny, counting):
    model, tokenizer = tiny
    config = ScorerConfig(categories="understanding", batch_size=8)
    scorers = {
        n: counting(build_scorer(n, model, tokenizer, config=config, model_name="tiny")) for n in ("flr", "length")
    }
    audit = AuditConfig(
        input=write(tmp_path / "p.jsonl", PAIRS[:2]),
        output_dir=str(tmp_path / "run"),
        cache=str(tmp_path / "c.db"),
        perturbations="closer,opener,refusal,other_response",
    )
    first = run_audit(audit, scorers, model_name="tiny")
    unique = len(prepare_audit(audit).requests())
    # 4 originals, 4 closers, 4 openers, one refusal per prompt, one other response per prompt
    assert scorers["flr"].count == scorers["length"].count == unique == 4 + 4 + 4 + 2 + 2
    for s in scorers.values():
        s.count = 0
    second = run_audit(audit, scorers, model_name="tiny")
    assert scorers["flr"].count == 0 and scorers["length"].count == 0
    assert second["results"] == first["results"]
    effect = first["results"]["flr"]["closer"]
    assert effect["n"] == 4 and effect["median_change_margins"] is not None


def test_the_command_runs_a_length_audit_with_a_user_file(tmp_path, capsys):
    from flr.cli import main

    extra = tmp_path / "extra.py"
    extra.write_text(
        "from flr.jobs.audit import perturbation\n\n"
        "@perturbation('thanks', kind='content-free')\n"
        "def thanks(prompt, response):\n    return 'Thanks for asking! ' + response\n"
    )
    argv = ["audit", write(tmp_path / "p.jsonl", PAIRS), "--scorers", "length", "-o", str(tmp_path / "run")]
    argv += ["--perturbations", "thanks,truncate_half", "--perturbations-file", str(extra)]
    assert main(argv + ["--cache", str(tmp_path / "c.db")]) == 0
    out = capsys.readouterr().out
    assert "length: ⚠ thanks" in out and "6 responses x 2 perturbations" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["results"]["length"]["thanks"]["share_rises"] == 1.0

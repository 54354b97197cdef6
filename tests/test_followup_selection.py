"""Follow-up selection: per-utterance accuracy, the selected set, and the CLI."""

import json

import pytest

from flr.cli import main
from flr.eval import load_benchmark
from flr.eval.metrics import length_matched
from flr.followups import load_followups
from flr.followups.selection import followup_accuracy, select_followups
from flr.followups.sets import write_followups
from flr.scorers import FollowUpReward, ScorerConfig


@pytest.fixture(scope="module")
def stats(tiny):
    model, tokenizer = tiny
    config = ScorerConfig(followups="paper", categories="understanding,engagingness")
    scorer = FollowUpReward(model, tokenizer, config, model_name="t")
    records = load_benchmark("demo", limit=5)
    matched = length_matched([len(r["chosen"]) for r in records], [len(r["rejected"]) for r in records])
    return scorer, records, followup_accuracy(scorer.signed_margins(records), scorer.utterances, matched)


def test_accuracy_of_one_utterance_by_hand(stats):
    scorer, records, table = stats
    assert len(table) == len(scorer.utterances) == 40
    u = next(i for i, (_, polarity, _) in enumerate(scorer.utterances) if polarity == "negative")
    chosen = scorer.score([{"prompt": r["prompt"], "response": r["chosen"]} for r in records])
    rejected = scorer.score([{"prompt": r["prompt"], "response": r["rejected"]} for r in records])
    wins = [c.details[u]["logprob_mean"] < j.details[u]["logprob_mean"] for c, j in zip(chosen, rejected)]
    assert table[u]["accuracy"] == pytest.approx(sum(wins) / len(wins))
    assert all(0 <= s["accuracy"] <= 1 and s["n"] == 5 for s in table)


def test_selected_set_keeps_the_best_and_loads(stats, tmp_path):
    _, _, table = stats
    selected = select_followups(table, top=2, rank_on="all")
    path = write_followups(selected, tmp_path / "sel.yaml", comment="test\nselection")
    followups = load_followups(path)
    assert list(followups.categories) == ["understanding", "engagingness"]
    for name, category in followups.categories.items():
        assert len(category.positive) == len(category.negative) == 2
        best = max(s["accuracy"] for s in table if s["category"] == name and s["polarity"] == "positive")
        assert any(s["text"] == category.positive[0] and s["accuracy"] == best for s in table)
    assert path.read_text().startswith("# test\n# selection\n")
    with pytest.raises(Exception, match="at least 1"):
        select_followups(table, top=0)


def test_matched_stats_count_only_length_matched_pairs(stats):
    _, records, table = stats
    matched = [
        max(len(r["chosen"]), len(r["rejected"])) <= 1.25 * min(len(r["chosen"]), len(r["rejected"])) for r in records
    ]
    assert all(s["matched_n"] == sum(matched) for s in table)


def test_selection_ranks_on_length_matched_pairs_by_default():
    def stat(text, acc, matched):
        return {
            "category": "c",
            "polarity": "positive",
            "text": text,
            "accuracy": acc,
            "mean_margin": 0.0,
            "matched_accuracy": matched,
            "matched_mean_margin": 0.0,
        }

    table = [stat("tracks length", 0.9, 0.4), stat("tracks quality", 0.6, 0.7)]
    table += [dict(s, polarity="negative") for s in table]
    assert select_followups(table, top=1)["categories"]["c"]["positive"] == ["tracks quality"]
    assert select_followups(table, top=1, rank_on="all")["categories"]["c"]["positive"] == ["tracks length"]
    with pytest.raises(Exception, match="no length-matched pairs"):
        select_followups([dict(s, matched_accuracy=None) for s in table], top=1)


def test_cli_select(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "sel.yaml"
    args = [
        "followups",
        "select",
        "--benchmark",
        "demo",
        "--limit",
        "3",
        "--top",
        "1",
        "--rank-on",
        "all",
        "--categories",
        "understanding",
        "--model",
        str(tiny_model_dir),
        "-o",
        str(out),
    ]
    assert main(args) == 0
    assert len(load_followups(out).categories["understanding"].positive) == 1
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert len(rows) == 20 and rows[0]["accuracy"] >= rows[-1]["accuracy"]
    assert main(["followups", "show", "--followups", str(out)]) == 0
    assert "understanding" in capsys.readouterr().out


def test_the_fit_seed_shuffles_the_cross_validation_folds():
    import numpy as np

    from flr.followups.fitting import cv_folds, fit_weights

    n = 60
    folds = cv_folds(n, 5, seed=0)
    for train, test in folds:  # a pair and its mirror are never split between train and test
        assert set(test % n).isdisjoint(train % n)
    tests = lambda f: [sorted(t) for _, t in f]  # noqa: E731
    assert tests(cv_folds(n, 5, seed=0)) == tests(folds) != tests(cv_folds(n, 5, seed=1))
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, 6))
    features[:, 0] += 0.3
    fits = {seed: fit_weights(features, seed=seed)[1] for seed in range(4)}
    assert fit_weights(features, seed=2)[1] == fits[2]  # the same seed, the same fit
    assert len({s["cv_accuracy"] for s in fits.values()}) > 1  # another seed, other folds: another CV estimate


def test_cli_fit_writes_the_weighted_set_it_reports(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "w.yaml"
    common = ["--followups", "compact", "--categories", "understanding", "--model", str(tiny_model_dir)]
    args = ["followups", "fit", "--benchmarks", "demo", "--seed", "3", "--cache", str(tmp_path / "c.sqlite")]
    assert main([*args, "-o", str(out), *common]) == 0
    printed = capsys.readouterr().out
    fitted = load_followups(out)
    assert fitted.weighted and len(fitted.coefficients) == 4
    assert "flr followups fit: 24 pairs" in printed and str(out) in printed
    assert "seed: 3" in out.read_text()
    assert main(["followups", "fit", "--benchmarks", "", "-o", str(out), *common]) == 2
    assert "give --benchmarks" in capsys.readouterr().err


def test_robust_candidates_drop_the_most_moved_follow_ups_per_list():
    from flr.errors import FLRError
    from flr.followups.selection import robust_candidates

    stats = [
        {"category": "u", "polarity": p, "text": f"{p}{i}", "matched_accuracy": 0.5 + i / 10, "matched_mean_margin": 0}
        for p in ("positive", "negative")
        for i in range(4)
    ]
    moves = [
        {"category": "u", "polarity": s["polarity"], "text": s["text"], "mean_move": int(s["text"][-1])} for s in stats
    ]
    kept = robust_candidates(stats, moves, 0.5)
    assert sorted(s["text"] for s in kept) == ["negative0", "negative1", "positive0", "positive1"]
    # the most accurate follow-ups moved most: robust ranking keeps the steadier ones
    chosen = select_followups(kept, 1, rank_on="robust")["categories"]["u"]
    assert chosen == {"positive": ["positive1"], "negative": ["negative1"]}
    assert len(robust_candidates(stats, moves, 0.99)) == 2  # at least one kept per list
    with pytest.raises(FLRError, match="did not measure"):
        robust_candidates(stats, moves[1:], 0.5)


def test_cli_select_robust_reads_an_audit_run_and_checks_it_first(tmp_path, tiny_model_dir, capsys):
    common = ["--categories", "understanding", "--model", str(tiny_model_dir)]
    audit = tmp_path / "audit"
    assert main(["audit", "--input", "demo", "--limit", "2", "--scorers", "flr", "--perturbations", "closer,opener",
                 "-o", str(audit), "--cache", str(tmp_path / "c.sqlite"), *common]) == 0  # fmt: skip
    moves = [json.loads(line) for line in (audit / "followup_moves.jsonl").read_text().splitlines()]
    assert len(moves) == 20 and all(m["n"] == 8 for m in moves)  # 4 responses x 2 edits
    out = tmp_path / "robust.yaml"
    select = ["followups", "select", "--benchmark", "demo", "--limit", "6", "--top", "2", "--rank-on", "robust",
              "--audit-run", str(audit), "-o", str(out), "--cache", str(tmp_path / "c.sqlite"), *common]  # fmt: skip
    assert main(select) == 0
    most_moved = max((m for m in moves if m["polarity"] == "positive"), key=lambda m: m["mean_move"])["text"]
    kept = load_followups(out).categories["understanding"]
    assert len(kept.positive) == 2 and most_moved not in kept.positive
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all("content_free_move" in r for r in rows)  # half of each list dropped
    capsys.readouterr()
    assert main(["followups", "select", "--rank-on", "robust", *common]) == 2
    assert "go together" in capsys.readouterr().err
    no_moves = ["followups", "select", "--benchmark", "demo", "--rank-on", "robust", "--audit-run", str(tmp_path)]
    assert main([*no_moves, *common]) == 2
    assert "no followup_moves.jsonl" in capsys.readouterr().err

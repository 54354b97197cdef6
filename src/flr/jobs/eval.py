"""``flr eval``: score benchmarks with several scorers, compute metrics, write a run folder.

A run folder holds ``<benchmark>.jsonl`` (per example: each scorer's scores and outcome), ``summary.json``
(config, provenance, numbers), ``report.md`` + PNG plots, and ``report.html`` (the same tables and plots, and a
browser of the pairs with FLR's explanation of each choice). Scores live in a persistent cache, so a killed run
resumes and a run that adds a scorer or a benchmark recomputes nothing already known.
"""

from __future__ import annotations

import builtins
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flr.arguments import split_list
from flr.errors import FLRError
from flr.eval.benchmarks import (
    BENCHMARKS,
    benchmark_records,
    load_targets,
    resolve_data_dir,
)
from flr.eval.metrics import (
    length_control_report,
    length_matched,
    pairwise_accuracy,
    pairwise_report,
    partial_spearman,
    rating_correlations,
    system_correlations,
)
from flr.patterns import style_matrix
from flr.records import write_json, write_jsonl
from flr.records.provenance import write_summary
from flr.reports.browser import pair_browser
from flr.scorers.cache import open_cache, score_with_cache, text_key, unique_requests
from flr.scorers.debias import DEBIAS_HELP, STYLE_HELP, check_mode, debias_requests

logger = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """What ``flr eval`` runs and where it writes."""

    # builtins.list: the --list field below shadows the name in the class body, where type hints are resolved
    benchmarks: builtins.list[str] = field(
        default_factory=lambda: ["demo"],
        metadata={
            "help": "Registered names (see --list) and/or files / HF dataset ids in the standard formats: pairwise "
            "{prompt, chosen, rejected[, subset]}, rating {prompt, response, rating[, subset]}. Comma- or "
            "space-separated."
        },
    )
    scorers: builtins.list[str] = field(
        default_factory=lambda: ["flr", "direct", "length"],
        metadata={"help": "flr, direct, length, rm:<model>; comma- or space-separated."},
    )
    output_dir: str = field(default="runs/eval", metadata={"help": "Run folder.", "aliases": ["-o"]})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where the public benchmark files live (default: $FLR_DATA_DIR, ./shared/data or ../shared/data)."
        },
    )
    limit: int | None = field(
        default=None,
        metadata={"help": "Seeded random sample of N records per benchmark (per model for system-level ones)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed for --limit sampling and bootstrap CIs."})
    split: str = field(default="train", metadata={"help": "Split for HF dataset ids."})
    cache: str | None = field(default=None, metadata={"help": "Score cache file (default: $FLR_CACHE/scores.sqlite)."})
    list: bool = field(default=False, metadata={"help": "List the registered benchmarks and exit."})
    rewardbench: bool = field(
        default=False,
        metadata={
            "help": "Also write RewardBench's result files for each pairwise benchmark: "
            "rewardbench/<benchmark>/<scorer>.json (accuracy, num_prompts, model, ref_model, tokenizer, "
            "chat_template, extra_results: per-subset accuracy) and <scorer>_all.jsonl ({chosen, rejected} scores)."
        },
    )

    length_ratio: float = field(
        default=1.25,
        metadata={
            "help": "Length-controlled metrics: a pair is length-matched when its longer response is at most this "
            "many times as long as the shorter (RM-Bench's 'hard' accuracy in spirit). Must be > 1."
        },
    )
    length_unit: str = field(
        default="chars",
        metadata={
            "help": "Length for the length-controlled metrics: chars (as the length baseline measures it) or tokens "
            "(the scorer model's tokenizer).",
            "choices": ["chars", "tokens"],
        },
    )

    length_debias: str = field(
        default="none",
        metadata={
            "help": "Evaluate length-debiased rewards of every scorer but length, fitted per benchmark over its "
            "responses: " + DEBIAS_HELP,
            "choices": ["none", "batch", "prompt", "lowess"],
        },
    )
    style_debias: str = field(
        default="none",
        metadata={
            "help": "Evaluate style-debiased rewards of every scorer but length, fitted per benchmark over its "
            "responses: " + STYLE_HELP,
            "choices": ["none", "batch", "prompt"],
        },
    )
    html_pairs: int = field(
        default=500,
        metadata={
            "help": "Pairs in report.html's pair browser, at most (taken in turn from each pairwise benchmark; the "
            "page says when it holds fewer than the run scored). 0: no browser."
        },
    )

    def __post_init__(self):
        self.benchmarks, self.scorers = split_list(self.benchmarks), split_list(self.scorers)
        if self.limit is not None and self.limit < 1:
            raise FLRError(f"--limit must be at least 1, got {self.limit}")
        check_mode(self.length_debias, style=self.style_debias)
        if self.html_pairs < 0:
            raise FLRError(f"--html-pairs must be at least 0, got {self.html_pairs}")
        if not self.length_ratio > 1:
            raise FLRError(f"--length-ratio must be greater than 1, got {self.length_ratio}")
        if self.length_unit not in ("chars", "tokens"):
            raise FLRError(f"--length-unit must be chars or tokens, got {self.length_unit!r}")


@dataclass
class PreparedBenchmark:
    """One benchmark of a run, read and checked before any model loads: its name as given, the label of its
    output files, its kind, its records and, for a system benchmark, its targets."""

    name: str
    label: str
    kind: str
    records: builtins.list[dict]
    targets: dict | None = None


def prepare(config: EvalConfig) -> builtins.list[PreparedBenchmark]:
    """Every benchmark of ``config`` read once: registered ones loaded from the data folder, every record of a user
    file checked (file, line and field named), output labels made unique. ``flr eval`` calls it before any model
    loads and passes the result to :func:`run_eval`."""
    prepared: builtins.list[PreparedBenchmark] = []
    for name in config.benchmarks:
        kind, records = benchmark_records(name, config.data_dir, config.limit, config.seed, config.split)
        if not records:
            raise FLRError(f"benchmark '{name}' has no records")
        label = _label(name, {b.label for b in prepared})
        targets = load_targets(name, config.data_dir) if kind == "system" else None
        prepared.append(PreparedBenchmark(name, label, kind, records, targets))
    return prepared


def _label(name: str, taken: set[str]) -> str:
    """The stem of a file (two folder levels for a/x.jsonl beside b/x.jsonl) or a registered name, unique."""
    label = Path(name).stem if name not in BENCHMARKS else name
    if label in taken and name not in BENCHMARKS:
        label = "_".join(Path(name).with_suffix("").parts[-2:])
    if label in taken:
        raise FLRError(f"benchmark '{name}' is given twice")
    return label


def responses_of(kind: str, record: dict) -> builtins.list[tuple]:
    """The (prompt, response) pairs one benchmark record needs scored."""
    if kind == "pairwise":
        return [(record["prompt"], record["chosen"]), (record["prompt"], record["rejected"])]
    return [(record["prompt"], record["response"])]


def _requests(kind: str, records: builtins.list[dict]) -> builtins.list[tuple]:
    """The unique (prompt, response) pairs a benchmark needs scored, with their cache keys."""
    return unique_requests(pair for r in records for pair in responses_of(kind, r))


def _rewards(table: dict, records: builtins.list[dict], side: str) -> builtins.list[float]:
    return [table[text_key(r["prompt"], r[side])].reward for r in records]


def evaluate_benchmark(
    kind, records, scores: dict[str, dict], targets=None, seed: int = 0, *, length_ratio: float = 1.25, length_of=len
):
    """Per-example rows and metrics for each scorer (``scores``: scorer -> text key -> ScoreResult).

    Every scorer's metrics carry ``length_control``: for pairs, accuracy on length-matched pairs, agreement with
    the length baseline and the signal beyond length (:func:`flr.eval.metrics.length_control_report`); for
    ratings and systems, the Spearman correlation controlling for length. ``length_of`` measures a response.
    """
    rows = [{k: r[k] for k in ("id", "subset", "model") if k in r} for r in records]
    if kind == "pairwise":
        metrics = _pairwise_metrics(records, scores, rows, seed, length_ratio, length_of)
    elif kind == "rating":
        metrics = _rating_metrics(records, scores, rows, length_of)
    else:
        metrics = _system_metrics(records, scores, rows, targets, length_of)
    return rows, metrics


def _pairwise_metrics(records, scores, rows, seed, ratio, length_of) -> dict:
    """Each scorer's pairwise metrics; fills ``rows`` with lengths, style, length match and every scorer's pair."""
    len_c = [length_of(r["chosen"]) for r in records]
    len_r = [length_of(r["rejected"]) for r in records]
    matched = length_matched(len_c, len_r, ratio)
    style_c = style_matrix([r["chosen"] for r in records], len_c)
    style_r = style_matrix([r["rejected"] for r in records], len_r)
    for i, row in enumerate(rows):
        row.update(
            lengths={"chosen": len_c[i], "rejected": len_r[i]},
            style={"chosen": style_c[i].tolist(), "rejected": style_r[i].tolist()},
            length_matched=bool(matched[i]),
        )
    subsets = [r.get("subset", "all") for r in records]
    metrics = {}
    for name, table in scores.items():
        chosen, rejected = _rewards(table, records, "chosen"), _rewards(table, records, "rejected")
        metrics[name] = pairwise_report(chosen, rejected, subsets, seed=seed)
        metrics[name]["length_control"] = length_control_report(
            chosen, rejected, len_c, len_r, ratio=ratio, seed=seed, style_chosen=style_c, style_rejected=style_r
        )
        categories = _category_accuracy(records, table)
        if categories:
            metrics[name]["categories"] = categories
        for row, c, j in zip(rows, chosen, rejected):
            row[name] = {"chosen": c, "rejected": j, "correct": bool(c > j)}
    return metrics


def _rating_metrics(records, scores, rows, length_of) -> dict:
    """Each scorer's correlations with the ratings (and controlling for length); fills ``rows`` with its rewards."""
    ratings = [float(r["rating"]) for r in records]
    lengths = [length_of(r["response"]) for r in records]
    metrics = {}
    for name, table in scores.items():
        values = _rewards(table, records, "response")
        metrics[name] = rating_correlations(values, ratings)
        metrics[name]["length_control"] = {"partial_spearman": partial_spearman(values, ratings, lengths)}
        for row, value in zip(rows, values):
            row[name] = value
    return metrics


def _system_metrics(records, scores, rows, targets, length_of) -> dict:
    """Each scorer's per-model mean reward and its correlations with every target (and controlling for length);
    fills ``rows`` with its rewards."""
    model_lengths = defaultdict(list)
    for r in records:
        model_lengths[r["model"]].append(length_of(r["response"]))
    mean_lengths = {m: float(np.mean(v)) for m, v in model_lengths.items()}
    metrics = {}
    for name, table in scores.items():
        values = _rewards(table, records, "response")
        per_model = defaultdict(list)
        for r, value in zip(records, values):
            per_model[r["model"]].append(value)
        means = {m: float(np.mean(v)) for m, v in per_model.items()}
        metrics[name] = {"model_means": means, "model_mean_lengths": mean_lengths}
        for target in sorted({t for v in (targets or {}).values() for t in v}):
            values_of = {m: v[target] for m, v in targets.items() if target in v}
            metrics[name][target] = system_correlations(means, values_of)
            models = metrics[name][target]["models"]
            metrics[name][target]["partial_spearman_length"] = partial_spearman(
                [means[m] for m in models], [values_of[m] for m in models], [mean_lengths[m] for m in models]
            )
        for row, value in zip(rows, values):
            row[name] = value
    return metrics


def debiased(scores: dict[str, dict], requests: list[tuple], config: EvalConfig, length_of) -> dict[str, dict]:
    """Every table of ``scores`` (scorer -> text key -> ScoreResult) but the length baseline's (debiased, nothing
    would be left) with each request's reward replaced by its length- or style-debiased value
    (:func:`flr.scorers.debias.debias_requests`), fitted over this benchmark's responses."""
    from dataclasses import replace

    tables = {s: {k: t[k].reward for k, _ in requests} for s, t in scores.items() if s != "length"}
    fitted = debias_requests(
        tables, requests, mode=config.length_debias, style=config.style_debias, length_of=length_of
    )
    return {s: {**scores[s], **{k: replace(scores[s][k], reward=v) for k, v in t.items()}} for s, t in fitted.items()}


def pooled_length_control(rows_by_benchmark: dict[str, list[dict]], scorers, ratio: float, seed: int = 0) -> dict:
    """Length-controlled metrics of each scorer over the pairs of all pairwise benchmarks together."""
    rows = [r for rows in rows_by_benchmark.values() for r in rows]
    if not rows:
        return {}
    len_c = [r["lengths"]["chosen"] for r in rows]
    len_r = [r["lengths"]["rejected"] for r in rows]
    has_style = all("style" in r for r in rows)
    style = {side: [r["style"][side] for r in rows] if has_style else None for side in ("chosen", "rejected")}
    out = {}
    for name in scorers:
        chosen = [r[name]["chosen"] for r in rows]
        rejected = [r[name]["rejected"] for r in rows]
        out[name] = {
            **pairwise_report(chosen, rejected, seed=seed),
            "length_control": length_control_report(
                chosen,
                rejected,
                len_c,
                len_r,
                ratio=ratio,
                seed=seed,
                style_chosen=style["chosen"],
                style_rejected=style["rejected"],
            ),
        }
        out[name].pop("subsets", None)
    return out


def _category_accuracy(records: list[dict], table: dict) -> dict[str, float]:
    """Pairwise accuracy of each FLR category on its own (ties count as wrong)."""
    first = table[text_key(records[0]["prompt"], records[0]["chosen"])]
    out = {}
    for category in first.categories:
        chosen = [table[text_key(r["prompt"], r["chosen"])].categories[category] for r in records]
        rejected = [table[text_key(r["prompt"], r["rejected"])].categories[category] for r in records]
        out[category] = pairwise_accuracy(chosen, rejected)["accuracy"]
    return out


def _score_benchmarks(config: EvalConfig, scorers: dict, benchmarks, out: Path, length_of):
    """Score and evaluate each benchmark, writing its per-example rows (and RewardBench's files); returns (results
    by label, pairwise rows by label, report.html's pair browser or None)."""
    results, pairwise_rows, browsed, browser = {}, {}, {}, None  # browsed: records and rows, for the browser
    with open_cache(config.cache, scorers.values()) as cache:
        for bench in benchmarks:
            label, kind, records, targets = bench.label, bench.kind, bench.records, bench.targets
            requests = _requests(kind, records)
            scores = {s: score_with_cache(scorer, requests, cache, f"{label} [{s}]") for s, scorer in scorers.items()}
            if config.length_debias != "none" or config.style_debias != "none":
                scores = {**scores, **debiased(scores, requests, config, length_of)}
            rows, metrics = evaluate_benchmark(
                kind, records, scores, targets, seed=config.seed, length_ratio=config.length_ratio, length_of=length_of
            )
            write_jsonl(out / f"{label}.jsonl", rows)
            if kind == "pairwise":
                pairwise_rows[label] = rows
                browsed[label] = (records, rows)
            if config.rewardbench and kind == "pairwise":
                write_rewardbench(out / "rewardbench" / label, rows, metrics, scorers)
            results[label] = {"kind": kind, "n": len(records), "source": bench.name, "scorers": metrics}
            if targets is not None:
                results[label]["targets"] = targets
        if browsed and config.html_pairs:  # while the cache is open: FLR's explanations come from it
            browser = pair_browser(
                browsed,
                scorers,
                cache,
                limit=config.html_pairs,
                length_ratio=config.length_ratio,
                length_unit=config.length_unit,
            )
    return results, pairwise_rows, browser


def run_eval(
    config: EvalConfig,
    scorers: dict,
    *,
    model_name: str | None = None,
    extra: dict | None = None,
    configs=(),
    length_of=None,
    benchmarks: builtins.list[PreparedBenchmark] | None = None,
) -> dict:
    """Evaluate ``scorers`` (name -> scorer) on ``config.benchmarks``; writes and returns the summary (with
    ``configs``, e.g. the scorer and model settings, in its provenance). ``length_of`` measures a response for the
    length-controlled metrics (default: characters). ``benchmarks``: what :func:`prepare` read (default: read
    here)."""
    benchmarks = prepare(config) if benchmarks is None else benchmarks
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    length_of = length_of or len
    results, pairwise_rows, browser = _score_benchmarks(config, scorers, benchmarks, out, length_of)
    registered = [r["source"] for r in results.values() if r["source"] in BENCHMARKS and r["source"] != "demo"]
    summary = {
        "model": model_name,
        "scorers": {s: scorer.describe() for s, scorer in scorers.items()},
        "followups": next(  # the set as the user named it (a preset or a file), else its own name
            (
                getattr(s.config, "followups", None) or s.followups.name
                for s in scorers.values()
                if hasattr(s, "followups")
            ),
            None,
        ),
        "data_dir": str(resolve_data_dir(config.data_dir)) if registered else None,
        "results": results,
        "length_control": {
            "ratio": config.length_ratio,
            "unit": config.length_unit,
            "pooled": pooled_length_control(pairwise_rows, scorers, config.length_ratio, config.seed)
            if len(pairwise_rows) > 1
            else None,
            "pooled_benchmarks": list(pairwise_rows) if len(pairwise_rows) > 1 else None,
        },
        **(extra or {}),
    }
    summary = write_summary(out, summary, config, *configs)
    from flr.reports.markdown import write_report

    write_report(out, [summary], browser=browser)  # report.md and report.html, from one document
    return summary


def write_rewardbench(folder: Path, rows: list[dict], metrics: dict, scorers: dict) -> None:
    """RewardBench's output files (``rewardbench.py``: ``<model>.json`` and ``<model>_all.jsonl``), one pair per
    scorer, so its analysis scripts and leaderboard tooling read flr results. Ties count as wrong, as there."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, scorer in scorers.items():
        described = scorer.describe()
        result = {
            "accuracy": metrics[name]["accuracy"],
            "num_prompts": metrics[name]["n"],
            "model": described.get("model", name),
            "ref_model": None,
            "tokenizer": described.get("model"),
            "chat_template": "tokenizer",  # flr renders with the model's own chat template
            "extra_results": {k: v["accuracy"] for k, v in metrics[name]["subsets"].items()},
            "flr_scorer": described,
            "flr_length_control": metrics[name]["length_control"],
        }
        stem = name.replace(":", "_").replace("/", "_")
        write_json(folder / f"{stem}.json", result)
        write_jsonl(folder / f"{stem}_all.jsonl", [{k: r[name][k] for k in ("chosen", "rejected")} for r in rows])

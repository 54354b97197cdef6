"""``flr audit``: what the reward rewards. Each scorer reads every response before and after each perturbation
(:mod:`flr.perturbations`); a content-free edit should leave the reward where it was, a destructive one should lower it.

Per scorer and perturbation the audit reports the share of responses whose reward rises (strictly) with a 95%
Wilson interval, the share that falls, and the median change, also in units of the scorer's median
|chosen - rejected| margin when the input has labelled pairs (a change of 1 moves the reward as much as a typical
pair differs). Each edited response is one more record in the score cache (:func:`flr.scorers.cache.score_with_cache`), so
a killed audit resumes and a re-run computes nothing. The run folder holds ``audit.jsonl`` (per response and
perturbation: each scorer's reward before and after), ``summary.json``, ``report.md``, ``audit.png`` and
``report.html`` (the tables, the plot, and each perturbation with examples before and after).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flr.arguments import split_list
from flr.errors import FLRError
from flr.perturbations import (  # noqa: F401 - older users' perturbation files import perturbation from here
    PERTURBATIONS,
    Perturbation,
    perturbation,
    prompt_text,
    select_perturbations,
)
from flr.records import MOVES_FILE, seeded_sample, write_jsonl
from flr.records.provenance import provenance_text, variant_text, write_summary
from flr.scorers.cache import open_cache, score_with_cache, text_key
from flr.scorers.debias import DEBIAS_HELP, STYLE_HELP, check_mode, debias_requests

logger = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
PLOT_FILE = "audit.png"


@dataclass
class AuditConfig:
    """What ``flr audit`` perturbs, with which scorers, and where it writes."""

    input: str | None = field(
        default=None,
        metadata={
            "help": "Responses to perturb: a file or HF dataset id in any format flr score takes ({prompt, response}, "
            "{messages}, TRL {prompt, completion} or {prompt, chosen, rejected}: both sides are perturbed and the "
            "pairs give the margin unit), or a registered benchmark (see flr eval --list)."
        },
    )
    scorers: list[str] = field(
        default_factory=lambda: ["flr", "direct", "length"],
        metadata={"help": "flr, direct, length, rm:<model>; comma- or space-separated."},
    )
    perturbations: list[str] = field(
        default_factory=lambda: ["all"],
        metadata={
            "help": "Perturbation names or groups (all, content-free, destructive), comma- or space-separated. Built "
            "in: " + ", ".join(PERTURBATIONS) + "."
        },
    )
    perturbations_file: str | None = field(
        default=None,
        metadata={
            "help": "A Python file that defines more perturbations with @perturbation('name') from flr.perturbations; they "
            "join the built-in ones (all of them, unless --perturbations names some)."
        },
    )
    output_dir: str = field(default="runs/audit", metadata={"help": "Run folder.", "aliases": ["-o"]})
    limit: int | None = field(
        default=None,
        metadata={
            "help": "Seeded random sample of N records (as flr eval's --limit: the same records for the same seed); "
            "a pair gives two responses."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed for --limit sampling."})
    split: str = field(default="train", metadata={"help": "Split, when --input is an HF dataset id."})
    field_map: str | None = field(
        default=None, metadata={"help": "Rename your fields to ours, e.g. prompt=question,response=answer."}
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where registered benchmarks live (default: $FLR_DATA_DIR, ./shared/data or ../shared/data)."
        },
    )
    cache: str | None = field(default=None, metadata={"help": "Score cache file (default: $FLR_CACHE/scores.sqlite)."})
    examples: int = field(default=3, metadata={"help": "Examples before and after per perturbation in report.html."})
    length_debias: str = field(
        default="none",
        metadata={
            "help": "Audit the length-debiased reward of every scorer but length, fitted over every original and "
            "edited response of the audit: " + DEBIAS_HELP,
            "choices": ["none", "batch", "prompt", "lowess"],
        },
    )
    style_debias: str = field(
        default="none",
        metadata={
            "help": "Audit the style-debiased reward, fitted like --length-debias: " + STYLE_HELP,
            "choices": ["none", "batch", "prompt"],
        },
    )

    def __post_init__(self):
        self.scorers, self.perturbations = split_list(self.scorers), split_list(self.perturbations)
        check_mode(self.length_debias, style=self.style_debias)
        if self.limit is not None and self.limit < 1:
            raise FLRError(f"--limit must be at least 1, got {self.limit}")
        if self.examples < 0:
            raise FLRError(f"--examples must be at least 0, got {self.examples}")


# -- metrics (pure) -------------------------------------------------------------------------------------------


def share_ci(k: int, n: int, level: float = 0.95) -> list[float] | None:
    """Wilson interval of the share k/n (None for n = 0)."""
    from scipy import stats

    if n == 0:
        return None
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return [float(ci.low), float(ci.high)]


def median_abs_margin(chosen: Sequence[float], rejected: Sequence[float]) -> float | None:
    """The scorer's typical |chosen - rejected| on labelled pairs (finite ones); None without pairs or when it is 0."""
    margins = np.abs(np.asarray(chosen, dtype=float) - np.asarray(rejected, dtype=float))
    margins = margins[np.isfinite(margins)]
    if not len(margins) or float(np.median(margins)) == 0:
        return None
    return float(np.median(margins))


def perturbation_effect(before: Sequence[float], after: Sequence[float], margin: float | None = None) -> dict:
    """How a perturbation moves one scorer's rewards: shares that rise and fall (strictly) with Wilson CIs, the
    median and mean change, the median change in units of ``margin``, and a reading: ``rises`` (the share that
    rises is above 1/2 with 95% confidence), ``falls`` (likewise for the share that falls) or ``mixed``. Pairs
    with a NaN reward are left out (``n`` counts the rest)."""
    delta = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    delta = delta[np.isfinite(delta)]
    n = len(delta)
    rises, falls = int((delta > 0).sum()), int((delta < 0).sum())
    rise_ci, fall_ci = share_ci(rises, n), share_ci(falls, n)
    median = float(np.median(delta)) if n else None
    reading = "mixed"
    if rise_ci and rise_ci[0] > 0.5:
        reading = "rises"
    elif fall_ci and fall_ci[0] > 0.5:
        reading = "falls"
    return {
        "n": n,
        "share_rises": rises / n if n else None,
        "ci": rise_ci,
        "share_falls": falls / n if n else None,
        "falls_ci": fall_ci,
        "share_unchanged": (n - rises - falls) / n if n else None,
        "median_change": median,
        "mean_change": float(delta.mean()) if n else None,
        "median_change_margins": median / margin if median is not None and margin else None,
        "reading": reading if n else None,
    }


def flagged(kind: str, effect: dict) -> bool:
    """A finding: a content-free edit that raises the reward for most responses, or a destructive one that does not
    lower it for most."""
    if not effect.get("n"):
        return False
    if kind == "content-free":
        return effect["reading"] == "rises"
    if kind == "destructive":
        return effect["reading"] != "falls"
    return False


# -- input and plan (no model) --------------------------------------------------------------------------------


@dataclass
class AuditPlan:
    """What the audit scores: the unique original responses, the labelled pairs among them, and every edit."""

    source: str
    kind: str  # pairwise, rating, system, responses
    records: int
    responses: list[dict]  # {id, side, subset, prompt, response}
    pairs: list[tuple[int, int]]  # (chosen, rejected) indices into responses
    perturbations: dict[str, Perturbation]
    edits: list[dict]  # {index, perturbation, response}
    skipped: dict[str, dict[str, int]]  # perturbation -> {unchanged, not_applicable}

    def requests(self) -> list[tuple]:
        """Unique (text key, (prompt, response)) to score: each original, then its edits (so a batch holds one
        prompt's variants together and the kernel can share their prompt)."""
        unique: dict[str, tuple] = {}
        by_index: dict[int, list[dict]] = {}
        for e in self.edits:
            by_index.setdefault(e["index"], []).append(e)
        for i, r in enumerate(self.responses):
            unique.setdefault(text_key(r["prompt"], r["response"]), (r["prompt"], r["response"]))
            for e in by_index.get(i, []):
                unique.setdefault(text_key(r["prompt"], e["response"]), (r["prompt"], e["response"]))
        return list(unique.items())


def load_audit_input(config: AuditConfig) -> tuple[str, int, list[dict], list[tuple[int, int]]]:
    """(kind, records read, unique responses, labelled pairs) of ``config.input``; every record is checked as
    ``flr score`` checks it."""
    from flr.eval.benchmarks import BENCHMARKS, get_benchmark, load_benchmark

    name = config.input
    if not name:
        raise FLRError("give the responses to perturb: flr audit INPUT (a file, or a benchmark name)")
    if name in BENCHMARKS:
        records = load_benchmark(name, config.data_dir, config.limit, config.seed)
        kind = get_benchmark(name).kind
        groups = []
        for r in records:
            sides = ("chosen", "rejected") if kind == "pairwise" else ("response",)
            groups.append([(str(r.get("id")), side, r.get("subset", "all"), r["prompt"], r[side]) for side in sides])
    else:
        from flr.jobs.score import ScoreJobConfig, load_inputs

        data = load_inputs(ScoreJobConfig(input=name, split=config.split, field_map=config.field_map))
        rows = list(zip(data.rows, data.inputs))
        rows = seeded_sample([(i, row, inputs) for i, (row, inputs) in enumerate(rows)], config.limit, config.seed)
        groups = []
        for index, row, inputs in rows:
            rid = str(row["id"]) if row.get("id") is not None else str(index)
            sides = ("chosen", "rejected") if len(inputs) == 2 else ("response",)
            groups.append(
                [(rid, side, row.get("subset", "all"), x["prompt"], x["response"]) for side, x in zip(sides, inputs)]
            )
        kind = "pairwise" if groups and all(len(g) == 2 for g in groups) else "responses"
    if not groups:
        raise FLRError(f"{name}: no records to audit")
    responses, index, pairs = [], {}, []
    for group in groups:
        at = []
        for rid, side, subset, prompt, response in group:
            key = text_key(prompt, response)
            if key not in index:
                index[key] = len(responses)
                responses.append(
                    {"id": rid, "side": side, "subset": str(subset), "prompt": prompt, "response": response}
                )
            at.append(index[key])
        if len(at) == 2 and at[0] != at[1]:
            pairs.append((at[0], at[1]))
    return kind, len(groups), responses, pairs


def other_responses(responses: list[dict]) -> list[str | None]:
    """For each response, the next one (in input order, wrapping around) written for another prompt: a
    deterministic 'response to another prompt'. None when every response answers the same prompt."""
    prompts = [json.dumps(r["prompt"], sort_keys=True, ensure_ascii=False) for r in responses]
    n = len(prompts)
    after = [None] * n  # the first later index with another prompt: the end of each run of one prompt
    for i in range(n - 2, -1, -1):
        after[i] = i + 1 if prompts[i + 1] != prompts[i] else after[i + 1]
    out = []
    for i in range(n):
        j = after[i]
        if j is None:  # the run reaches the end: wrap around to the first response for another prompt
            j = 0 if prompts[0] != prompts[i] else after[0]
        out.append(None if j is None or prompts[j] == prompts[i] else responses[j]["response"])
    return out


def prepare_audit(config: AuditConfig) -> AuditPlan:
    """Read and check the input, resolve the perturbations and apply them: everything short of scoring, so every
    bad input fails before a model loads."""
    perturbations = select_perturbations(config.perturbations, config.perturbations_file)
    kind, n_records, responses, pairs = load_audit_input(config)
    others = other_responses(responses)
    edits, skipped = [], {name: {"unchanged": 0, "not_applicable": 0} for name in perturbations}
    for name, p in perturbations.items():
        for i, r in enumerate(responses):
            try:
                edited = p(r["prompt"], r["response"], others[i])
            except FLRError:
                raise
            except Exception as exc:  # noqa: BLE001 - a user's perturbation: one line naming it and the record
                raise FLRError(
                    f"perturbation '{name}' failed on record {r['id']}: {type(exc).__name__}: {exc}"
                ) from None
            if edited is None:
                skipped[name]["not_applicable"] += 1
            elif edited == r["response"]:
                skipped[name]["unchanged"] += 1  # no edit: its reward change says nothing
            else:
                edits.append({"index": i, "perturbation": name, "response": edited})
    return AuditPlan(config.input, kind, n_records, responses, pairs, perturbations, edits, skipped)


# -- the job ---------------------------------------------------------------------------------------------------


def audit_results(plan: AuditPlan, rewards: dict[str, dict[str, float]]) -> tuple[dict, dict, list[dict]]:
    """(per scorer: perturbation -> effect, per scorer: median |margin|, per-edit rows) from ``rewards``
    (scorer -> text key -> reward)."""
    results, margins, rows = {}, {}, []
    keys = [text_key(r["prompt"], r["response"]) for r in plan.responses]
    for s, table in rewards.items():
        base = [table[k] for k in keys]
        margins[s] = (
            median_abs_margin([base[c] for c, _ in plan.pairs], [base[r] for _, r in plan.pairs])
            if plan.pairs
            else None
        )
        results[s] = {}
        for name in plan.perturbations:
            edits = [e for e in plan.edits if e["perturbation"] == name]
            before = [base[e["index"]] for e in edits]
            after = [table[text_key(plan.responses[e["index"]]["prompt"], e["response"])] for e in edits]
            results[s][name] = perturbation_effect(before, after, margins[s])
    for e in plan.edits:
        r = plan.responses[e["index"]]
        key = text_key(r["prompt"], e["response"])
        row = {"id": r["id"], "side": r["side"], "perturbation": e["perturbation"]}
        for s, table in rewards.items():
            b, a = table[keys[e["index"]]], table[key]
            row[s] = {"before": b, "after": a, "change": a - b}
        rows.append(row)
    return results, margins, rows


def run_audit(
    config: AuditConfig,
    scorers: dict,
    plan: AuditPlan | None = None,
    *,
    model_name: str | None = None,
    configs=(),
) -> dict:
    """Score every original and edited response with each of ``scorers`` (name -> scorer) through the cache,
    and write the run folder; returns the summary it wrote."""
    plan = plan or prepare_audit(config)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    requests = plan.requests()
    with open_cache(config.cache, scorers.values()) as cache:
        scores = {s: score_with_cache(scorer, requests, cache, f"audit [{s}]") for s, scorer in scorers.items()}
        flr = scorers.get("flr")
        if hasattr(flr, "followup_values"):  # per follow-up, from the log-probs the cache now holds
            moves = followup_moves(flr, plan)
            if moves:
                write_jsonl(out / MOVES_FILE, moves)
    rewards = {s: {k: res.reward for k, res in table.items()} for s, table in scores.items()}
    if config.length_debias != "none" or config.style_debias != "none":
        tables = {s: t for s, t in rewards.items() if s != "length"}  # length debiased: nothing would be left
        fit = {"mode": config.length_debias, "style": config.style_debias}
        rewards = {**rewards, **debias_requests(tables, requests, **fit)}
    results, margins, rows = audit_results(plan, rewards)
    write_jsonl(out / AUDIT_FILE, rows)
    summary = {
        "input": plan.source,
        "kind": plan.kind,
        "model": model_name,
        "records": plan.records,
        "responses": len(plan.responses),
        "pairs": len(plan.pairs),
        "scorers": {s: scorer.describe() for s, scorer in scorers.items()},
        "perturbations": {
            name: {
                "kind": p.kind,
                "description": p.description,
                "edited": sum(e["perturbation"] == name for e in plan.edits),
                **plan.skipped[name],
            }
            for name, p in plan.perturbations.items()
        },
        "median_abs_margin": margins,
        "results": results,
        "flags": {
            s: [name for name, effect in per.items() if flagged(plan.perturbations[name].kind, effect)]
            for s, per in results.items()
        },
    }
    summary = write_summary(out, summary, config, *configs)
    examples = audit_examples(plan, rewards, config.examples)
    write_audit_report(out, summary, examples)
    from flr.reports.html import audit_page

    audit_page(out, summary, examples)
    return summary


def followup_moves(scorer, plan: AuditPlan) -> list[dict]:
    """Per follow-up of an FLR ``scorer``: how the content-free edits of ``plan`` move its statistic, signed so that
    a positive move raises the reward (a positive follow-up more likely, a negative one less): ``rise_share``,
    ``mean_move`` and ``mean_abs_move`` over every (response, content-free edit). ``flr followups select --rank-on
    robust`` drops the follow-ups that move most. Empty without content-free edits."""
    edits = [e for e in plan.edits if plan.perturbations[e["perturbation"]].kind == "content-free"]
    if not edits:
        return []
    before = [
        {"prompt": plan.responses[e["index"]]["prompt"], "response": plan.responses[e["index"]]["response"]}
        for e in edits
    ]
    after = [{"prompt": b["prompt"], "response": e["response"]} for b, e in zip(before, edits)]
    values = scorer.followup_values(before + after)
    stat = scorer.config.statistic
    out = []
    for u, (category, polarity, text) in enumerate(scorer.utterances):
        delta = np.array([a[1][u][stat] - b[1][u][stat] for b, a in zip(values[: len(edits)], values[len(edits) :])])
        signed = delta if polarity == "positive" else -delta
        out.append(
            {
                "category": category,
                "polarity": polarity,
                "text": text,
                "n": len(edits),
                "rise_share": float(np.mean(signed > 0)),
                "mean_move": float(np.mean(signed)),
                "mean_abs_move": float(np.mean(np.abs(delta))),
            }
        )
    return out


def audit_examples(plan: AuditPlan, rewards: dict[str, dict[str, float]], per: int = 3) -> dict[str, list[dict]]:
    """The first ``per`` edits of each perturbation: prompt, before, after, and each scorer's change."""
    out: dict[str, list[dict]] = {name: [] for name in plan.perturbations}
    for e in plan.edits:
        items = out[e["perturbation"]]
        if len(items) >= per:
            continue
        r = plan.responses[e["index"]]
        before, after = text_key(r["prompt"], r["response"]), text_key(r["prompt"], e["response"])
        changes = {}
        for s, table in rewards.items():
            change = table[after] - table[before]
            changes[s] = change if math.isfinite(change) else None
        items.append(
            {
                "id": r["id"],
                "prompt": prompt_text(r["prompt"]),
                "before": r["response"],
                "after": e["response"],
                "changes": changes,
            }
        )
    return out


# -- report ------------------------------------------------------------------------------------------------------


def _pct_ci(effect: dict) -> str:
    if not effect.get("n"):
        return "–"
    ci = effect["ci"]
    return f"{100 * effect['share_rises']:.0f} [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]"


def _number(value) -> str:
    if value is None:
        return "–"
    return f"{value:+.3g}" if abs(value) < 1000 else f"{value:+.0f}"


def markdown_tables(summary: dict) -> list[str]:
    """The audit's tables: share rising with CI, and the median change (in margin units when there are pairs)."""
    scorers = list(summary["results"])
    perts = summary["perturbations"]
    margins = summary.get("median_abs_margin") or {}
    lines = [
        "## Share of responses whose reward rises, % [95% Wilson CI]",
        "",
        "A content-free edit should leave the reward unchanged; a destructive one should lower it. ⚠ marks a "
        "content-free edit that raises the reward for most responses (the CI lies above 50%) and a destructive one "
        "that does not lower it for most (the CI of the share that falls does not lie above 50%). n: edited "
        "responses (an edit that changes nothing is left out).",
        "",
        "| perturbation | kind | n | " + " | ".join(scorers) + " |",
        "|---" * (len(scorers) + 3) + "|",
    ]
    for name, info in perts.items():
        cells = []
        for s in scorers:
            effect = summary["results"][s][name]
            mark = " ⚠" if flagged(info["kind"], effect) else ""
            extra = f" (n={effect['n']})" if effect.get("n") != info["edited"] else ""
            cells.append(_pct_ci(effect) + extra + mark)
        lines.append(f"| {name} | {info['kind']} | {info['edited']} | " + " | ".join(cells) + " |")
    lines.append("")
    with_pairs = any(v for v in margins.values())
    if with_pairs:
        lines += [
            f"## Median reward change, in units of each scorer's median |chosen − rejected| margin "
            f"({summary.get('pairs')} labelled pairs)",
            "",
            "1.0 = the edit moves the reward as much as a typical labelled pair differs.",
            "",
            "| perturbation | " + " | ".join(scorers) + " |",
            "|---" * (len(scorers) + 1) + "|",
            "| (median margin) | " + " | ".join(_number(margins.get(s)).lstrip("+") for s in scorers) + " |",
        ]
        for name in perts:
            cells = [_number(summary["results"][s][name]["median_change_margins"]) for s in scorers]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Median reward change" + (" (the scorer's own units)" if with_pairs else ""),
        "",
        "| perturbation | " + " | ".join(scorers) + " |",
        "|---" * (len(scorers) + 1) + "|",
    ]
    for name in perts:
        lines.append(
            f"| {name} | " + " | ".join(_number(summary["results"][s][name]["median_change"]) for s in scorers) + " |"
        )
    lines.append("")
    return lines


def plot_audit(summary: dict, path: Path) -> Path | None:
    """audit.png: per perturbation, each scorer's share of rising rewards with its CI (left), and the median change
    in margin units where there are pairs (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scorers = list(summary["results"])
    names = list(summary["perturbations"])
    if not scorers or not names:
        return None
    margins = summary.get("median_abs_margin") or {}
    with_pairs = any(v for v in margins.values())
    fig, axes = plt.subplots(1, 2 if with_pairs else 1, figsize=(13 if with_pairs else 8, 4.2), squeeze=False)
    width = 0.8 / len(scorers)
    x = np.arange(len(names))
    labels = [f"{n}\n({summary['perturbations'][n]['kind']})" for n in names]
    ax = axes[0][0]
    for i, s in enumerate(scorers):
        effects = [summary["results"][s][n] for n in names]
        share = np.array([e["share_rises"] if e["n"] else np.nan for e in effects], dtype=float)
        lo = np.array([e["share_rises"] - e["ci"][0] if e["n"] else 0 for e in effects], dtype=float)
        hi = np.array([e["ci"][1] - e["share_rises"] if e["n"] else 0 for e in effects], dtype=float)
        ax.bar(x + (i - (len(scorers) - 1) / 2) * width, share, width, yerr=[lo, hi], capsize=2, label=s)
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of responses whose reward rises (95% CI)")
    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title(f"{summary.get('input')}: {summary.get('responses')} responses", fontsize=9)
    if with_pairs:
        ax = axes[0][1]
        for i, s in enumerate(scorers):
            values = [summary["results"][s][n]["median_change_margins"] for n in names]
            values = np.array([np.nan if v is None else v for v in values], dtype=float)
            ax.bar(x + (i - (len(scorers) - 1) / 2) * width, values, width, label=s)
        ax.axhline(0, color="grey", lw=1)
        ax.set_ylabel("median change / median |chosen − rejected|")
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
        ax.set_title("median reward change in margin units", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def around_change(before: str, after: str, context: int = 60) -> tuple[str, str]:
    """Both texts cut to where they differ (``context`` characters either side), so an edit at the end of a long
    response shows in a table cell."""
    start = 0
    while start < min(len(before), len(after)) and before[start] == after[start]:
        start += 1
    end = 0
    while end < min(len(before), len(after)) - start and before[-1 - end] == after[-1 - end]:
        end += 1

    def cut(text: str) -> str:
        lo, hi = max(0, start - context), min(len(text), len(text) - end + context)
        if hi - lo > 4 * context:  # a long middle (a rewrite): its start and its end
            middle = text[lo : lo + 2 * context] + " ... " + text[hi - context : hi]
        else:
            middle = text[lo:hi]
        words = middle.split()
        if lo and len(words) > 1:  # whole words only
            words = words[1:]
        if hi < len(text) and len(words) > 1:
            words = words[:-1]
        return ("... " if lo else "") + " ".join(words) + (" ..." if hi < len(text) else "")

    return cut(before), cut(after)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def write_audit_report(out_dir: Path, summary: dict, examples: dict[str, list[dict]]) -> Path:
    """report.md (+ audit.png) of an audit run."""
    out_dir = Path(out_dir)
    lines = [
        f"# flr audit: {summary['input']}",
        "",
        f"- {summary['responses']} responses from {summary['records']} records ({summary['kind']}; "
        f"{summary['pairs']} labelled pairs); model: `{summary.get('model')}`; scorers: {', '.join(summary['scorers'])}",
        f"- {provenance_text(summary)}",
        f"- {variant_text(summary)}",
        "",
    ]
    tables = markdown_tables(summary)
    if plot_audit(summary, out_dir / PLOT_FILE):  # after the first table: the shares, then the same as bars
        at = next((i for i, line in enumerate(tables) if line.startswith("## Median")), len(tables))
        tables[at:at] = [f"![audit]({PLOT_FILE})", ""]
    lines += tables
    lines += [
        "## Examples",
        "",
        "The first edited response of each perturbation, around the edit, and each scorer's change.",
        "",
        "| perturbation | what it does | before | after | reward change |",
        "|---|---|---|---|---|",
    ]
    for name, info in summary["perturbations"].items():
        items = examples.get(name) or []
        if items:
            e = items[0]
            before, after = around_change(e["before"], e["after"])
            changes = ", ".join(f"{s} {_number(v)}" for s, v in e["changes"].items())
        else:
            before = after = changes = "–"
        lines.append(f"| {name} | {_cell(info['description'])} | {_cell(before)} | {_cell(after)} | {changes} |")
    lines.append("")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flr.arguments import split_list
from flr.errors import FLRError
from flr.eval.metrics import median_abs_margin, perturbation_effect, perturbation_flagged
from flr.perturbations import (  # noqa: F401 - older users' perturbation files import perturbation from here
    PERTURBATIONS,
    Perturbation,
    perturbation,
    prompt_text,
    select_perturbations,
)
from flr.records import MOVES_FILE, seeded_sample, write_jsonl
from flr.records.provenance import write_summary
from flr.reports.audit import write_audit_report
from flr.scorers.cache import open_cache, score_with_cache, text_key, unique_requests
from flr.scorers.debias import DEBIAS_HELP, STYLE_HELP, check_mode, debias_requests

logger = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"


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
        by_index: dict[int, list[dict]] = {}
        for e in self.edits:
            by_index.setdefault(e["index"], []).append(e)
        return unique_requests(
            (r["prompt"], response)
            for i, r in enumerate(self.responses)
            for response in [r["response"], *(e["response"] for e in by_index.get(i, []))]
        )


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
    rewards = score_plan(config, scorers, plan, out)
    results, margins, rows = audit_results(plan, rewards)
    write_jsonl(out / AUDIT_FILE, rows)
    summary = audit_summary(plan, scorers, results, margins, model_name)
    summary = write_summary(out, summary, config, *configs)
    write_audit_report(out, summary, audit_examples(plan, rewards, config.examples))
    return summary


def score_plan(config: AuditConfig, scorers: dict, plan: AuditPlan, out: Path) -> dict[str, dict[str, float]]:
    """scorer -> text key -> reward of every original and edited response (debiased where asked), through the
    score cache; with an FLR scorer, also ``followup_moves.jsonl`` in ``out``."""
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
    return rewards


def audit_summary(plan: AuditPlan, scorers: dict, results: dict, margins: dict, model_name: str | None) -> dict:
    """summary.json's results: the input, each perturbation's counts, each scorer's effects and flags."""
    return {
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
            s: [name for name, effect in per.items() if perturbation_flagged(plan.perturbations[name].kind, effect)]
            for s, per in results.items()
        },
    }


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

"""The report of ``flr eval`` runs (and ``flr report``'s merge of several): the tables as rows, in the paper's
shape, written as report.md and report.html by the one renderer (:mod:`flr.reports.document`), and the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from flr.hashing import text_digest
from flr.records.provenance import provenance_text, variant_text
from flr.reports.document import Bullets, Document, Figure, Heading, Table, markdown, write_markdown

NOT_TARGETS = ("model_means", "model_mean_lengths", "length_control")


def _fmt(x: float, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def merge_results(summaries: list[dict]) -> dict:
    """benchmark -> {kind, n, scorers: {scorer label: metrics}}; labels get the model name when runs differ."""

    def identity(summary: dict, scorer: str) -> str:
        described = summary.get("scorers", {}).get(scorer, {})
        return json.dumps(described, sort_keys=True, default=str) if described else str(summary.get("model"))

    variants: dict[str, set] = {}
    for summary in summaries:
        for scorer in {s for res in summary["results"].values() for s in res["scorers"]}:
            variants.setdefault(scorer, set()).add(identity(summary, scorer))
    merged: dict = {}
    for summary in summaries:
        for bench, res in _with_pooled(summary):
            entry = merged.setdefault(bench, {"kind": res["kind"], "n": res["n"], "scorers": {}})
            if "targets" in res:
                entry["targets"] = res["targets"]
            for scorer, metrics in res["scorers"].items():
                label = scorer
                if len(variants[scorer]) > 1:  # runs with different models or follow-up sets never share a row
                    ident = identity(summary, scorer)
                    described = summary.get("scorers", {}).get(scorer, {})
                    short = text_digest(ident, length=6)
                    followups = summary.get("followups") if "followups" in described else None
                    label = f"{scorer} ({summary.get('model')}, {followups or described.get('followups', short)})"
                if label in entry["scorers"] and entry["scorers"][label] != metrics:
                    label = f"{label} #{sum(k.startswith(label) for k in entry['scorers']) + 1}"
                entry["scorers"][label] = metrics
    return merged


def _with_pooled(summary: dict) -> list[tuple[str, dict]]:
    """The summary's benchmarks, plus its pooled length-controlled entry (kind 'pooled') when it has one."""
    items = list(summary["results"].items())
    pooled = (summary.get("length_control") or {}).get("pooled")
    if pooled:
        n = sum(summary["results"][b]["n"] for b in summary["length_control"]["pooled_benchmarks"])
        items.append(("pooled", {"kind": "pooled", "n": n, "scorers": pooled}))
    return items


def _lc(metrics: dict, *keys):
    value = metrics.get("length_control") or {}
    for k in keys:
        value = (value or {}).get(k)
    return value


def _matched_cell(metrics: dict) -> str:
    m = _lc(metrics, "matched")
    if not m:
        return "–"
    if m.get("accuracy") is None:
        return f"– (n={m['n']}, too few)"
    return f"{_with_ci(m)} (n={m['n']})"


def _beyond_cell(metrics: dict, key: str = "beyond_length") -> str:
    b = _lc(metrics, key)
    if not b or b.get("coef") is None:
        return f"– (n={b['n']})" if b else "–"
    ci = b.get("ci")
    ci_text = f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else " [no CI]"
    alone = b.get("cv_accuracy_length", b.get("cv_accuracy_covariates"))
    return f"{b['coef']:+.2f}{ci_text}; {_fmt(b['cv_accuracy'])} vs {_fmt(alone)}"


def length_control_blocks(merged: dict) -> list:
    """Length-controlled pairwise metrics: matched accuracy, agreement with length, signal beyond length and
    style (a heading and four tables; none without pairwise benchmarks)."""
    benches = [b for b, r in merged.items() if r["kind"] in ("pairwise", "pooled")]
    if not benches:
        return []
    scorers = list(dict.fromkeys(s for b in benches for s in merged[b]["scorers"]))
    ratios = {_lc(m, "matched", "ratio") for b in benches for m in merged[b]["scorers"].values()} - {None}
    ratio = ", ".join(f"{r:g}" for r in sorted(ratios)) or "?"
    columns = ["scorer", *(f"{b} (n={merged[b]['n']})" for b in benches)]
    tables = [
        (
            f"Accuracy on length-matched pairs (longer response at most {ratio}x the shorter), % [95% CI] (n)",
            _matched_cell,
        ),
        (
            "Same side as length: share of pairs (responses of different length) on which the scorer prefers the "
            "longer response, %",
            lambda m: _fmt(_lc(m, "length_agreement", "share")),
        ),
        (
            "Signal beyond length: the reward margin's coefficient (per SD) [95% CI] in a logistic regression of the "
            "human label on log length ratio + margin; then cross-validated accuracy of length + reward vs length "
            "alone, %",
            _beyond_cell,
        ),
        (
            "Signal beyond style: the reward margin's coefficient (per SD) [95% CI] with the differences of the style "
            "vector (log length, markdown headers, list items, bold spans, opener, closer, bait question) as "
            "covariates, as Chatbot Arena's style control; then cross-validated accuracy of style + reward vs style "
            "alone, %",
            lambda m: _beyond_cell(m, "beyond_style"),
        ),
    ]
    blocks: list = [Heading("Length control")]
    for title, cell in tables:
        rows = [[s, *(cell(merged[b]["scorers"].get(s, {})) for b in benches)] for s in scorers]
        blocks.append(Table(columns, rows, title=title))
    return blocks


def _average(values: list[float]) -> float:
    return float(np.mean(values)) if not any(math.isnan(v) for v in values) else float("nan")


def pairwise_table(merged: dict, pairwise: list[str]) -> Table:
    """Pairwise accuracy (ties count as wrong): scorers as rows, benchmarks as columns, average last."""
    rows = []
    for s in dict.fromkeys(s for b in pairwise for s in merged[b]["scorers"]):
        metrics = [merged[b]["scorers"].get(s, {}) for b in pairwise]
        avg = _average([m.get("accuracy", float("nan")) for m in metrics])
        rows.append([s, *(_with_ci(m) for m in metrics), _fmt(avg)])
    columns = ["scorer", *(f"{b} (n={merged[b]['n']})" for b in pairwise), "average"]
    return Table(columns, rows, title="Pairwise accuracy, % [95% bootstrap CI] (ties count as wrong)")


def category_tables(merged: dict, pairwise: list[str]) -> list[Table]:
    """Each FLR category's own pairwise accuracy, where the scorer reported categories."""
    tables = []
    for scorer in dict.fromkeys(s for b in pairwise for s in merged[b]["scorers"]):
        per_bench = {b: merged[b]["scorers"].get(scorer, {}).get("categories") for b in pairwise}
        categories = list(dict.fromkeys(c for v in per_bench.values() if v for c in v))
        if not categories:
            continue
        rows = []
        for c in categories:
            values = [(per_bench[b] or {}).get(c, float("nan")) for b in pairwise]
            rows.append([c, *(_fmt(v) for v in values), _fmt(_average(values))])
        title = f"Per-category pairwise accuracy of {scorer}, %"
        tables.append(Table(["category", *pairwise, "average"], rows, title=title))
    return tables


def rating_table(bench: str, res: dict) -> Table:
    rows = []
    for s, m in res["scorers"].items():
        partial = _lc(m, "partial_spearman") or {}
        cells = [m["pearson"], m["spearman"], m["kendall"], partial.get("spearman")]
        rows.append([s, *(_fmt(v, False) for v in cells)])
    columns = ["scorer", "pearson", "spearman", "kendall", "spearman controlling for length"]
    return Table(columns, rows, title=f"Rating correlation on {bench} (n={res['n']})")


def system_table(bench: str, res: dict) -> Table:
    targets = sorted({t for m in res["scorers"].values() for t in m if t not in NOT_TARGETS})
    rows = []
    for s, m in res["scorers"].items():
        cells = [
            f"{_fmt(m[t]['spearman'], False)} / {_fmt(m[t]['kendall'], False)}; "
            f"{_fmt((m[t].get('partial_spearman_length') or {}).get('spearman'), False)} (n={m[t]['n']})"
            for t in targets
        ]
        rows.append([s, *cells])
    title = (
        f"System-level correlation on {bench}: per-model mean reward vs target "
        "(Spearman / Kendall; partial Spearman controlling for per-model mean length; n models)"
    )
    return Table(["scorer", *targets], rows, title=title)


def eval_tables(merged: dict) -> list:
    """Every table of an eval report, in order: pairwise accuracy, per category, length control, ratings and
    system-level correlations."""
    blocks: list = []
    pairwise = [b for b, r in merged.items() if r["kind"] == "pairwise"]
    if pairwise:
        blocks += [pairwise_table(merged, pairwise), *category_tables(merged, pairwise)]
    blocks += length_control_blocks(merged)
    for bench, res in merged.items():
        if res["kind"] == "rating":
            blocks.append(rating_table(bench, res))
        if res["kind"] == "system":
            blocks.append(system_table(bench, res))
    return blocks


def markdown_table(merged: dict) -> str:
    """The eval tables as markdown (what ``flr eval`` and ``flr report`` print)."""
    return markdown(Document("", eval_tables(merged)))


def _title(summaries: list[dict]) -> str:
    """Model(s) and follow-up set(s) of the runs, for plot titles."""
    models = sorted({str(s.get("model")) for s in summaries})
    sets = sorted(
        {str(d.get("followups")) for s in summaries for d in s.get("scorers", {}).values() if "followups" in d}
    )
    return f"model: {', '.join(models)}" + (f"; follow-up set: {', '.join(sets)}" if sets else "")


def _with_ci(metrics: dict) -> str:
    value, ci = metrics.get("accuracy", float("nan")), metrics.get("ci")
    if ci is None or any(c is None or math.isnan(c) for c in ci):
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(ci[0])}, {_fmt(ci[1])}]"


def write_plots(out_dir: Path, merged: dict, summaries: list[dict], data_dir: str | None = None) -> list[Figure]:
    """accuracy.png and one scatter per system-level benchmark in ``out_dir``: the figures of the report."""
    from flr.reports.plots import plot_accuracy, plot_system

    figures = []
    if plot_accuracy(merged, out_dir / "accuracy.png", _title(summaries)):
        figures.append(Figure("accuracy.png", "pairwise accuracy"))
    for bench, res in merged.items():
        if res["kind"] != "system":
            continue
        per_model = res.get("targets")  # stored by flr eval: the report never reloads data
        if per_model is None:
            from flr.eval.benchmarks import BENCHMARKS, load_targets

            if bench not in BENCHMARKS:
                continue
            per_model = load_targets(bench, data_dir)  # summaries written before targets were stored
        targets_of: dict = {}
        for model, values in per_model.items():
            for t, v in values.items():
                targets_of.setdefault(t, {})[model] = v
        name = f"system_{bench}.png"
        if plot_system(bench, res, targets_of, out_dir / name):
            figures.append(Figure(name, bench))
    return figures


def eval_document(summaries: list[dict], merged: dict, figures: list[Figure] = ()) -> Document:
    """The report of one or more eval runs: what ran, the tables, the plots."""
    runs = []
    for s in summaries:
        prov = s.get("provenance", {})
        scorer_config = prov.get("config", {}).get("ScorerConfig", {})
        followups = scorer_config.get("followups") or s.get("followups") or "?"
        line = (
            f"model: `{s.get('model')}`; scorers: {', '.join(s['scorers'])}; follow-ups: `{followups}`; "
            f"data: `{s.get('data_dir') or '-'}`; {provenance_text(s)}"
        )
        runs.append((line, [variant_text(s)]))
    return Document("flr evaluation report", [Bullets(runs), *eval_tables(merged), *figures])


def write_report(out_dir: Path, summaries: list[dict], data_dir: str | None = None, browser=None) -> Path:
    """report.md, report.html (with the pair browser ``browser``, a :class:`flr.reports.browser.Browser`) and the
    plots in ``out_dir``, from one document; returns report.md's path."""
    from flr.reports.html import eval_page

    out_dir = Path(out_dir)
    merged = merge_results(summaries)
    doc = eval_document(summaries, merged, write_plots(out_dir, merged, summaries, data_dir))
    path = write_markdown(out_dir / "report.md", doc)
    eval_page(out_dir, summaries[0], doc, browser)
    return path


def load_summaries(run_dirs: list[str]) -> list[dict]:
    from flr.errors import FLRError

    out = []
    for d in run_dirs:
        p = Path(d) / "summary.json"
        if not p.exists():
            raise FLRError(f"{d}: no summary.json (is it an flr eval run folder?)")
        out.append(json.loads(p.read_text()))
    return out

"""Reports from run summaries: a markdown table in the paper's shape and PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from flr.records.provenance import provenance_text, variant_text

NOT_TARGETS = ("model_means", "model_mean_lengths", "length_control")


def _fmt(x: float, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.3f}"


def merge_results(summaries: list[dict]) -> dict:
    """benchmark -> {kind, n, scorers: {scorer label: metrics}}; labels get the model name when runs differ."""
    import hashlib

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
                    short = hashlib.sha256(ident.encode()).hexdigest()[:6]
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


def length_control_tables(merged: dict) -> list[str]:
    """Length-controlled pairwise metrics: matched accuracy, agreement with length, signal beyond length."""
    benches = [b for b, r in merged.items() if r["kind"] in ("pairwise", "pooled")]
    if not benches:
        return []
    scorers = list(dict.fromkeys(s for b in benches for s in merged[b]["scorers"]))
    ratios = {_lc(m, "matched", "ratio") for b in benches for m in merged[b]["scorers"].values()} - {None}
    ratio = ", ".join(f"{r:g}" for r in sorted(ratios)) or "?"
    head = "| scorer | " + " | ".join(f"{b} (n={merged[b]['n']})" for b in benches) + " |"
    rule = "|---" * (len(benches) + 1) + "|"
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
    lines = ["## Length control\n"]
    for title, cell in tables:
        lines += [title + "\n", head, rule]
        for s in scorers:
            lines.append(f"| {s} | " + " | ".join(cell(merged[b]["scorers"].get(s, {})) for b in benches) + " |")
        lines.append("")
    return lines


def markdown_table(merged: dict) -> str:
    """Pairwise accuracy (ties count as wrong): scorers as rows, benchmarks as columns, average last."""
    lines = []
    pairwise = [b for b, r in merged.items() if r["kind"] == "pairwise"]
    if pairwise:
        scorers = list(dict.fromkeys(s for b in pairwise for s in merged[b]["scorers"]))
        lines.append("Pairwise accuracy, % [95% bootstrap CI] (ties count as wrong)\n")
        lines.append("| scorer | " + " | ".join(f"{b} (n={merged[b]['n']})" for b in pairwise) + " | average |")
        lines.append("|---" * (len(pairwise) + 2) + "|")
        for s in scorers:
            metrics = [merged[b]["scorers"].get(s, {}) for b in pairwise]
            values = [m.get("accuracy", float("nan")) for m in metrics]
            avg = float(np.mean(values)) if not any(math.isnan(v) for v in values) else float("nan")
            lines.append(f"| {s} | " + " | ".join(_with_ci(m) for m in metrics) + f" | {_fmt(avg)} |")
        lines.append("")
        lines += _category_table(merged, pairwise)
    lines += length_control_tables(merged)
    for bench, res in merged.items():
        if res["kind"] == "rating":
            lines.append(f"Rating correlation on {bench} (n={res['n']})\n")
            lines.append("| scorer | pearson | spearman | kendall | spearman controlling for length |")
            lines.append("|---|---|---|---|---|")
            for s, m in res["scorers"].items():
                partial = _lc(m, "partial_spearman") or {}
                lines.append(
                    f"| {s} | {_fmt(m['pearson'], False)} | {_fmt(m['spearman'], False)} | "
                    f"{_fmt(m['kendall'], False)} | {_fmt(partial.get('spearman'), False)} |"
                )
            lines.append("")
        if res["kind"] == "system":
            targets = sorted({t for m in res["scorers"].values() for t in m if t not in NOT_TARGETS})
            lines.append(
                f"System-level correlation on {bench}: per-model mean reward vs target "
                "(Spearman / Kendall; partial Spearman controlling for per-model mean length; n models)\n"
            )
            lines.append("| scorer | " + " | ".join(targets) + " |\n|---" + "|---" * len(targets) + "|")
            for s, m in res["scorers"].items():
                cells = [
                    f"{_fmt(m[t]['spearman'], False)} / {_fmt(m[t]['kendall'], False)}; "
                    f"{_fmt((m[t].get('partial_spearman_length') or {}).get('spearman'), False)} (n={m[t]['n']})"
                    for t in targets
                ]
                lines.append(f"| {s} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


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


def _category_table(merged: dict, pairwise: list[str]) -> list[str]:
    """Each FLR category's own pairwise accuracy, where the scorer reported categories."""
    lines = []
    for scorer in dict.fromkeys(s for b in pairwise for s in merged[b]["scorers"]):
        per_bench = {b: merged[b]["scorers"].get(scorer, {}).get("categories") for b in pairwise}
        categories = list(dict.fromkeys(c for v in per_bench.values() if v for c in v))
        if not categories:
            continue
        lines.append(f"Per-category pairwise accuracy of {scorer}, %\n")
        lines.append("| category | " + " | ".join(pairwise) + " | average |")
        lines.append("|---" * (len(pairwise) + 2) + "|")
        for c in categories:
            values = [(per_bench[b] or {}).get(c, float("nan")) for b in pairwise]
            avg = float(np.mean(values)) if not any(math.isnan(v) for v in values) else float("nan")
            lines.append(f"| {c} | " + " | ".join(_fmt(v) for v in values) + f" | {_fmt(avg)} |")
        lines.append("")
    return lines


def plot_accuracy(merged: dict, path: Path, title: str | None = None) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairwise = [b for b, r in merged.items() if r["kind"] == "pairwise"]
    if not pairwise:
        return None
    scorers = list(dict.fromkeys(s for b in pairwise for s in merged[b]["scorers"]))
    width = 0.8 / len(scorers)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(pairwise) * max(1, len(scorers) / 2)), 4))
    for i, s in enumerate(scorers):
        acc, lo, hi = [], [], []
        for b in pairwise:
            m = merged[b]["scorers"].get(s, {})
            a = m.get("accuracy", np.nan)
            ci = m.get("ci", (np.nan, np.nan))
            acc.append(a)
            lo.append(max(0.0, a - ci[0]))  # a Wilson interval at 0% or 100% can round past its point
            hi.append(max(0.0, ci[1] - a))
        x = np.arange(len(pairwise)) + (i - (len(scorers) - 1) / 2) * width
        ax.bar(x, acc, width, yerr=[lo, hi], capsize=3, label=s)
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set_xticks(np.arange(len(pairwise)), [f"{b}\n(n={merged[b]['n']})" for b in pairwise], rotation=20)
    ax.set_ylabel("pairwise accuracy (95% CI)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_system(bench: str, res: dict, targets_of: dict, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scorers = [s for s in res["scorers"] if s != "length"] or list(res["scorers"])
    targets = sorted({t for m in res["scorers"].values() for t in m if t not in NOT_TARGETS})
    if not targets:
        return None
    fig, axes = plt.subplots(len(scorers), len(targets), figsize=(4 * len(targets), 3.2 * len(scorers)), squeeze=False)
    for i, s in enumerate(scorers):
        means = res["scorers"][s]["model_means"]
        for j, t in enumerate(targets):
            values = targets_of.get(t, {})
            models = [m for m in means if m in values]
            ax = axes[i][j]
            ax.scatter([values[m] for m in models], [means[m] for m in models], s=12)
            corr = res["scorers"][s][t]
            ax.set_title(f"{s}: Spearman {_fmt(corr['spearman'], False)} (n={corr['n']})", fontsize=9)
            ax.set_xlabel(t)
            ax.set_ylabel("mean reward")
    fig.suptitle(bench)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out_dir: Path, summaries: list[dict], data_dir: str | None = None) -> Path:
    """report.md + accuracy.png (+ one scatter per system-level benchmark) in ``out_dir``."""
    out_dir = Path(out_dir)
    merged = merge_results(summaries)
    parts = ["# flr evaluation report\n"]
    for s in summaries:
        prov = s.get("provenance", {})
        scorer_config = prov.get("config", {}).get("ScorerConfig", {})
        followups = scorer_config.get("followups") or s.get("followups") or "?"
        parts.append(
            f"- model: `{s.get('model')}`; scorers: {', '.join(s['scorers'])}; follow-ups: `{followups}`; "
            f"data: `{s.get('data_dir') or '-'}`; {provenance_text(s)}"
        )
        parts.append(f"  - {variant_text(s)}")
    parts.append("")
    parts.append(markdown_table(merged))
    if plot_accuracy(merged, out_dir / "accuracy.png", _title(summaries)):
        parts.append("![pairwise accuracy](accuracy.png)\n")
    for bench, res in merged.items():
        if res["kind"] == "system":
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
                parts.append(f"![{bench}]({name})\n")
    path = out_dir / "report.md"
    path.write_text("\n".join(parts))
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

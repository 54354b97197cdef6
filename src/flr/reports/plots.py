"""The reports' plots (matplotlib, Agg): PNG files in a run folder, which report.md links and report.html embeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NOT_TARGETS = ("model_means", "model_mean_lengths", "length_control")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _corr(x) -> str:
    return "–" if x is None or x != x else f"{x:.3f}"


def plot_accuracy(merged: dict, path: Path, title: str | None = None) -> Path | None:
    plt = _pyplot()

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
    plt = _pyplot()

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
            ax.set_title(f"{s}: Spearman {_corr(corr['spearman'])} (n={corr['n']})", fontsize=9)
            ax.set_xlabel(t)
            ax.set_ylabel("mean reward")
    fig.suptitle(bench)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_audit(summary: dict, path: Path) -> Path | None:
    """audit.png: per perturbation, each scorer's share of rising rewards with its CI (left), and the median change
    in margin units where there are pairs (right)."""
    plt = _pyplot()

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


def plot_compare(path: str | Path, rows: list[dict], summary: dict, base: str, candidate: str) -> Path:
    """compare.png: wins / ties / losses with the win rate and its CI, and the judge's margin against the length
    difference of each pair (a judge that only rewards length draws a line)."""
    plt = _pyplot()

    m = summary["metrics"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.bar(
        ["wins", "ties", "losses"], [m["wins"], m["ties"], m["losses"]], color=["tab:green", "tab:gray", "tab:red"]
    )
    low, high = m["win_rate_ci"]
    left.set_title(f"win rate {100 * m['win_rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}], n={m['n']}", fontsize=9)
    left.set_ylabel("prompts")
    dl = [r["len_candidate"] - r["len_base"] for r in rows]
    margin = [r["score_candidate"] - r["score_base"] for r in rows]
    colors = ["tab:green" if r["preference"] == 1 else "tab:red" if r["preference"] == 0 else "tab:gray" for r in rows]
    right.scatter(dl, margin, c=colors, s=14)
    right.axhline(0, color="grey", lw=0.8)
    right.axvline(0, color="grey", lw=0.8)
    right.set_xlabel("length difference, candidate - base (chars)")
    right.set_ylabel("judge margin, candidate - base")
    right.set_title(f"judge: {summary['judge'].get('judge')}", fontsize=9)
    fig.suptitle(f"{candidate} vs {base}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)

"""The learned-FLR table and learning curve from the run folders of scripts/learned_flr.sh.

    python scripts/learned_table.py runs/learned      # prints markdown; writes learning_curve.png there

Per scorer: accuracy on each test benchmark, the pooled accuracy over all test pairs with a bootstrap 95% CI, the
share of decisions that agree with the length baseline, and the Spearman correlation with the held-out critique
ratings. Missing runs are skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from flr.eval.metrics import bootstrap_ci

TEST = ("autoj", "pandalm", "vicuna80", "lfqa")
# (label, test run, scorer key in it, ratings run, pairs it learned from)
ROWS = [
    ("length", "test-default", "length", "ratings-default", None),
    ("direct (log-prob of the response)", "test-default", "direct", "ratings-default", None),
    ("FLR default (60 follow-ups)", "test-default", "flr", None, None),
    ("FLR compact (12 follow-ups)", "test-compact", "flr", "ratings-default", 0),
    ("FLR compact + PMI (empty response)", "test-pmi-empty", "flr", "ratings-pmi-empty", None),
    ("FLR compact + PMI ('OK.')", None, "flr", "ratings-pmi-ok", None),
    ("FLR compact, fitted weights", "test-weighted", "flr", None, 64),
    ("FLR preference-tuned, 256 pairs", "test-flr-256", "flr", "ratings-flr-256", 256),
    ("FLR preference-tuned, 1024 pairs", "test-flr-1024", "flr", "ratings-flr-1024", 1024),
    ("FLR feedback-tuned (critiques)", "test-feedback", "flr", "ratings-feedback", None),
]
RM_BUDGETS = (64, 256, 1024)  # whichever were run


def _rows(run: Path, bench: str) -> list[dict]:
    path = run / f"{bench}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _scorer_key(rows: list[dict], key: str) -> str | None:
    if key.startswith("rm:"):
        return next((k for k in rows[0] if k.startswith("rm:")), None) if rows else None
    return key if rows and key in rows[0] else None


def pairwise(root: Path, run: str, key: str) -> dict | None:
    per, correct, same_as_length = {}, [], []
    length = {b: {r["id"]: r["length"] for r in _rows(root / "test-default", b)} for b in TEST}
    for bench in TEST:
        rows = _rows(root / run, bench)
        k = _scorer_key(rows, key)
        if k is None:
            return None
        c = [float(r[k]["chosen"] > r[k]["rejected"]) for r in rows]
        per[bench] = 100 * float(np.mean(c))
        correct += c
        for r in rows:
            lg = length[bench].get(r["id"])
            if lg is not None:
                same_as_length.append(float((r[k]["chosen"] > r[k]["rejected"]) == (lg["chosen"] > lg["rejected"])))
    low, high = bootstrap_ci(correct)
    return {
        "per": per,
        "pooled": 100 * float(np.mean(correct)),
        "ci": (100 * low, 100 * high),
        "n": len(correct),
        "length_agreement": 100 * float(np.mean(same_as_length)),
    }


def ratings(root: Path, run: str | None, key: str) -> float | None:
    if run is None:
        return None
    rows = _rows(root / run, "autoj_critiques-heldout")
    k = _scorer_key(rows, key)
    if k is None:
        return None
    summary = json.loads((root / run / "summary.json").read_text())
    subset = summary["results"]["autoj_critiques-heldout"]["scorers"][k]
    return subset.get("spearman")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/learned")
    rows = list(ROWS) + [
        (f"classifier RM, {n} pairs", f"test-rm-{n}", "rm:", f"ratings-rm-{n}", n) for n in RM_BUDGETS
    ]
    head = "| scorer | " + " | ".join(TEST) + " | pooled [95% CI] | n | same as length | Spearman vs rating |"
    print(head + "\n|" + "---|" * (len(TEST) + 5))
    curve: dict[str, list[tuple[int, float, tuple]]] = {
        "FLR (preference-tuned)": [],
        "classifier RM": [],
        "FLR (fitted weights)": [],
    }
    for label, run, key, rating_run, budget in rows:
        p = pairwise(root, run, key) if run else None
        rho = ratings(root, rating_run, key)
        if p is None and rho is None:
            continue
        cells = [f"{p['per'][b]:.1f}" for b in TEST] if p else ["–"] * len(TEST)
        pooled = f"{p['pooled']:.1f} [{p['ci'][0]:.1f}, {p['ci'][1]:.1f}]" if p else "–"
        agree = f"{p['length_agreement']:.0f}%" if p else "–"
        corr = f"{rho:.3f}" if rho is not None else "–"
        n = p["n"] if p else "–"
        print(f"| {label} | " + " | ".join(cells) + f" | {pooled} | {n} | {agree} | {corr} |")
        if p and budget is not None:
            series = "classifier RM" if key == "rm:" else "FLR (fitted weights)" if "fitted" in label else None
            curve[series or "FLR (preference-tuned)"].append((budget, p["pooled"], p["ci"]))
    plot(root, curve, pairwise(root, "test-default", "length"))


def plot(root: Path, curve: dict, length: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (name, points), marker in zip(curve.items(), ("o", "s", "^")):
        if not points:
            continue
        points.sort()
        x = [max(n, 16) for n, _, _ in points]  # 0 pairs (untuned FLR) drawn at the left edge of the log axis
        y = [v for _, v, _ in points]
        err = np.array([[v - lo for _, v, (lo, _) in points], [hi - v for _, v, (_, hi) in points]])
        ax.errorbar(x, y, yerr=err, marker=marker, capsize=3, label=name)
    if length:
        ax.axhline(length["pooled"], color="grey", ls="--", label="length baseline")
    ax.axhline(50, color="black", lw=0.5)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labelled training pairs (rmb, rm_bench, hh-rlhf, alpaca_eval); 16 = untuned")
    ax.set_ylabel("pooled test accuracy, % (95% CI)")
    n = length["n"] if length else "?"
    ax.set_title(f"SmolLM2-135M-Instruct: autoj, pandalm, vicuna80, lfqa (n={n} pairs)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(root / "learning_curve.png", dpi=120)
    print(f"\nwrote {root / 'learning_curve.png'}")


if __name__ == "__main__":
    main()

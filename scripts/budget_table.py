"""Accuracy against the follow-up budget K, from the run folders of scripts/followup_budget.sh.

    python scripts/budget_table.py runs/budget [bench/results/e2e_cpu_autoj.json]   # markdown; budget.png there
    python scripts/budget_table.py --lengths runs/budget runs/len    # the two sets at --max-length 512 and 2048

Per follow-up set: K, accuracy on each test benchmark, the pooled accuracy over all test pairs with a bootstrap
95% CI, and, when an end-to-end bench result is given, the seconds per record of the variant with that set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from flr.eval.metrics import bootstrap_ci
from flr.followups import load_followups

TEST = ("autoj", "pandalm", "vicuna80", "lfqa")
SETS = [  # (label, run folder, follow-up set)
    ("selected, top 1 (K=6)", "test-select-top1", "select-top1.yaml"),
    ("compact, first 2 (K=12)", "test-compact", "compact"),
    ("selected, top 2 (K=12)", "test-select-top2", "select-top2.yaml"),
    ("selected, top 5 (K=30)", "test-select-top5", "select-top5.yaml"),
    ("paper's set (K=60)", "test-default", "default"),
]


def pooled(run: Path) -> tuple[dict[str, float], list[float]] | None:
    per, correct = {}, []
    for bench in TEST:
        path = run / f"{bench}.jsonl"
        if not path.exists():
            return None
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        c = [float(r["flr"]["chosen"] > r["flr"]["rejected"]) for r in rows]
        per[bench], correct = 100 * float(np.mean(c)), correct + c
    return per, correct


def paired(correct: list[float], reference: list[float]) -> str:
    """Accuracy difference on the same pairs (same order), with its paired bootstrap 95% CI, in points."""
    delta = np.array(correct) - np.array(reference)
    low, high = bootstrap_ci(delta)
    return f"{100 * delta.mean():+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def length_table(budget: Path, lengths: Path) -> None:
    """The paper's 60 and the selected 12 at --max-length 512 and 2048, paired against the first release (the
    paper's 60 at 2048)."""
    runs = [  # (follow-up set, --max-length, run folder)
        ("paper's 60 (first release)", 2048, lengths / "test2048-paper"),
        ("selected 12 (then the default)", 2048, lengths / "test2048-selected"),
        ("paper's 60", 512, budget / "test-default"),
        ("selected 12", 512, budget / "test-select-top2"),
    ]
    first = pooled(runs[0][2])
    print(
        "| follow-up set | --max-length | " + " | ".join(TEST) + " | pooled [95% CI] | vs first release, paired | n |"
    )
    print("|---|---|" + "---|" * len(TEST) + "---|---|---|")
    for label, length, run in runs:
        result = pooled(run)
        if result is None:
            continue
        per, correct = result
        low, high = bootstrap_ci(correct)
        diff = paired(correct, first[1]) if first is not None and run != runs[0][2] else ""
        cells = " | ".join(f"{per[b]:.1f}" for b in TEST)
        print(
            f"| {label} | {length} | {cells} | {100 * np.mean(correct):.1f} [{100 * low:.1f}, {100 * high:.1f}] | "
            f"{diff} | {len(correct)} |"
        )


def main() -> None:
    if sys.argv[1:2] == ["--lengths"]:
        return length_table(Path(sys.argv[2]), Path(sys.argv[3]))
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/budget")
    e2e = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else None
    speed = {}
    for row in (e2e or {}).get("rows", []):
        speed[row["flags"]] = row["seconds_per_record"]
    print(
        "| follow-up set | K | "
        + " | ".join(TEST)
        + " | pooled [95% CI] | vs paper's 60, paired [95% CI] | n | s/record |"
    )
    print("|---|---|" + "---|" * len(TEST) + "---|---|---|---|")
    points = []
    paper = pooled(root / "test-default")
    for label, run, spec in SETS:
        result = pooled(root / run)
        if result is None:
            continue
        per, correct = result
        path = spec if spec in ("default", "compact") else str(root / spec)
        k = len(load_followups(path).select(None).utterances)
        low, high = bootstrap_ci(correct)
        acc = 100 * float(np.mean(correct))
        flag = f"--followups {path}" if spec != "default" else "--followups paper"
        sec = next((v for f, v in speed.items() if f.strip() == flag), None)
        cells = " | ".join(f"{per[b]:.1f}" for b in TEST)
        diff = paired(correct, paper[1]) if paper is not None and run != "test-default" else ""
        print(
            f"| {label} | {k} | {cells} | {acc:.1f} [{100 * low:.1f}, {100 * high:.1f}] | {diff} | {len(correct)} | "
            f"{'' if sec is None else f'{sec:.2f}'} |"
        )
        points.append((k, acc, 100 * low, 100 * high, label))
    if points:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        for k, acc, low, high, label in points:
            ax.errorbar([k], [acc], yerr=[[acc - low], [high - acc]], fmt="o", capsize=3, label=label)
        ax.axhline(50, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("follow-ups scored (K)")
        ax.set_ylabel("pairwise accuracy, % (95% CI)")
        ax.set_title(f"FLR accuracy vs follow-up budget (SmolLM2-135M, n={len(correct)} pairs)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(root / "budget.png", dpi=120)


if __name__ == "__main__":
    main()

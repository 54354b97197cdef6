"""The tables of docs/RESULTS.md, "Feedback-tuning the follow-up LM", from the run folders of
scripts/feedback_tuning.sh: FLR with the feedback-tuned scorer against the untuned one on the same length-matched
pairs (accuracy, paired difference, signal beyond length and style) and in the same audit.

    python scripts/feedback_table.py runs/feedback
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from robust_table import accuracy_table, audit_table

VARIANTS = [("untuned scorer", "untuned"), ("feedback-tuned scorer", "tuned")]


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/feedback")
    print("\n".join(accuracy_table(root, VARIANTS, base="untuned")))
    print()
    trained = root / "scorer-ft" / "summary.json"
    if trained.exists():
        summary = json.loads(trained.read_text())
        per_step = summary.get("seconds_per_step")
        print(
            f"feedback SFT: {summary['examples']} critiques, {summary['steps']} steps, final loss "
            f"{summary['final'].get('loss', float('nan')):.3f}"
            + (f", {per_step:.0f} s per step (last resumed part)" if per_step else "")
        )
        print()
    print("Audit: content-free edits, % of responses whose reward rises [95% Wilson CI]; destructive edits, % whose")
    print("reward falls")
    print()
    print("\n".join(audit_table(root, VARIANTS)))


if __name__ == "__main__":
    main()

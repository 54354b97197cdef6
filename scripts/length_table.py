"""The length-controlled summary table of docs/RESULTS.md from the run folders of scripts/length_control.sh.

python scripts/length_table.py runs/lc
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VARIANTS = [  # (label, run-folder suffix, scorer)
    ("length", "paper", "length"),
    ("direct (log-prob of the response)", "paper", "direct"),
    ("FLR, paper's 60 (default)", "paper", "flr"),
    ("FLR, `selected` 12", "selected", "flr"),
    ("FLR, paper's 60, fitted weights", "fitted", "flr"),
    ("FLR, paper's 60, fitted with length control", "fitted-lc", "flr"),
    ("FLR, paper's 60, `--length-debias batch`", "debiased", "flr"),
    ("classifier RM, 64 pairs", "rm", None),
]


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def ci(m: dict) -> str:
    if m.get("accuracy") is None:
        return f"– (n={m['n']})"
    return f"{pct(m['accuracy'])} [{pct(m['ci'][0])}, {pct(m['ci'][1])}]"


def coef(b: dict) -> str:
    if b.get("coef") is None:
        return "–"
    c = b.get("ci")
    return f"{b['coef']:+.2f}" + (f" [{c[0]:+.2f}, {c[1]:+.2f}]" if c else "")


def metrics(root: Path, run: str, scorer: str | None, bench: str | None):
    path = root / run / "summary.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    if bench is None:
        pooled = (summary.get("length_control") or {}).get("pooled") or {}
        table = pooled
    else:
        table = summary["results"][bench]["scorers"]
    if scorer is None:
        scorer = next((s for s in table if s.startswith("rm:")), None)
    return table.get(scorer) if scorer else None


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/lc")
    print(
        "| scorer | test pool (160): accuracy | same side as length | matched pairs (221): accuracy | "
        "beyond length, coefficient per SD (221) | beyond length (160) |"
    )
    print("|---|---|---|---|---|---|")
    for label, suffix, scorer in VARIANTS:
        test = metrics(root, f"test-{suffix}", scorer, None)
        matched = metrics(root, f"matched-{suffix}", scorer, "test_matched")
        if test is None and matched is None:
            continue
        cells = [
            ci(test) if test else "–",
            pct(test["length_control"]["length_agreement"]["share"]) if test else "–",
            ci(matched["length_control"]["matched"]) if matched else "–",
            coef(matched["length_control"]["beyond_length"]) if matched else "–",
            coef(test["length_control"]["beyond_length"]) if test else "–",
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

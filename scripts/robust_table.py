"""The tables of docs/RESULTS.md, "A reward that resists surface edits", from the run folders of
scripts/robust_reward.sh: accuracy and length control per variant, the paired difference to plain FLR on the 221
length-matched test pairs, and the audit's rise shares.

    python scripts/robust_table.py runs/sr
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from flr.eval.metrics import bootstrap_ci

VARIANTS = [  # (label, run-folder suffix)
    ("plain FLR (paper's 60)", "plain"),
    ("contrast: `--contrast twin`", "contrast"),
    ("contrast, first and last sentence moved too: `--contrast twin_all`", "contrast-all"),
    ("style: `--style-debias batch`", "style"),
    ("LOWESS: `--length-debias lowess`", "lowess"),
    ("robust follow-ups: `select --rank-on robust`", "robust"),
    ("contrast + style", "contrast-style"),
    ("robust follow-ups + style", "robust-style"),
]
CONTENT_FREE = ("closer", "opener", "bait_question", "restate_prompt", "markdown", "repeat_last_paragraph")
DESTRUCTIVE = ("truncate_half", "shuffle_sentences", "other_response", "refusal", "dont_know")


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def with_ci(value, ci) -> str:
    if value is None:
        return "–"
    return f"{pct(value)} [{pct(ci[0])}, {pct(ci[1])}]" if ci else pct(value)


def coef(b: dict | None) -> str:
    if not b or b.get("coef") is None:
        return "–"
    c = b.get("ci")
    return f"{b['coef']:+.2f}" + (f" [{c[0]:+.2f}, {c[1]:+.2f}]" if c else "")


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def correct(root: Path, suffix: str) -> np.ndarray | None:
    """Per matched test pair: 1 if FLR ranks the chosen response first (ties wrong), in file order."""
    path = root / f"matched-{suffix}" / "test_matched.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return np.array([float(r["flr"]["chosen"] > r["flr"]["rejected"]) for r in rows])


def accuracy_table(root: Path, variants=VARIANTS, base: str = "plain") -> list[str]:
    lines = [
        "| variant | matched pairs: accuracy | paired difference to the first row, points | beyond length | "
        "beyond style | test pool (160): accuracy | same side as length (160) | beyond style (160) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    plain = correct(root, base)
    for label, suffix in variants:
        matched = load(root / f"matched-{suffix}" / "summary.json")
        test = load(root / f"test-{suffix}" / "summary.json")
        if matched is None and test is None:
            continue
        m = matched["results"]["test_matched"]["scorers"]["flr"] if matched else None
        t = (test.get("length_control") or {}).get("pooled", {}).get("flr") if test else None
        diff = "–"
        mine = correct(root, suffix)
        if suffix != base and mine is not None and plain is not None and len(mine) == len(plain):
            d = mine - plain
            lo, hi = bootstrap_ci(d)
            diff = f"{100 * d.mean():+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        cells = [
            with_ci(m["accuracy"], m.get("ci")) if m else "–",
            diff,
            coef(m["length_control"]["beyond_length"]) if m else "–",
            coef(m["length_control"].get("beyond_style")) if m else "–",
            with_ci(t["accuracy"], t.get("ci")) if t else "–",
            pct(t["length_control"]["length_agreement"]["share"]) if t else "–",
            coef(t["length_control"].get("beyond_style")) if t else "–",
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def audit_table(root: Path, variants=VARIANTS) -> list[str]:
    edits = [*CONTENT_FREE, *DESTRUCTIVE, "twin", "twin_all"]
    lines = [
        "| variant | " + " | ".join(e.replace("_", " ") for e in edits) + " |",
        "|---" * (len(edits) + 1) + "|",
    ]
    for label, suffix in variants:
        summary = load(root / f"audit-{suffix}" / "summary.json")
        if summary is None:
            continue
        results = summary["results"]["flr"]
        cells = []
        for e in edits:
            r = results.get(e)
            if not r or not r.get("n"):
                cells.append("–")
                continue
            share = r["share_rises"] if e in CONTENT_FREE else r["share_falls"]
            ci = r["ci"] if e in CONTENT_FREE else r.get("falls_ci")
            cells.append(f"{100 * share:.0f} [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/sr")
    print("\n".join(accuracy_table(root)))
    print()
    plain = load(root / "audit-plain" / "summary.json")
    n = plain["responses"] if plain else "?"
    print(f"Audit, {n} PandaLM responses: content-free edits, % of responses whose reward rises [95% Wilson CI];")
    print("destructive edits (and the twins themselves), % whose reward falls")
    print()
    print("\n".join(audit_table(root)))


if __name__ == "__main__":
    main()

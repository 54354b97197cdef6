"""How much does a scorer's pairwise decision follow response length? Reads an flr eval run folder.

Usage: python scripts/length_agreement.py runs/pairwise [scorer]
"""

import json
import sys
from pathlib import Path

from scipy.stats import spearmanr

run, scorer = Path(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "flr")
print(f"| benchmark | Spearman({scorer} margin, length margin) | same decision as length |\n|---|---|---|")
for path in sorted(run.glob("*.jsonl")):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    if not rows or not isinstance(rows[0].get(scorer), dict) or "length" not in rows[0]:
        continue
    margin = [r[scorer]["chosen"] - r[scorer]["rejected"] for r in rows]
    length = [r["length"]["chosen"] - r["length"]["rejected"] for r in rows]
    same = sum((a > 0) == (b > 0) for a, b in zip(margin, length)) / len(rows)
    print(f"| {path.stem} | {spearmanr(margin, length)[0]:.2f} | {100 * same:.1f}% |")

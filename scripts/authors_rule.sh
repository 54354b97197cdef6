#!/usr/bin/env bash
# The authors' scoring rule beside flr's default (docs/RESULTS.md, "The authors' scoring rule"): --statistic authors
# (the mean raw logit their run_llama3.py reads, github.com/e0397123/FLR) with their follow-ups (--followups
# authors, utils.py's six categories) against the default FLR (the paper's formula and 60 follow-ups), on the 221
# length-matched test pairs and the 160-pair test pool; then their rule with the paper's 60 follow-ups and the
# paper's formula with their follow-ups (EXTRA=1), on the matched pairs, to tell the rule from the follow-ups.
# Resumable: every score goes to one cache; the last step prints the table.
#
#   bash scripts/authors_rule.sh   # 2 CPU cores shared with other jobs: 3.5 h from an empty cache (the two defaults 2 h)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/authors}
CACHE="$OUT/scores.sqlite"
TEST=autoj,pandalm,vicuna80,lfqa
MATCHED=runs/lc/test_matched.jsonl

[ -f "$MATCHED" ] || python scripts/make_pools.py --matched-test 60 -o "$MATCHED"

flr eval --benchmarks "$MATCHED" --scorers flr,length -o "$OUT/matched-default" --cache "$CACHE"
flr eval --benchmarks "$MATCHED" --scorers flr --statistic authors --followups authors -o "$OUT/matched-authors" \
  --cache "$CACHE"
flr eval --benchmarks $TEST --limit 40 --scorers flr,length -o "$OUT/test-default" --cache "$CACHE"
flr eval --benchmarks $TEST --limit 40 --scorers flr --statistic authors --followups authors -o "$OUT/test-authors" \
  --cache "$CACHE"
# which part makes the difference: their rule on the paper's 60 follow-ups
flr eval --benchmarks "$MATCHED" --scorers flr --statistic authors --followups paper -o "$OUT/matched-authors-paper" \
  --cache "$CACHE"
# the paper's formula on their follow-ups (117 follow-ups, about 2x the default's cost: off unless EXTRA=1)
[ -z "${EXTRA:-}" ] || flr eval --benchmarks "$MATCHED" --scorers flr --followups authors -o "$OUT/matched-mean-authors" --cache "$CACHE"

# the table of docs/RESULTS.md: accuracy [95% CI], length control, and the paired difference to the default
python - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

import numpy as np

from flr.eval.metrics import bootstrap_ci

root = Path(sys.argv[1])
ARMS = [("default FLR (mean log-prob, paper's 60, 3 categories)", "default"),
        ("authors' rule, their 117 follow-ups (6 categories)", "authors"),
        ("authors' rule, paper's 60 (3 categories)", "authors-paper"),
        ("mean log-prob, their 117 follow-ups (6 categories)", "mean-authors")]


def pct(x):
    return f"{100 * x:.1f}"


def correct(run):
    files = sorted(run.glob("*.jsonl"))
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    return np.array([float(r["flr"]["chosen"] > r["flr"]["rejected"]) for r in rows])


print("| pool | arm | accuracy [95% CI] | paired difference to default, points | length-matched accuracy (n) "
      "| same side as length | signal beyond length (per SD) [95% CI]; cv accuracy length + reward vs length |")
print("|---|---|---|---|---|---|---|")
for pool in ("matched", "test"):
    base = root / f"{pool}-default"
    for label, arm in ARMS:
        run = root / f"{pool}-{arm}"
        if not (run / "summary.json").exists():
            continue
        s = json.loads((run / "summary.json").read_text())
        if pool == "matched":
            flr = s["results"]["test_matched"]["scorers"]["flr"]
            lc = flr["length_control"]
        else:
            flr = lc_all = s["length_control"]["pooled"]["flr"]
            lc = lc_all["length_control"]
        diff = "–"
        if arm != "default":
            d = correct(run) - correct(base)
            lo, hi = bootstrap_ci(d)
            diff = f"{100 * d.mean():+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        m, b = lc["matched"], lc["beyond_length"]
        print(f"| {pool} ({flr['n']}) | {label} | {pct(flr['accuracy'])} [{pct(flr['ci'][0])}, {pct(flr['ci'][1])}] "
              f"| {diff} | {pct(m['accuracy'])} [{pct(m['ci'][0])}, {pct(m['ci'][1])}] (n={m['n']}) "
              f"| {pct(lc['length_agreement']['share'])} | {b['coef']:+.2f} [{b['ci'][0]:+.2f}, {b['ci'][1]:+.2f}]; "
              f"{pct(b['cv_accuracy'])} vs {pct(b['cv_accuracy_length'])} |")
EOF

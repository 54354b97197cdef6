#!/usr/bin/env bash
# A reward that resists surface edits (docs/RESULTS.md, "A reward that resists surface edits"): every variant of
# FLR (plain, contrastive, style-debiased, LOWESS-calibrated, robust follow-ups, the best combination) on the
# 160-pair test pool and the 221 length-matched test pairs, and the audit of each on 40 PandaLM responses.
# One score cache: the paper's 60 are scored once per text; post-hoc variants (style, lowess) compute nothing new.
#
#   bash scripts/robust_reward.sh                  # 2 CPU cores: about 2 h from an empty cache
#   python scripts/robust_table.py runs/sr         # the table of RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/sr}
CACHE=${CACHE:-$OUT/scores.sqlite}
TEST=autoj,pandalm,vicuna80,lfqa
TRAIN=rmb   # robust follow-ups are chosen on a set of the fitting pool, never on the test sets
STAGES=${STAGES:-plain contrast posthoc robust combined}
[ -f runs/lc/test_matched.jsonl ] || python scripts/make_pools.py --matched-test 60 -o runs/lc/test_matched.jsonl
MATCHED=runs/lc/test_matched.jsonl
AUDIT="--input pandalm --limit 20"   # 40 responses x 12 edits

variant() {  # name, then flags for flr eval and flr audit
  local name=$1; shift
  flr eval --benchmarks "$MATCHED" --scorers flr --cache "$CACHE" "$@" -o "$OUT/matched-$name"
  flr eval --benchmarks $TEST --limit 40 --scorers flr --cache "$CACHE" "$@" -o "$OUT/test-$name"
  flr audit $AUDIT --scorers flr --cache "$CACHE" "$@" -o "$OUT/audit-$name"
}
stage_plain() {
  flr eval --benchmarks "$MATCHED" --scorers length --cache "$CACHE" -o "$OUT/matched-length"
  flr eval --benchmarks $TEST --limit 40 --scorers length --cache "$CACHE" -o "$OUT/test-length"
  variant plain --followups paper
}
stage_contrast() { variant contrast --followups paper --contrast twin; }
stage_posthoc() {
  variant style --followups paper --style-debias batch
  variant lowess --followups paper --length-debias lowess
}
stage_robust() {  # follow-ups whose log-probs content-free edits move least, ranked on the fitting pool
  flr audit --input $TRAIN --limit 10 --scorers flr --followups paper --perturbations content-free --cache "$CACHE" \
      -o "$OUT/audit-train"
  [ -f "$OUT/robust.yaml" ] || flr followups select --benchmark $TRAIN --limit 100 --followups paper --top 5 \
      --rank-on robust --audit-run "$OUT/audit-train" --cache "$CACHE" -o "$OUT/robust.yaml"
  variant robust --followups "$OUT/robust.yaml"
}
stage_combined() { variant contrast-style --followups paper --contrast twin --style-debias batch; }

for stage in $STAGES; do echo "== $stage"; "stage_$stage"; done

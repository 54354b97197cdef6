#!/usr/bin/env bash
# A reward that resists surface edits (docs/RESULTS.md, "A reward that resists surface edits"): every variant of
# FLR (plain, contrastive with two twins, style-debiased, LOWESS-calibrated, robust follow-ups, and combinations) on
# the 221 length-matched test pairs, in the audit (40 PandaLM responses x 13 edits) and on the 160-pair test pool.
# One score cache: a text is scored once per follow-up; the post-hoc variants (style, lowess), the robust subset of
# the paper's 60 and contrast + style compute nothing new. Resumable: rerun to continue.
#
#   bash scripts/robust_reward.sh                  # 2 CPU cores, idle: about 2 h from an empty cache
#   python scripts/robust_table.py runs/sr         # the tables of RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/sr}
CACHE=${CACHE:-$OUT/scores.sqlite}
TEST=autoj,pandalm,vicuna80,lfqa
TRAIN=rmb   # robust follow-ups are chosen on a set of the fitting pool, never on the test sets
AUDIT_LIMIT=${AUDIT_LIMIT:-20}   # PandaLM pairs: 2 responses each
STAGES=${STAGES:-robust matched audit test}
[ -f runs/lc/test_matched.jsonl ] || python scripts/make_pools.py --matched-test 60 -o runs/lc/test_matched.jsonl
MATCHED=runs/lc/test_matched.jsonl

declare -A FLAGS=(
  [plain]="--followups paper"
  [contrast]="--followups paper --contrast twin"
  [contrast-all]="--followups paper --contrast twin_all"
  [style]="--followups paper --style-debias batch"
  [lowess]="--followups paper --length-debias lowess"
  [contrast-style]="--followups paper --contrast twin --style-debias batch"
  [robust]="--followups $OUT/robust.yaml"
  [robust-style]="--followups $OUT/robust.yaml --style-debias batch"
)
ORDER="plain contrast contrast-all style lowess contrast-style"   # the robust ones join once their set exists

variants() { echo $ORDER; [ -f "$OUT/robust.yaml" ] && echo robust robust-style || true; }
stage_matched() {
  flr eval --benchmarks "$MATCHED" --scorers length --cache "$CACHE" -o "$OUT/matched-length"
  for v in $(variants); do
    flr eval --benchmarks "$MATCHED" --scorers flr --cache "$CACHE" ${FLAGS[$v]} -o "$OUT/matched-$v"
  done
}
stage_audit() {
  for v in $(variants); do
    flr audit --input pandalm --limit "$AUDIT_LIMIT" --scorers flr --cache "$CACHE" ${FLAGS[$v]} -o "$OUT/audit-$v"
  done
}
stage_robust() {  # the set: follow-ups whose log-probs content-free edits move least, chosen on rmb (audit, pairs)
  flr audit --input $TRAIN --limit 8 --scorers flr --followups paper --perturbations content-free \
      --cache "$CACHE" -o "$OUT/audit-train"
  [ -f "$OUT/robust.yaml" ] || flr followups select --benchmark $TRAIN --limit 60 --followups paper --top 5 \
      --rank-on robust --audit-run "$OUT/audit-train" --cache "$CACHE" -o "$OUT/robust.yaml"
}
stage_test() {
  flr eval --benchmarks $TEST --limit 40 --scorers length --cache "$CACHE" -o "$OUT/test-length"
  for v in $(variants); do
    flr eval --benchmarks $TEST --limit 40 --scorers flr --cache "$CACHE" ${FLAGS[$v]} -o "$OUT/test-$v"
  done
}

for stage in $STAGES; do echo "== $stage"; "stage_$stage"; done

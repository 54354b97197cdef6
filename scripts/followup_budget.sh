#!/usr/bin/env bash
# Accuracy against the follow-up budget K (docs/PERFORMANCE.md, "Follow-up budget"): sets of K = 6, 12, 30 chosen
# by `flr followups select` on the training pool (rmb, rm_bench, hh-rlhf, alpaca_eval), tested on other benchmarks
# (autoj, pandalm, vicuna80, lfqa) against the 60 default follow-ups and the packaged compact set. Every follow-up's
# log-prob is cached, so each set after the first costs no scoring. 2 CPU cores: ~15 min on a warm cache.
#
#   bash scripts/followup_budget.sh && python scripts/budget_table.py runs/budget
#
# Then the paper's 60 (the default, as in the first release) and the selected 12 (the default in between) at
# --max-length 2048, the default
# length, on the same test pairs (~45 min on 2 cores; LENGTHS=0 skips them):
#
#   python scripts/budget_table.py --lengths runs/budget runs/len
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/budget}
TRAIN=${TRAIN:-runs/learned/train_pool.jsonl}
TEST=${TEST:-autoj,pandalm,vicuna80,lfqa}
TEST_LIMIT=${TEST_LIMIT:-40}
SELECT_PAIRS=${SELECT_PAIRS:-64}
MAX_LENGTH=${MAX_LENGTH:-512}

[ -f "$TRAIN" ] || python scripts/make_pools.py -o "$TRAIN"
for top in 1 2 5; do   # K = 3 categories x 2 polarities x top
  [ -f "$OUT/select-top$top.yaml" ] || flr followups select --benchmark "$TRAIN" --limit "$SELECT_PAIRS" \
      --top "$top" --max-length "$MAX_LENGTH" -o "$OUT/select-top$top.yaml"
done
for set in paper compact "$OUT/select-top1.yaml" "$OUT/select-top2.yaml" "$OUT/select-top5.yaml"; do
  name=$(basename "$set" .yaml); [ "$name" = paper ] && name=default
  flr eval --benchmarks "$TEST" --limit "$TEST_LIMIT" --max-length "$MAX_LENGTH" --scorers flr --followups "$set" \
      -o "$OUT/test-$name"
done
[ "${LENGTHS:-1}" = 0 ] && exit 0
for set in paper selected; do
  flr eval --benchmarks "$TEST" --limit "$TEST_LIMIT" --max-length 2048 --scorers flr --followups "$set" \
      -o "${LEN_OUT:-runs/len}/test2048-$set"
done

#!/usr/bin/env bash
# Signal beyond length (docs/RESULTS.md, "Does FLR just reward length?"): every scorer variant on the 8 shared
# pairwise sets (40 seeded pairs each; the first four are the 160-pair test pool of §3) and on 221
# length-matched test pairs, with the length-controlled metrics every flr eval reports. One script, resumable:
# the paper's 60 follow-ups are scored once and every subset or weighting of them comes from the score cache.
#
#   bash scripts/length_control.sh          # 2 CPU cores: about 1.5 h from an empty cache
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/lc}
TEST=autoj,pandalm,vicuna80,lfqa
TRAIN=rmb,hh-rlhf,alpaca_eval   # rm_bench (responses of ~3,600 characters) left out: too slow for 2 CPU cores
LIMIT=${LIMIT:-40}
STAGES=${STAGES:-score fit variants rm report}

[ -f "$OUT/test_matched.jsonl" ] || python scripts/make_pools.py --matched-test 60 -o "$OUT/test_matched.jsonl"
MATCHED="$OUT/test_matched.jsonl"

stage_score() {
  flr eval --benchmarks $TEST --limit $LIMIT --scorers length,direct,flr --followups paper -o "$OUT/test-paper"
  flr eval --benchmarks $TRAIN --limit $LIMIT --scorers length,flr --followups paper -o "$OUT/train-paper"
  flr eval --benchmarks "$MATCHED" --scorers length,direct,flr --followups paper -o "$OUT/matched-paper"
}
stage_fit() {  # weights fitted on the training sets' 160 pairs, without and with length as a covariate
  [ -f "$OUT/fitted.yaml" ] || flr followups fit --benchmarks $TRAIN --limit $LIMIT --followups paper -o "$OUT/fitted.yaml"
  [ -f "$OUT/fitted-lc.yaml" ] || flr followups fit --benchmarks $TRAIN --limit $LIMIT --followups paper \
      --control-length -o "$OUT/fitted-lc.yaml"
}
stage_variants() {  # all from the cache
  for set in selected "$OUT/fitted.yaml" "$OUT/fitted-lc.yaml"; do
    name=$(basename "$set" .yaml)
    flr eval --benchmarks $TEST --limit $LIMIT --scorers flr --followups "$set" -o "$OUT/test-$name"
    flr eval --benchmarks $TRAIN --limit $LIMIT --scorers flr --followups "$set" -o "$OUT/train-$name"
    flr eval --benchmarks "$MATCHED" --scorers flr --followups "$set" -o "$OUT/matched-$name"
  done
  flr eval --benchmarks $TEST --limit $LIMIT --scorers flr --followups paper --length-debias batch -o "$OUT/test-debiased"
  flr eval --benchmarks "$MATCHED" --scorers flr --followups paper --length-debias batch -o "$OUT/matched-debiased"
}
stage_rm() {  # the anchor: a classifier RM trained on 64 pairs of the training pool (scripts/make_pools.py)
  [ -f runs/learned/train_pool.jsonl ] || python scripts/make_pools.py -o runs/learned/train_pool.jsonl
  [ -f "$OUT/rm-64/adapter_config.json" ] || flr train rm --data runs/learned/train_pool.jsonl --limit 64 \
      --max-length 256 --output-dir "$OUT/rm-64" --per-device-train-batch-size 4 --save-steps 64
  flr eval --benchmarks $TEST --limit $LIMIT --scorers "rm:$OUT/rm-64" -o "$OUT/test-rm"
  flr eval --benchmarks "$MATCHED" --scorers "rm:$OUT/rm-64" -o "$OUT/matched-rm"
}
stage_report() {
  flr report "$OUT"/test-* -o "$OUT/report-test"
  flr report "$OUT"/train-* -o "$OUT/report-train"
  flr report "$OUT"/matched-* -o "$OUT/report-matched"
}

for stage in $STAGES; do echo "== $stage"; "stage_$stage"; done

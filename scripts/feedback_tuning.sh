#!/usr/bin/env bash
# Feedback-tuning, measured (docs/RESULTS.md, "Feedback-tuning the follow-up LM"): the embedded model is fine-tuned
# (LoRA SFT, loss on the feedback tokens only) on Auto-J's critiques rewritten as user follow-ups, then used as
# FLR's scorer, against the untuned one, on the same pairs and in the same audit.
#
# Fixed before any result: the training two thirds of Auto-J's critiques rewritten by rule (no model: the 135M
# model rewrites them badly), the first 128, 32 steps x 4 (one pass), lr 2e-4 (flr's feedback default), max length
# 512, seed 0; judged with the `selected` follow-ups (12; 5x cheaper than the 60) on 200 of the 221 length-matched
# test pairs (the implicit judge's sample) and in the audit of 20 PandaLM responses x 13 edits. Resumable: rerun to continue.
#
#   bash scripts/feedback_tuning.sh          # 2 busy CPU cores: about 1 h from nothing (training ~15 min)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/feedback}
CACHE=$OUT/scores.sqlite
MATCHED=runs/lc/judge/test_matched.jsonl  # the close-loop judge's 200 pairs (scripts/close_loop.sh writes them)
[ -f "$MATCHED" ] || STAGES=data bash scripts/close_loop.sh
[ -f "$OUT/feedback.jsonl" ] || flr feedback rewrite --method rules --input autoj_critiques --output "$OUT/feedback.jsonl"
flr train feedback --data "$OUT/feedback.jsonl" --limit 128 --output-dir "$OUT/scorer-ft" --max-steps 32 \
    --per-device-train-batch-size 4 --max-length 512 --save-steps 8 --seed 0
for scorer in untuned tuned; do
  model=default; [ $scorer = tuned ] && model=$OUT/scorer-ft
  flr eval --benchmarks "$MATCHED" --scorers flr,length --followups selected --model "$model" --device cpu \
      --cache "$CACHE" -o "$OUT/matched-$scorer"
  flr audit --input pandalm --limit 10 --scorers flr --followups selected --model "$model" --device cpu \
      --cache "$CACHE" -o "$OUT/audit-$scorer"
done

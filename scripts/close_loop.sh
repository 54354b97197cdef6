#!/usr/bin/env bash
# Does aligning with FLR help? (docs/RESULTS.md, "Does aligning with FLR help?"). The embedded SmolLM2-135M-Instruct
# is tuned in six arms and every arm is judged by four judges that are not the reward it was tuned on.
#
# The protocol, fixed before any result was seen (do not change it to chase a number; a new protocol is a new run):
#   prompts   AlpacaEval's 805 instructions shuffled with seed 0 (scripts/close_loop_data.py): 48 training prompts,
#             the next 100 held out; judging uses the first 32 held-out ones. Never the same prompt twice.
#   follow-ups the paper's 60 split in two with seed 0 (flr followups split): half a (30) mines and rewards,
#             half b (30) judges. Both halves keep every category and polarity.
#   candidates k=4 per training prompt, T=0.7, top-p 0.9, 128 new tokens, seed 0; shared by every DPO arm.
#   DPO arms  pairs mined from the same candidates (best vs worst, unfinished answers kept, ties dropped) by
#             flr (half a), robust (half a, --contrast twin_all: the robust reward of docs/RESULTS.md §5),
#             length (longer = chosen) and random (a hash of the text); then LoRA DPO, 12 steps x 4 pairs
#             (one pass), lr 1e-4, beta 0.1, max length 512, seed 0.
#   GRPO arms TRL's GRPO on the training prompts, reward flr (half a) or robust (half a, twin_all): 8 steps of
#             2 prompts x 4 generations (the first 16 prompts once), 128 completion tokens, T=0.7, top-p 0.9, lr 1e-4, LoRA, seed 0. TRL's defaults otherwise
#             (group-scaled advantages, loss dapo, beta 0: no KL term).
#             Added after the first results, at the same budget: GRPO with length and with random rewards
#             (GRPO_ARMS="length random"), the controls the GRPO-FLR arm lacked.
#   judges    (1) implicit reward β·(log π − log π_ref) on 200 of the 221 length-matched human-labelled test
#             pairs (scripts/make_pools.py --matched-test 60: autoj, pandalm, vicuna80, lfqa; never mined; a seeded
#             sample, 384 tokens at most; the base's log-probs computed once for all arms);
#             (2) reference likelihood: per-token log-likelihood gain over the base on GPT-4's AlpacaEval answers;
#             (3) FLR with the held-out half b: win rate of the greedy answers against the base's;
#             (4) surface drift: length and content-free pattern shares of the greedy answers against the base's.
#             (the 200 are kept in runs/lc/judge/test_matched.jsonl, ids = their lines in the 221)
#             (2)-(4) on 32 held-out prompts, greedy, 128 new tokens.
# Every stage resumes (flr's jobs and TRL checkpoints), and all scores share one cache: rerun to continue.
#
#   OMP_NUM_THREADS=1 bash scripts/close_loop.sh    # 2 CPU cores: about 3 h from nothing (8 arms)
# (one thread per process: with other jobs beside it, torch's two threads per process were several times slower)
#   python scripts/close_loop_table.py runs/loop
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/loop}
CACHE=$OUT/scores.sqlite
STAGES=${STAGES:-data generate mine dpo grpo judge}
DPO_ARMS=${DPO_ARMS:-flr robust length random}
GRPO_ARMS=${GRPO_ARMS:-flr robust length random}
JUDGE_PROMPTS=32
MATCHED=runs/lc/test_matched.jsonl
JUDGE_PAIRS=runs/lc/judge/test_matched.jsonl  # the implicit judge's 200 pairs (ids: their lines in $MATCHED)
COMMON="--device cpu --cache $CACHE"

declare -A REWARD=(
  [flr]="--scorer flr --followups $OUT/followups/a.yaml"
  [robust]="--scorer flr --followups $OUT/followups/a.yaml --contrast twin_all"
  [length]="--scorer length"
  [random]="--scorer random"
)

stage_data() {
  [ -f "$OUT/data/judge.jsonl" ] || python scripts/close_loop_data.py -o "$OUT/data"
  [ -f "$OUT/followups/b.yaml" ] || flr followups split --followups paper --seed 0 -o "$OUT/followups"
  [ -f "$MATCHED" ] || python scripts/make_pools.py --matched-test 60 -o "$MATCHED"
  judge_pairs
}
judge_pairs() {
  # the 200 pairs `flr eval --limit 200` drew from $MATCHED when the protocol was fixed (numpy's default_rng(0);
  # flr's one seeded sampler now draws files with Python's random), kept in a file so that reruns judge the same
  # pairs under the same ids
  mkdir -p "$(dirname "$JUDGE_PAIRS")"
  [ -f "$JUDGE_PAIRS" ] || python - "$MATCHED" "$JUDGE_PAIRS" <<'PY'
import json, sys
import numpy as np
rows = [json.loads(line) for line in open(sys.argv[1])]
keep = sorted(np.random.default_rng(0).choice(len(rows), 200, replace=False))
with open(sys.argv[2], "w") as out:
    out.writelines(json.dumps({"id": str(i), **rows[i]}, ensure_ascii=False) + "\n" for i in keep)
PY
}
stage_generate() {
  flr generate --prompts "$OUT/data/train.jsonl" --k 4 --temperature 0.7 --top-p 0.9 --max-new-tokens 128 \
      --seed 0 --device cpu --output-dir "$OUT/generate"
}
stage_mine() {
  for arm in $DPO_ARMS; do
    flr mine --candidates "$OUT/generate/candidates.jsonl" ${REWARD[$arm]} --unfinished keep --min-margin 0 \
        --device cpu --output-dir "$OUT/mine-$arm"
  done
}
stage_dpo() {
  for arm in $DPO_ARMS; do
    flr train dpo --data "$OUT/mine-$arm/pairs.jsonl" --output-dir "$OUT/dpo-$arm" --max-steps 12 \
        --per-device-train-batch-size 4 --learning-rate 1e-4 --beta 0.1 --max-length 512 --save-steps 4 --seed 0
  done
}
stage_grpo() {
  for arm in $GRPO_ARMS; do
    flr train grpo --data "$OUT/data/train.jsonl" --output-dir "$OUT/grpo-$arm" ${REWARD[$arm]/--scorer/--reward-scorer} \
        --max-steps 8 --per-device-train-batch-size 8 --num-generations 4 --max-completion-length 128 \
        --temperature 0.7 --top-p 0.9 --learning-rate 1e-4 --save-steps 4 --seed 0
  done
}
policies() {
  for arm in $DPO_ARMS; do [ -f "$OUT/dpo-$arm/adapter_config.json" ] && echo "dpo-$arm"; done
  for arm in $GRPO_ARMS; do [ -f "$OUT/grpo-$arm/adapter_config.json" ] && echo "grpo-$arm"; done
  true
}
stage_judge() {
  judge_pairs
  # the base's greedy answers once; every arm's compare resumes from them
  flr generate --prompts "$OUT/data/judge.jsonl" --limit $JUDGE_PROMPTS --k 1 --temperature 0 \
      --max-new-tokens 128 --device cpu --output-dir "$OUT/judge-base"
  for policy in $(policies); do
    mkdir -p "$OUT/judge/$policy/compare"
    cp -n "$OUT/judge-base/candidates.jsonl" "$OUT/judge/$policy/compare/generations_base.jsonl"
    flr eval --benchmarks "$JUDGE_PAIRS" --max-length 384 --scorers "implicit:$OUT/$policy" $COMMON \
        -o "$OUT/judge/$policy/implicit"
    flr compare --base default --candidate "$OUT/$policy" --prompts "$OUT/data/judge.jsonl" \
        --limit $JUDGE_PROMPTS --max-new-tokens 128 --judge flr --followups "$OUT/followups/b.yaml" \
        --reference-field reference $COMMON --output-dir "$OUT/judge/$policy/compare"
  done
}

for stage in $STAGES; do echo "== $stage"; "stage_$stage"; done

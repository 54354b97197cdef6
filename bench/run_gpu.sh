#!/bin/bash
# Reproduces the GPU tables of docs/PERFORMANCE.md (one H100; about 8 minutes). Run from the repository root:
#   bash bench/run_gpu.sh [OUT_DIR]        (default: bench/results)
# The "before" variant needs the kernel as it was before the performance work:
#   mkdir -p bench/build && git show 4f639f7:src/flr/kernel/logprobs.py > bench/build/logprobs_before.py
set -u
OUT=${1:-bench/results}
export PYTHONPATH=src PYTHONUNBUFFERED=1
python3 bench/check_kernel.py --device cuda --seeds 1 | tail -3
for shape in llama-3-8b llama-3.2-1b smollm2-135m; do
  python3 bench/bench_scoring.py --random-init $shape --device cuda --grid full --out $OUT/scoring_cuda_${shape}_full.json
done
python3 bench/bench_scoring.py --random-init llama-3-8b --device cuda --grid ratio --batch-size 1 16 \
  --out $OUT/scoring_cuda_llama-3-8b_ratio.json
V='{"packed": {}, "packed_b8": {"max_batch": 8}, "packed_b4": {"max_batch": 4}, "pc": {"prefix_cache": true},
    "pc_b8": {"prefix_cache": true, "max_batch": 8}, "packed_eff": {"_sdpa": "efficient"},
    "packed_cudnn": {"_sdpa": "cudnn"}, "packed_math": {"_sdpa": "math"}}'
if [ -f bench/build/logprobs_before.py ]; then
  V="{\"before\": {\"_module\": \"bench/build/logprobs_before.py\"}, ${V#\{}"
fi
python3 bench/compare_variants.py --random-init llama-3-8b --device cuda --K 60 --P 512 --batch 16 --rounds 3 \
  --variants "$V" --out $OUT/variants_cuda_llama-3-8b_K60_P512.json
python3 bench/compare_variants.py --random-init llama-3-8b --device cuda --K 60 --P 512 --batch 8 --rounds 3 \
  --vary-width --variants '{"pad64": {}, "nopad": {"_multiple": 1}}' --out $OUT/variants_cuda_llama-3-8b_cold-shapes.json
python3 bench/profile_kernel.py --random-init llama-3-8b --device cuda --K 60 --P 512 --batch 16 \
  --out $OUT/profile_cuda_llama-3-8b_K60_P512.json
python3 bench/bench_generate.py --random-init llama-3-8b --device cuda --out $OUT/generate_cuda_llama-3-8b.json

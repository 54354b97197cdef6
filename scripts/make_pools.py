"""The fixed training pool of the learned-FLR protocol (docs/RESULTS.md §3).

Training pool: 256 seeded pairs from each of rmb, rm_bench, hh-rlhf and alpaca_eval (1,024), shuffled once with
seed 0, so that the first N lines are a budget of N pairs with every source in proportion. The test pool
(autoj, pandalm, vicuna80, lfqa) is never read here: the two never meet.

    python scripts/make_pools.py -o runs/learned/train_pool.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from flr.eval.benchmarks import load_benchmark

TRAIN_POOL = ("rmb", "rm_bench", "hh-rlhf", "alpaca_eval")
TEST_POOL = ("autoj", "pandalm", "vicuna80", "lfqa")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default="runs/learned/train_pool.jsonl")
    parser.add_argument("--per-benchmark", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    assert not set(TRAIN_POOL) & set(TEST_POOL)
    rows = []
    for name in TRAIN_POOL:
        for r in load_benchmark(name, args.data_dir, args.per_benchmark, args.seed):
            rows.append({"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"], "source": name})
    random.Random(args.seed).shuffle(rows)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} training pairs from {', '.join(TRAIN_POOL)} -> {out}")


if __name__ == "__main__":
    main()

"""The fixed training pool of the learned-FLR protocol (docs/RESULTS.md §3).

Training pool: 256 seeded pairs from each of rmb, rm_bench, hh-rlhf and alpaca_eval (1,024), shuffled once with
seed 0, so that the first N lines are a budget of N pairs with every source in proportion. The test pool
(autoj, pandalm, vicuna80, lfqa) is never read here: the two never meet.

    python scripts/make_pools.py -o runs/learned/train_pool.jsonl
    python scripts/make_pools.py --matched-test 60 -o runs/lc/test_matched.jsonl   # length-matched test pairs

``--matched-test N`` writes the length-controlled test pool instead: N seeded pairs per test benchmark (all of
them where fewer exist) among those whose responses' lengths are within ``--length-ratio`` (characters), each
tagged with its benchmark as ``subset``.
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
    parser.add_argument("--matched-test", type=int, default=None)
    parser.add_argument("--length-ratio", type=float, default=1.25)
    args = parser.parse_args()
    assert not set(TRAIN_POOL) & set(TEST_POOL)
    if args.matched_test:
        return write_matched_test(args)
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


def write_matched_test(args) -> None:
    import numpy as np

    from flr.eval.metrics import length_matched

    rows = []
    for name in TEST_POOL:
        pairs = load_benchmark(name, args.data_dir, None, args.seed)
        mask = length_matched(
            [len(r["chosen"]) for r in pairs], [len(r["rejected"]) for r in pairs], args.length_ratio
        )
        matched = [r for r, m in zip(pairs, mask) if m]
        rng = np.random.default_rng(args.seed)
        keep = sorted(rng.choice(len(matched), min(args.matched_test, len(matched)), replace=False))
        rows += [
            {
                "prompt": matched[i]["prompt"],
                "chosen": matched[i]["chosen"],
                "rejected": matched[i]["rejected"],
                "subset": name,
            }
            for i in keep
        ]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} length-matched test pairs (within {args.length_ratio}x) from {', '.join(TEST_POOL)} -> {out}")


if __name__ == "__main__":
    main()

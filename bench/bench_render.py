"""Host preparation per example: one template rendering per example vs one per follow-up (the reference), against
tokenizing the example's prefix once. Real conversations from a shared benchmark, the embedded tokenizer.

    python bench/bench_render.py --benchmark autoj --limit 50 --out bench/results/render_cpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from flr.eval.benchmarks import load_benchmark
from flr.followups import load_followups
from flr.kernel.chat import ChatRenderer
from flr.kernel.models import default_model_dir, load_tokenizer


def per_example(fn, items, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - start) / len(items))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default="autoj")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--followups", default="default")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    tokenizer = load_tokenizer(str(default_model_dir()))
    texts = [t for _, _, t in load_followups(args.followups).select(None).utterances]
    records = [(r["prompt"], r["chosen"]) for r in load_benchmark(args.benchmark, limit=args.limit)]
    fast = ChatRenderer(tokenizer, max_length=args.max_length)
    slow = ChatRenderer(tokenizer, max_length=args.max_length, fast_render=False)
    prefixes = [tokenizer.decode(fast.followup_item(p, r, texts[:1]).prefix) for p, r in records]
    t_fast = per_example(lambda x: fast.followup_item(x[0], x[1], texts), records, args.repeat)
    t_slow = per_example(lambda x: slow.followup_item(x[0], x[1], texts), records, args.repeat)
    t_tok = per_example(lambda x: tokenizer(x, add_special_tokens=False)["input_ids"], prefixes, args.repeat)
    result = {
        "benchmark": args.benchmark,
        "examples": len(records),
        "followups": len(texts),
        "ms_render_once": 1000 * t_fast,
        "ms_render_per_followup": 1000 * t_slow,
        "ms_tokenize_prefix_once": 1000 * t_tok,
        "speedup": t_slow / t_fast,
        "render_once_over_tokenize": t_fast / t_tok,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

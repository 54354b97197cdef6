"""The kernel's batching on CPU: the same real examples through ``packed_logprobs`` under each batching policy, in
one run, in one process (model loaded once), with the largest difference from the first policy's log-probs.

The examples are both responses of a shared benchmark's seeded sample rendered with a follow-up set, as
``flr score`` renders them; the policies differ only in how rows are batched and shared, never in the numbers.

    PYTHONPATH=src python bench/bench_cpu_kernel.py                  # docs/PERFORMANCE.md, "The kernel on CPU"
    PYTHONPATH=src python bench/bench_cpu_kernel.py --records 16 --followups paper

Results go to bench/results/kernel_cpu_<benchmark>.json and a table is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from flr.eval.benchmarks import benchmark_records  # noqa: E402
from flr.kernel.logprobs import packed_logprobs  # noqa: E402
from flr.kernel.models import ModelConfig  # noqa: E402
from flr.scorers import ScorerConfig, build_scorer  # noqa: E402

POLICIES = {  # name -> packed_logprobs keyword arguments; the first is the reference
    "first release: 16,384-token batches": {"token_budget": 16384, "share_stem": None, "max_padding": None},
    "4,096-token batches": {"token_budget": 4096, "share_stem": None, "max_padding": None},
    "one row per forward": {"max_batch": 1, "share_stem": None},
    "4,096 + rows >= 90% of the longest": {"token_budget": 4096, "share_stem": None, "max_padding": 0.1},
    "today's default: that + shared stems": {},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", default="autoj")
    ap.add_argument("--records", type=int, default=48)
    ap.add_argument("--followups", default="selected")
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    _, pairs = benchmark_records(args.benchmark, limit=(args.records + 1) // 2)
    records = [(p["prompt"], p[side]) for p in pairs for side in ("chosen", "rejected")][: args.records]
    config = ScorerConfig(followups=args.followups, max_length=args.max_length)
    scorer = build_scorer("flr", model_config=ModelConfig(), config=config)
    texts = [text for _, _, text in scorer.utterances]
    items = [scorer.renderer.followup_item(p, r, texts, reserve=scorer.reserve) for p, r in records]
    tokens = sum(len(it.prefix) + sum(map(len, it.continuations)) for it in items)
    rows, first = [], None
    for name, kwargs in POLICIES.items():
        start = time.perf_counter()
        out = packed_logprobs(scorer.model, items, **{"max_batch": config.batch_size, **kwargs})
        seconds = time.perf_counter() - start
        first = first or out
        diff = max(float((a - b).abs().max()) for x, y in zip(first, out) for a, b in zip(x, y))
        rows.append({"policy": name, "kwargs": kwargs, "seconds": seconds, "max_abs_diff_vs_first": diff})
        print(f"{name}: {seconds:.1f} s", flush=True)
    for row in rows:
        row["speedup"] = rows[0]["seconds"] / row["seconds"]
        row["tokens_per_s"] = tokens / row["seconds"]
    result = {
        "bench": "cpu_kernel",
        "benchmark": args.benchmark,
        "records": len(items),
        "followups": args.followups,
        "max_length": args.max_length,
        "tokens": tokens,
        "rows": rows,
    }
    out = C.save_result(result, args.out or C.RESULTS_DIR / f"kernel_cpu_{args.benchmark}.json")
    columns = [("policy", "policy"), ("seconds", "seconds"), ("speedup", "speed-up"), ("tokens_per_s", "tokens/s")]
    print(C.table(rows, columns + [("max_abs_diff_vs_first", "max |d|")]))
    print(f"-> {out}")


if __name__ == "__main__":
    main()

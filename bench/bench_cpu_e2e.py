"""End to end on CPU: ``flr score`` on real records, model loading included, one subprocess per variant, in one run.

The records are the first responses of a shared benchmark's seeded sample (both sides of each pair). Each variant
is a set of ``flr score`` flags; the first is the reference every speed-up is a ratio against. Wall time covers
the whole command (start-up, model loading, scoring, writing).

    PYTHONPATH=src python bench/bench_cpu_e2e.py                 # docs/PERFORMANCE.md, "End to end on CPU"
    PYTHONPATH=src python bench/bench_cpu_e2e.py --records 16 --variant k6="--followups runs/budget/select-top1.yaml"

Results go to bench/results/e2e_cpu_<benchmark>.json and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from flr.eval.benchmarks import benchmark_records  # noqa: E402

# the first release's kernel: one budget on every device, no padding cap, no shared stems
FIRST_RELEASE = "--token-budget 16384 --max-padding 1 --share-prefix 0"
VARIANTS = {  # name -> flr score flags; the first is the reference
    "first release: paper's 60, its kernel": f"--followups paper {FIRST_RELEASE}",
    "paper's 60, today's kernel": "--followups paper",
    "selected 12, today's kernel": "--followups selected",  # the default when this was measured
    "selected 12, --max-length 512": "--followups selected --max-length 512",
}  # bf16 and int8: bench/bench_cpu_dtype.py (bf16 is 5x slower than fp32 on an AVX2 CPU)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", default="autoj")
    ap.add_argument("--records", type=int, default=48)
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=FLAGS (repeatable; the first one given replaces the default pair: release, default)",
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant) if args.variant else dict(VARIANTS)
    _, pairs = benchmark_records(args.benchmark, limit=(args.records + 1) // 2)
    records = [{"prompt": p["prompt"], "response": p[side]} for p in pairs for side in ("chosen", "rejected")]
    records = records[: args.records]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "records.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in records))
        for name, flags in variants.items():
            out = Path(tmp) / f"{len(rows)}.jsonl"
            command = ["flr", "score", str(data), "-o", str(out), *shlex.split(flags)]
            start = time.perf_counter()
            subprocess.run(command, check=True, env={**os.environ, "TQDM_DISABLE": "1"})
            seconds = time.perf_counter() - start
            rewards = [json.loads(line)["flr_reward"] for line in out.read_text().splitlines()]
            rows.append({"variant": name, "flags": flags, "seconds": seconds, "rewards": rewards})
            print(f"{name}: {seconds:.1f} s", flush=True)
    base = rows[0]
    for row in rows:
        row["speedup"] = base["seconds"] / row["seconds"]
        row["spearman_vs_first"] = float(stats.spearmanr(base["rewards"], row["rewards"]).statistic)
        row["seconds_per_record"] = row["seconds"] / len(records)
    result = {
        "bench": "cpu_e2e",
        "benchmark": args.benchmark,
        "records": len(records),
        "mean_chars": float(np.mean([len(r["response"]) for r in records])),
        "rows": rows,
    }
    out = C.save_result(result, args.out or C.RESULTS_DIR / f"e2e_cpu_{args.benchmark}.json")
    print(f"{'variant':40} {'seconds':>8} {'speed-up':>8} {'rho':>6}")
    for r in rows:
        print(f"{r['variant']:40} {r['seconds']:8.1f} {r['speedup']:8.2f} {r['spearman_vs_first']:6.3f}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()

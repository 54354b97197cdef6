"""What contrastive FLR costs: seconds per response of plain FLR and of ``--contrast twin`` (the response and its
twin scored in one kernel call, sharing the prompt's stem) on the same real records, in one process and one run.

The records are both responses of a shared benchmark's seeded pairs; no score cache. The variants run in
alternation ``--repeats`` times (so a load on the machine hits both alike) and the ratio is of the medians.

    PYTHONPATH=src python bench/bench_contrast.py                  # docs/RESULTS.md, "A reward that resists ..."
    PYTHONPATH=src python bench/bench_contrast.py --records 8 --repeats 1 --followups compact   # a quick look

Results go to bench/results/contrast_cpu_<benchmark>.json and a table is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from flr.eval.benchmarks import benchmark_records  # noqa: E402
from flr.scorers import ScorerConfig, build_scorer  # noqa: E402

VARIANTS = {"plain FLR": {}, "contrast twin": {"contrast": "twin"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_model_args(ap)
    ap.add_argument("--benchmark", default="pandalm")
    ap.add_argument("--records", type=int, default=24, help="pairs: twice as many responses")
    ap.add_argument("--followups", default="paper")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    model, tok, label = C.load(args)
    _, pairs = benchmark_records(args.benchmark, limit=args.records)
    records = [{"prompt": p["prompt"], "response": p[side]} for p in pairs for side in ("chosen", "rejected")]
    scorers = {
        name: build_scorer("flr", model, tok, config=ScorerConfig(followups=args.followups, **kw), model_name=label)
        for name, kw in VARIANTS.items()
    }
    times: dict[str, list[float]] = {name: [] for name in scorers}
    for _ in range(args.repeats):
        for name, scorer in scorers.items():
            start = time.perf_counter()
            scorer.score(records)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["plain FLR"])
    rows = [
        {
            "variant": name,
            "seconds": statistics.median(t),
            "per_response": statistics.median(t) / len(records),
            "ratio": statistics.median(t) / base,
        }
        for name, t in times.items()
    ]
    result = {
        "model": label,
        "benchmark": args.benchmark,
        "responses": len(records),
        "followups": args.followups,
        "repeats": args.repeats,
        "times": times,
        "rows": rows,
        "environment": C.environment(next(model.parameters()).device),
    }
    path = C.write_result(result, args.out, f"contrast_cpu_{args.benchmark}")
    print(C.table(rows, [("variant", "variant"), ("per_response", "s / response"), ("ratio", "x plain")]))
    print(f"-> {path}")


if __name__ == "__main__":
    main()

"""FLR in fp32, bf16 and int8 (dynamic quantization of every Linear) on CPU: speed and pairwise accuracy in one run.

Speed: seconds per response of the same real responses in each variant, scored without the cache. Accuracy: the
same preference pairs of the test pool (flr eval's seeded samples) in each variant, with the pairs whose decision
flips against fp32 counted. Scores go through the score cache (fp32 scores of an earlier ``flr eval`` are reused;
each variant has its own key), so a killed run resumes.

    PYTHONPATH=src python bench/bench_cpu_dtype.py                       # docs/PERFORMANCE.md, "CPU dtype"
    PYTHONPATH=src python bench/bench_cpu_dtype.py --limit bf16=10 --limit int8=40   # pairs per benchmark

Results go to bench/results/dtype_cpu_<model>.json and a table is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from flr.eval.benchmarks import benchmark_records  # noqa: E402
from flr.eval.metrics import bootstrap_ci  # noqa: E402
from flr.jobs.eval import _requests, score_with_cache  # noqa: E402
from flr.kernel.models import load_model, model_name  # noqa: E402
from flr.scorers import FollowUpReward, ScorerConfig  # noqa: E402
from flr.scorers.cache import ScoreCache, text_key  # noqa: E402

VARIANTS = ("fp32", "bf16", "int8")


def load_variant(spec: str, variant: str):
    model, tok = load_model(spec, device="cpu", dtype="bfloat16" if variant == "bf16" else "float32")
    if variant == "int8":
        fingerprint = model.flr_fingerprint
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        model.flr_fingerprint = f"{fingerprint}-int8-dynamic"  # its own cache key: the first parameter is still fp32
    return model, tok


def pair_decisions(scorer, benchmarks: list[str], limit: int, cache: ScoreCache) -> dict[str, float]:
    """``{pair id: reward(chosen) - reward(rejected)}`` over the seeded samples of ``benchmarks``."""
    margins = {}
    for name in benchmarks:
        kind, records = benchmark_records(name, limit=limit)
        scores = score_with_cache(scorer, _requests(kind, records), cache, f"{name}")
        for r in records:
            chosen = scores[text_key(r["prompt"], r["chosen"])].reward
            rejected = scores[text_key(r["prompt"], r["rejected"])].reward
            margins[f"{name}/{r['id']}"] = chosen - rejected
    return margins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--followups", default="selected")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--benchmarks", default="autoj,pandalm,vicuna80,lfqa")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--limit", action="append", default=[], help="VARIANT=N pairs per benchmark (default 40; bf16 10)")
    ap.add_argument("--timing-records", type=int, default=8, help="responses timed per variant, uncached")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    limits = {"fp32": 40, "bf16": 10, "int8": 40}
    limits.update({k: int(v) for k, v in (item.split("=") for item in args.limit)})
    benchmarks = args.benchmarks.split(",")
    variants = args.variants.split(",")
    config = ScorerConfig(followups=args.followups, max_length=args.max_length)
    _, timing_pairs = benchmark_records(benchmarks[0], limit=args.timing_records // 2 or 1)
    timing = [{"prompt": r["prompt"], "response": r[side]} for r in timing_pairs for side in ("chosen", "rejected")]
    cache = ScoreCache()
    rows = {}
    for variant in variants:
        model, tok = load_variant(args.model, variant)
        with torch.inference_mode():
            scorer = FollowUpReward(model, tok, config, model_name=model_name(args.model))
            scorer.score(timing[:1])  # warm-up
            start = time.perf_counter()
            rewards = [r.reward for r in scorer.score(timing)]
            seconds = (time.perf_counter() - start) / len(timing)
            margins = {}
            # fp32 scores every other variant's sample too, so that each variant's flips are counted on all its pairs
            for limit in {limits[v] for v in variants} if variant == "fp32" else {limits[variant]}:
                margins.update(pair_decisions(scorer, benchmarks, limit, cache))
        rows[variant] = {"seconds_per_response": seconds, "timing_rewards": rewards, "margins": margins}
        print(f"{variant}: {seconds:.2f} s/response, {len(margins)} pairs", flush=True)
        del model, scorer
    base = rows.get("fp32")
    table = []
    for variant, row in rows.items():
        ids = list(row["margins"])
        correct = np.array([row["margins"][i] > 0 for i in ids], dtype=float)
        entry = {
            "variant": variant,
            "seconds_per_response": row["seconds_per_response"],
            "pairs": len(ids),
            "accuracy": float(correct.mean()),
            "ci": bootstrap_ci(correct),
        }
        if base is not None:
            shared = [i for i in ids if i in base["margins"]]
            entry["speed_vs_fp32"] = base["seconds_per_response"] / row["seconds_per_response"]
            entry["fp32_accuracy_same_pairs"] = float(np.mean([base["margins"][i] > 0 for i in shared]))
            entry["flips_vs_fp32"] = int(sum((row["margins"][i] > 0) != (base["margins"][i] > 0) for i in shared))
            entry["max_reward_diff_vs_fp32"] = float(
                np.max(np.abs(np.array(row["timing_rewards"]) - np.array(base["timing_rewards"])))
            )
        table.append(entry)
    result = {
        "bench": "cpu_dtype",
        "model": model_name(args.model),
        "followups": args.followups,
        "max_length": args.max_length,
        "benchmarks": benchmarks,
        "rows": table,
    }
    out = C.save_result(result, args.out or C.RESULTS_DIR / f"dtype_cpu_{model_name(args.model).lower()}.json")
    print(f"{'variant':8} {'s/resp':>7} {'speed':>6} {'pairs':>5} {'acc':>6} {'fp32 acc':>8} {'flips':>5}")
    for e in table:
        print(
            f"{e['variant']:8} {e['seconds_per_response']:7.2f} {e.get('speed_vs_fp32', float('nan')):6.2f} "
            f"{e['pairs']:5d} {100 * e['accuracy']:6.1f} {100 * e.get('fp32_accuracy_same_pairs', float('nan')):8.1f} "
            f"{e.get('flips_vs_fp32', '-'):>5}"
        )
    print(f"-> {out}")


if __name__ == "__main__":
    main()

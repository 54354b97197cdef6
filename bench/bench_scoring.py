"""Throughput of the FLR scoring kernel: the fast (packed) path against the reference, in one run.

Synthetic mode (default): a grid over K follow-ups, shared-prefix length P and batch size B (examples per forward),
with random token ids (prefix of P ids, K continuations of about F=12 ids, every continuation token scored). For each
cell: examples/s and tokens/s of both paths, peak memory above the weights, useful FLOPs = 2 x params x (P + K x F)
per example and MFU against the device's dense-matmul peak measured at the start of the same run.

Real mode (``--real``): the embedded model scores real conversations (HH-RLHF) against the 60 default follow-ups
(3 categories x 20) with the scorer's default settings, fast path and reference, and prints the ratio.

    PYTHONPATH=src python bench/bench_scoring.py --model default --grid quick            # CPU, embedded model
    PYTHONPATH=src python bench/bench_scoring.py --random-init llama-3-8b --device cuda   # GPU, bf16, 8B shape
    PYTHONPATH=src python bench/bench_scoring.py --real                                   # issue 2: real data

Results go to bench/results/<stem>.json (``--out`` to change) and a table is printed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from flr.kernel.chat import ScoringItem  # noqa: E402
from flr.kernel.logprobs import packed_logprobs, reference_logprobs  # noqa: E402

GRIDS = {
    # (K values, P values, batch sizes on cpu, batch sizes on cuda)
    "quick": ((6, 60), (128, 512), (1, 4), (1, 16)),
    "full": ((6, 20, 60, 120), (128, 512, 2048), (1, 4), (1, 16)),
    "ratio": ((60,), (512,), (1,), (16,)),
}
RATIO_CELL = (60, 512)  # the reference is always measured here
F_MEAN = 12


def synthetic_items(n: int, P: int, K: int, vocab: int, seed: int) -> list[ScoringItem]:
    """n examples: a prefix of P random ids, K continuations of 10..14 ids (mean 12), each fully scored."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        conts = [[rng.randrange(vocab) for _ in range(rng.randint(F_MEAN - 2, F_MEAN + 2))] for _ in range(K)]
        items.append(
            ScoringItem(
                prefix=[rng.randrange(vocab) for _ in range(P)],
                continuations=conts,
                spans=[(0, len(c)) for c in conts],
            )
        )
    return items


def max_abs_diff(a, b) -> float:
    return max(((x.float() - y.float()).abs().max().item() for ra, rb in zip(a, b) for x, y in zip(ra, rb)), default=0)


def time_calls(fn, device, min_time: float, max_reps: int) -> tuple[float, int]:
    """Seconds per call, repeating until min_time has passed (at least one call)."""
    reps, total = 0, 0.0
    while reps < max_reps and (reps == 0 or total < min_time):
        C.sync(device)
        t = time.perf_counter()
        fn()
        C.sync(device)
        total += time.perf_counter() - t
        reps += 1
    return total / reps, reps


def reference_batch_size(P: int, K: int, vocab: int, device, requested: int | None) -> int:
    """Rows per reference forward: its full [rows, P+F, vocab] fp32 log-softmax (x3 for the temporaries) in a budget."""
    if requested:
        return min(requested, K)
    budget = 8 * 2**30 if device.type == "cuda" else 2**30
    per_row = (P + F_MEAN + 2) * vocab * 4 * 3
    return max(1, min(K, budget // per_row))


def run_grid(args, model, label) -> dict:
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    vocab = model.config.vocab_size
    n_params = C.num_params(model)
    peak = C.measure_peak(device, dtype)
    print(f"# {label}: {n_params / 1e6:.1f}M params, {device}, {str(dtype).removeprefix('torch.')}")
    print(f"# device peak: {peak['flops_per_s'] / 1e12:.2f} TFLOP/s ({peak['what']})")
    Ks, Ps, cpu_Bs, gpu_Bs = GRIDS[args.grid]
    Bs = gpu_Bs if device.type == "cuda" else cpu_Bs
    if args.K:
        Ks = args.K
    if args.P:
        Ps = args.P
    if args.batch_size:
        Bs = args.batch_size
    fast_kwargs = json.loads(args.fast_kwargs) if args.fast_kwargs else {}
    # warm-up: one small call of each path (kernels, allocator, lazy init)
    warm = synthetic_items(2, 64, 4, vocab, seed=1)
    packed_logprobs(model, warm, **fast_kwargs)
    reference_logprobs(model, warm[:1], batch_size=2)
    rows = []
    ref_done: dict[tuple[int, int], dict] = {}
    cells = [(K, P, B) for P in Ps for K in Ks for B in Bs]
    if args.always_ratio and RATIO_CELL not in {(K, P) for K, P, _ in cells}:
        cells.append((RATIO_CELL[0], RATIO_CELL[1], max(Bs)))
    for K, P, B in cells:
        items = synthetic_items(B, P, K, vocab, seed=K * 100003 + P * 7 + B)
        tokens = sum(it.num_tokens for it in items) / B  # per example: P + sum F
        scored = sum(sum(e - s for s, e in it.spans) for it in items) / B
        flops = 2 * n_params * tokens
        row_len = max(it.num_tokens for it in items)
        kwargs = {"token_budget": max(row_len * B, 1), "max_batch": B, **fast_kwargs}
        fast_fn = lambda items=items, kwargs=kwargs: packed_logprobs(model, items, **kwargs)  # noqa: E731
        try:
            if device.type == "cuda":
                fast_fn()  # warm this shape (kernel plans, allocator); the CPU has nothing to warm per shape
            with C.PeakMemory(device) as mem:
                sec, reps = time_calls(fast_fn, device, args.min_time, args.max_reps)
        except torch.OutOfMemoryError:
            print(f"K={K} P={P} B={B}: out of memory, skipped")
            rows.append({"K": K, "P": P, "batch": B, "oom": True})
            torch.cuda.empty_cache()
            continue
        row = {
            "K": K,
            "P": P,
            "batch": B,
            "tokens_per_example": tokens,
            "scored_per_example": scored,
            "fast_examples_per_s": B / sec,
            "fast_tokens_per_s": B * tokens / sec,
            "fast_seconds_per_call": sec,
            "fast_reps": reps,
            "fast_peak_mem_bytes": mem.peak,
            "useful_flops_per_example": flops,
            "fast_tflops": flops * B / sec / 1e12,
            "mfu": flops * B / sec / peak["flops_per_s"],
            "ideal_speedup": K * (P + (tokens - P) / K) / tokens,  # K(P+F)/(P+KF)
        }
        want_ref = (K, P) == RATIO_CELL or K * (P + F_MEAN) <= args.reference_max
        if want_ref and (K, P) not in ref_done:
            n_ref = 1
            ref_bs = reference_batch_size(P, K, vocab, device, args.reference_batch_size)
            ref_items = items[:n_ref]
            try:
                got_fast = packed_logprobs(model, ref_items, **kwargs)
                ref_out = []
                with C.PeakMemory(device) as rmem:
                    # best of `reference_rounds` calls: the first also pays for new shapes (kernel plans)
                    rsec = float("inf")
                    for _ in range(args.reference_rounds):
                        one, _ = time_calls(
                            lambda: ref_out.append(reference_logprobs(model, ref_items, batch_size=ref_bs)),  # noqa: B023
                            device,
                            0.0,
                            1,
                        )
                        rsec = min(rsec, one)
                ref_done[(K, P)] = {
                    "ref_examples_per_s": n_ref / rsec,
                    "ref_tokens_per_s": n_ref * tokens / rsec,
                    "ref_batch_size": ref_bs,
                    "ref_peak_mem_bytes": rmem.peak,
                    "ref_tflops": 2 * n_params * K * (P + (tokens - P) / K) * n_ref / rsec / 1e12,
                    "max_abs_diff": max_abs_diff(got_fast, ref_out[0]),
                }
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                ref_done[(K, P)] = {"ref_oom": True}
        if (K, P) in ref_done:
            row.update(ref_done[(K, P)])
            if "ref_examples_per_s" in row:
                row["speedup"] = row["fast_examples_per_s"] / row["ref_examples_per_s"]
        rows.append(row)
        print(
            f"K={K:4d} P={P:5d} B={B:3d}  fast {row['fast_examples_per_s']:9.2f} ex/s "
            f"{row['fast_tokens_per_s']:10.0f} tok/s  MFU {row['mfu'] * 100:5.1f}%  "
            f"mem {row['fast_peak_mem_bytes'] / 2**20:8.1f} MiB"
            + (
                f"  | ref {row['ref_examples_per_s']:8.3f} ex/s  speed-up {row['speedup']:6.1f}x "
                f"(ideal {row['ideal_speedup']:.1f}x)  max|d| {row['max_abs_diff']:.1e}"
                if "speedup" in row
                else ""
            ),
            flush=True,
        )
    for row in rows:
        if (row["K"], row["P"]) == RATIO_CELL and "speedup" in row:  # ideal ~25x: not clearly faster is a regression
            speed_check(row["speedup"], 2, row["ideal_speedup"])
    return {"model": label, "params": n_params, "dtype": str(dtype).removeprefix("torch."), "peak": peak, "rows": rows}


def speed_check(speedup: float, floor: float, ideal: float) -> bool:
    """Print whether the fast path beat the reference by more than ``floor``x (a speed check belongs here, not in
    the test suite, whose machine may be loaded); returns whether it did."""
    ok = speedup > floor
    verdict = "ok" if ok else "CHECK FAILED"
    print(f"speed check: speed-up {speedup:.1f}x > {floor}x (ideal {ideal:.1f}x): {verdict}")
    return ok


# -- real mode -----------------------------------------------------------------------------------------------------

HH_DEFAULT = C.REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
DEMO = C.REPO / "src" / "flr" / "data" / "demo_pairs.jsonl"


def _parse_hh(transcript: str):
    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + transcript.lstrip("\n"))
    turns = [
        {"role": "user" if who == "Human" else "assistant", "content": text.strip()}
        for who, text in zip(parts[1::2], parts[2::2])
    ]
    if len(turns) < 2 or turns[-1]["role"] != "assistant":
        return None
    return turns[:-1], turns[-1]["content"]


def real_records(path: Path | None, limit: int) -> tuple[list[tuple], str]:
    """(conversation, response) pairs: the shipped demo sample when present, else HH-RLHF's harmless-base test."""
    records = []
    if path is None and DEMO.exists():
        path = DEMO
    path = path or HH_DEFAULT
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if "chosen" in row and isinstance(row["chosen"], str) and "prompt" not in row:
                parsed = _parse_hh(row["chosen"])
            else:
                prompt, response = row.get("prompt"), row.get("chosen", row.get("response"))
                if isinstance(response, list):  # conversational: last assistant message
                    response = response[-1]["content"]
                parsed = (prompt, response) if prompt and isinstance(response, str) else None
            if parsed:
                records.append(parsed)
            if len(records) >= limit:
                break
    return records, str(path)


def run_real(args, model, tok, label) -> dict:
    from flr.followups import load_followups
    from flr.kernel.chat import ChatRenderer
    from flr.scorers.flr import ScorerConfig

    device = next(model.parameters()).device
    cfg = ScorerConfig(followups="paper")  # the paper's 60, as in the recorded results
    followups = load_followups(cfg.followups).select(cfg.categories)
    texts = [t for _, _, t in followups.utterances]
    renderer = ChatRenderer(tok, include_eot=cfg.include_eot, max_length=cfg.max_length)
    records, source = real_records(Path(args.data) if args.data else None, args.limit)
    items = [renderer.followup_item(conv, resp, texts) for conv, resp in records]
    P = [len(it.prefix) for it in items]
    F = [len(c) for it in items for c in it.continuations]
    print(
        f"# {label} on {device}: {len(items)} conversations from {source}, {len(texts)} follow-ups "
        f"({len(followups.categories)} categories); prefix mean {sum(P) / len(P):.0f} tokens "
        f"(min {min(P)}, max {max(P)}), continuation mean {sum(F) / len(F):.1f}"
    )
    fast_kwargs = {"token_budget": cfg.token_budget, "max_batch": cfg.batch_size}
    if args.fast_kwargs:
        fast_kwargs.update(json.loads(args.fast_kwargs))
    packed_logprobs(model, items[:1], **fast_kwargs)  # warm-up
    C.sync(device)
    t = time.perf_counter()
    fast = packed_logprobs(model, items, **fast_kwargs)
    C.sync(device)
    fast_s = time.perf_counter() - t
    n_ref = min(len(items), args.reference_limit or len(items))
    C.sync(device)
    t = time.perf_counter()
    ref = reference_logprobs(model, items[:n_ref], batch_size=cfg.batch_size)
    C.sync(device)
    ref_s = time.perf_counter() - t
    result = {
        "model": label,
        "source": source,
        "conversations": len(items),
        "followups": len(texts),
        "prefix_tokens_mean": sum(P) / len(P),
        "continuation_tokens_mean": sum(F) / len(F),
        "fast_kwargs": fast_kwargs,
        "reference_batch_size": cfg.batch_size,
        "fast_examples_per_s": len(items) / fast_s,
        "reference_examples": n_ref,
        "ref_examples_per_s": n_ref / ref_s,
        "max_abs_diff": max_abs_diff(fast[:n_ref], ref),
    }
    result["speedup"] = result["fast_examples_per_s"] / result["ref_examples_per_s"]
    pm, fm = result["prefix_tokens_mean"], result["continuation_tokens_mean"]
    K = len(texts)
    result["ideal_speedup"] = K * (pm + fm) / (pm + K * fm)
    print(
        f"fast path: {result['fast_examples_per_s']:.3f} examples/s | reference: {result['ref_examples_per_s']:.4f} "
        f"examples/s | speed-up {result['speedup']:.1f}x (ideal {result['ideal_speedup']:.1f}x) | "
        f"max |fast - reference| = {result['max_abs_diff']:.1e}"
    )
    speed_check(result["speedup"], 1, result["ideal_speedup"])
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", default="default", help="model spec (default: the embedded SmolLM2-135M-Instruct)")
    src.add_argument("--random-init", help="config name in bench/configs (llama-3-8b, ...) or a config .json path")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--attn", default=None, help="attention implementation (default: the model's, sdpa)")
    ap.add_argument("--grid", default="quick", choices=sorted(GRIDS))
    ap.add_argument("--K", type=int, nargs="+", help="override the grid's K values")
    ap.add_argument("--P", type=int, nargs="+", help="override the grid's prefix lengths")
    ap.add_argument("--batch-size", type=int, nargs="+", help="override the grid's batch sizes (examples per call)")
    ap.add_argument(
        "--reference-max",
        type=float,
        default=None,
        help="measure the reference only where K x (P + F) <= this many tokens per example "
        "(default: no limit on cuda, 20000 on cpu); K=60, P=512 is always measured",
    )
    ap.add_argument("--no-ratio", dest="always_ratio", action="store_false", help="do not add the K=60,P=512 cell")
    ap.add_argument(
        "--reference-batch-size", type=int, default=None, help="rows per reference forward (default: auto)"
    )
    ap.add_argument(
        "--reference-rounds",
        type=int,
        default=None,
        help="time the reference this often, keep the best (default: 2 on cuda, 1 on cpu)",
    )
    ap.add_argument("--min-time", type=float, default=None, help="time each cell at least this long (s)")
    ap.add_argument("--max-reps", type=int, default=20)
    ap.add_argument("--fast-kwargs", default=None, help="JSON of extra packed_logprobs keyword arguments")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--real", action="store_true", help="issue-2 mode: real conversations, 60 default follow-ups")
    ap.add_argument("--data", default=None, help="--real: jsonl(.gz) of conversations (default: demo sample or HH)")
    ap.add_argument("--limit", type=int, default=8, help="--real: conversations to score")
    ap.add_argument("--reference-limit", type=int, default=None, help="--real: conversations for the reference")
    ap.add_argument("--out", default=None, help="result JSON path or folder (default: bench/results/)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = C.resolve_device(args.device)
    if args.reference_max is None:
        args.reference_max = float("inf") if device.type == "cuda" else 20000
    if args.reference_rounds is None:
        args.reference_rounds = 2 if device.type == "cuda" else 1
    if args.min_time is None:
        args.min_time = 1.0 if device.type == "cuda" else 0.0
    if args.real and args.random_init:
        ap.error("--real needs a real model (--model), not --random-init")
    model, tok, label = C.load(args)
    env = C.environment(device)
    if args.real:
        result = run_real(args, model, tok, label)
        stem = f"real_{device.type}_{_slug(label)}"
        payload = {"mode": "real", "environment": env, **result}
    else:
        result = run_grid(args, model, label)
        stem = f"scoring_{device.type}_{_slug(label)}_{args.grid}"
        payload = {"mode": "synthetic", "grid": args.grid, "environment": env, **result}
        print()
        print(C.scoring_table(result, None, None))
    path = C.write_result(payload, args.out, stem)
    print(f"\nwrote {path}")
    return 0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text.split(":")[-1]).strip("-").lower()


if __name__ == "__main__":
    sys.exit(main())

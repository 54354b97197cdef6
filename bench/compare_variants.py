"""A/B timing of kernel variants on one synthetic shape, interleaved round by round (robust to a noisy machine).

    PYTHONPATH=src python bench/compare_variants.py --model default --K 60 --P 512 --batch 1 \\
        --variants '{"packed": {}, "prefix_cache": {"prefix_cache": true}}' --rounds 3

A variant is a name and packed_logprobs keyword arguments, plus these extras:
  "_sdpa": "efficient" | "flash" | "cudnn" | "math"   restrict SDPA to that backend (torch.nn.attention.sdpa_kernel)
  "_module": "path/to/logprobs.py"                   take packed_logprobs from another copy of the kernel (before/after)
  "_reference": true                                  time reference_logprobs instead (with "batch_size")
  "_multiple": 1                                      round padded widths to this multiple (the kernel's default:
                                                      64 on GPU, 1 on CPU)
With --vary-width every timed call gets a prefix length never used before (P + call number), as real data does:
it shows what new shapes cost (kernel plans, allocator) with and without width rounding.
Prints min and median seconds per call, examples/s, MFU and the max |difference| to the first variant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
from bench_scoring import max_abs_diff, synthetic_items  # noqa: E402

from flr.kernel.logprobs import packed_logprobs, reference_logprobs  # noqa: E402


def _load_module(path: str):
    spec = importlib.util.spec_from_file_location(f"variant_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _sdpa_context(name: str | None):
    if not name:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }[name]
    return sdpa_kernel([backend])


@contextlib.contextmanager
def _width_multiple(multiple: int | None):
    import flr.kernel.logprobs as kernel

    if multiple is None:
        yield
        return
    real = kernel._width_multiple
    kernel._width_multiple = lambda device: multiple
    try:
        yield
    finally:
        kernel._width_multiple = real


def make_call(model, items, spec: dict, batch: int):
    spec = dict(spec)
    sdpa = spec.pop("_sdpa", None)
    multiple = spec.pop("_multiple", None)
    module = spec.pop("_module", None)
    if spec.pop("_reference", False):
        fn, kwargs = reference_logprobs, {"batch_size": spec.pop("batch_size", 8)}
    else:
        fn = _load_module(module).packed_logprobs if module else packed_logprobs
        row = max(it.num_tokens for it in items)
        kwargs = {"token_budget": row * batch, "max_batch": batch}
    kwargs.update(spec)

    def call():
        with _sdpa_context(sdpa), _width_multiple(multiple):
            return fn(model, items, **kwargs)

    return call


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_model_args(ap)
    ap.add_argument("--K", type=int, default=60)
    ap.add_argument("--P", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1, help="examples per forward (and per call)")
    ap.add_argument("--calls", type=int, default=1, help="batches per timed call")
    ap.add_argument("--variants", required=True, help="JSON {name: kwargs}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vary-width", action="store_true", help="a new prefix length for every timed call")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _, label = C.load(args)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    n_params = C.num_params(model)
    peak = C.measure_peak(device, dtype)
    items = synthetic_items(args.batch * args.calls, args.P, args.K, model.config.vocab_size, seed=0)
    tokens = sum(it.num_tokens for it in items) / len(items)
    flops = 2 * n_params * tokens * len(items)
    variants = json.loads(args.variants)
    calls = {name: make_call(model, items, spec, args.batch) for name, spec in variants.items()}
    outputs, times = {}, {name: [] for name in calls}
    for name, call in calls.items():  # warm-up (and outputs for the comparison)
        try:
            outputs[name] = call()
        except Exception as exc:  # noqa: BLE001 - report and drop the variant
            print(f"{name}: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            times.pop(name)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    mem = {}
    counter = 0
    for _ in range(args.rounds):
        for name in times:
            call = calls[name]
            if args.vary_width:
                counter += 1
                fresh = synthetic_items(len(items), args.P + counter, args.K, model.config.vocab_size, seed=counter)
                call = make_call(model, fresh, variants[name], args.batch)
            with C.PeakMemory(device) as m:
                C.sync(device)
                t = time.perf_counter()
                call()
                C.sync(device)
                times[name].append(time.perf_counter() - t)
            mem[name] = max(mem.get(name, 0), m.peak)
    first = next(iter(outputs)) if outputs else None
    rows = []
    print(f"# {label} {device} {str(dtype).removeprefix('torch.')} K={args.K} P={args.P} batch={args.batch}")
    print(f"# peak {peak['flops_per_s'] / 1e12:.1f} TFLOP/s ({peak['what']})")
    for name, ts in times.items():
        best, med = min(ts), statistics.median(ts)
        row = {
            "variant": name,
            "spec": variants[name],
            "min_s": best,
            "median_s": med,
            "examples_per_s": len(items) / best,
            "mfu": flops / best / peak["flops_per_s"],
            "peak_mem_bytes": mem[name],
            "max_abs_diff_vs_first": max_abs_diff(outputs[name], outputs[first]),
            "times": ts,
        }
        rows.append(row)
        print(
            f"{name:28s} min {best * 1e3:9.1f} ms  median {med * 1e3:9.1f} ms  {row['examples_per_s']:8.2f} ex/s  "
            f"MFU {row['mfu'] * 100:5.1f}%  mem {mem[name] / 2**20:8.0f} MiB  |d| {row['max_abs_diff_vs_first']:.1e}",
            flush=True,
        )
    if args.out:
        payload = {
            "model": label,
            "params": n_params,
            "K": args.K,
            "P": args.P,
            "batch": args.batch,
            "peak": peak,
            "environment": C.environment(device),
            "rows": rows,
        }
        C.write_result(payload, args.out, f"variants_{device.type}_{label.split(':')[-1]}_K{args.K}_P{args.P}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the fast path's time goes: torch.profiler over one packed_logprobs call, kernels grouped into GEMM,
attention, elementwise/norm, LM head + log-softmax, copies and the rest.

    PYTHONPATH=src python bench/profile_kernel.py --random-init llama-3-8b --device cuda --K 60 --P 512 --batch 8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
from bench_scoring import synthetic_items  # noqa: E402

from flr.kernel.logprobs import packed_logprobs  # noqa: E402

GROUPS = [
    ("attention", ("attention", "fmha", "flash", "sdpa", "attn", "cutlass_kernel", "cudnn", "softmax_warp")),
    ("gemm", ("gemm", "sm90_xmma", "cutlass", "ampere", "sgemm", "nvjet", "::mm", "addmm", "cublas", "aten::mm")),
    ("reduce/logsumexp", ("reduce", "logsumexp", "max_", "sum_")),
    ("copy/cat/index", ("copy", "cat", "index", "gather", "fill", "memcpy", "memset", "catarray", "scatter")),
    ("elementwise", ("elementwise", "vectorized", "unrolled", "mul", "add", "silu", "pow", "rsqrt", "neg", "where")),
]


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    C.add_model_args(ap)
    ap.add_argument("--K", type=int, default=60)
    ap.add_argument("--P", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--fast-kwargs", default="{}")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    model, _, label = C.load(args)
    device = next(model.parameters()).device
    items = synthetic_items(args.batch, args.P, args.K, model.config.vocab_size, seed=0)
    row = max(it.num_tokens for it in items)
    kwargs = {"token_budget": row * args.batch, "max_batch": args.batch, **json.loads(args.fast_kwargs)}
    packed_logprobs(model, items, **kwargs)
    C.sync(device)
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        t = time.perf_counter()
        packed_logprobs(model, items, **kwargs)
        C.sync(device)
        wall = time.perf_counter() - t
    events = prof.key_averages()
    use_cuda = device.type == "cuda"
    total_dev = 0.0
    groups: dict[str, float] = {}
    kernels = []
    for e in events:
        dev = (getattr(e, "self_device_time_total", 0) or getattr(e, "self_cuda_time_total", 0)) if use_cuda else 0
        if use_cuda:
            # device kernels have no CPU self time of their own; operators (aten::) hold CPU time
            # "Command Buffer Full" is the host waiting on a full launch queue, not a kernel
            if dev <= 0 or e.key.startswith(("aten::", "cuda", "Command Buffer")):
                continue
            t_us = dev
        else:
            if not e.key.startswith("aten::"):
                continue
            t_us = e.self_cpu_time_total
        total_dev += t_us
        groups[group_of(e.key)] = groups.get(group_of(e.key), 0) + t_us
        kernels.append((t_us, e.count, e.key))
    kernels.sort(reverse=True)
    print(f"# {label} {device} K={args.K} P={args.P} batch={args.batch} kwargs={kwargs}")
    print(
        f"wall {wall * 1e3:.1f} ms, {'device kernel' if use_cuda else 'aten self-CPU'} time {total_dev / 1e3:.1f} ms"
    )
    for g, t_us in sorted(groups.items(), key=lambda x: -x[1]):
        print(f"  {g:18s} {t_us / 1e3:9.1f} ms  {100 * t_us / max(total_dev, 1):5.1f}%")
    print("top kernels:")
    for t_us, count, key in kernels[: args.top]:
        print(f"  {t_us / 1e3:9.2f} ms  x{count:5d}  [{group_of(key)}] {key[:110]}")
    if args.out:
        payload = {
            "model": label,
            "K": args.K,
            "P": args.P,
            "batch": args.batch,
            "kwargs": kwargs,
            "wall_s": wall,
            "kernel_s": total_dev / 1e6,
            "groups_s": {g: v / 1e6 for g, v in groups.items()},
            "top": [{"ms": t / 1e3, "count": c, "name": k} for t, c, k in kernels[: args.top]],
            "environment": C.environment(device),
        }
        C.write_result(payload, args.out, f"profile_{device.type}_{label.split(':')[-1]}_K{args.K}_P{args.P}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""New tokens/s of batched sampling: transformers ``model.generate`` (do_sample, k samples per prompt), as
``flr generate`` runs it (temperature 0.7, top-p 0.9, top-k off), and vLLM when it is installed.

The workload is fixed: B prompts of L random token ids, k samples each, exactly T new tokens per sample
(``min_new_tokens = max_new_tokens``, so that random-init models and early end-of-turn tokens do not change the
amount of work). New tokens/s = B x k x T / seconds, prefill included.

    PYTHONPATH=src python bench/bench_generate.py --model default                     # CPU, embedded model
    PYTHONPATH=src python bench/bench_generate.py --random-init llama-3-8b --device cuda
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

GRIDS = {
    # (prompts per call B, samples per prompt k, prompt length L, new tokens T)
    "quick": [(2, 4, 128, 32), (4, 8, 128, 32)],
    "gpu": [(4, 8, 512, 256), (16, 8, 512, 256)],
}


def run_transformers(model, B: int, k: int, L: int, T: int, seed: int = 0) -> dict:
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    input_ids = torch.randint(3, vocab, (B, L), generator=gen).to(device)
    attention = torch.ones_like(input_ids)
    pad = model.config.pad_token_id
    if pad is None:
        eos = model.config.eos_token_id
        pad = eos[0] if isinstance(eos, list) else (eos if eos is not None else 0)
    options = dict(
        do_sample=True,
        temperature=0.7,
        top_p=0.9,
        top_k=0,
        num_return_sequences=k,
        max_new_tokens=T,
        min_new_tokens=T,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    with torch.inference_mode():
        model.generate(
            input_ids=input_ids[:1, :8],
            attention_mask=attention[:1, :8],
            **{**options, "max_new_tokens": 2, "min_new_tokens": 2},
        )
        with C.PeakMemory(device) as mem:
            C.sync(device)
            t = time.perf_counter()
            out = model.generate(input_ids=input_ids, attention_mask=attention, **options)
            C.sync(device)
            sec = time.perf_counter() - t
    new = out.shape[1] - L
    assert out.shape[0] == B * k and new == T, (out.shape, B * k, T)
    return {
        "backend": "transformers",
        "prompts": B,
        "k": k,
        "prompt_len": L,
        "new_tokens": T,
        "seconds": sec,
        "new_tokens_per_s": B * k * T / sec,
        "sequences_per_s": B * k / sec,
        "peak_mem_bytes": mem.peak,
    }


def run_vllm(spec: str, B: int, k: int, L: int, T: int, seed: int = 0) -> dict:
    """vLLM's LLM.generate with SamplingParams(n=k): one prefill per prompt (only with a real model spec)."""
    from vllm import LLM, SamplingParams, TokensPrompt

    from flr.kernel.models import resolve_spec

    llm = LLM(model=resolve_spec(spec), seed=seed)
    vocab = llm.llm_engine.model_config.get_vocab_size()
    gen = torch.Generator().manual_seed(seed)
    prompts = [TokensPrompt(prompt_token_ids=torch.randint(3, vocab, (L,), generator=gen).tolist()) for _ in range(B)]
    params = SamplingParams(n=k, temperature=0.7, top_p=0.9, max_tokens=T, min_tokens=T, seed=seed)
    llm.generate(prompts[:1], SamplingParams(n=1, max_tokens=2), use_tqdm=False)
    t = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    sec = time.perf_counter() - t
    new = sum(len(c.token_ids) for o in outs for c in o.outputs)
    return {
        "backend": "vllm",
        "prompts": B,
        "k": k,
        "prompt_len": L,
        "new_tokens": T,
        "seconds": sec,
        "new_tokens_per_s": new / sec,
        "sequences_per_s": B * k / sec,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_model_args(ap)
    ap.add_argument("--grid", default=None, choices=sorted(GRIDS), help="default: quick on cpu, gpu on cuda")
    ap.add_argument("--cell", type=int, nargs=4, action="append", metavar=("B", "k", "L", "T"), help="custom cell")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = C.resolve_device(args.device)
    cells = args.cell or GRIDS[args.grid or ("gpu" if device.type == "cuda" else "quick")]
    model, _, label = C.load(args)
    rows = []
    print(f"# {label} on {device}, {str(next(model.parameters()).dtype).removeprefix('torch.')}")
    for B, k, L, T in cells:
        try:
            row = run_transformers(model, B, k, L, T)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            rows.append(
                {"backend": "transformers", "prompts": B, "k": k, "prompt_len": L, "new_tokens": T, "oom": True}
            )
            print(f"B={B} k={k} L={L} T={T}: out of memory")
            continue
        rows.append(row)
        print(
            f"transformers B={B:3d} k={k:2d} L={L:4d} T={T:4d}: {row['new_tokens_per_s']:10.1f} new tok/s "
            f"({row['seconds']:.2f} s, peak {row['peak_mem_bytes'] / 2**20:.0f} MiB)",
            flush=True,
        )
    vllm_note = None
    if importlib.util.find_spec("vllm") is None:
        vllm_note = "vLLM is not installed: skipped"
    elif args.random_init or device.type != "cuda":
        vllm_note = "vLLM needs a real model spec on a GPU: skipped"
    else:
        del model
        torch.cuda.empty_cache()
        for B, k, L, T in cells:
            row = run_vllm(args.model, B, k, L, T)
            rows.append(row)
            print(f"vllm         B={B:3d} k={k:2d} L={L:4d} T={T:4d}: {row['new_tokens_per_s']:10.1f} new tok/s")
    if vllm_note:
        print(vllm_note)
    print()
    print(
        C.table(
            rows,
            [
                ("backend", "backend"),
                ("prompts", "B"),
                ("k", "k"),
                ("prompt_len", "L"),
                ("new_tokens", "T"),
                ("new_tokens_per_s", "new tok/s"),
                ("seconds", "s"),
                ("peak_mem_bytes", "peak mem B"),
            ],
        )
    )
    payload = {"model": label, "environment": C.environment(device), "vllm": vllm_note or "measured", "rows": rows}
    path = C.write_result(payload, args.out, f"generate_{device.type}_{label.split(':')[-1]}")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

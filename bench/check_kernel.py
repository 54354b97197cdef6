"""Quick equality check of the kernel: packed vs reference (fp32, |delta| <= 1e-4 per token), invariant to batch size,
token budget and padding side. Runs in seconds on CPU with tiny random models; run it after every kernel change.

    PYTHONPATH=src python bench/check_kernel.py [--device cuda] [--seeds 3]
"""

from __future__ import annotations

import argparse
import random
import sys

import torch

from flr.kernel.chat import ScoringItem
from flr.kernel.logprobs import packed_logprobs, reference_logprobs

TOL = 1e-4


def tiny_model(attn: str, kv_heads: int, vocab: int = 503, seed: int = 0, tied: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=tied,
        attn_implementation=attn,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


def random_items(rng: random.Random, vocab: int, n: int, shared: bool = False) -> list[ScoringItem]:
    """Random items; with ``shared``, in groups of up to 3 whose prefixes share a stem (responses to one prompt)."""
    items = []
    stem: list[int] = []
    for i in range(n):
        if shared and i % 3 == 0:
            stem = [rng.randrange(vocab) for _ in range(rng.randint(5, 30))]
        p = rng.randint(0 if shared else 1, 40)
        k = rng.randint(1, 9)
        conts, spans = [], []
        for _ in range(k):
            f = rng.randint(1, 8)
            start = rng.randint(0, f - 1)
            end = rng.randint(start + 1, f)
            conts.append([rng.randrange(vocab) for _ in range(f)])
            spans.append((start, end))
        prefix = (stem if shared else []) + [rng.randrange(vocab) for _ in range(p)]
        items.append(ScoringItem(prefix=prefix, continuations=conts, spans=spans))
    return items


def max_diff(a, b) -> float:
    worst = 0.0
    for ra, rb in zip(a, b, strict=True):
        for ta, tb in zip(ra, rb, strict=True):
            assert ta.shape == tb.shape, (ta.shape, tb.shape)
            assert ta.dtype == torch.float32
            if ta.numel():
                worst = max(worst, (ta - tb).abs().max().item())
    return worst


def check_width_multiple() -> int:
    """Widths rounded up to a multiple (as on GPUs): same numbers, both layouts."""
    import flr.kernel.logprobs as kernel

    model = tiny_model("sdpa", 2)
    items = random_items(random.Random(11), model.config.vocab_size, 6)
    ref = reference_logprobs(model, items)
    real = kernel._width_multiple
    worst = 0.0
    try:
        for m in (7, 64):
            kernel._width_multiple = lambda device, m=m: m
            for pc in (False, True):
                worst = max(worst, max_diff(ref, packed_logprobs(model, items, prefix_cache=pc, max_batch=3)))
    finally:
        kernel._width_multiple = real
    print(f"width multiple 7/64: max|d|={worst:.1e} {'ok' if worst <= TOL else 'FAIL'}")
    return int(worst > TOL)


def check_oom_backoff() -> int:
    """Simulated out-of-memory on batches over 2 rows and rows over 2 continuations: same numbers as without."""
    import flr.kernel.logprobs as kernel

    model = tiny_model("sdpa", 2)
    items = random_items(random.Random(7), model.config.vocab_size, 9)
    ref = packed_logprobs(model, items)
    real = kernel._packed_batch
    wide = {"max_padding": None}  # big batches, whatever the device, so that they run out of memory
    calls = []

    def flaky(backbone, head, lm, rows, *args):
        calls.append((len(rows), max(len(c) for r in rows for _, c in r.members)))
        if len(rows) > 2 or calls[-1][1] > 2:
            raise torch.OutOfMemoryError("simulated")
        return real(backbone, head, lm, rows, *args)

    kernel._packed_batch = flaky
    try:
        got = packed_logprobs(model, items, **wide)
    finally:
        kernel._packed_batch = real
    d = max_diff(ref, got)
    ok = d <= 1e-6 and any(c[0] > 2 for c in calls) and any(c[1] > 2 for c in calls)
    print(f"OOM back-off: {len(calls)} attempts, max|d|={d:.1e} {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


def check_shared_stems(device: str) -> int:
    """Items sharing stems, sharing rows: the same numbers as the reference, both attention kinds, any budget."""
    failures = 0
    for attn in ("sdpa", "eager"):
        model = tiny_model(attn, 2).to(device)
        items = random_items(random.Random(5), model.config.vocab_size, 12, shared=True)
        ref = reference_logprobs(model, items)
        worst = max(
            max_diff(ref, packed_logprobs(model, items, share_stem=1, **kw))
            for kw in ({}, {"max_batch": 1}, {"token_budget": 48}, {"max_batch": 2, "token_budget": 200})
        )
        failures += worst > TOL
        print(f"shared stems attn={attn}: max|d|={worst:.1e} {'ok' if worst <= TOL else 'FAIL'}")
    return failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1: tiny matmuls suffer from OpenMP sync)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    failures = 0
    for seed in range(args.seeds):
        for attn in ("sdpa", "eager"):
            for kv_heads in (4, 2):
                model = tiny_model(attn, kv_heads, seed=seed, tied=kv_heads == 4).to(args.device)
                items = random_items(random.Random(seed), model.config.vocab_size, 7)
                ref = reference_logprobs(model, items, batch_size=1)
                variants = {
                    "ref bs=3 right": reference_logprobs(model, items, batch_size=3),
                    "ref bs=4 left": reference_logprobs(model, items, batch_size=4, padding_side="left"),
                    "packed default": packed_logprobs(model, items),
                    "packed max_batch=1": packed_logprobs(model, items, max_batch=1),
                    "packed budget=48": packed_logprobs(model, items, token_budget=48),
                    "packed budget=1": packed_logprobs(model, items, token_budget=1),
                    "prefix_cache": packed_logprobs(model, items, prefix_cache=True),
                    "prefix_cache mb=2": packed_logprobs(model, items, prefix_cache=True, max_batch=2),
                    "prefix_cache mb=1": packed_logprobs(model, items, prefix_cache=True, max_batch=1),
                    "prefix_cache b=48": packed_logprobs(model, items, prefix_cache=True, token_budget=48),
                    "no_cache": packed_logprobs(model, items, prefix_cache=False),
                }
                for name, got in variants.items():
                    d = max_diff(ref, got)
                    ok = d <= TOL
                    failures += not ok
                    if not ok or name in ("packed default", "prefix_cache"):
                        print(
                            f"seed={seed} attn={attn} kv={kv_heads} {name:20s} max|d|={d:.2e} {'ok' if ok else 'FAIL'}"
                        )
                # batch invariance: an item alone gives the same numbers as inside a batch
                alone = [packed_logprobs(model, [it])[0] for it in items]
                d = max_diff(alone, variants["packed default"])
                failures += d > TOL
                if d > TOL:
                    print(f"seed={seed} attn={attn} kv={kv_heads} packed alone vs batch max|d|={d:.2e} FAIL")
    failures += check_oom_backoff()
    failures += check_width_multiple()
    failures += check_shared_stems(args.device)
    print("ALL OK" if not failures else f"{failures} FAILURES")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The kernel's contract: the packed fast path equals the plain reference, whatever the batching."""

from __future__ import annotations

import random

import pytest
import torch

import flr.logprobs as kernel
from flr.chat import ChatRenderer
from flr.logprobs import continuation_logprobs, packed_logprobs, reference_logprobs
from flr.scorers import FLRConfig, FollowUpReward

ATOL = 1e-4
WORDS = (
    "what how why the a of river model train cat data answer question please explain code python list "
    "error value seven blue fast slow maybe never always great thanks sorry"
).split()


def random_text(rng: random.Random, tokenizer, pool: list[int], lo: int, hi: int) -> str:
    """Random words mixed with random vocabulary tokens."""
    parts = []
    for _ in range(rng.randint(lo, hi)):
        if rng.random() < 0.7:
            parts.append(rng.choice(WORDS))
        else:
            parts.append(tokenizer.decode(rng.sample(pool, rng.randint(1, 3))).strip() or "x")
    return " ".join(parts)


def random_items(tokenizer, seed: int, n: int = 6, *, max_length: int | None = None, include_eot: bool = False):
    rng = random.Random(seed)
    special = set(tokenizer.added_tokens_decoder)
    pool = [i for i in range(len(tokenizer)) if i not in special]
    renderer = ChatRenderer(tokenizer, include_eot=include_eot, max_length=max_length)
    items = []
    for _ in range(n):
        conv = []
        if rng.random() < 0.3:
            conv.append({"role": "system", "content": random_text(rng, tokenizer, pool, 2, 8)})
        for t in range(rng.randint(1, 3)):
            if t:
                conv.append({"role": "assistant", "content": random_text(rng, tokenizer, pool, 1, 20)})
            conv.append({"role": "user", "content": random_text(rng, tokenizer, pool, 1, 30)})
        response = random_text(rng, tokenizer, pool, 1, 40)
        if rng.random() < 0.3:
            items.append(renderer.response_item(conv, response))
        else:
            followups = [random_text(rng, tokenizer, pool, 1, 15) for _ in range(rng.randint(1, 7))]
            items.append(renderer.followup_item(conv, response, followups))
    return items


def assert_same(a, b, atol: float = ATOL) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            assert u.shape == v.shape and u.dtype == torch.float32
            torch.testing.assert_close(u, v, atol=atol, rtol=0)


@pytest.fixture(scope="module")
def items(tokenizer):
    return random_items(tokenizer, seed=0, n=8)


@pytest.fixture(scope="module")
def reference(tiny, items):
    return reference_logprobs(tiny[0], items)


def test_items_are_varied(items):
    """Guard the generator: single- and multi-continuation items, varied lengths."""
    assert {len(it.continuations) for it in items} >= {1, 3}
    assert len({len(it.prefix) for it in items}) > 4
    assert len({e - s for it in items for s, e in it.spans}) > 5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_packed_equals_reference_random(tiny, tokenizer, seed):
    model, _ = tiny
    items = random_items(tokenizer, seed=seed, n=6, include_eot=seed == 2)
    fast = packed_logprobs(model, items)
    ref = reference_logprobs(model, items)
    assert_same(fast, ref)
    # each follow-up token gets a genuine log-prob: one value per scored token, all <= 0, not all equal
    for item, lps in zip(items, fast):
        for (s, e), lp in zip(item.spans, lps):
            assert lp.shape == (e - s,)
            assert bool((lp <= 0).all())
    values = torch.cat([lp for lps in fast for lp in lps])
    assert values.std() > 0.1


def test_packed_equals_reference_truncated(tiny, tokenizer):
    items = random_items(tokenizer, seed=4, n=6, max_length=48)
    assert any(it.truncated for it in items)
    assert_same(packed_logprobs(tiny[0], items), reference_logprobs(tiny[0], items))


def test_packed_batch_size_invariance(tiny, items, reference):
    model, _ = tiny
    one = packed_logprobs(model, items, max_batch=1)
    many = packed_logprobs(model, items)
    assert_same(one, reference)
    assert_same(many, reference)
    assert_same(one, many, atol=1e-5)


def test_packed_splits_continuations_across_rows(tiny, items, reference):
    model, _ = tiny
    budget = max(it.max_length for it in items)
    rows = kernel._plan_rows(items, max_row_tokens=budget)
    assert len(rows) > len(items)  # some examples' continuations are spread over several rows
    for i, item in enumerate(items):
        covered = sorted(k for r in rows if r.item == i for k in r.conts)
        assert covered == list(range(len(item.continuations)))
    assert_same(packed_logprobs(model, items, token_budget=budget), reference)
    assert_same(packed_logprobs(model, items, token_budget=budget, max_batch=3), reference)
    # a budget below one continuation's length still works: one continuation per row
    assert_same(packed_logprobs(model, items, token_budget=1), reference)


def test_input_order_does_not_matter(tiny, items, reference):
    model, _ = tiny
    order = list(reversed(range(len(items))))
    out = packed_logprobs(model, [items[i] for i in order])
    assert_same([out[order.index(i)] for i in range(len(items))], reference)


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_reference_padding_and_batch_size(tiny, items, reference, padding_side, batch_size):
    out = reference_logprobs(tiny[0], items, batch_size=batch_size, padding_side=padding_side)
    assert_same(out, reference)


def test_dispatch(tiny, items, reference):
    assert_same(continuation_logprobs(tiny[0], items, method="reference"), reference)
    assert_same(continuation_logprobs(tiny[0], items, method="packed", max_batch=2), reference)
    with pytest.raises(ValueError, match="unknown method"):
        continuation_logprobs(tiny[0], items, method="fast")


def test_eager_attention(tiny_model_dir, tiny, items, reference):
    from flr.models import load_model

    eager, _ = load_model(str(tiny_model_dir), device="cpu", dtype="float32", attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    assert tiny[0].config._attn_implementation != "eager"
    assert_same(packed_logprobs(eager, items), reference)
    assert_same(packed_logprobs(eager, items, token_budget=64, max_batch=2), reference)
    assert_same(reference_logprobs(eager, items, batch_size=4, padding_side="left"), reference)


def test_head_sees_only_scored_positions(tiny, items, reference, monkeypatch):
    """No [batch, length, vocab] tensor: the LM head runs on the scored positions only, in small chunks."""
    model, _ = tiny
    monkeypatch.setattr(kernel, "LOGIT_CHUNK", 7)
    head = model.get_output_embeddings()
    seen: list[tuple[int, ...]] = []
    handle = head.register_forward_hook(lambda module, args, output: seen.append(tuple(args[0].shape)))
    try:
        out = packed_logprobs(model, items, max_batch=3)
    finally:
        handle.remove()
    scored = sum(e - s for it in items for s, e in it.spans)
    assert all(len(shape) == 2 for shape in seen)  # [rows, hidden]: never [batch, length, hidden]
    assert max(shape[0] for shape in seen) <= 7
    assert sum(shape[0] for shape in seen) == scored
    assert_same(out, reference)


def test_followup_reward_invariance(tiny):
    """FLR rewards do not depend on the batch size or the kernel path."""
    model, tokenizer = tiny
    rng = random.Random(5)
    special = set(tokenizer.added_tokens_decoder)
    pool = [i for i in range(len(tokenizer)) if i not in special]
    records = [
        {"prompt": random_text(rng, tokenizer, pool, 2, 25), "response": random_text(rng, tokenizer, pool, 1, 30)}
        for _ in range(5)
    ]
    records.append(
        {
            "prompt": [
                {"role": "user", "content": "hi there"},
                {"role": "assistant", "content": "hello, how can I help?"},
                {"role": "user", "content": "tell me a joke"},
            ],
            "response": "Why did the chicken cross the road?",
        }
    )
    results = {}
    for method in ("packed", "reference"):
        for batch_size in (1, 8):
            config = FLRConfig(method=method, batch_size=batch_size)
            results[method, batch_size] = FollowUpReward(model, tokenizer, config).score(records)
    base = results["reference", 1]
    assert len({round(r.reward, 3) for r in base}) > 1
    for key, res in results.items():
        for a, b in zip(res, base):
            assert a.reward == pytest.approx(b.reward, abs=ATOL), key
            assert a.categories.keys() == b.categories.keys()
            for c in a.categories:
                assert a.categories[c] == pytest.approx(b.categories[c], abs=ATOL), key
            for da, db in zip(a.details, b.details):
                assert da["tokens"] == db["tokens"]
                assert da["logprob_mean"] == pytest.approx(db["logprob_mean"], abs=ATOL), key

"""The kernel's contract: the packed fast path equals the plain reference, whatever the batching."""

from __future__ import annotations

import random

import pytest
import torch

import flr.kernel.logprobs as kernel
from flr.kernel.chat import ChatRenderer, common_prefix_length
from flr.kernel.logprobs import continuation_logprobs, packed_logprobs, reference_logprobs
from flr.scorers import FollowUpReward, ScorerConfig

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


def random_items(
    tokenizer, seed: int, n: int = 6, *, max_length: int | None = None, include_eot: bool = False, direct: float = 0.3
):
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
                conv.append({"role": "assistant", "content": random_text(rng, tokenizer, pool, 1, 10)})
            conv.append({"role": "user", "content": random_text(rng, tokenizer, pool, 1, 15)})
        response = random_text(rng, tokenizer, pool, 1, 20)
        if rng.random() < direct:
            items.append(renderer.response_item(conv, response))
        else:
            followups = [random_text(rng, tokenizer, pool, 1, 8) for _ in range(rng.randint(1, 6))]
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
    counts = {len(it.continuations) for it in items}
    assert 1 in counts and len(counts) >= 3
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
    items = random_items(tokenizer, seed=4, n=6, max_length=72, direct=0.0)
    items += random_items(tokenizer, seed=5, n=3, max_length=72, direct=1.0)
    assert sum(it.truncated for it in items) >= 3
    assert all(it.max_length <= 72 for it in items)
    assert_same(packed_logprobs(tiny[0], items), reference_logprobs(tiny[0], items))


def test_packed_batch_size_invariance(tiny, items, reference):
    model, _ = tiny
    one = packed_logprobs(model, items, max_batch=1)
    many = packed_logprobs(model, items)
    assert_same(one, reference)
    assert_same(many, reference)
    assert_same(one, many, atol=1e-5)
    for max_padding in (None, 0.0, 0.5):  # GPU batching, equal lengths only, loose
        assert_same(packed_logprobs(model, items, max_padding=max_padding), reference)


def test_padding_cap_batches_rows_of_similar_length(items):
    rows = kernel._plan_rows(items, max_row_tokens=10_000)
    lengths = [r.length(items) for r in rows]
    for cap in (0.0, 0.1, 0.5):
        batches = kernel._batches(rows, items, 10_000, None, cap)
        assert sorted(r for b in batches for r in b) == list(range(len(rows)))
        for batch in batches:
            longest = max(lengths[r] for r in batch)
            assert all(lengths[r] >= (1 - cap) * longest for r in batch)
    assert len(kernel._batches(rows, items, 10_000, None, None)) == 1  # no cap: one batch under a large budget


def test_packed_splits_continuations_across_rows(tiny, items, reference):
    model, _ = tiny
    budget = min(it.num_tokens for it in items if len(it.continuations) > 2) - 1
    rows = kernel._plan_rows(items, max_row_tokens=budget)
    assert len(rows) > len(items)  # some examples' continuations are spread over several rows
    for i, item in enumerate(items):
        covered = sorted(k for r in rows for j, conts in r.members if j == i for k in conts)
        assert covered == list(range(len(item.continuations)))
    assert_same(packed_logprobs(model, items, token_budget=budget), reference)
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
    assert_same(continuation_logprobs(tiny[0], items[:2], method="reference"), reference[:2])
    assert_same(continuation_logprobs(tiny[0], items, method="packed", max_batch=2), reference)
    with pytest.raises(ValueError, match="unknown method"):
        continuation_logprobs(tiny[0], items, method="fast")


def test_eager_attention(tiny_model_dir, tiny, items, reference):
    from flr.kernel.models import load_model

    eager, _ = load_model(str(tiny_model_dir), device="cpu", dtype="float32", attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    assert tiny[0].config._attn_implementation != "eager"
    assert_same(packed_logprobs(eager, items), reference)
    assert_same(packed_logprobs(eager, items, token_budget=64, max_batch=2), reference)
    assert_same(reference_logprobs(eager, items[:3], batch_size=3, padding_side="left"), reference[:3])


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


SMALL_SET = """
categories:
  understanding:
    positive: ["Got it, thanks!", "That makes sense."]
    negative: ["I'm still confused.", "Huh? What do you mean?"]
  engagingness:
    positive: ["Wow, tell me more!"]
    negative: ["Boring.", "Whatever, never mind.", "Can we talk about something else?"]
"""


def test_followup_reward_invariance(tiny, tmp_path):
    """FLR rewards do not depend on the batch size or the kernel path."""
    model, tokenizer = tiny
    followups = tmp_path / "small.yaml"
    followups.write_text(SMALL_SET)
    rng = random.Random(5)
    special = set(tokenizer.added_tokens_decoder)
    pool = [i for i in range(len(tokenizer)) if i not in special]
    records = [
        {"prompt": random_text(rng, tokenizer, pool, 2, 15), "response": random_text(rng, tokenizer, pool, 1, 20)}
        for _ in range(3)
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
    records.append({**records[-1], "response": "I do not know any jokes."})  # two responses to one prompt
    results = {}
    for method, batch_size, share in (("reference", 8, 0), ("packed", 1, 64), ("packed", 8, 64), ("packed", 8, 1)):
        config = ScorerConfig(followups=str(followups), method=method, batch_size=batch_size, share_prefix=share)
        results[method, batch_size, share] = FollowUpReward(model, tokenizer, config).score(records)
    base = results["reference", 8, 0]
    assert len({round(r.reward, 3) for r in base}) > 1
    for key, res in results.items():
        for a, b in zip(res, base, strict=True):
            assert a.reward == pytest.approx(b.reward, abs=ATOL), key
            assert a.categories.keys() == b.categories.keys() == {"understanding", "engagingness"}
            for c in a.categories:
                assert a.categories[c] == pytest.approx(b.categories[c], abs=ATOL), key
            assert len(a.details) == len(b.details) == 8
            for da, db in zip(a.details, b.details):
                assert da["tokens"] == db["tokens"]
                assert da["logprob_mean"] == pytest.approx(db["logprob_mean"], abs=ATOL), key
                assert da["logprob_sum"] == pytest.approx(db["logprob_sum"], abs=ATOL * da["tokens"]), key


def test_followup_reward_default_set_batch_invariance(tiny):
    """The paper's full set (60 follow-ups) through the packed path: batch size 1 == 8."""
    model, tokenizer = tiny
    records = [{"prompt": "What is the capital of France?", "response": r} for r in ("Paris.", "I like turtles.")]
    records.append({"prompt": "Write a haiku.", "response": "Leaves fall, quiet pond; a frog waits for spring rain."})
    one = FollowUpReward(model, tokenizer, ScorerConfig(followups="paper", batch_size=1)).score(records)
    many = FollowUpReward(model, tokenizer, ScorerConfig(followups="paper", batch_size=8, token_budget=2048)).score(
        records
    )
    for a, b in zip(one, many, strict=True):
        assert len(a.details) == 60
        assert a.reward == pytest.approx(b.reward, abs=ATOL)


# ChatML that writes a length tag before the last user message: renderings differ before each follow-up, so
# the shared prefix stops early and scored spans start inside the continuations (start > 0).
TAGGING_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if loop.last and message['role'] == 'user' %}{{ '[' ~ (message['content'] | length) ~ ' chars] ' }}{% endif %}"
    "{{ message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
)


def test_spans_that_start_inside_the_continuation(tiny, tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = TAGGING_TEMPLATE
    renderer = ChatRenderer(tok, include_eot=True)
    followups = ["Thanks!", "I did not ask for that at all.", "Hmm, why is that so?"]
    item = renderer.followup_item("What is 2+2?", "It is 4.", followups)
    assert all(start > 0 for start, _ in item.spans)
    assert [tok.decode(c[s:e]) for c, (s, e) in zip(item.continuations, item.spans)] == [
        " " + f + "<|im_end|>" for f in followups
    ]
    items = [item, random_items(tokenizer, seed=9, n=1, direct=0.0)[0]]
    ref = reference_logprobs(tiny[0], items, batch_size=2, padding_side="left")
    assert_same(packed_logprobs(tiny[0], items), ref)
    assert_same(packed_logprobs(tiny[0], items, token_budget=1), ref)


def test_no_items(tiny):
    assert packed_logprobs(tiny[0], []) == [] == reference_logprobs(tiny[0], [])


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_prefix_cache_path(tiny_model_dir, items, reference, attn, monkeypatch):
    """The KV-cache variant of the packed path (prefixes first, continuations against their cache) is exact too."""
    import inspect

    from flr.kernel.models import load_model

    if "prefix_cache" not in inspect.signature(packed_logprobs).parameters:
        pytest.skip("this kernel has no prefix_cache option")
    model, _ = load_model(str(tiny_model_dir), device="cpu", dtype="float32", attn_implementation=attn)
    monkeypatch.setattr(kernel, "LOGIT_CHUNK", 5)
    seen: list[int] = []
    handle = model.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        assert_same(packed_logprobs(model, items, prefix_cache=True), reference)
        assert sum(seen) == sum(e - s for it in items for s, e in it.spans) and max(seen) <= 5
        assert_same(packed_logprobs(model, items, prefix_cache=True, max_batch=1, token_budget=64), reference)
    finally:
        handle.remove()


def shared_stem_items(tokenizer, seed: int, prompts: int = 3, responses: int = 3, **kwargs):
    """Several responses to each of a few prompts (an evaluation pair, a policy's k samples): long shared stems."""
    rng = random.Random(seed)
    special = set(tokenizer.added_tokens_decoder)
    pool = [i for i in range(len(tokenizer)) if i not in special]
    renderer = ChatRenderer(tokenizer, **kwargs)
    items = []
    for _ in range(prompts):
        conv = [{"role": "user", "content": random_text(rng, tokenizer, pool, 10, 25)}]
        for _ in range(responses):
            response = random_text(rng, tokenizer, pool, 1, 20)
            items.append(
                renderer.followup_item(conv, response, [random_text(rng, tokenizer, pool, 1, 6) for _ in range(3)])
            )
    rng.shuffle(items)
    return items


@pytest.mark.parametrize("seed", [7, 8])
def test_shared_stems_equal_reference(tiny, tokenizer, seed):
    """Responses to one prompt share a row (the prompt computed once) and score exactly as on their own."""
    model, _ = tiny
    items = shared_stem_items(tokenizer, seed) + random_items(tokenizer, seed=seed, n=3)
    rows = kernel._plan_rows(items, max_row_tokens=4096, share_stem=4)
    shared = [r for r in rows if len(r.members) > 1]
    assert shared and all(len(r.stem) >= 4 for r in shared)
    assert sum(len(r.members) for r in rows) == len(items)
    ref = reference_logprobs(model, items)
    assert_same(packed_logprobs(model, items, share_stem=4), ref)
    assert_same(packed_logprobs(model, items, share_stem=4, max_batch=1), ref)
    assert_same(packed_logprobs(model, items, share_stem=None), ref)


def test_shared_stems_eager_and_identical_prefixes(tiny_model_dir, tokenizer):
    """Additive masks (eager attention) and an example scored twice (its whole prefix is the stem)."""
    from flr.kernel.models import load_model

    eager, _ = load_model(str(tiny_model_dir), device="cpu", dtype="float32", attn_implementation="eager")
    items = shared_stem_items(tokenizer, 9, prompts=2, responses=2)
    twice = shared_stem_items(tokenizer, 12, prompts=1, responses=1)[0]
    template_head = common_prefix_length(items[0].prefix, twice.prefix, len(twice.prefix))  # system prompt etc.
    items += [twice, twice]
    rows = kernel._plan_rows(items, max_row_tokens=4096, share_stem=template_head + 1)
    assert any(len(r.stem) == len(items[-1].prefix) and len(r.members) == 2 for r in rows)
    assert_same(packed_logprobs(eager, items, share_stem=template_head + 1), reference_logprobs(eager, items))


def test_stems_not_worth_sharing_stay_apart(tokenizer):
    """A stem shorter than the threshold, or short against the rest of the row, is not shared."""
    items = shared_stem_items(tokenizer, 10, prompts=2, responses=2)
    assert all(len(r.members) == 1 for r in kernel._plan_rows(items, 4096, share_stem=10_000))
    assert all(len(r.members) == 1 for r in kernel._plan_rows(items, 4096, share_stem=None))
    # a row may not outgrow the budget by sharing
    assert all(r.length(items) <= 60 or len(r.members) == 1 for r in kernel._plan_rows(items, 60, share_stem=4))


def test_out_of_memory_splits_a_shared_row(tiny, tokenizer, monkeypatch):
    """A shared row that runs out of memory is split into its members, then each scores as before."""
    model, _ = tiny
    items = shared_stem_items(tokenizer, 11, prompts=1, responses=4)
    real = kernel._packed_batch
    sizes = []

    def tight(backbone, head, lm, rows, *args):
        sizes.append([len(r.members) for r in rows])
        if any(len(r.members) > 1 for r in rows):
            raise torch.OutOfMemoryError("simulated")
        return real(backbone, head, lm, rows, *args)

    monkeypatch.setattr(kernel, "_packed_batch", tight)
    assert_same(packed_logprobs(model, items, share_stem=4), reference_logprobs(model, items))
    assert sizes[0] == [4] and sizes.count([1]) == 4 and all(s in ([1], [2]) for s in sizes[1:])

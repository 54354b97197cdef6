"""ChatRenderer: exact spans, the shared prefix, templates (ChatML, plain fallback, rewriting), BOS, truncation."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from flr.errors import FLRError
from flr.kernel.chat import PLAIN_CHAT_TEMPLATE, ChatRenderer, normalize_conversation
from flr.kernel.logprobs import packed_logprobs, reference_logprobs

FOLLOWUPS = ["Thanks, that helps!", "Huh? I don't get it.", "ok", "Could you say that again more simply please?"]
WORDS = "the cat sat on a mat while seven quick foxes jumped over lazy dogs near rivers and old stone bridges".split()

# ChatML that drops the content of assistant turns followed by another turn (as reasoning templates drop thoughts).
REWRITING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' and not loop.last %}"
    "{{ '<|im_start|>assistant\n<|im_end|>\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def span_texts(tokenizer, item):
    return [tokenizer.decode(c[s:e]) for c, (s, e) in zip(item.continuations, item.spans)]


def multi_turn(rng: random.Random, turns: int, system: bool = False) -> list[dict]:
    conv = [{"role": "system", "content": "Be brief. " + words(rng, 5)}] if system else []
    for t in range(turns):
        conv.append({"role": "user", "content": f"question {t}: " + words(rng, rng.randint(3, 12))})
        if t < turns - 1:
            conv.append({"role": "assistant", "content": f"answer {t}: " + words(rng, rng.randint(3, 12))})
    return conv


# -- spans and the shared prefix -------------------------------------------------------------------------


def test_spans_decode_to_followups(tokenizer):
    item = ChatRenderer(tokenizer).followup_item("What is 2+2?", "It is 4.", FOLLOWUPS)
    assert span_texts(tokenizer, item) == FOLLOWUPS
    assert not item.truncated
    # the continuation is cut right after the scored span
    assert all(e == len(c) for c, (_, e) in zip(item.continuations, item.spans))


def test_spans_with_end_of_turn(tokenizer):
    item = ChatRenderer(tokenizer, include_eot=True).followup_item("What is 2+2?", "It is 4.", FOLLOWUPS)
    assert span_texts(tokenizer, item) == [f + "<|im_end|>" for f in FOLLOWUPS]
    assert all(
        c[e - 1] == tokenizer.convert_tokens_to_ids("<|im_end|>") for c, (_, e) in zip(item.continuations, item.spans)
    )


def test_shared_prefix_ends_right_before_the_followups(tokenizer):
    renderer = ChatRenderer(tokenizer)
    assert renderer.prefix_preserving
    conv = [{"role": "user", "content": "What is 2+2?"}]
    item = renderer.followup_item(conv, "It is 4.", FOLLOWUPS)
    expected = renderer.render(conv + [{"role": "assistant", "content": "It is 4."}]) + "<|im_start|>user\n"
    assert tokenizer.decode(item.prefix) == expected
    assert item.prefix == tokenizer(expected, add_special_tokens=False)["input_ids"]
    assert all(start == 0 for start, _ in item.spans)
    # prefix + continuation is exactly the tokenized full rendering, cut after the follow-up
    for f, cont in zip(FOLLOWUPS, item.continuations):
        full = renderer.render(conv + [{"role": "assistant", "content": "It is 4."}, {"role": "user", "content": f}])
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        assert ids[: len(item.prefix) + len(cont)] == item.prefix + cont


def test_response_item_scores_the_response(tokenizer):
    renderer = ChatRenderer(tokenizer)
    conv = [{"role": "user", "content": "What is 2+2?"}]
    item = renderer.response_item(conv, "It is 4.")
    assert tokenizer.decode(item.prefix) == renderer.render(conv, add_generation_prompt=True)
    assert span_texts(tokenizer, item) == ["It is 4."]
    eot = ChatRenderer(tokenizer, include_eot=True).response_item(conv, "It is 4.")
    assert span_texts(tokenizer, eot) == ["It is 4.<|im_end|>"]


def test_multi_turn_conversations(tokenizer):
    rng = random.Random(0)
    renderer = ChatRenderer(tokenizer)
    for turns in (1, 2, 4):
        for system in (False, True):
            conv = multi_turn(rng, turns, system)
            response = "response: " + words(rng, 7)
            item = renderer.followup_item(conv, response, FOLLOWUPS)
            assert span_texts(tokenizer, item) == FOLLOWUPS
            prefix = tokenizer.decode(item.prefix)
            assert prefix.endswith(response + "<|im_end|>\n<|im_start|>user\n")
            for m in conv:
                assert f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" in prefix
            assert prefix.count("You are a helpful AI assistant") == (0 if system else 1)


def test_random_text_spans(tokenizer):
    """Text built from random vocabulary tokens: the span still covers exactly the follow-up."""
    rng = random.Random(1)
    special = set(tokenizer.added_tokens_decoder)
    pool = [i for i in range(len(tokenizer)) if i not in special]
    renderer = ChatRenderer(tokenizer)
    for _ in range(20):
        texts = [tokenizer.decode(rng.sample(pool, rng.randint(1, 8))) for _ in range(4)]
        followups = ["f" + t for t in texts[2:]] + ["word " + texts[0]]
        item = renderer.followup_item(texts[0], texts[1], followups)
        for text, f in zip(span_texts(tokenizer, item), followups):
            assert text == f or (text.endswith(f) and not text[: -len(f)].strip())


def test_normalize_conversation():
    assert normalize_conversation("hi") == [{"role": "user", "content": "hi"}]
    with pytest.raises(FLRError, match="role"):
        normalize_conversation([{"role": "robot", "content": "hi"}])
    with pytest.raises(FLRError, match="content"):
        normalize_conversation([{"role": "user"}])
    with pytest.raises(FLRError, match="empty"):
        normalize_conversation([])


# -- templates -------------------------------------------------------------------------------------------


def test_plain_fallback_template(tokenizer):
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    renderer = ChatRenderer(plain)
    assert renderer.chat_template == PLAIN_CHAT_TEMPLATE
    assert renderer.prefix_preserving
    item = renderer.followup_item("What is 2+2?", "It is 4.", FOLLOWUPS)
    assert plain.decode(item.prefix) == "User: What is 2+2?\n\nAssistant: It is 4.\n\nUser:"
    # byte-level BPE keeps the separating space with the first word
    assert span_texts(plain, item) == [" " + f for f in FOLLOWUPS]
    direct = renderer.response_item([{"role": "user", "content": "What is 2+2?"}], "It is 4.")
    assert plain.decode(direct.prefix) == "User: What is 2+2?\n\nAssistant:"
    assert span_texts(plain, direct) == [" It is 4."]
    # the original tokenizer is untouched
    assert tokenizer.chat_template


def test_no_duplicated_bos(tokenizer):
    """SmolLM2's BOS is <|im_start|>: the prefix holds exactly the template's ones, nothing added."""
    renderer = ChatRenderer(tokenizer)
    conv = [{"role": "user", "content": "hi"}]
    item = renderer.followup_item(conv, "hello", ["thanks"])
    text = renderer.render(conv + [{"role": "assistant", "content": "hello"}]) + "<|im_start|>user\n"
    assert item.prefix.count(tokenizer.bos_token_id) == text.count(tokenizer.bos_token) == 4
    assert item.prefix[0] == tokenizer.bos_token_id


def test_no_duplicated_bos_when_tokenizer_adds_one(tokenizer):
    """A Llama-style tokenizer that prepends BOS and a template that also writes it: BOS appears once."""
    from tokenizers.processors import TemplateProcessing

    tok = copy.deepcopy(tokenizer)
    tok._tokenizer.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", pair="<|endoftext|> $A $B", special_tokens=[("<|endoftext|>", 0)]
    )
    tok.bos_token = "<|endoftext|>"
    tok.chat_template = "{{ bos_token }}" + tokenizer.chat_template
    assert tok("hi")["input_ids"][0] == 0  # the tokenizer does add a BOS on its own
    renderer = ChatRenderer(tok)
    for item in (renderer.followup_item("hi", "hello", FOLLOWUPS), renderer.response_item("hi", "hello")):
        assert item.prefix[0] == 0 and item.prefix[1] != 0
        assert item.prefix.count(0) == 1
        assert all(0 not in c for c in item.continuations)


def test_rewriting_template(tokenizer, tiny):
    """A template that rewrites earlier turns: spans stay exact and the packed path equals the reference."""
    model, _ = tiny
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = REWRITING_TEMPLATE
    renderer = ChatRenderer(tok)
    assert not renderer.prefix_preserving
    conv = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    item = renderer.followup_item(conv, "second answer", FOLLOWUPS)
    assert span_texts(tok, item) == FOLLOWUPS
    prefix = tok.decode(item.prefix)
    assert "first answer" not in prefix and "second answer" not in prefix  # the template dropped them
    direct = renderer.response_item(conv, "second answer")
    assert span_texts(tok, direct) == ["second answer"]
    items = [item, direct]
    for fast, ref in zip(packed_logprobs(model, items), reference_logprobs(model, items)):
        for a, b in zip(fast, ref):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


TRIMMING_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_trimming_template(tokenizer):
    """Templates that trim each message (Llama 3, Gemma, ...): a response with outer whitespace is still found."""
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = TRIMMING_TEMPLATE
    renderer = ChatRenderer(tok)
    for response in ("Paris.\n", "  Paris.", "\nParis.\n\n"):
        item = renderer.response_item("Capital of France?", response)
        assert span_texts(tok, item) == ["Paris."]
        assert span_texts(tok, renderer.followup_item("Capital of France?", response, [" ok \n"])) == ["ok"]
    with pytest.raises(FLRError, match="cannot locate"):
        renderer.response_item("Capital of France?", "  \n")


def test_slow_tokenizer_rejected(tokenizer):
    class Slow:
        is_fast = False

    with pytest.raises(FLRError, match="fast"):
        ChatRenderer(Slow())


# -- truncation ------------------------------------------------------------------------------------------


def long_conversation() -> list[dict]:
    return [
        {"role": "system", "content": "SYSTEM keep it short."},
        {"role": "user", "content": "OLDEST " + " ".join(f"u{i}" for i in range(60))},
        {"role": "assistant", "content": "MIDDLE " + " ".join(f"a{i}" for i in range(60))},
        {"role": "user", "content": "LAST " + " ".join(f"w{i}" for i in range(80)) + " END"},
    ]


RESPONSE = "RESP " + " ".join(f"r{i}" for i in range(80)) + " DONE"


def kept_messages(prefix: str, conv: list[dict]) -> list[bool]:
    return [m["content"].split()[0] in prefix for m in conv]


def test_no_truncation_when_it_fits(tokenizer):
    conv = long_conversation()
    full = ChatRenderer(tokenizer).followup_item(conv, RESPONSE, FOLLOWUPS)
    same = ChatRenderer(tokenizer, max_length=full.max_length).followup_item(conv, RESPONSE, FOLLOWUPS)
    assert not same.truncated and same.prefix == full.prefix


def test_truncation_drops_oldest_turns_first(tokenizer):
    conv = long_conversation()
    full = ChatRenderer(tokenizer).followup_item(conv, RESPONSE, FOLLOWUPS)
    item = ChatRenderer(tokenizer, max_length=full.max_length - 5).followup_item(conv, RESPONSE, FOLLOWUPS)
    prefix = tokenizer.decode(item.prefix)
    assert item.truncated and item.max_length <= full.max_length - 5
    # system kept; the oldest (user, assistant) pair goes together, so turns still alternate
    assert kept_messages(prefix, conv) == [True, False, False, True]
    assert "LAST w0 " in prefix and RESPONSE in prefix
    assert span_texts(tokenizer, item) == FOLLOWUPS


def test_truncation_order(tokenizer):
    """Shrinking max_length: whole old turns go, then the prompt's start, then the response's start."""
    conv = long_conversation()
    full = ChatRenderer(tokenizer).followup_item(conv, RESPONSE, FOLLOWUPS)
    stages = []
    for max_length in range(full.max_length - 1, 0, -7):
        renderer = ChatRenderer(tokenizer, max_length=max_length)
        try:
            item = renderer.followup_item(conv, RESPONSE, FOLLOWUPS)
        except FLRError as exc:
            assert "too small" in str(exc)
            break
        assert item.truncated and item.max_length <= max_length
        assert span_texts(tokenizer, item) == FOLLOWUPS  # follow-ups are never cut
        prefix = tokenizer.decode(item.prefix)
        assert "SYSTEM keep it short." in prefix
        kept = kept_messages(prefix, conv)
        if kept[1:] == [True, True, True]:
            stage = 0
        elif kept[1:] == [False, False, True]:
            stage = 2  # only the last user turn left, whole
        else:
            assert "LAST" not in prefix
            assert "MIDDLE" not in prefix
            if RESPONSE in prefix:
                stage = 3  # the last turn lost its start (or all of it), the response is whole
                assert "END" in prefix or "<|im_start|>user\n<|im_end|>" in prefix
            else:
                stage = 4  # the prompt is gone, the response lost its start but keeps its end
                assert "DONE" in prefix and "RESP " not in prefix
        stages.append(stage)
    else:
        pytest.fail("max_length never became too small")
    assert stages == sorted(stages)
    assert {2, 3, 4} <= set(stages)


def test_truncation_too_small_raises(tokenizer):
    conv = long_conversation()
    with pytest.raises(FLRError, match="too small"):
        ChatRenderer(tokenizer, max_length=20).followup_item(conv, RESPONSE, FOLLOWUPS)


def test_truncation_of_the_direct_item(tokenizer):
    """The direct baseline: old turns and the prompt go first; a response too long by itself loses its start."""
    conv = long_conversation()
    full = ChatRenderer(tokenizer).response_item(conv, RESPONSE)
    item = ChatRenderer(tokenizer, max_length=full.max_length - 40).response_item(conv, RESPONSE)
    assert item.truncated and item.max_length <= full.max_length - 40
    assert span_texts(tokenizer, item) == [RESPONSE]  # the prompt paid for it
    n_response = item.spans[0][1] - item.spans[0][0]
    cut = ChatRenderer(tokenizer, max_length=n_response).response_item(conv, RESPONSE)
    assert cut.truncated and cut.max_length <= n_response
    (scored,) = span_texts(tokenizer, cut)
    assert RESPONSE.endswith(scored) and len(scored) < len(RESPONSE) - 10
    with pytest.raises(FLRError, match="too small"):
        ChatRenderer(tokenizer, max_length=10).response_item(conv, RESPONSE)


def test_truncated_items_score_the_same_way(tokenizer, tiny):
    model, _ = tiny
    conv = long_conversation()
    renderer = ChatRenderer(tokenizer, max_length=300)
    items = [renderer.followup_item(conv, RESPONSE, FOLLOWUPS), renderer.response_item(conv, RESPONSE)]
    assert all(it.truncated and it.max_length <= 300 for it in items)
    for fast, ref in zip(packed_logprobs(model, items), reference_logprobs(model, items)):
        for a, b in zip(fast, ref):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)

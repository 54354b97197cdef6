"""Conversation + response + continuation -> token ids with the exact span to score.

Every continuation (a follow-up as the user's next turn, or the response itself for the direct baseline) is
rendered in full with the tokenizer's chat template, so that the model sees exactly what it would see in a real
conversation. The tokens shared by all renderings of one example become the prefix that the kernel computes once;
the rest, cut after the scored span, become the continuations. Templates that rewrite earlier turns once a new turn
follows therefore stay correct: the shared prefix is just shorter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from flr.errors import FLRError
from flr.records import message_problem

logger = logging.getLogger(__name__)

Message = dict[str, str]

# For base models without a chat template: "User: ...\n\nAssistant: ...\n\n".
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
_PLACEHOLDER = "\u2063FLR-FOLLOW-UP\u2063"  # stands in for the follow-up text in one rendering per example


@dataclass
class ScoringItem:
    """One example for the kernel: a shared prefix and continuations, each with a scored span [start, end)."""

    prefix: list[int]
    continuations: list[list[int]]
    spans: list[tuple[int, int]]
    truncated: bool = False

    @property
    def num_tokens(self) -> int:
        return len(self.prefix) + sum(len(c) for c in self.continuations)

    @property
    def max_length(self) -> int:
        return len(self.prefix) + max(len(c) for c in self.continuations)


def normalize_conversation(prompt: str | Sequence[Message]) -> list[Message]:
    """A prompt string becomes one user message; message lists are checked and copied."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = []
    for i, message in enumerate(prompt):
        problem = message_problem(message)
        if problem:
            raise FLRError(f"message {i}: {problem[0]}")
        messages.append({"role": message["role"], "content": message["content"]})
    if not messages:
        raise FLRError("the conversation is empty")
    return messages


class ChatRenderer:
    """Renders conversations with a tokenizer's chat template (or a plain fallback) into :class:`ScoringItem`."""

    def __init__(
        self, tokenizer, *, include_eot: bool = False, max_length: int | None = None, fast_render: bool = True
    ):
        if not getattr(tokenizer, "is_fast", False):
            raise FLRError("flr needs a fast (Rust) tokenizer for exact token spans")
        self.tokenizer = tokenizer
        self.include_eot = include_eot
        self.max_length = max_length
        self.fast_render = fast_render  # False: render the template once per follow-up (the reference)
        self.chat_template = tokenizer.chat_template or PLAIN_CHAT_TEMPLATE
        if not tokenizer.chat_template:
            logger.info("the tokenizer has no chat template: using the plain 'User:/Assistant:' template")
        self._special_tokens: list[str] | None = None
        self._tails: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}  # tail text -> ids, offsets
        self.prefix_preserving = self._check_prefix_preserving()

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages),
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    def _check_prefix_preserving(self) -> bool:
        """Does adding a user turn leave the rendering of the earlier turns unchanged? (TRL checks the same.)"""
        conv = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]
        before = self.render(conv)
        after = self.render(conv + [{"role": "user", "content": "Thanks."}])
        if not after.startswith(before):
            logger.warning(
                "this chat template rewrites earlier turns when a new turn follows: the shared prefix "
                "is shorter and scoring slower, but results stay exact"
            )
            return False
        return True

    # -- items -----------------------------------------------------------------------------------------

    def followup_item(self, conversation, response: str, followups: Sequence[str], *, reserve: int = 0) -> ScoringItem:
        """Score each follow-up as the user's next turn after ``response``.

        ``reserve``: when cutting to ``max_length``, leave room for a follow-up turn of at least this many tokens,
        so that where the conversation is cut does not depend on which follow-ups are scored.
        """
        conv = normalize_conversation(conversation)
        return self._fit(conv, response, lambda c, r: self._followup_item(c, r, followups), reserve=reserve)

    def response_item(self, conversation, response: str) -> ScoringItem:
        """Score the response itself given the conversation (the direct baseline)."""
        conv = normalize_conversation(conversation)
        return self._fit(conv, response, self._response_item)

    def _followup_item(self, conv, response, followups) -> ScoringItem:
        base = conv + [{"role": "assistant", "content": response}]
        texts = self._render_followups(base, followups) if self.fast_render else None
        if texts is None:  # the reference: one template rendering per follow-up
            texts = [self.render(base + [{"role": "user", "content": f}]) for f in followups]
        return self._item(texts, list(followups))

    def _render_followups(self, base: list[Message], followups: Sequence[str]) -> list[str] | None:
        """Every follow-up's rendering from one template call: the conversation with a placeholder user turn,
        the placeholder replaced by each follow-up. Checked against a real rendering of the first follow-up;
        None (render each one) when the template does anything to the text but insert it."""
        if not followups:
            return []
        text = self.render(base + [{"role": "user", "content": _PLACEHOLDER}])
        if text.count(_PLACEHOLDER) != 1:
            return None
        head, tail = text.split(_PLACEHOLDER)
        first = followups[0]
        if head + first + tail != self.render(base + [{"role": "user", "content": first}]):
            return None
        return [head + f + tail for f in followups]

    def _response_item(self, conv, response) -> ScoringItem:
        text = self.render(conv + [{"role": "assistant", "content": response}])
        return self._item([text], [response])

    def _item(self, texts: list[str], targets: list[str]) -> ScoringItem:
        head, tails, split = self._encode(texts)
        rows = []  # (tail ids, first, last): token positions in the tail
        for text, target, (ids, offsets) in zip(texts, targets, tails):
            start = text.rfind(target)
            if start < 0 and target.strip():  # templates that trim each message (Llama 3, Gemma, Mistral, ...)
                target = target.strip()
                start = text.rfind(target)
            if start < 0 or not target:
                raise FLRError(f"the chat template changed the text {target[:40]!r}; cannot locate it to score")
            if start < split:  # the target reaches into the shared head: work on the whole text
                return self._item_unsplit(texts, targets)
            end = start + len(target)
            scored = [i for i, (a, b) in enumerate(offsets) if a + split < end and b + split > start and b > a]
            if not scored:
                raise FLRError(f"no tokens to score for {target[:40]!r}")
            first, last = scored[0], scored[-1] + 1
            if self.include_eot and last < len(ids):
                last += 1
            rows.append((ids, first, last))
        shared = min(first for _, first, _ in rows)  # in tail tokens, after the head
        reference = rows[0][0]
        for ids, _, _ in rows[1:]:
            shared = min(shared, common_prefix_length(reference, ids, shared))
        prefix = head + reference[:shared]
        continuations = [ids[shared:last] for ids, _, last in rows]
        spans = [(first - shared, last - shared) for _, first, last in rows]
        return ScoringItem(prefix=prefix, continuations=continuations, spans=spans)

    def _item_unsplit(self, texts: list[str], targets: list[str]) -> ScoringItem:
        saved, self._no_split = getattr(self, "_no_split", False), True
        try:
            return self._item(texts, targets)
        finally:
            self._no_split = saved

    def _encode(self, texts: list[str]) -> tuple[list[int], list[tuple[list[int], list[tuple[int, int]]]], int]:
        """(shared head ids, per text its tail ids and tail character offsets, the head's length in characters).

        The text all of them share is tokenized once, cut at the start of a special token (tokenized atomically,
        so the cut cannot change the tokens); the result is checked against a full tokenization of the first
        text, else every text is tokenized whole (head empty, split 0).
        """
        tok = self.tokenizer
        if len(texts) > 1 and not getattr(self, "_no_split", False):
            split = self._special_boundary(os.path.commonprefix(texts))
            if split > 0:
                head = tok(texts[0][:split], add_special_tokens=False)["input_ids"]
                tails = [t[split:] for t in texts]
                if self._encode_tails(texts[0][:split], head, tails):
                    return head, [self._tails[t] for t in tails], split
        enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
        return [], list(zip(enc["input_ids"], enc["offset_mapping"])), 0

    def _encode_tails(self, head_text: str, head: list[int], tails: list[str]) -> bool:
        """Tokenize the tails not seen before (follow-up turns repeat across examples: each is tokenized once per
        renderer), each checked once against a whole tokenization; False if the split changes the tokens."""
        tok = self.tokenizer
        new = [t for t in dict.fromkeys(tails) if t not in self._tails]
        if new:
            enc = tok(new, add_special_tokens=False, return_offsets_mapping=True)
            whole = tok([head_text + t for t in new], add_special_tokens=False)["input_ids"]
            if any(head + ids != full for ids, full in zip(enc["input_ids"], whole)):
                return False
            if len(self._tails) > 8192:  # bounded: many distinct tails mean one-off texts, not a follow-up set
                self._tails.clear()
            self._tails.update((t, (ids, offs)) for t, ids, offs in zip(new, enc["input_ids"], enc["offset_mapping"]))
        return True

    def _special_boundary(self, text: str) -> int:
        """Where the last special token in ``text`` starts (0 if none)."""
        if self._special_tokens is None:
            decoder = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
            self._special_tokens = [t.content for t in decoder.values() if getattr(t, "special", False) and t.content]
        return max((text.rfind(t) for t in self._special_tokens), default=-1) if self._special_tokens else 0

    # -- truncation ------------------------------------------------------------------------------------

    def _fit(self, conv: list[Message], response: str, build, reserve: int = 0) -> ScoringItem:
        """Cap the length: drop the oldest turns, then cut the prompt's start, then the response's start.

        A follow-up is never cut. For the direct baseline the response is the scored text: when it alone is too
        long, its start is cut and the rest is scored.
        """

        def length(item: ScoringItem) -> int:
            return max(item.max_length, len(item.prefix) + reserve)

        item = build(conv, response)
        if self.max_length is None or length(item) <= self.max_length:
            return item
        conv = list(conv)
        system = [m for m in conv[:1] if m["role"] == "system"]
        turns = conv[len(system) :]
        while len(turns) > 2 and length(item) > self.max_length:
            turns = turns[2:]  # a (user, assistant) pair at a time: templates that check alternation stay happy
            item = build(system + turns, response)
        for _ in range(8):  # token counts shift a little at the cut: a few rounds settle it
            excess = length(item) - self.max_length
            if excess <= 0:
                break
            first = turns[0]["content"]
            cut_prompt = min(excess, self._num_tokens(first))
            turns = [{**turns[0], "content": self._drop_left(first, cut_prompt)}] + turns[1:]
            if cut_prompt < excess:
                response = self._drop_left(response, excess - cut_prompt)
            try:
                item = build(system + turns, response)
            except FLRError:
                if response.strip():
                    raise
                break  # the direct baseline's response is cut away entirely: "too small" below
        if length(item) > self.max_length:
            raise FLRError(f"--max-length {self.max_length} is too small for the scored text itself")
        item.truncated = True
        return item

    def _num_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _drop_left(self, text: str, n: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer.decode(ids[n + 1 :]) if n > 0 else text


def common_prefix_length(a: list[int], b: list[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


# -- full query texts (OpenRLHF's remote reward API) -----------------------------------------------------

QUERY_TEMPLATES = {
    # role header, end of turn: how a policy's chat template marks turns, to split full query texts back
    "chatml": (r"<\|im_start\|>(system|user|assistant)\n", "<|im_end|>"),
    "llama3": (r"<\|start_header_id\|>(system|user|assistant)<\|end_header_id\|>\n\n", "<|eot_id|>"),
}


def split_query(query: str, prompt: str | None = None, template: str = "chatml") -> dict:
    """An OpenRLHF query (prompt + response as one rendered text) -> ``{prompt: messages, response}``.

    With the prompt text (OpenRLHF sends it as ``prompts``) the response is what follows it; the conversation is
    read back from the turn markers of ``template`` (chatml: SmolLM2, Qwen; llama3). Without markers the prompt is
    one user turn.
    """
    import re

    if template not in QUERY_TEMPLATES:
        raise ValueError(f"unknown query template {template!r}: use {', '.join(QUERY_TEMPLATES)}")
    header, eot = QUERY_TEMPLATES[template]
    if prompt is not None:
        if not query.startswith(prompt):
            raise ValueError("the query does not start with its prompt")
        head, response = prompt, query[len(prompt) :]
    else:  # the response is the last assistant turn
        starts = list(re.finditer(header, query))
        last = next((m for m in reversed(starts) if m[1] == "assistant"), None)
        if last is None:
            raise ValueError(f"no assistant turn found with the {template} markers")
        head, response = query[: last.start()], query[last.end() :]
    response = response.split(eot)[0].strip()
    turns = [
        {"role": m[1], "content": head[m.end() : (nxt.start() if nxt else len(head))].split(eot)[0].strip()}
        for m, nxt in zip(list(re.finditer(header, head)), [*list(re.finditer(header, head))[1:], None])
    ]
    turns = [t for t in turns if t["content"] or t["role"] != "assistant"]
    if not turns:
        turns = [{"role": "user", "content": head.strip()}]
    return {"prompt": turns, "response": response}

"""The kernel: teacher-forced log-probs of many continuations of one shared prefix.

Two paths compute the same numbers:

- ``packed`` (fast): one row per example holds the prefix once, then every continuation; a 4D attention mask lets
  each continuation see the prefix and its own earlier tokens only, and position ids restart after the prefix for
  each continuation. The LM head and log-softmax run only at the scored positions. Cost ~ 2·N·(P + K·F) FLOPs
  instead of 2·N·K·(P + F) and no K copies of the prefix's KV cache. With ``prefix_cache=True`` the prefixes are
  run first on their own (plain causal attention, no mask when a batch's prefixes have one length) and the
  continuations second, against the prefixes' KV cache (not repeated): attention then costs P²/2 + K·F·(P + K·F)
  instead of (P + K·F)² per example, for one more pass of small kernel launches. Examples whose prefixes share a
  long stem (the responses to one prompt: an evaluation pair, a policy's k samples) share one row: the stem is
  computed once and each example's rest of prefix and continuations see the stem and their own tokens only.
- ``reference``: one ordinary forward pass per (prefix + continuation), full logits, full log-softmax. Plain and
  obviously right; the tests hold the fast path to it.

Rows are sorted by length and packed into batches under a token budget (padded tokens per forward; small on CPUs,
where batching buys little and padding costs in full); a batch that runs out of device memory is split in halves
(a single row over its members or continuations) and the budget shrinks for the
rest of the call. The attention mask is built on the device from per-token segment ids, never in Python loops, and
only [chunk, vocab] logits ever exist.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import torch

from flr.kernel.chat import ScoringItem, common_prefix_length

logger = logging.getLogger(__name__)

LOGIT_CHUNK = 1024  # rows of [*, vocab] logits materialized at once
PAD_SEGMENT = -1  # segment id of padding; 0 is the row's stem, 1.. its members' other segments
SHARE_STEM = 64  # examples sharing this many leading prefix tokens may share a row (see _plan_rows)
ATTENTION_TOKENS = 4096  # row width at which masked attention costs as much as the rest (SmolLM2-135M, CPU, sdpa)
CPU_TOKEN_BUDGET = 4096  # on a CPU, batching buys little and padding costs in full: small batches
GPU_TOKEN_BUDGET = 16384
CPU_MAX_PADDING = 0.1  # on a CPU a row joins a batch only if it is at least 90% as long as the batch's longest


@dataclass
class _Row:
    """One row of a batch: a stem of tokens, then per member (an example) the rest of its prefix and the
    continuations it scores in this row. Usually one member whose stem is its whole prefix; examples whose prefixes
    share a long stem (two responses to one prompt) can share a row, so the stem is computed once."""

    stem: list[int]
    members: list[tuple[int, list[int]]]  # (item, indices into its continuations)

    def length(self, items) -> int:
        return len(self.stem) + sum(
            len(items[i].prefix) - len(self.stem) + sum(len(items[i].continuations[k]) for k in conts)
            for i, conts in self.members
        )


def split_lm(model):
    """(backbone, lm_head, lm) of a causal LM, a PEFT-wrapped one included."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return lm.get_decoder(), lm.get_output_embeddings(), lm


def scaled_logits(lm, logits: torch.Tensor) -> torch.Tensor:
    """Apply the model's logit scale and soft-capping (Cohere, Gemma 2), where it has them."""
    scale = getattr(lm.config, "logit_scale", None)
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    if scale is not None:
        logits = logits * scale
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def _head_logprobs(lm, head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) from hidden states, chunked so only [chunk, vocab] logits exist at a time."""
    parts = []
    for i in range(0, hidden.shape[0], LOGIT_CHUNK):
        logits = scaled_logits(lm, head(hidden[i : i + LOGIT_CHUNK]).float())
        tgt = targets[i : i + LOGIT_CHUNK]
        parts.append(logits.gather(-1, tgt[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1))
    return torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)


def _plan_rows(items: Sequence[ScoringItem], max_row_tokens: int, share_stem: int | None = None) -> list[_Row]:
    """One row per example; an example too long for one row is split into several rows over its continuations.

    ``share_stem``: examples whose prefixes share at least this many leading tokens share one row, where that
    costs less than apart (a longer row pays more attention per token).
    """
    for item in items:
        if not item.prefix:
            raise ValueError("a continuation needs a non-empty prefix to be conditioned on")
    rows = []
    for stem, group in _stem_groups(items, max_row_tokens, share_stem):
        if len(group) > 1:
            rows.append(
                _Row(items[group[0]].prefix[:stem], [(i, list(range(len(items[i].continuations)))) for i in group])
            )
            continue
        i = group[0]
        item = items[i]
        current, length = [], len(item.prefix)
        for k, cont in enumerate(item.continuations):
            if current and length + len(cont) > max_row_tokens:
                rows.append(_Row(item.prefix, [(i, current)]))
                current, length = [], len(item.prefix)
            current.append(k)
            length += len(cont)
        rows.append(_Row(item.prefix, [(i, current)]))
    return rows


def _row_cost(width: int) -> float:
    """Relative cost of a row of ``width`` tokens: backbone per token plus masked attention per token pair."""
    return width + width * width / ATTENTION_TOKENS


def _stem_groups(items, max_row_tokens: int, share_stem: int | None) -> list[tuple[int, list[int]]]:
    """(stem length, items) groups, consecutive in prefix order: an example joins the group before it when they
    share at least ``share_stem`` leading tokens and one row costs less than two (see :func:`_row_cost`)."""
    if not share_stem:
        return [(len(item.prefix), [i]) for i, item in enumerate(items)]
    size = [len(item.prefix) + sum(map(len, item.continuations)) for item in items]
    groups: list[tuple[int, list[int]]] = []
    for i in sorted(range(len(items)), key=lambda i: items[i].prefix):
        if groups:
            stem, group = groups[-1]
            shared = common_prefix_length(items[group[0]].prefix, items[i].prefix, stem)
            merged = shared + sum(size[j] - shared for j in (*group, i))
            apart = _row_cost(stem + sum(size[j] - stem for j in group)) + _row_cost(size[i])
            if shared >= share_stem and merged <= max_row_tokens and _row_cost(merged) < apart:
                groups[-1] = (shared, [*group, i])
                continue
        groups.append((len(items[i].prefix), [i]))
    return groups


def _batches(
    rows: list[_Row], items, token_budget: int, max_batch: int | None, max_padding: float | None = None
) -> list[list[int]]:
    """Length-sorted batches whose padded size (rows x longest row) stays within the token budget, and with
    ``max_padding``, whose rows are each at least (1 - max_padding) x the longest."""
    lengths = [row.length(items) for row in rows]
    order = sorted(range(len(rows)), key=lambda r: lengths[r], reverse=True)
    batches, batch, longest = [], [], 0
    for r in order:
        too_short = max_padding is not None and lengths[r] < (1 - max_padding) * longest
        if batch and (
            max(longest, lengths[r]) * (len(batch) + 1) > token_budget or len(batch) == max_batch or too_short
        ):
            batches.append(batch)
            batch, longest = [], 0
        batch.append(r)
        longest = max(longest, lengths[r])
    if batch:
        batches.append(batch)
    return batches


@dataclass
class _Layout:
    """One batch laid out as rows [stem | (gap) | member 1: rest of prefix, continuations | member 2 ... | padding]."""

    input_ids: torch.Tensor  # [n, W] long
    position_ids: torch.Tensor  # [n, W] long
    segments: torch.Tensor  # [n, W] int32: 0 stem, >0 a member's rest of prefix or a continuation, PAD_SEGMENT padding
    members: torch.Tensor  # [n, W] int32: the member (1..) a token belongs to, 0 in the stem and padding
    rest_of: torch.Tensor  # [n, W] int32: the member whose rest of prefix the token is, else 0
    prefix_width: int  # continuations start here when the layout has a gap (prefix_cache), else 0
    uniform_prefix: bool  # every row's prefix has the same length (no padding inside the prefix block)
    gather_row: torch.Tensor  # [T] scored tokens: the row,
    gather_pos: torch.Tensor  # [T] the position whose hidden state predicts the token,
    targets: torch.Tensor  # [T] and the token
    where: list[tuple[int, int, int]]  # (item, continuation, count) in the order of the scored tokens


def _layout(rows: list[_Row], items, *, gap: bool, multiple: int = 1) -> _Layout:
    """Token ids, positions, segment ids and scored positions of a batch, built with tensor ops (no per-token loop).

    ``gap``: put every row's continuations after the longest prefix of the batch, so that the prefix block
    ``[:, :prefix_width]`` can run on its own and the continuation block ``[:, prefix_width:]`` after it (rows of one
    member whose stem is its whole prefix).
    ``multiple``: round the width up to a multiple of this (fewer distinct shapes: kernel plans are cached per shape).
    """
    n = len(rows)
    stem_lens = [len(row.stem) for row in rows]
    if gap:
        assert all(len(row.members) == 1 and len(row.stem) == len(items[row.members[0][0]].prefix) for row in rows)
    width_p = max(stem_lens) if gap else 0
    # segments in token order across the batch: per row the stem, (the gap), per member the rest of its prefix and
    # its continuations, then padding
    seg_len, seg_id, seg_base, seg_member, seg_rest, tokens = [], [], [], [], [], []
    cont_rows, cont_offsets, cont_starts, cont_ends, cont_last_prefix, where = [], [], [], [], [], []
    row_lens = []

    def segment(ids, sid, base, member=0, rest=0):
        seg_len.append(len(ids)), seg_id.append(sid), seg_base.append(base)
        seg_member.append(member), seg_rest.append(rest), tokens.append(ids)

    for b, row in enumerate(rows):
        stem = len(row.stem)
        segment(row.stem, 0, 0)
        offset = stem
        if gap and width_p > stem:
            segment([0] * (width_p - stem), PAD_SEGMENT, stem)
            offset = width_p
        sid = 1
        for m, (i, conts) in enumerate(row.members, start=1):
            item = items[i]
            p = len(item.prefix)
            last_prefix = stem - 1
            if p > stem:
                segment(item.prefix[stem:], sid, stem, m, m)
                sid += 1
                offset += p - stem
                last_prefix = offset - 1
            for k in conts:
                cont = item.continuations[k]
                start, end = item.spans[k]
                segment(cont, sid, p, m)
                sid += 1
                cont_rows.append(b), cont_offsets.append(offset), cont_last_prefix.append(last_prefix)
                cont_starts.append(start), cont_ends.append(end)
                where.append((i, k, end - start))
                offset += len(cont)
        row_lens.append(offset)
    width = -(-max(row_lens) // multiple) * multiple
    seg_len_t = torch.tensor(seg_len)
    flat_ids = torch.tensor(list(chain.from_iterable(tokens)), dtype=torch.long)
    seg_start = torch.cumsum(seg_len_t, 0) - seg_len_t
    within_seg = torch.arange(len(flat_ids)) - torch.repeat_interleave(seg_start, seg_len_t)
    row_len_t = torch.tensor(row_lens)
    row_start = torch.cumsum(row_len_t, 0) - row_len_t
    row_of = torch.repeat_interleave(torch.arange(n), row_len_t)
    col_of = torch.arange(len(flat_ids)) - torch.repeat_interleave(row_start, row_len_t)

    def per_token(values, fill, dtype=torch.int32):
        out = torch.full((n, width), fill, dtype=dtype)
        out[row_of, col_of] = torch.repeat_interleave(torch.tensor(values, dtype=dtype), seg_len_t)
        return out

    input_ids = torch.zeros(n, width, dtype=torch.long)
    input_ids[row_of, col_of] = flat_ids
    position_ids = torch.zeros(n, width, dtype=torch.long)
    position_ids[row_of, col_of] = within_seg + torch.repeat_interleave(torch.tensor(seg_base), seg_len_t)

    # scored tokens: token t of a continuation at `offset` is predicted from offset + t - 1, or from the last
    # token of its member's prefix when t == 0
    counts = torch.tensor(cont_ends) - torch.tensor(cont_starts)
    cont_of = torch.repeat_interleave(torch.arange(len(counts)), counts)
    first = torch.cumsum(counts, 0) - counts
    t = torch.tensor(cont_starts)[cont_of] + torch.arange(int(counts.sum())) - first[cont_of]
    gather_row = torch.tensor(cont_rows, dtype=torch.long)[cont_of]
    token_pos = torch.tensor(cont_offsets)[cont_of] + t
    gather_pos = torch.where(t == 0, torch.tensor(cont_last_prefix)[cont_of], token_pos - 1)
    return _Layout(
        input_ids=input_ids,
        position_ids=position_ids,
        segments=per_token(seg_id, PAD_SEGMENT),
        members=per_token(seg_member, 0),
        rest_of=per_token(seg_rest, 0),
        prefix_width=width_p,
        uniform_prefix=len(set(stem_lens)) == 1,
        gather_row=gather_row,
        gather_pos=gather_pos,
        targets=input_ids[gather_row, token_pos],
        where=where,
    )


def _attention_mask(lay: _Layout, q: slice, k: slice, additive_dtype: torch.dtype | None, device) -> torch.Tensor:
    """[n, 1, q, k] mask of queries ``q`` over keys ``k``: causal, and a key is seen from its own segment, the stem,
    or the rest of its member's prefix. Padding queries see the stem and earlier padding (never an empty softmax
    row); real queries never see padding, other members or other continuations. Boolean (True = attend), or
    additive in ``additive_dtype`` (eager attention)."""
    segments, members, rest_of = (x.to(device, non_blocking=True) for x in (lay.segments, lay.members, lay.rest_of))
    idx = torch.arange(segments.shape[1], device=device)
    qs, ks = segments[:, q, None], segments[:, None, k]
    own_prefix = (rest_of[:, None, k] > 0) & (rest_of[:, None, k] == members[:, q, None])
    allowed = (idx[q, None] >= idx[None, k]) & ((qs == ks) | (ks == 0) | own_prefix)
    allowed = allowed[:, None]
    if additive_dtype is None:
        return allowed
    return torch.zeros(allowed.shape, dtype=additive_dtype, device=allowed.device).masked_fill_(
        ~allowed, torch.finfo(additive_dtype).min
    )


def default_token_budget(device: torch.device) -> int:
    """Padded tokens per forward pass: large on GPUs (throughput comes from batching), small on CPUs, where a
    1-row forward already runs the matmuls near peak and a large batch pays for its padding and its attention
    masks in full (bench/bench_cpu_e2e.py: 1.5x faster on real records than a 16,384-token budget)."""
    return CPU_TOKEN_BUDGET if device.type == "cpu" else GPU_TOKEN_BUDGET


def _is_eager(model) -> bool:
    """Boolean masks for sdpa; additive float masks for eager attention."""
    return getattr(model.config, "_attn_implementation", "sdpa") == "eager"


def _width_multiple(device: torch.device) -> int:
    """On GPUs, padded widths are rounded up to 64 tokens: cuDNN attention builds a plan per new shape."""
    return 64 if device.type == "cuda" else 1


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(backbone):
    """torch.compile'd backbone (dynamic shapes), built once per backbone."""
    if backbone not in _COMPILED:
        _COMPILED[backbone] = torch.compile(backbone, dynamic=True)
    return _COMPILED[backbone]


@torch.inference_mode()
def packed_logprobs(
    model,
    items: Sequence[ScoringItem],
    *,
    token_budget: int | None = None,
    max_batch: int | None = None,
    prefix_cache: bool = False,
    share_stem: int | None = SHARE_STEM,
    max_padding: float | str | None = "auto",
    compile: bool = False,
) -> list[list[torch.Tensor]]:
    """Log-probs of every scored token, for each item and continuation, sharing each prefix (the fast path).

    ``token_budget``: padded tokens per forward pass (rows x longest row; default by device, see
    :func:`default_token_budget`); ``max_batch``: rows per forward pass;
    ``prefix_cache``: run the prefixes first and the continuations against their KV cache (less attention work,
    more memory; see docs/PERFORMANCE.md); ``compile``: run the backbone through ``torch.compile`` (fuses the
    norms, rotary embeddings and activations; pays only on long GPU jobs: the first call compiles for a minute or
    more); ``share_stem``: examples whose prefixes share at least this many leading tokens (the responses to one
    prompt) share a row, so the shared tokens are computed once (None: never; not with ``prefix_cache``);
    ``max_padding``: a row joins a batch only if at least (1 - this) x as long as its longest ("auto": 0.1 on a
    CPU, where padding costs in full; none on a GPU).
    Results do not depend on any of these beyond float rounding.
    """
    backbone, head, lm, device, dtype, token_budget, max_padding = _packed_setup(model, token_budget, max_padding)
    if compile:
        backbone = _compiled(backbone)
    out: list[list[torch.Tensor | None]] = [[None] * len(it.continuations) for it in items]
    rows = _plan_rows(items, max_row_tokens=max(token_budget, 1), share_stem=None if prefix_cache else share_stem)

    def run(batch_rows: list[_Row]) -> None:
        _packed_batch(backbone, head, lm, batch_rows, items, out, device, dtype, prefix_cache)

    _run_batches(rows, items, token_budget, max_batch, max_padding, device, run)
    return out  # type: ignore[return-value]


def _run_batches(rows: list[_Row], items, token_budget: int, max_batch, max_padding, device, run) -> None:
    """``run(rows of one batch)`` over length-sorted batches; a batch that runs out of device memory is split in
    halves (a single row over its members or continuations) and later batches stay under its size."""
    pending = _batches(rows, items, token_budget, max_batch, max_padding)[::-1]  # a stack: longest rows first
    limit = None  # padded tokens of the smallest batch that ran out of memory
    while pending:
        batch = pending.pop()
        padded = len(batch) * max(rows[r].length(items) for r in batch)
        if limit is not None and padded >= limit and len(batch) > 1:
            half = len(batch) // 2
            pending += [batch[half:], batch[:half]]
            continue
        try:
            run([rows[r] for r in batch])
            continue
        except torch.OutOfMemoryError:
            if len(batch) == 1 and len(rows[batch[0]].members) == 1 and len(rows[batch[0]].members[0][1]) == 1:
                raise
        # out of the except block, so that the failed pass's tensors are freed before retrying
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        limit = padded if limit is None else min(limit, padded)
        if len(batch) > 1:
            logger.warning("out of memory on %d rows (%d padded tokens): retrying in halves", len(batch), padded)
            half = len(batch) // 2
            pending += [batch[half:], batch[:half]]
        else:
            rows += _split_row(rows[batch[0]], items)
            pending += [[len(rows) - 1], [len(rows) - 2]]


def _split_row(row: _Row, items) -> list[_Row]:
    """Two rows for one that ran out of memory: its members apart, or a lone member's continuations in halves."""
    if len(row.members) > 1:
        logger.warning("out of memory on one row of %d examples sharing a stem: splitting it", len(row.members))
        half = len(row.members) // 2
        return [_Row(row.stem, row.members[:half]), _Row(row.stem, row.members[half:])]
    i, conts = row.members[0]
    logger.warning("out of memory on one row of %d continuations: splitting it", len(conts))
    half = len(conts) // 2
    return [_Row(items[i].prefix, [(i, conts[:half])]), _Row(items[i].prefix, [(i, conts[half:])])]


def _packed_batch(backbone, head, lm, rows: list[_Row], items, out, device, dtype, prefix_cache: bool) -> None:
    logprobs, where = _packed_forward(backbone, head, lm, rows, items, device, dtype, prefix_cache)
    logprobs = logprobs.cpu()
    i = 0
    for item_idx, k, count in where:
        out[item_idx][k] = logprobs[i : i + count]
        i += count


def _packed_forward(backbone, head, lm, rows: list[_Row], items, device, dtype, prefix_cache: bool = False):
    """Log-probs of a batch's scored tokens, in ``where`` order, on the device (differentiable outside
    inference mode: the mask and the gathers are plain tensor ops)."""
    picked, targets, where = _packed_states(backbone, lm, rows, items, device, dtype, prefix_cache)
    return _head_logprobs(lm, head, picked, targets), where


def _packed_states(backbone, lm, rows: list[_Row], items, device, dtype, prefix_cache: bool = False):
    """Hidden states that predict each scored token, the tokens, and ``where`` they belong."""
    lay = _layout(rows, items, gap=prefix_cache, multiple=_width_multiple(device))
    additive = dtype if _is_eager(lm) else None
    input_ids = lay.input_ids.to(device, non_blocking=True)
    position_ids = lay.position_ids.to(device, non_blocking=True)
    gather_row = lay.gather_row.to(device, non_blocking=True)
    gather_pos = lay.gather_pos.to(device, non_blocking=True)
    targets = lay.targets.to(device, non_blocking=True)
    everything = slice(None)
    if not prefix_cache:
        hidden = backbone(
            input_ids=input_ids,
            attention_mask=_attention_mask(lay, everything, everything, additive, device),
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state
        picked = hidden[gather_row, gather_pos]
    else:
        p = lay.prefix_width
        head_part, tail = slice(0, p), slice(p, None)
        first = backbone(
            input_ids=input_ids[:, head_part],
            # one prefix length: plain causal attention (SDPA's is_causal kernels), no mask at all
            attention_mask=None
            if lay.uniform_prefix
            else _attention_mask(lay, head_part, head_part, additive, device),
            position_ids=position_ids[:, head_part],
            use_cache=True,
        )
        second = backbone(
            input_ids=input_ids[:, tail],
            attention_mask=_attention_mask(lay, tail, everything, additive, device),
            position_ids=position_ids[:, tail],
            past_key_values=first.past_key_values,
            use_cache=True,
        ).last_hidden_state
        in_prefix = (gather_pos < p)[:, None]
        picked = torch.where(
            in_prefix,
            first.last_hidden_state[gather_row, gather_pos.clamp(max=p - 1)],
            second[gather_row, (gather_pos - p).clamp(min=0)],
        )
        del first, second
    return picked, targets, lay.where


def packed_hidden(model, items: Sequence[ScoringItem]):
    """The packed path with gradients, one forward over all ``items`` (for training the scorer model):
    ``(hidden states predicting each scored token, the tokens, where, (lm_head, lm))``."""
    backbone, head, lm = split_lm(model)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    rows = [_Row(item.prefix, [(i, list(range(len(item.continuations))))]) for i, item in enumerate(items)]
    picked, targets, where = _packed_states(backbone, lm, rows, items, device, dtype)
    return picked, targets, where, (head, lm)


def _packed_setup(model, token_budget: int | None, max_padding: float | str | None):
    """What both packed paths start from: the model's backbone, head and LM, its device and dtype, and the token
    budget and padding cap resolved for that device."""
    backbone, head, lm = split_lm(model)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    token_budget = token_budget or default_token_budget(device)
    if max_padding == "auto":
        max_padding = CPU_MAX_PADDING if device.type == "cpu" else None
    return backbone, head, lm, device, dtype, token_budget, max_padding


def _plain_forward(model, seqs: list[list[int]], padding_side: str, device) -> tuple[torch.Tensor, list[int]]:
    """The logits of one plain forward over token lists padded to the longest (on ``padding_side``, positions
    counted from each list's first token), and where each list starts in its row: the batch both reference paths
    run. Called under their inference mode."""
    width = max(len(ids) for ids in seqs)
    input_ids = torch.zeros(len(seqs), width, dtype=torch.long)
    attention = torch.zeros(len(seqs), width, dtype=torch.long)
    offsets = []
    for b, ids in enumerate(seqs):
        o = width - len(ids) if padding_side == "left" else 0
        input_ids[b, o : o + len(ids)] = torch.tensor(ids)
        attention[b, o : o + len(ids)] = 1
        offsets.append(o)
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=position_ids.to(device),
    ).logits
    return logits, offsets


@torch.inference_mode()
def reference_logprobs(
    model, items: Sequence[ScoringItem], *, batch_size: int = 1, padding_side: str = "right"
) -> list[list[torch.Tensor]]:
    """One full forward per (prefix + continuation): the plain path the fast one is tested against."""
    device = next(model.parameters()).device
    seqs = [(i, k, item.prefix + cont) for i, item in enumerate(items) for k, cont in enumerate(item.continuations)]
    out: list[list[torch.Tensor | None]] = [[None] * len(it.continuations) for it in items]
    for s in range(0, len(seqs), batch_size):
        chunk = seqs[s : s + batch_size]
        logits, offsets = _plain_forward(model, [ids for _, _, ids in chunk], padding_side, device)
        logits = logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        del logits
        # pick the scored tokens on the device: only they travel back, not [batch, length, vocab]
        rows, positions, tokens, counts = [], [], [], []
        for b, (i, k, ids) in enumerate(chunk):
            p = len(items[i].prefix)
            start, end = items[i].spans[k]
            rows += [b] * (end - start)
            positions += range(offsets[b] + p + start - 1, offsets[b] + p + end - 1)
            tokens += ids[p + start : p + end]
            counts.append(end - start)
        index = [torch.tensor(x, device=device) for x in (rows, positions, tokens)]
        picked = logprobs[index[0], index[1], index[2]].cpu()
        del logprobs
        for (i, k, _), part in zip(chunk, picked.split(counts)):
            out[i][k] = part
    return out  # type: ignore[return-value]


def mean_logits(
    model,
    items: Sequence[ScoringItem],
    token_ids: Sequence[Sequence[Sequence[int]]],
    *,
    method: str = "packed",
    batch_size: int = 1,
    padding_side: str = "right",
    **packed_kwargs,
) -> list[list[float]]:
    """The raw-logit statistic of ``--statistic authors``: for each item and continuation ``k``, the mean over
    ``token_ids[i][k]`` (repeats counted) of the raw logits (no softmax) at the position that predicts the token at
    the start of ``spans[k]``, i.e. after reading ``prefix + continuation[:start]``; what comes after that token
    is never read.

    The logits come out of the LM head in the model's dtype (fp16 values for an fp16 model) and are averaged in
    float32. Continuations whose tokens up to that position are equal share one logits vector: computed once.
    ``method``: ``packed`` (the prefix computed once per item; ``packed_kwargs`` as :func:`packed_logprobs` takes
    them) or ``reference`` (one plain forward per distinct position, ``batch_size`` sequences padded on
    ``padding_side``). Results do not depend on the method, batching or padding beyond float rounding.
    """
    # one scoring item per input item, one continuation per distinct position, ending in the token it predicts
    unique_items, wanted = [], []  # wanted[i][u]: [(k, ids)] of the continuations that read position u
    for item, ids_per in zip(items, token_ids, strict=True):
        seen: dict[tuple[int, ...], int] = {}
        conts, spans, by_position = [], [], []
        for k, (cont, (start, _), ids) in enumerate(zip(item.continuations, item.spans, ids_per, strict=True)):
            if not ids:
                raise ValueError("mean_logits needs at least one token id per continuation")
            if start >= len(cont):
                raise ValueError("a span starts past the end of its continuation")
            key = tuple(cont[:start])
            if key not in seen:
                seen[key] = len(conts)
                conts.append(list(cont[: start + 1]))
                spans.append((start, start + 1))
                by_position.append([])
            by_position[seen[key]].append((k, list(ids)))
        unique_items.append(ScoringItem(prefix=item.prefix, continuations=conts, spans=spans))
        wanted.append(by_position)
    out: list[list[float | None]] = [[None] * len(item.continuations) for item in items]
    if method == "packed":
        _packed_mean_logits(model, unique_items, wanted, out, **packed_kwargs)
    elif method == "reference":
        _reference_mean_logits(model, unique_items, wanted, out, batch_size, padding_side)
    else:
        raise ValueError(f"unknown method {method!r}: use 'packed' or 'reference'")
    return out  # type: ignore[return-value]


def _gather_means(lm, head, hidden: torch.Tensor, requests: list[tuple[int, list[int]]]) -> list[float]:
    """For each ``(row, ids)``: the float32 mean of ``logits[row, ids]``, the logits of ``hidden``'s rows computed
    chunk by chunk (only [chunk, vocab] exist at a time)."""
    means: list[float] = [0.0] * len(requests)
    for c in range(0, hidden.shape[0], LOGIT_CHUNK):
        js = [j for j, (row, _) in enumerate(requests) if c <= row < c + LOGIT_CHUNK]
        if not js:
            continue
        # head in the model's dtype (what the authors' fp16 run produced), upcast as transformers 4.4x did
        logits = scaled_logits(lm, head(hidden[c : c + LOGIT_CHUNK]).float())
        rows = [requests[j][0] - c for j in js for _ in requests[j][1]]
        cols = [t for j in js for t in requests[j][1]]
        picked = logits[torch.tensor(rows, device=logits.device), torch.tensor(cols, device=logits.device)].cpu()
        for j, part in zip(js, picked.split([len(requests[j][1]) for j in js])):
            means[j] = float(part.mean())
    return means


@torch.inference_mode()
def _packed_mean_logits(
    model,
    items: list[ScoringItem],
    wanted,
    out,
    *,
    token_budget: int | None = None,
    max_batch: int | None = None,
    share_stem: int | None = SHARE_STEM,
    max_padding: float | str | None = "auto",
) -> None:
    backbone, head, lm, device, dtype, token_budget, max_padding = _packed_setup(model, token_budget, max_padding)
    rows = _plan_rows(items, max_row_tokens=max(token_budget, 1), share_stem=share_stem)

    def run(batch_rows: list[_Row]) -> None:
        picked, _, where = _packed_states(backbone, lm, batch_rows, items, device, dtype)
        requests, dest = [], []
        for t, (i, u, _) in enumerate(where):  # one scored token per continuation: picked[t] is its position
            for k, ids in wanted[i][u]:
                requests.append((t, ids))
                dest.append((i, k))
        for (i, k), mean in zip(dest, _gather_means(lm, head, picked, requests)):
            out[i][k] = mean

    _run_batches(rows, items, token_budget, max_batch, max_padding, device, run)


@torch.inference_mode()
def _reference_mean_logits(model, items: list[ScoringItem], wanted, out, batch_size: int, padding_side: str) -> None:
    """One plain forward per distinct position (prefix + continuation up to it), the logits of its last token."""
    device = next(model.parameters()).device
    seqs = [
        (i, u, item.prefix + cont[:-1]) for i, item in enumerate(items) for u, cont in enumerate(item.continuations)
    ]
    for s in range(0, len(seqs), batch_size):
        chunk = seqs[s : s + batch_size]
        logits, offsets = _plain_forward(model, [ids for _, _, ids in chunk], padding_side, device)
        last = [o + len(ids) - 1 for o, (_, _, ids) in zip(offsets, chunk)]
        picked = logits[torch.arange(len(chunk), device=device), torch.tensor(last, device=device)].float().cpu()
        del logits
        for b, (i, u, _) in enumerate(chunk):
            for k, ids in wanted[i][u]:
                out[i][k] = float(picked[b, ids].mean())


def continuation_logprobs(model, items: Sequence[ScoringItem], *, method: str = "packed", **kwargs):
    """Dispatch to the packed (fast) or reference path."""
    if method == "packed":
        return packed_logprobs(model, items, **kwargs)
    if method == "reference":
        return reference_logprobs(model, items, **kwargs)
    raise ValueError(f"unknown method {method!r}: use 'packed' or 'reference'")

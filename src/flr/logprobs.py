"""The kernel: teacher-forced log-probs of many continuations of one shared prefix.

Two paths compute the same numbers:

- ``packed`` (fast): one row per example holds the prefix once, then every continuation; a 4D attention mask lets
  each continuation see the prefix and its own earlier tokens only, and position ids restart after the prefix for
  each continuation. The LM head and log-softmax run only at the scored positions. Cost ~ 2·N·(P + K·F) FLOPs
  instead of 2·N·K·(P + F) and no K copies of the prefix's KV cache.
- ``reference``: one ordinary forward pass per (prefix + continuation), full logits, full log-softmax. Plain and
  obviously right; the tests hold the fast path to it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from flr.chat import ScoringItem

logger = logging.getLogger(__name__)

LOGIT_CHUNK = 1024  # rows of [*, vocab] logits materialized at once


@dataclass
class _Row:
    item: int
    prefix: list[int]
    conts: list[int]  # indices into the item's continuations

    def length(self, item: ScoringItem) -> int:
        return len(self.prefix) + sum(len(item.continuations[k]) for k in self.conts)


def split_lm(model):
    """(backbone, lm_head, lm) of a causal LM, a PEFT-wrapped one included."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return lm.get_decoder(), lm.get_output_embeddings(), lm


def _head_logprobs(lm, head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) from hidden states, chunked so only [chunk, vocab] logits exist at a time."""
    out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    scale = getattr(lm.config, "logit_scale", None)
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    for i in range(0, hidden.shape[0], LOGIT_CHUNK):
        logits = head(hidden[i : i + LOGIT_CHUNK]).float()
        if scale is not None:
            logits = logits * scale
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        tgt = targets[i : i + LOGIT_CHUNK]
        out[i : i + LOGIT_CHUNK] = logits.gather(-1, tgt[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return out


def _plan_rows(items: Sequence[ScoringItem], max_row_tokens: int) -> list[_Row]:
    """One row per example; an example too long for one row is split into several rows over its continuations."""
    rows = []
    for i, item in enumerate(items):
        current, length = [], len(item.prefix)
        for k, cont in enumerate(item.continuations):
            if current and length + len(cont) > max_row_tokens:
                rows.append(_Row(i, item.prefix, current))
                current, length = [], len(item.prefix)
            current.append(k)
            length += len(cont)
        rows.append(_Row(i, item.prefix, current))
    return rows


def _batches(rows: list[_Row], items, token_budget: int, max_batch: int | None):
    """Length-sorted batches whose padded size (rows x longest row) stays within the token budget."""
    order = sorted(range(len(rows)), key=lambda r: rows[r].length(items[rows[r].item]), reverse=True)
    batch, longest = [], 0
    for r in order:
        length = rows[r].length(items[rows[r].item])
        if batch and (max(longest, length) * (len(batch) + 1) > token_budget or len(batch) == max_batch):
            yield batch
            batch, longest = [], 0
        batch.append(r)
        longest = max(longest, length)
    if batch:
        yield batch


def _mask_value(model, dtype):
    """Boolean masks for sdpa/flex; additive float masks for eager attention."""
    impl = getattr(model.config, "_attn_implementation", "sdpa")
    return impl == "eager"


@torch.inference_mode()
def packed_logprobs(
    model,
    items: Sequence[ScoringItem],
    *,
    token_budget: int = 16384,
    max_batch: int | None = None,
) -> list[list[torch.Tensor]]:
    """Log-probs of every scored token, for each item and continuation, sharing each prefix (the fast path)."""
    backbone, head, lm = split_lm(model)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    out: list[list[torch.Tensor | None]] = [[None] * len(it.continuations) for it in items]
    rows = _plan_rows(items, max_row_tokens=max(token_budget, 1))
    pending = list(_batches(rows, items, token_budget, max_batch))
    while pending:
        batch = pending.pop(0)
        try:
            _packed_batch(backbone, head, lm, [rows[r] for r in batch], items, out, device, dtype, model)
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(batch) // 2
            logger.warning("out of memory on %d rows: retrying in halves", len(batch))
            pending[:0] = [batch[:half], batch[half:]]
    return out  # type: ignore[return-value]


def _packed_batch(backbone, head, lm, rows: list[_Row], items, out, device, dtype, model) -> None:
    lengths = [row.length(items[row.item]) for row in rows]
    width = max(lengths)
    n = len(rows)
    input_ids = torch.zeros(n, width, dtype=torch.long)
    position_ids = torch.zeros(n, width, dtype=torch.long)
    allowed = torch.zeros(n, width, width, dtype=torch.bool)
    allowed[:, torch.arange(width), torch.arange(width)] = True  # padding attends to itself: no empty softmax rows
    gather_row, gather_pos, targets, where = [], [], [], []
    for b, row in enumerate(rows):
        item = items[row.item]
        p = len(row.prefix)
        if p == 0:
            raise ValueError("a continuation needs a non-empty prefix to be conditioned on")
        input_ids[b, :p] = torch.tensor(row.prefix)
        position_ids[b, :p] = torch.arange(p)
        allowed[b, :p, :p] = torch.ones(p, p, dtype=torch.bool).tril()
        offset = p
        for k in row.conts:
            cont = item.continuations[k]
            f = len(cont)
            sl = slice(offset, offset + f)
            input_ids[b, sl] = torch.tensor(cont)
            position_ids[b, sl] = torch.arange(p, p + f)
            allowed[b, sl, :p] = True
            allowed[b, sl, sl] = torch.ones(f, f, dtype=torch.bool).tril()
            start, end = item.spans[k]
            for t in range(start, end):
                gather_row.append(b)
                gather_pos.append(offset + t - 1 if t > 0 else p - 1)
                targets.append(cont[t])
            where.append((row.item, k, end - start))
            offset += f
    if _mask_value(lm, dtype):
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    else:
        mask = allowed
    hidden = backbone(
        input_ids=input_ids.to(device),
        attention_mask=mask[:, None].to(device),
        position_ids=position_ids.to(device),
        use_cache=False,
    ).last_hidden_state
    picked = hidden[torch.tensor(gather_row, device=device), torch.tensor(gather_pos, device=device)]
    logprobs = _head_logprobs(lm, head, picked, torch.tensor(targets, device=device)).cpu()
    i = 0
    for item_idx, k, count in where:
        out[item_idx][k] = logprobs[i : i + count]
        i += count


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
        width = max(len(ids) for _, _, ids in chunk)
        input_ids = torch.zeros(len(chunk), width, dtype=torch.long)
        attention = torch.zeros(len(chunk), width, dtype=torch.long)
        offsets = []
        for b, (_, _, ids) in enumerate(chunk):
            o = width - len(ids) if padding_side == "left" else 0
            input_ids[b, o : o + len(ids)] = torch.tensor(ids)
            attention[b, o : o + len(ids)] = 1
            offsets.append(o)
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
        logits = model(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            position_ids=position_ids.to(device),
        ).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1).cpu()
        for b, (i, k, ids) in enumerate(chunk):
            p = len(items[i].prefix)
            start, end = items[i].spans[k]
            positions = torch.arange(offsets[b] + p + start - 1, offsets[b] + p + end - 1)
            tokens = torch.tensor(ids[p + start : p + end])
            out[i][k] = logprobs[b, positions, tokens]
    return out  # type: ignore[return-value]


def continuation_logprobs(model, items: Sequence[ScoringItem], *, method: str = "packed", **kwargs):
    """Dispatch to the packed (fast) or reference path."""
    if method == "packed":
        return packed_logprobs(model, items, **kwargs)
    if method == "reference":
        return reference_logprobs(model, items, **kwargs)
    raise ValueError(f"unknown method {method!r}: use 'packed' or 'reference'")

"""Reference points that need no follow-ups: response length, and trained classifier reward models."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from flr.chat import normalize_conversation
from flr.scorers.base import BaseScorer, ScoreResult


class LengthBaseline(BaseScorer):
    """Reward = the response's length in characters (longer wins): the bias every reward model must beat."""

    name = "length"
    chunk_size = 4096

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        return [ScoreResult(reward=float(len(r["response"]))) for r in records]


class ClassifierReward(BaseScorer):
    """Any Hugging Face sequence-classification reward model (``rm:<hub id or folder>``)."""

    def __init__(
        self,
        spec: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        max_length: int = 4096,
        trust_remote_code: bool = False,
    ):
        from transformers import AutoModelForSequenceClassification

        from flr.models import load_tokenizer, resolve_device, resolve_dtype, resolve_spec

        self.spec, self.batch_size, self.max_length = spec, batch_size, max_length
        self.name = f"rm:{spec}"
        dev = resolve_device(device)
        self.model = (
            AutoModelForSequenceClassification.from_pretrained(
                resolve_spec(spec), dtype=resolve_dtype(dtype, dev), trust_remote_code=trust_remote_code
            )
            .to(dev)
            .eval()
        )
        self.tokenizer = load_tokenizer(spec, trust_remote_code=trust_remote_code)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.chunk_size = batch_size

    def describe(self) -> dict:
        return {"scorer": "rm", "model": self.spec, "max_length": self.max_length}

    @torch.inference_mode()
    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        from flr.chat import PLAIN_CHAT_TEMPLATE

        texts = [
            self.tokenizer.apply_chat_template(
                normalize_conversation(r["prompt"]) + [{"role": "assistant", "content": r["response"]}],
                chat_template=self.tokenizer.chat_template or PLAIN_CHAT_TEMPLATE,
                tokenize=False,
            )
            for r in records
        ]
        enc = self.tokenizer(
            texts,
            add_special_tokens=False,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.model.device)
        logits = self.model(**enc).logits.float()
        rewards = logits[:, 0] if logits.shape[-1] == 1 else logits.log_softmax(-1)[:, -1]
        return [ScoreResult(reward=float(v)) for v in rewards.cpu()]

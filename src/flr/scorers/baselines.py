"""Reference points that need no follow-ups: response length, and trained classifier reward models."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from flr.scorers.base import BaseScorer, ScoreResult


class LengthBaseline(BaseScorer):
    """Reward = the response's length in characters (longer wins): the bias every reward model must beat."""

    name = "length"
    chunk_size = 4096

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        return [ScoreResult(reward=float(len(r["response"]))) for r in records]


class RandomBaseline(BaseScorer):
    """Reward = a uniform number in [0, 1) drawn from a hash of the conversation and the response: the chance
    baseline (random mining, accuracy 50%), the same for the same text in every run and on every machine."""

    name = "random"
    chunk_size = 4096

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        from flr.hashing import content_fingerprint

        return [
            ScoreResult(reward=int(content_fingerprint([r["prompt"], r["response"]]), 16) / 16**16) for r in records
        ]


def classifier_ids(renderer, prompt, response: str) -> list[int]:
    """Token ids a classifier RM reads: the conversation + response + end of turn, rendered and cut from the left
    exactly as FLR's scorer renders them (:class:`flr.kernel.chat.ChatRenderer`)."""
    item = renderer.response_item(prompt, response)
    return item.prefix + item.continuations[0][: item.spans[0][1]]


def load_classifier(
    spec: str, *, num_labels: int | None = None, device=None, dtype=torch.float32, trust_remote_code=False
):
    """A sequence-classification model from a spec ('default', a folder, a Hub id) or a PEFT adapter folder."""
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification

    from flr.kernel.models import adapter_base, is_adapter_dir, load_tokenizer, quiet_renames, resolve_spec

    path = resolve_spec(spec)
    kwargs = dict(dtype=dtype, trust_remote_code=trust_remote_code)
    if num_labels is not None:  # a fresh head (training from a causal LM); else the checkpoint's own
        kwargs["num_labels"] = num_labels
    if is_adapter_dir(path):
        from peft import PeftModel

        base = adapter_base(path)
        kwargs.setdefault("num_labels", 1)  # flr train rm's adapters score with one logit
        model = AutoModelForSequenceClassification.from_pretrained(resolve_spec(base), **kwargs)
        with quiet_renames():  # PEFT asks the model for transformers' renamed gradient-checkpointing flag
            model = PeftModel.from_pretrained(model, path)
        tokenizer = load_tokenizer(path if (Path(path) / "tokenizer_config.json").exists() else base)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
        tokenizer = load_tokenizer(spec, trust_remote_code=trust_remote_code)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model.to(device)
    return model, tokenizer


class ClassifierReward(BaseScorer):
    """Any Hugging Face sequence-classification reward model (``rm:<hub id, folder or flr train rm adapter>``).

    Conversations are rendered with the RM's chat template and cut from the left (oldest turns, then the prompt's
    start, then the response's start) like every flr scorer, so the response's end is always read.
    """

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
        from flr.kernel.chat import ChatRenderer
        from flr.kernel.models import resolve_device, resolve_dtype, weights_fingerprint

        self.spec, self.batch_size, self.max_length = spec, batch_size, max_length
        self.name = f"rm:{spec}"
        dev = resolve_device(device)
        self.model, self.tokenizer = load_classifier(
            spec, device=dev, dtype=resolve_dtype(dtype, dev), trust_remote_code=trust_remote_code
        )
        self.model.eval()
        self.renderer = ChatRenderer(self.tokenizer, max_length=max_length)
        self.weights_id = weights_fingerprint(spec)
        self.chunk_size = batch_size

    def describe(self) -> dict:
        return {"scorer": "rm", "model": self.spec, "weights_id": self.weights_id, "max_length": self.max_length}

    @torch.inference_mode()
    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        ids = [classifier_ids(self.renderer, r["prompt"], r["response"]) for r in records]
        # right padding: the classifier reads its score at each row's last real token
        batch = self.tokenizer.pad({"input_ids": ids}, padding_side="right", return_tensors="pt")
        logits = self.model(**batch.to(self.model.device)).logits.float()
        rewards = logits[:, 0] if logits.shape[-1] == 1 else logits.log_softmax(-1)[:, -1]
        return [ScoreResult(reward=float(v)) for v in rewards.cpu()]

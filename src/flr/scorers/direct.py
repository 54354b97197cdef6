"""The direct baseline: how likely the scorer model finds the response itself."""

from __future__ import annotations

from collections.abc import Sequence

from flr.chat import ChatRenderer
from flr.logprobs import continuation_logprobs
from flr.scorers.base import BaseScorer, ScoreResult, config_dict
from flr.scorers.followup import FLRConfig, _kernel_kwargs, _reduce


class DirectLikelihood(BaseScorer):
    """Reward = mean (or sum) log-prob of the response's tokens given the conversation."""

    name = "direct"

    def __init__(self, model, tokenizer, config: FLRConfig | None = None, *, model_name: str | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.config = config or FLRConfig()
        self.model_name = model_name or getattr(model, "name_or_path", "model")
        self.renderer = ChatRenderer(tokenizer, include_eot=self.config.include_eot, max_length=self.config.max_length)
        self.chunk_size = max(self.config.batch_size * 4, 16)

    def describe(self) -> dict:
        keep = ("statistic", "include_eot", "max_length")
        return {
            "scorer": self.name,
            "model": self.model_name,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            **{k: v for k, v in config_dict(self.config).items() if k in keep},
        }

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        items = [self.renderer.response_item(r["prompt"], r["response"]) for r in records]
        logprobs = continuation_logprobs(self.model, items, method=self.config.method, **_kernel_kwargs(self.config))
        return [
            ScoreResult(reward=_reduce(lps[0], self.config.statistic), truncated=item.truncated)
            for item, lps in zip(items, logprobs)
        ]

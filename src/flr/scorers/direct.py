"""The direct baseline: how likely the scorer model finds the response itself."""

from __future__ import annotations

from collections.abc import Sequence

from flr.kernel.logprobs import continuation_logprobs
from flr.scorers.base import LMScorer, ScorerConfig, ScoreResult, kernel_kwargs, reduce_logprobs


class DirectLikelihood(LMScorer):
    """Reward = mean (or sum) log-prob of the response's tokens given the conversation."""

    name = "direct"

    def __init__(self, model, tokenizer, config: ScorerConfig | None = None, *, model_name: str | None = None):
        super().__init__(model, tokenizer, config or ScorerConfig(), model_name=model_name)

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        items = [self.renderer.response_item(r["prompt"], r["response"]) for r in records]
        logprobs = continuation_logprobs(self.model, items, method=self.config.method, **kernel_kwargs(self.config))
        return [
            ScoreResult(reward=reduce_logprobs(lps[0], self.config.statistic), truncated=item.truncated)
            for item, lps in zip(items, logprobs)
        ]

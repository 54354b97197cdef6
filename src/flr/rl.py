"""FLR as an online reward: a TRL-compatible reward function (GRPO, RLOO, Online DPO ``reward_funcs``)."""

from __future__ import annotations

from collections.abc import Sequence

from flr.scorers.base import BaseScorer


def _as_response(completion) -> str:
    """TRL passes completions as strings (standard) or as lists of messages (conversational)."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role") == "assistant")


class FLRRewardFunction:
    """``reward_fn(prompts, completions, **kwargs) -> list[float]``, as TRL's online trainers call it.

    >>> from trl import GRPOTrainer                                   # doctest: +SKIP
    >>> reward = FLRRewardFunction(build_scorer("flr", model, tokenizer))  # doctest: +SKIP
    >>> GRPOTrainer(model=policy, reward_funcs=[reward], ...)          # doctest: +SKIP
    """

    def __init__(self, scorer: BaseScorer, *, scale: float = 1.0):
        self.scorer = scorer
        self.scale = scale
        self.__name__ = f"flr_{scorer.name}"  # TRL logs each reward function under its __name__

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs) -> list[float]:
        records = [{"prompt": p, "response": _as_response(c)} for p, c in zip(prompts, completions, strict=True)]
        return [self.scale * r.reward for r in self.scorer.score(records)]

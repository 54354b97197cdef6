"""FLR: the reward is how much more likely positive user follow-ups are than negative ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from flr.chat import ChatRenderer
from flr.followups import load_followups
from flr.logprobs import continuation_logprobs
from flr.scorers.base import BaseScorer, ScoreResult, config_dict


@dataclass
class FLRConfig:
    """How FLR turns follow-up likelihoods into a reward."""

    followups: str | None = field(
        default=None, metadata={"help": "Follow-up set: a YAML/JSON file, or 'default' (flr's own set)."}
    )
    categories: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated categories to use ('all' for every category in the set). Default: the "
            "paper's three: understanding, engagingness, instruction_following."
        },
    )
    weights: str | None = field(
        default=None, metadata={"help": "Comma-separated category weights, in --categories order. Default: equal."}
    )
    statistic: str = field(
        default="mean",
        metadata={
            "help": "Per follow-up statistic: mean (token-averaged log-prob, the paper's) or sum.",
            "choices": ["mean", "sum"],
        },
    )
    include_eot: bool = field(
        default=False,
        metadata={"help": "Also score the end-of-turn token after each follow-up (off: the follow-up text only)."},
    )
    max_length: int = field(
        default=2048,
        metadata={
            "help": "Cap on prefix + follow-up tokens: older turns go first, then the prompt's start, then "
            "the response's start; the follow-up is never cut and the record is marked truncated."
        },
    )
    batch_size: int = field(default=16, metadata={"help": "Examples per forward pass (at most)."})
    token_budget: int = field(
        default=16384, metadata={"help": "Padded tokens per forward pass; halves itself on out-of-memory."}
    )
    method: str = field(
        default="packed",
        metadata={
            "help": "packed: shared prefix computed once (fast); reference: one forward per follow-up.",
            "choices": ["packed", "reference"],
        },
    )


def _kernel_kwargs(config) -> dict:
    if config.method == "packed":
        return {"token_budget": config.token_budget, "max_batch": config.batch_size}
    return {"batch_size": config.batch_size}


def _reduce(logprobs, statistic: str) -> float:
    return float(logprobs.mean() if statistic == "mean" else logprobs.sum())


class FollowUpReward(BaseScorer):
    """Reward = weighted mean over categories of (mean positive follow-up score - mean negative one)."""

    name = "flr"

    def __init__(self, model, tokenizer, config: FLRConfig | None = None, *, model_name: str | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.config = config or FLRConfig()
        self.model_name = model_name or getattr(model, "name_or_path", "model")
        self.followups = load_followups(self.config.followups).select(self.config.categories)
        self.utterances = self.followups.utterances
        names = list(self.followups.categories)
        from flr.errors import FLRError

        try:
            weights = [float(w) for w in self.config.weights.split(",")] if self.config.weights else [1.0] * len(names)
        except ValueError:
            raise FLRError(f"--weights must be comma-separated numbers, got {self.config.weights!r}") from None
        if len(weights) != len(names):
            raise FLRError(f"--weights has {len(weights)} values for {len(names)} categories {names}")
        if sum(weights) == 0:
            raise FLRError(f"--weights must not sum to zero, got {self.config.weights!r}")
        self.weights = dict(zip(names, weights))
        self.renderer = ChatRenderer(tokenizer, include_eot=self.config.include_eot, max_length=self.config.max_length)
        self.chunk_size = max(self.config.batch_size * 4, 16)

    def describe(self) -> dict:
        return {
            "scorer": self.name,
            "model": self.model_name,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            "followups": self.followups.fingerprint(),
            "weights": self.weights,
            **{k: v for k, v in config_dict(self.config).items() if k in ("statistic", "include_eot", "max_length")},
        }

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        texts = [text for _, _, text in self.utterances]
        items = [self.renderer.followup_item(r["prompt"], r["response"], texts) for r in records]
        logprobs = continuation_logprobs(self.model, items, method=self.config.method, **_kernel_kwargs(self.config))
        return [self._aggregate(item.truncated, lps) for item, lps in zip(items, logprobs)]

    def _aggregate(self, truncated: bool, logprobs) -> ScoreResult:
        sums: dict[tuple[str, str], list[float]] = {}
        details = []
        for (category, polarity, text), lp in zip(self.utterances, logprobs):
            value = _reduce(lp, self.config.statistic)
            sums.setdefault((category, polarity), []).append(value)
            details.append(
                {
                    "category": category,
                    "polarity": polarity,
                    "text": text,
                    "logprob_mean": float(lp.mean()),
                    "logprob_sum": float(lp.sum()),
                    "tokens": len(lp),
                }
            )
        categories = {
            c: sum(sums[(c, "positive")]) / len(sums[(c, "positive")])
            - sum(sums[(c, "negative")]) / len(sums[(c, "negative")])
            for c in self.weights
        }
        total = sum(self.weights.values())
        reward = sum(self.weights[c] * s for c, s in categories.items()) / total
        return ScoreResult(reward=reward, categories=categories, truncated=truncated, details=details)

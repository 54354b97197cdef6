"""FLR: the reward is how much more likely positive user follow-ups are than negative ones."""

from __future__ import annotations

import math
from collections.abc import Sequence

from flr.followups import load_followups
from flr.logprobs import continuation_logprobs
from flr.scorers.base import LMScorer, ScorerConfig, ScoreResult, kernel_kwargs

FLRConfig = ScorerConfig  # its former name, kept for code that imports it


# follow-ups are rendered against this many tokens at least when a conversation is cut to --max-length, so that
# where a conversation is cut does not depend on the follow-up set (cached per-follow-up scores stay exact)
FOLLOWUP_RESERVE = 64


def _tuned_set(model) -> str | None:
    """The follow-up set saved with a tuned adapter (``flr train flr``), when ``model`` carries one."""
    from pathlib import Path

    from flr.followups import SCORER_FOLLOWUPS

    folder = getattr(model, "flr_adapter_dir", None)
    path = Path(folder, SCORER_FOLLOWUPS) if folder else None
    return str(path) if path is not None and path.exists() else None


def check_length_term(config: ScorerConfig, followups) -> float | None:
    """The length coefficient ``--length-term`` adds (None when off); a set fitted without one is an error."""
    from flr.errors import FLRError

    if not config.length_term:
        return None
    if followups.length_coefficient is None:
        raise FLRError(
            f"--length-term needs a follow-up set fitted with flr followups fit --control-length; "
            f"'{followups.name}' has no length_coefficient"
        )
    return followups.length_coefficient


class FollowUpReward(LMScorer):
    """Reward = weighted mean over categories of (weighted positive follow-up scores - weighted negative ones).

    With an unweighted follow-up set each weight is 1/n, the paper's difference of means. With a score cache
    attached (:meth:`attach_cache`), per-follow-up log-probs are stored and reused across follow-up sets, weights,
    categories and calibration: only missing (record, follow-up) pairs are computed.
    """

    name = "flr"

    def __init__(self, model, tokenizer, config: ScorerConfig | None = None, *, model_name: str | None = None):
        super().__init__(model, tokenizer, config or ScorerConfig(), model_name=model_name)
        from flr.errors import FLRError

        self.followups = load_followups(self.config.followups or _tuned_set(model)).select(self.config.categories)
        self.utterances = self.followups.utterances
        self.coefficients = self.followups.coefficients
        names = list(self.followups.categories)
        try:
            weights = [float(w) for w in self.config.weights.split(",")] if self.config.weights else [1.0] * len(names)
        except ValueError:
            raise FLRError(f"--weights must be comma-separated numbers, got {self.config.weights!r}") from None
        if len(weights) != len(names):
            raise FLRError(f"--weights has {len(weights)} values for {len(names)} categories {names}")
        if sum(weights) == 0:
            raise FLRError(f"--weights must not sum to zero, got {self.config.weights!r}")
        self.weights = dict(zip(names, weights))
        self.length_coefficient = check_length_term(self.config, self.followups)
        self.reserve = min(FOLLOWUP_RESERVE, (self.config.max_length or 0) // 8)
        self.logprob_cache = None

    def describe(self) -> dict:
        out = {
            **super().describe(),
            "followups": self.followups.fingerprint(),
            "weights": self.weights,
        }
        if self.config.calibration != "none":
            out.update(calibration=self.config.calibration, content_free=self.config.content_free)
        if self.length_coefficient:  # absent when off: older fingerprints stay valid
            out["length_term"] = self.length_coefficient
        return out

    def raw_fingerprint(self) -> str:
        """What one follow-up's log-prob depends on: the model's weights, dtype and the rendering settings."""
        import hashlib
        import json

        keep = {k: v for k, v in super().describe().items() if k != "scorer"}
        blob = json.dumps([keep, FOLLOWUP_RESERVE], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def attach_cache(self, cache) -> None:
        """Store and reuse per-follow-up log-probs in ``cache`` (a :class:`flr.cache.ScoreCache`)."""
        self.logprob_cache = cache

    # -- scoring ---------------------------------------------------------------------------------------

    def followup_values(self, records: Sequence[dict]) -> list[tuple[bool, list[dict]]]:
        """Per record: (truncated, per follow-up ``{mean, sum, tokens}``), from the cache where it has them."""
        from flr.cache import text_key

        texts = [text for _, _, text in self.utterances]
        keys = [text_key(r["prompt"], r["response"]) for r in records]
        raw = self.raw_fingerprint()
        known = self.logprob_cache.get_followups(raw, keys, texts) if self.logprob_cache is not None else {}
        todo = [i for i, k in enumerate(keys) if any((k, t) not in known for t in texts)]
        if todo:
            items, missing = [], []
            for i in todo:
                wanted = [t for t in texts if (keys[i], t) not in known]
                r = records[i]
                items.append(self.renderer.followup_item(r["prompt"], r["response"], wanted, reserve=self.reserve))
                missing.append(wanted)
            logprobs = continuation_logprobs(
                self.model, items, method=self.config.method, **kernel_kwargs(self.config)
            )
            fresh = {}
            for i, item, wanted, lps in zip(todo, items, missing, logprobs):
                for text, lp in zip(wanted, lps):
                    fresh[(keys[i], text)] = {
                        "mean": float(lp.mean()),
                        "sum": float(lp.sum()),
                        "tokens": len(lp),
                        "truncated": item.truncated,
                    }
            if self.logprob_cache is not None:
                self.logprob_cache.put_followups(raw, fresh)
            known.update(fresh)
        out = []
        for k in keys:
            values = [known[(k, t)] for t in texts]
            out.append((any(v["truncated"] for v in values), values))
        return out

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        values = self.followup_values(records)
        baselines = [None] * len(records)
        if self.config.calibration == "pmi":
            from flr.cache import text_key

            prompts = {text_key(r["prompt"], ""): r["prompt"] for r in records}
            neutral = [{"prompt": p, "response": self.config.content_free} for p in prompts.values()]
            by_prompt = dict(zip(prompts, self.followup_values(neutral)))
            baselines = [by_prompt[text_key(r["prompt"], "")][1] for r in records]
        results = [self._aggregate(truncated, v, b) for (truncated, v), b in zip(values, baselines)]
        if self.length_coefficient:  # --length-term: the fitted length covariate, outside the categories
            for r, res in zip(records, results):
                res.reward += self.length_coefficient * math.log(max(1, len(r["response"])))
        return results

    def _aggregate(self, truncated: bool, values: list[dict], baseline: list[dict] | None = None) -> ScoreResult:
        stat = self.config.statistic
        categories = dict.fromkeys(self.weights, 0.0)
        details = []
        for i, ((category, polarity, text), coef, v) in enumerate(zip(self.utterances, self.coefficients, values)):
            value = v[stat] - (baseline[i][stat] if baseline is not None else 0.0)
            categories[category] += coef * value if polarity == "positive" else -coef * value
            detail = {
                "category": category,
                "polarity": polarity,
                "text": text,
                "logprob_mean": v["mean"],
                "logprob_sum": v["sum"],
                "tokens": v["tokens"],
            }
            if baseline is not None:
                detail["calibrated"] = value
            details.append(detail)
        total = sum(self.weights.values())
        reward = sum(self.weights[c] * s for c, s in categories.items()) / total
        return ScoreResult(reward=reward, categories=categories, truncated=truncated, details=details)

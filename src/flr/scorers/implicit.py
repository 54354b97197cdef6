"""A tuned policy's implicit reward, as RewardBench scores DPO models: β·(log π(y|x) − log π_ref(y|x)), the log-probs
summed over the response's tokens. It judges a policy by what it learned, with no reward model and no FLR, so
``flr eval --scorers implicit:runs/dpo`` measures on held-out human pairs whether tuning moved the policy toward
what people prefer.

Spec: ``implicit:<policy>`` (a PEFT adapter: the reference is its base, the same weights with the adapter off, so
one model is loaded) or ``implicit:<policy>@<reference>`` (any two causal LMs with the same tokenizer)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from flr.errors import FLRError
from flr.kernel.logprobs import continuation_logprobs
from flr.scorers.base import LMScorer, ScorerConfig, ScoreResult, kernel_kwargs

PREFIX = "implicit:"
DEFAULT_BETA = 0.1  # TRL's DPOConfig default; it scales the reward, never a ranking


def parse_spec(name: str) -> tuple[str, str | None]:
    """``implicit:<policy>[@<reference>]`` -> (policy, reference or None: the adapter's base)."""
    spec = name[len(PREFIX) :]
    policy, _, reference = spec.rpartition("@") if "@" in spec else (spec, "", "")
    if not policy:
        raise FLRError(f"scorer '{name}': give the tuned policy, implicit:<adapter folder>[@<reference model>]")
    return policy, reference or None


def check_spec(name: str) -> tuple[str, str]:
    """(policy, reference) of an ``implicit:`` scorer, checked before any model loads: the policy is a model or an
    adapter, the reference is known, and both read text with the same tokenizer (else log-probs do not compare)."""
    from flr.kernel.models import adapter_base, is_adapter_dir, load_tokenizer, resolve_spec

    policy, reference = parse_spec(name)
    path = resolve_spec(policy)
    local = Path(path)
    if local.is_dir() and not is_adapter_dir(path) and not (local / "config.json").exists():
        raise FLRError(f"scorer '{name}': {policy} is not a policy (no adapter_config.json or config.json in it)")
    if reference is None:
        if not is_adapter_dir(path):
            raise FLRError(
                f"scorer '{name}': {policy} is a full model, not an adapter: name its reference, "
                f"implicit:{policy}@<reference model>"
            )
        reference = adapter_base(path)
    resolve_spec(reference)  # a missing local reference folder: one line here
    policy_vocab = load_tokenizer(policy if _has_tokenizer(path) else adapter_base(path)).get_vocab()
    if load_tokenizer(reference).get_vocab() != policy_vocab:
        raise FLRError(f"scorer '{name}': {policy} and {reference} have different tokenizers")
    return policy, reference


def _has_tokenizer(path: str) -> bool:
    from flr.kernel.models import is_adapter_dir

    return not is_adapter_dir(path) or (Path(path) / "tokenizer_config.json").exists()


def trained_beta(policy: str) -> float | None:
    """The β a ``flr train dpo|kto`` adapter was trained with (its summary.json), so rewards read in its units."""
    summary = Path(policy) / "summary.json"
    if not summary.exists():
        return None
    for trainer_config in json.loads(summary.read_text()).get("trainer_config", {}).values():
        if isinstance(trainer_config, dict) and trainer_config.get("beta"):  # GRPO's default 0 (no KL): not a scale
            return float(trainer_config["beta"])
    return None


class ImplicitReward(LMScorer):
    """Reward = β·(Σ log π(y|x) − Σ log π_ref(y|x)) over the response's tokens; 0 when policy = reference."""

    def __init__(
        self,
        model,
        tokenizer,
        config: ScorerConfig | None = None,
        *,
        reference=None,
        beta: float | None = None,
        name: str = "implicit",
        model_name: str | None = None,
    ):
        super().__init__(model, tokenizer, config or ScorerConfig(), model_name=model_name)
        if self.config.statistic not in ("mean", "sum"):  # it always sums, as DPO's loss does
            raise FLRError(f"the implicit reward sums log-probs: --statistic {self.config.statistic} does not apply")
        self.reference = reference  # None: the policy's adapter switched off
        if reference is None and not hasattr(model, "disable_adapter"):
            raise FLRError("the implicit reward of a full model needs a reference model")
        self.beta = DEFAULT_BETA if beta is None else beta
        self.name = name

    def attach_cache(self, cache) -> None:
        """Keep the reference's log-prob sums in ``cache``: every policy tuned from one base shares them, so judging
        several arms computes the reference once."""
        self.cache = cache

    def reference_fingerprint(self) -> str:
        from flr.hashing import content_fingerprint

        if self.reference is not None:
            weights = getattr(self.reference, "flr_fingerprint", None)
        else:  # the adapter switched off: its base's weights
            from flr.kernel.models import adapter_base, weights_fingerprint

            weights = weights_fingerprint(adapter_base(self.model.flr_adapter_dir))
        keep = ("include_eot", "max_length")
        settings = {k: v for k, v in self.describe().items() if k in keep or k == "dtype"}
        return content_fingerprint({"scorer": "reference log-prob sum", "weights": weights, **settings})

    def describe(self) -> dict:
        out = {k: v for k, v in super().describe().items() if k != "statistic"}
        reference = "adapter off" if self.reference is None else getattr(self.reference, "flr_fingerprint", None)
        return {**out, "beta": self.beta, "reference_weights": reference}

    def _reference_sums(self, records: Sequence[dict], items) -> list[float]:
        """The reference's log-prob sums, from the cache where it has them (computed once per base and text)."""
        from flr.scorers.cache import text_key

        cache = getattr(self, "cache", None)
        keys = [text_key(r["prompt"], r["response"]) for r in records]
        fingerprint = self.reference_fingerprint() if cache is not None else None
        known = {k: r.reward for k, r in cache.get(fingerprint, keys).items()} if cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in known]
        if todo:
            todo_items = [items[i] for i in todo]
            if self.reference is None:
                with self.model.disable_adapter():
                    fresh = self._logprob_sums(self.model, todo_items)
            else:
                fresh = self._logprob_sums(self.reference, todo_items)
            known.update({keys[i]: v for i, v in zip(todo, fresh)})
            if cache is not None:
                cache.put(fingerprint, {keys[i]: ScoreResult(reward=v) for i, v in zip(todo, fresh)})
        return [known[k] for k in keys]

    def _logprob_sums(self, model, items) -> list[float]:
        lps = continuation_logprobs(model, items, method=self.config.method, **kernel_kwargs(self.config))
        return [float(lp[0].sum()) for lp in lps]

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        items = [self.renderer.response_item(r["prompt"], r["response"]) for r in records]
        policy = self._logprob_sums(self.model, items)
        reference = self._reference_sums(records, items)
        return [
            ScoreResult(
                reward=self.beta * (p - r),
                truncated=item.truncated,
                details=[{"policy_logprob": p, "reference_logprob": r}],
            )
            for item, p, r in zip(items, policy, reference)
        ]


def build_implicit(name: str, model_config=None, config: ScorerConfig | None = None) -> ImplicitReward:
    """The ``implicit:`` scorer ``name``: checks the spec, then loads the policy (and a separate reference only when
    one is named) on ``model_config``'s device and dtype."""
    import dataclasses

    from flr.kernel.models import ModelConfig, is_adapter_dir, load_model, resolve_spec

    policy, reference = check_spec(name)
    mc = model_config or ModelConfig()
    model, tokenizer = load_model(dataclasses.replace(mc, model=policy, tokenizer=None))
    ref_model = None
    named = parse_spec(name)[1]
    if named is not None or not is_adapter_dir(resolve_spec(policy)):
        ref_model, _ = load_model(dataclasses.replace(mc, model=reference, tokenizer=None))
    beta = trained_beta(resolve_spec(policy))
    return ImplicitReward(
        model, tokenizer, config, reference=ref_model, beta=beta, name=name, model_name=policy.rstrip("/")
    )

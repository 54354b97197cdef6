"""Reward sources behind one protocol (base): FLR (flr), the direct likelihood (direct), length, random and
classifier reward models (baselines), a tuned policy's implicit reward (implicit), their SQLite score cache (cache)
and length- and style-debiased rewards (debias).

Imports: flr.arguments, flr.errors, flr.followups, flr.hashing, flr.kernel, flr.paths, flr.patterns, flr.perturbations
"""

from __future__ import annotations

from flr.scorers.base import BaseScorer, Scorer, ScorerConfig, ScoreResult

__all__ = [
    "BaseScorer",
    "ClassifierReward",
    "DirectLikelihood",
    "FollowUpReward",
    "LengthBaseline",
    "RandomBaseline",
    "ScoreResult",
    "Scorer",
    "ScorerConfig",
    "build_scorer",
    "build_scorers",
]


def __getattr__(name: str):
    """The scorers that need torch load on first use, so that ``ScorerConfig`` (the flags of ``flr score --help``)
    imports without it."""
    if name in ("ClassifierReward", "LengthBaseline", "RandomBaseline"):
        from flr.scorers.baselines import ClassifierReward, LengthBaseline, RandomBaseline

        return {
            "ClassifierReward": ClassifierReward,
            "LengthBaseline": LengthBaseline,
            "RandomBaseline": RandomBaseline,
        }[name]
    if name == "DirectLikelihood":
        from flr.scorers.direct import DirectLikelihood

        return DirectLikelihood
    if name == "FollowUpReward":
        from flr.scorers.flr import FollowUpReward

        return FollowUpReward
    raise AttributeError(f"module 'flr.scorers' has no attribute {name!r}")


SCORERS = ("flr", "direct", "length", "random", "rm:<model>", "implicit:<policy>[@<reference>]")


def is_scorer_name(name: str) -> bool:
    return name in ("flr", "direct", "length", "random") or any(
        name.startswith(prefix) and len(name) > len(prefix) for prefix in ("rm:", "implicit:")
    )


def build_scorers(names, model_config, config: ScorerConfig | None = None) -> dict[str, BaseScorer]:
    """``{name: scorer}`` for ``names``; the causal LM that ``flr`` and ``direct`` read is loaded once, shared."""
    from flr.kernel.models import load_model, model_name
    from flr.scorers.implicit import PREFIX, check_spec

    for name in names:  # every policy and tokenizer checked before the first model loads
        if name.startswith(PREFIX):
            check_spec(name)

    model = tokenizer = None
    if any(n in ("flr", "direct") for n in names):
        model, tokenizer = load_model(model_config)
    short = model_name(model_config.model)
    return {
        n: build_scorer(n, model, tokenizer, model_config=model_config, config=config, model_name=short) for n in names
    }


def build_scorer(
    name: str,
    model=None,
    tokenizer=None,
    *,
    model_config=None,
    config: ScorerConfig | None = None,
    model_name: str | None = None,
) -> BaseScorer:
    """A scorer by name: ``flr``, ``direct``, ``length``, ``random``, ``rm:<hub id or folder>`` or ``implicit:<policy>[@<ref>]``
    (:mod:`flr.scorers.implicit`: it loads its own models on ``model_config``'s device).

    ``flr`` and ``direct`` need a causal LM: pass ``model`` and ``tokenizer``, or a ``model_config``
    (:class:`flr.kernel.models.ModelConfig`) to load one.
    """
    from flr.errors import FLRError
    from flr.kernel.models import ModelConfig, load_model
    from flr.kernel.models import model_name as short_name
    from flr.scorers.baselines import ClassifierReward, LengthBaseline, RandomBaseline
    from flr.scorers.direct import DirectLikelihood
    from flr.scorers.flr import FollowUpReward

    if not is_scorer_name(name):
        raise FLRError(f"unknown scorer '{name}': use one of {', '.join(SCORERS)}")
    if name == "length":
        return LengthBaseline()
    if name == "random":
        return RandomBaseline()
    if name.startswith("implicit:"):
        from flr.scorers.implicit import build_implicit

        return build_implicit(name, model_config, config)
    if name.startswith("rm:"):
        mc = model_config or ModelConfig()
        batch = config.batch_size if config else 8
        return ClassifierReward(
            name[3:],
            device=mc.device,
            dtype=mc.dtype,
            batch_size=batch,
            max_length=config.max_length if config else 4096,
            trust_remote_code=mc.trust_remote_code,
        )
    if model is None:
        mc = model_config or ModelConfig()
        model, tokenizer = load_model(mc)
        model_name = model_name or short_name(mc.model)
    cls = FollowUpReward if name == "flr" else DirectLikelihood
    return cls(model, tokenizer, config, model_name=model_name)

"""flr: Follow-up Likelihood as Reward.

The public API, importable from here without loading torch until first use::

    from flr import FollowUpReward, ScorerConfig, build_scorer, load_model, load_followups

The layout (docs/DESIGN.md): plain modules at the top (records, followups, errors, provenance, arguments, paths),
then ``kernel/`` (models, chat rendering, packed log-probs), ``scorers/``, ``eval/``, ``training/``, ``jobs/``,
``serving/`` and ``commands/`` (the CLI), each importing only from the ones before it.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "FollowUpReward": "flr.scorers",
    "ScorerConfig": "flr.scorers",
    "ScoreResult": "flr.scorers",
    "DirectLikelihood": "flr.scorers",
    "LengthBaseline": "flr.scorers",
    "ClassifierReward": "flr.scorers",
    "build_scorer": "flr.scorers",
    "ModelConfig": "flr.kernel.models",
    "load_model": "flr.kernel.models",
    "FollowUpSet": "flr.followups",
    "load_followups": "flr.followups",
    "run_eval": "flr.jobs.eval",
    "FLRRewardFunction": "flr.rl",
    "RemoteRewardFunction": "flr.rl",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flr' has no attribute {name!r}")

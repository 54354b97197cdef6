"""The short path to flr's online-RL reward functions (``flr.rl.FLRRewardFunction``, ``RemoteRewardFunction``,
``compute_score`` for verl): they live in :mod:`flr.serving.rl`."""

from flr.serving.rl import (
    QUERY_TEMPLATES,
    FLRRewardFunction,
    RemoteRewardFunction,
    RewardServiceError,
    compute_score,
    split_query,
)

__all__ = [
    "QUERY_TEMPLATES",
    "FLRRewardFunction",
    "RemoteRewardFunction",
    "RewardServiceError",
    "compute_score",
    "split_query",
]

"""Online-RL adapters: reward functions for TRL (GRPO, RLOO, Online DPO ``reward_funcs``), OpenRLHF and verl, in
process over any flr scorer (:class:`FLRRewardFunction`) or against a remote ``flr serve``
(:class:`RemoteRewardFunction`). What ``flr train grpo`` and ``flr serve`` both use; no torch at import time.

Imports: flr.kernel, flr.records, flr.scorers
"""

from flr.rl.reward import (
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

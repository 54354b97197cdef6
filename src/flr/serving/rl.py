"""FLR as an online reward: TRL-compatible reward functions (GRPO, RLOO, Online DPO ``reward_funcs``), in process
(:class:`FLRRewardFunction`) or against a remote ``flr serve`` (:class:`RemoteRewardFunction`), so that policy and
scorer can sit on different devices or machines."""

from __future__ import annotations

from collections.abc import Sequence

from flr.kernel.chat import QUERY_TEMPLATES, split_query  # noqa: F401 - part of flr.serving.rl's API
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

    def __init__(self, scorer: BaseScorer, *, scale: float = 1.0, truncation_penalty: float | None = None):
        self.scorer = scorer
        self.scale = scale
        self.truncation_penalty = truncation_penalty
        # TRL logs each reward function under its __name__: "flr" for FLR, "flr_direct", "flr_rm:..." otherwise
        self.__name__ = "flr" if scorer.name == "flr" else f"flr_{scorer.name}"

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs) -> list[float]:
        records = [{"prompt": p, "response": _as_response(c)} for p, c in zip(prompts, completions, strict=True)]
        rewards = [self.scale * r.reward for r in self.scorer.score(records)]
        return _penalize(rewards, kwargs, self.truncation_penalty)


def _penalize(rewards: list[float], kwargs: dict, penalty: float | None) -> list[float]:
    """Completions the policy cut off (no EOS among ``completion_ids``: TRL passes them) get ``penalty`` instead."""
    if penalty is None or kwargs.get("completion_ids") is None or kwargs.get("eos_token_id") is None:
        return rewards
    eos = kwargs["eos_token_id"]
    eos = set(eos) if isinstance(eos, list | tuple) else {eos}
    return [r if eos & set(ids) else penalty for r, ids in zip(rewards, kwargs["completion_ids"])]


class RemoteRewardFunction:
    """The same reward function, computed by a remote ``flr serve`` (POST /score), in requests of ``batch_size``.

    >>> reward = RemoteRewardFunction("http://scorer-host:8000", api_key="...")   # doctest: +SKIP
    >>> GRPOTrainer(model=policy, reward_funcs=[reward], ...)                     # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout: float = 300.0,
        retries: int = 2,
        scale: float = 1.0,
        truncation_penalty: float | None = None,
        name: str = "flr",
    ):
        self.url = url.rstrip("/") + "/score"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.batch_size, self.timeout, self.retries = batch_size, timeout, retries
        self.scale, self.truncation_penalty = scale, truncation_penalty
        self.__name__ = name

    def _post(self, records: list[dict]) -> list[float]:
        import httpx

        for attempt in range(self.retries + 1):
            try:
                reply = httpx.post(self.url, json={"records": records}, headers=self.headers, timeout=self.timeout)
                if reply.status_code < 500 or attempt == self.retries:
                    reply.raise_for_status()
                    return reply.json()["rewards"]
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
        raise RuntimeError("unreachable")

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs) -> list[float]:
        records = [{"prompt": p, "response": _as_response(c)} for p, c in zip(prompts, completions, strict=True)]
        rewards = []
        for start in range(0, len(records), self.batch_size):
            rewards += [self.scale * r for r in self._post(records[start : start + self.batch_size])]
        return _penalize(rewards, kwargs, self.truncation_penalty)


# -- OpenRLHF: full query texts are split by flr.kernel.chat.split_query (the reward service's /get_reward)


# -- verl: a custom reward function module ---------------------------------------------------------------

_VERL_CLIENT: RemoteRewardFunction | None = None


def compute_score(data_source, solution_str: str, ground_truth=None, extra_info: dict | None = None, **kwargs):
    """verl's custom reward function (``custom_reward_function.path`` = this file, ``name`` = compute_score).

    Calls a running ``flr serve`` at ``$FLR_URL`` (default http://127.0.0.1:8000; ``$FLR_API_KEY`` if set). verl
    passes the decoded response; the prompt must come in ``extra_info["prompt"]`` (a string or messages), which
    the dataset's ``extra_info`` column carries. ``data_source`` and ``ground_truth`` are not used: FLR needs no
    reference answer.
    """
    import os

    global _VERL_CLIENT
    if _VERL_CLIENT is None:
        url = os.environ.get("FLR_URL", "http://127.0.0.1:8000")
        _VERL_CLIENT = RemoteRewardFunction(url, api_key=os.environ.get("FLR_API_KEY"))
    prompt = (extra_info or {}).get("prompt")
    if prompt is None:
        raise ValueError("FLR needs the prompt: put it in the dataset's extra_info['prompt']")
    return _VERL_CLIENT([prompt], [solution_str])[0]

"""FLR as an online reward: TRL-compatible reward functions (GRPO, RLOO, Online DPO ``reward_funcs``), in process
(:class:`FLRRewardFunction`) or against a remote ``flr serve`` (:class:`RemoteRewardFunction`), so that policy and
scorer can sit on different devices or machines."""

from __future__ import annotations

from collections.abc import Sequence

from flr.kernel.chat import QUERY_TEMPLATES, split_query  # noqa: F401 - part of flr.rl's API
from flr.records import assistant_text
from flr.scorers.base import BaseScorer


def _as_response(completion) -> str:
    """TRL passes completions as strings (standard) or as lists of messages (conversational)."""
    return assistant_text(completion)


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


class RewardServiceError(RuntimeError):
    """The reward service refused the records for good (4xx, 500), or stayed busy or unreachable past the client's
    ``max_wait``: one line naming the service and the last answer."""


class _Busy(Exception):
    """503, 429, 502, 504 or no connection: worth another try, after ``retry_after`` seconds if the server said."""

    def __init__(self, why: str, retry_after: float | None = None):
        super().__init__(why)
        self.retry_after = retry_after


class _TooMany(Exception):
    """413, or a 503 that asks for fewer records: send the records in requests of ``at_most`` (half if unknown)."""

    def __init__(self, why: str, at_most: int | None):
        super().__init__(why)
        self.at_most = at_most


class _RetryAfterOrBackoff:
    """tenacity wait: the server's Retry-After, stretched by up to 25% so that clients refused together do not come
    back together; without one, exponential backoff with full jitter."""

    def __init__(self):
        import tenacity

        self.backoff = tenacity.wait_random_exponential(multiplier=0.5, max=30)

    def __call__(self, retry_state) -> float:
        import random

        after = getattr(retry_state.outcome.exception(), "retry_after", None)
        return after * random.uniform(1.0, 1.25) if after is not None else self.backoff(retry_state)


def _number(text: str | None) -> float | None:
    """Retry-After in seconds; None (backoff instead) when absent, an HTTP date or nonsense."""
    import math

    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


class RemoteRewardFunction:
    """The same reward function, computed by a remote ``flr serve`` (POST /score), in requests of ``batch_size``.

    A busy or unreachable service (503, 429, 502, 504, connection errors) is retried with exponential backoff and
    jitter, honouring Retry-After; a batch is split on 413 or on a 503 that asks for fewer records
    (``FLR-Max-Records``); after ``max_wait`` seconds of trying, one call raises :class:`RewardServiceError`.

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
        max_wait: float = 600.0,
        scale: float = 1.0,
        truncation_penalty: float | None = None,
        name: str = "flr",
    ):
        self.url = url.rstrip("/") + "/score"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.batch_size, self.timeout, self.max_wait = batch_size, timeout, max_wait
        self.scale, self.truncation_penalty = scale, truncation_penalty
        self.__name__ = name

    def _post_once(self, records: list[dict], deadline: float) -> list[float]:
        import time

        import httpx

        timeout = max(min(self.timeout, deadline - time.monotonic()), 1.0)
        try:
            reply = httpx.post(self.url, json={"records": records}, headers=self.headers, timeout=timeout)
        except httpx.TransportError as exc:
            raise _Busy(f"{type(exc).__name__}: {exc}") from None
        if reply.status_code == 200:
            return reply.json()["rewards"]
        try:
            detail = reply.json()["detail"]
        except (ValueError, KeyError, TypeError):
            detail = reply.text[:200]
        why = f"{reply.status_code} {detail}"
        at_most = reply.headers.get("FLR-Max-Records")
        if reply.status_code == 413 or (reply.status_code == 503 and at_most):
            raise _TooMany(why, int(at_most) if at_most and at_most.isdigit() else None)
        if reply.status_code in (429, 502, 503, 504):
            raise _Busy(why, _number(reply.headers.get("Retry-After")))
        raise RewardServiceError(f"{self.url} refused {len(records)} records: {why}")

    def _post(self, records: list[dict], deadline: float) -> list[float]:
        import time

        import tenacity

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Busy),
            wait=_RetryAfterOrBackoff(),
            stop=tenacity.stop_before_delay(max(deadline - time.monotonic(), 0)),
            reraise=True,
        )
        try:
            return retrying(self._post_once, records, deadline)
        except _TooMany as exc:
            if len(records) == 1:
                raise RewardServiceError(f"{self.url} refused a single record: {exc}") from None
            size = max(min(exc.at_most or (len(records) + 1) // 2, len(records) - 1), 1)
            return [
                r
                for start in range(0, len(records), size)
                for r in self._post(records[start : start + size], deadline)
            ]
        except _Busy as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise RewardServiceError(
                f"{self.url} did not score {len(records)} records within {self.max_wait:g} s "
                f"({attempts} attempts); last answer: {exc}"
            ) from None

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs) -> list[float]:
        import time

        records = [{"prompt": p, "response": _as_response(c)} for p, c in zip(prompts, completions, strict=True)]
        deadline = time.monotonic() + self.max_wait  # the whole call, retries and splits included
        rewards = []
        for start in range(0, len(records), self.batch_size):
            rewards += [self.scale * r for r in self._post(records[start : start + self.batch_size], deadline)]
        return _penalize(rewards, kwargs, self.truncation_penalty)


# -- OpenRLHF: full query texts are split by flr.kernel.chat.split_query (the reward service's /get_reward)


# -- verl: a custom reward function module ---------------------------------------------------------------

_VERL_CLIENT: RemoteRewardFunction | None = None


def compute_score(data_source, solution_str: str, ground_truth=None, extra_info: dict | None = None, **kwargs):
    """verl's custom reward function (``custom_reward_function.path`` = this file, ``name`` = compute_score).

    Calls a running ``flr serve`` at ``$FLR_URL`` (default http://127.0.0.1:8000; ``$FLR_API_KEY`` if set). verl
    passes the decoded response; the prompt must come in ``extra_info["prompt"]`` (a string or messages), which
    the dataset's ``extra_info`` column carries. ``data_source`` and ``ground_truth`` are not used: FLR needs no
    reference answer. A busy service is retried with backoff (:class:`RemoteRewardFunction`); after its
    ``max_wait`` the call raises :class:`RewardServiceError`.
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

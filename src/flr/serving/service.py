"""A reward service: one loaded scorer behind HTTP, for online RL loops on other machines or processes.

``POST /score`` takes ``{"records": [{"prompt": str | messages, "response": str}, ...]}`` and returns
``{"rewards": [...], "categories": [...], "truncated": [...]}``; ``GET /health`` describes the scorer and limits.
Needs the optional extra ``pip install flr[serve]`` (FastAPI + uvicorn).

Every request is bounded (:class:`ServiceLimits`): bytes, records and characters per record are checked before
any work, records are validated exactly as ``flr score`` validates them, and scoring runs in small chunks with
the model lock taken per chunk, so small requests are served between the chunks of a large one; a request that
runs past its time limit, or whose client has gone, stops at the next chunk. A bearer token is required whenever
the service listens on a non-loopback address.

:class:`RewardService` holds what the requests share (scorer, limits, lock or micro-batcher) and answers them;
every refusal is a :class:`RequestError` (status + one line). The FastAPI routes are in :mod:`flr.serving.app`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from flr.errors import FLRError, check_at_least
from flr.scorers.base import BaseScorer


@dataclass
class ServiceLimits:
    """What one request may cost."""

    max_records: int = field(default=256, metadata={"help": "Records per request (413 above)."})
    max_request_bytes: int = field(default=4_000_000, metadata={"help": "Request body size in bytes (413 above)."})
    max_record_chars: int = field(
        default=32_000, metadata={"help": "Characters of prompt + response per record (413 above)."}
    )
    chunk_records: int = field(default=8, metadata={"help": "Records scored per model call; the lock is per chunk."})
    request_timeout: float = field(
        default=120.0, metadata={"help": "Seconds a request may take; unfinished ones get 503 and stop."}
    )
    micro_batch: str = field(
        default="auto",
        metadata={
            "help": "on: merge the chunks of concurrent requests into shared scoring calls (results are the same as "
            "scoring each request alone); off: one chunk at a time; auto: on when the scorer runs on a GPU (on a CPU "
            "the padding of merged batches cost more than it saved: docs/PERFORMANCE.md).",
            "choices": ["auto", "on", "off"],
        },
    )
    batch_records: int = field(default=32, metadata={"help": "Micro-batching: at most this many records per call."})

    def __post_init__(self):
        names = ("max_records", "max_request_bytes", "max_record_chars", "chunk_records", "batch_records")
        check_at_least(self, dict.fromkeys(names, 1))
        if self.micro_batch not in ("auto", "on", "off"):
            raise FLRError(f"--micro-batch must be auto, on or off, got {self.micro_batch!r}")
        if self.request_timeout <= 0:
            raise FLRError(f"--request-timeout must be positive, got {self.request_timeout}")


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MicroBatcher:
    """One worker scores the records that concurrent requests have queued, up to ``batch_records`` per call, so
    that they share forward passes; each request gets its own results (FLR's scores do not depend on what else is
    in the batch). Records of a request that timed out or went away are skipped if not yet started."""

    def __init__(self, scorer: BaseScorer, batch_records: int):
        self.scorer, self.batch_records = scorer, batch_records
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.calls = 0  # scoring calls made (for /health and the load test)

    def submit(self, records: list[dict]) -> list[asyncio.Future]:
        loop = asyncio.get_running_loop()
        if self.queue is None:
            self.queue = asyncio.Queue()
        if self.worker is None or self.worker.done():
            self.worker = loop.create_task(self._run())
        futures = [loop.create_future() for _ in records]
        for record, future in zip(records, futures):
            self.queue.put_nowait((record, future))
        return futures

    async def _run(self) -> None:
        from fastapi.concurrency import run_in_threadpool

        while True:
            batch = [await self.queue.get()]
            await asyncio.sleep(0)  # let requests that arrived together queue their records
            while len(batch) < self.batch_records and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            live = [(r, f) for r, f in batch if not f.done()]
            if not live:
                continue
            self.calls += 1
            try:
                results = await run_in_threadpool(self.scorer.score, [r for r, _ in live])
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
                for _, f in live:
                    if not f.done():
                        f.set_exception(exc)
                continue
            for (_, f), result in zip(live, results):
                if not f.done():
                    f.set_result(result)


class RequestError(Exception):
    """A request the service refuses: the HTTP status and a one-line reason (``{"detail": ...}`` in the reply)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class RecordTooLarge(FLRError):
    """A record over the service's size bound (HTTP 413, not 422)."""


def validate_records(records, limits: ServiceLimits) -> list[dict]:
    """Records checked as ``flr score`` checks them (plus the size bounds); raises InputError naming the record."""
    from flr.errors import InputError
    from flr.records import Record, to_scoring_input

    out = []
    for i, raw in enumerate(records):
        if not isinstance(raw, dict):
            raise InputError("expected an object {prompt, response}", file="request", line=i + 1)
        record = to_scoring_input(Record("request", i + 1, raw))
        prompt = record["prompt"]
        chars = len(record["response"]) + (
            len(prompt) if isinstance(prompt, str) else sum(len(m["content"]) for m in prompt)
        )
        if chars > limits.max_record_chars:
            raise RecordTooLarge(f"request:{i + 1}: {chars} characters, at most {limits.max_record_chars} per record")
        out.append(record)
    return out


def _micro_batching(limits: ServiceLimits, scorer: BaseScorer) -> bool:
    if limits.micro_batch != "auto":
        return limits.micro_batch == "on"
    model = getattr(scorer, "model", None)
    return model is not None and next(model.parameters()).device.type == "cuda"


Disconnected = Callable[[], Awaitable[bool]]  # the request's is_disconnected


class RewardService:
    """One scorer served to concurrent requests within :class:`ServiceLimits`: with a lock per chunk, or through a
    :class:`MicroBatcher` that merges the chunks of concurrent requests."""

    def __init__(
        self,
        scorer: BaseScorer,
        limits: ServiceLimits | None = None,
        api_key: str | None = None,
        query_template: str = "chatml",
    ):
        self.scorer, self.limits = scorer, limits or ServiceLimits()
        self.api_key, self.query_template = api_key, query_template
        self.lock = asyncio.Lock()  # one model: one chunk at a time, requests interleave between chunks
        self.batcher = (
            MicroBatcher(scorer, self.limits.batch_records) if _micro_batching(self.limits, scorer) else None
        )

    def check_headers(self, headers: Mapping[str, str]) -> None:
        """Token and declared size, before the body is read (401, 413)."""
        if self.api_key is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                raise RequestError(401, "missing or wrong bearer token")
        size = headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > self.limits.max_request_bytes:
            raise RequestError(413, f"at most {self.limits.max_request_bytes} bytes per request")

    def health(self) -> dict:
        return {
            "status": "ok",
            "scorer": self.scorer.describe(),
            "fingerprint": self.scorer.fingerprint(),
            "limits": vars(self.limits),
            "scoring_calls": self.batcher.calls if self.batcher is not None else None,
        }

    def parse(self, body: bytes) -> dict:
        """The request's JSON object (413, 422)."""
        if len(body) > self.limits.max_request_bytes:  # chunked uploads carry no content-length
            raise RequestError(413, f"at most {self.limits.max_request_bytes} bytes per request")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RequestError(422, "the body is not JSON") from None
        if not isinstance(payload, dict):
            raise RequestError(422, "expected a JSON object")
        return payload

    async def score(self, payload: dict, disconnected: Disconnected, started: float) -> dict:
        """``POST /score``: ``{records: [{prompt, response}]}`` -> rewards, categories, truncated."""
        records = payload.get("records")
        if not isinstance(records, list):
            raise RequestError(422, 'expected {"records": [{prompt, response}, ...]}')
        self._check_count(len(records), "records")
        results = await self._score_records(records, disconnected, started)
        return {
            "rewards": [r.reward for r in results],
            "categories": [r.categories for r in results],
            "truncated": [r.truncated for r in results],
        }

    async def get_reward(self, payload: dict, disconnected: Disconnected, started: float) -> dict:
        """``POST /get_reward``, OpenRLHF's remote reward model API: ``{query: [full texts], prompts?: [prompt
        texts]}`` -> ``{rewards}``."""
        from flr.kernel.chat import split_query

        queries, prompts = payload.get("query"), payload.get("prompts")
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
            raise RequestError(422, 'expected {"query": [texts], "prompts": [texts] (optional)}')
        if prompts is not None and (not isinstance(prompts, list) or len(prompts) != len(queries)):
            raise RequestError(422, "'prompts' must be a list as long as 'query'")
        self._check_count(len(queries), "queries")
        try:
            records = [
                split_query(q, prompts[i] if prompts else None, self.query_template) for i, q in enumerate(queries)
            ]
        except ValueError as exc:
            raise RequestError(422, str(exc)) from None
        results = await self._score_records(records, disconnected, started)
        return {"rewards": [r.reward for r in results]}

    def _check_count(self, n: int, what: str) -> None:
        if n > self.limits.max_records:
            raise RequestError(413, f"at most {self.limits.max_records} {what} per request, got {n}")

    async def _score_records(self, records: list, disconnected: Disconnected, started: float) -> list:
        """Results for the records, checked first, then scored chunk by chunk; stops at a chunk boundary when the
        client has gone (499) or the time limit has passed (503)."""
        from flr.errors import InputError

        try:
            records = validate_records(records, self.limits)
        except RecordTooLarge as exc:
            raise RequestError(413, str(exc)) from None
        except InputError as exc:
            raise RequestError(422, str(exc)) from None
        results, step = [], self.limits.chunk_records
        for start in range(0, len(records), step):
            if await disconnected():
                raise RequestError(499, "client disconnected")
            if time.monotonic() - started > self.limits.request_timeout:
                raise self._too_slow()
            try:
                results += await self._score_chunk(records[start : start + step], started)
            except FLRError as exc:
                raise RequestError(422, str(exc)) from None
        return results

    async def _score_chunk(self, chunk: list[dict], started: float) -> list:
        from fastapi.concurrency import run_in_threadpool

        if self.batcher is None:
            async with self.lock:
                return await run_in_threadpool(self.scorer.score, chunk)
        futures = self.batcher.submit(chunk)
        remaining = max(self.limits.request_timeout - (time.monotonic() - started), 0.001)
        try:
            return await asyncio.wait_for(asyncio.gather(*futures), timeout=remaining)
        except TimeoutError:
            for f in futures:
                f.cancel()  # not yet started: the worker skips them
            raise self._too_slow() from None

    def _too_slow(self) -> RequestError:
        return RequestError(503, f"request took longer than {self.limits.request_timeout:g} s; send fewer records")


def create_app(
    scorer: BaseScorer,
    *,
    limits: ServiceLimits | None = None,
    api_key: str | None = None,
    max_records: int | None = None,
    query_template: str = "chatml",
):
    """The FastAPI app serving ``scorer`` (``max_records`` overrides ``limits.max_records``)."""
    try:
        from flr.serving.app import build_app
    except ImportError as exc:
        raise FLRError("the reward service needs FastAPI: pip install 'flr[serve]'") from exc
    limits = limits or ServiceLimits()
    if max_records is not None:
        limits = dataclasses.replace(limits, max_records=max_records)
    return build_app(RewardService(scorer, limits, api_key, query_template))

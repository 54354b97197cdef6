"""A reward service: one loaded scorer behind HTTP, for online RL loops on other machines or processes.

``POST /score`` takes ``{"records": [{"prompt": str | messages, "response": str}, ...]}`` and returns
``{"rewards": [...], "categories": [...], "truncated": [...]}``. ``GET /health`` (liveness) and ``GET /ready``
(the scorer is loaded and the service takes work) need no token and say nothing more; ``GET /info`` describes the
scorer, limits and queue, behind the token. Needs the optional extra ``pip install flr[serve]`` (FastAPI + uvicorn).

Every request is bounded (:class:`ServiceLimits`): bytes, records and characters per record are checked before
any work, records are validated exactly as ``flr score`` validates them, and a request either can finish within
``request_timeout`` (its wait for the model included) or is refused at once with 503 and Retry-After. Scoring runs
in chunks through one :class:`Scheduler`, so small requests are served between the chunks of a large one; the
records of a request whose deadline passes, whose client has gone or that a shutdown interrupts are dropped
before they reach the model. A bearer token is required whenever the service listens on a non-loopback address.

:class:`RewardService` holds what the requests share (scorer, limits, scheduler) and answers them; every refusal
is a :class:`RequestError` (status + one line). The FastAPI routes and the server are in :mod:`flr.serving.app`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import math
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
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
    chunk_records: int = field(
        default=8,
        metadata={
            "help": "Records scored per model call; without micro-batching, requests take turns chunk by chunk."
        },
    )
    request_timeout: float = field(
        default=120.0,
        metadata={
            "help": "Seconds a request may take, its wait for the model included: one that cannot finish in time "
            "(measured seconds per record x records queued ahead and its own) is refused at once with 503 and "
            "Retry-After; one whose time runs out while it waits or runs gets 503 and is not scored further."
        },
    )
    max_queue: int = field(
        default=256,
        metadata={
            "help": "Requests waiting or running at once, at most; more get 503 and Retry-After at once (the only "
            "bound before the first scoring call has measured the seconds per record)."
        },
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
        names = ("max_records", "max_request_bytes", "max_record_chars", "chunk_records", "batch_records", "max_queue")
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


class Scheduler:
    """The one worker that owns the model: requests queue their records here and wait for the results.

    With ``merge`` (micro-batching) a call takes the queued records of all requests, up to ``batch_records``, so
    that they share forward passes (FLR's scores do not depend on what else is in the batch); without it, one
    request's chunk at a time, so requests interleave chunk by chunk. Records whose request has given up (deadline,
    client gone, shutdown) are skipped, never scored. The measured seconds per record feed admission control."""

    def __init__(self, scorer: BaseScorer, merge: bool, batch_records: int):
        self.scorer, self.merge, self.batch_records = scorer, merge, batch_records
        self.queue: deque[tuple[dict, asyncio.Future, Chunk]] = deque()
        self.ready: asyncio.Event | None = None
        self.worker: asyncio.Task | None = None
        self.calls = 0  # scoring calls made (/info and the tests)
        self.running: list[asyncio.Future] = []  # the futures of the model call now
        self.seconds_per_record: float | None = None  # moving average of the calls so far; None before the first
        self.closed = False
        # one thread runs every model call: a pool would spread the calls' allocations over several malloc arenas,
        # and the server's memory would grow with fragmentation (the soak bench's RSS)
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flr-model")

    def backlog(self) -> int:
        """Records ahead of a newcomer: in the running call, and queued by requests still waiting."""
        return len(self.running) + sum(not f.done() for _, f, _ in self.queue)

    def submit(self, records: list[dict], chunk: Chunk) -> list[asyncio.Future]:
        loop = asyncio.get_running_loop()
        if self.closed:
            raise RequestError(503, "the service is shutting down", {"Retry-After": "5"})
        if self.worker is None or self.worker.done() or self.worker.get_loop() is not loop:
            # first request, or a new event loop (a test client runs each request on its own): a fresh worker
            self.queue.clear()
            self.ready = asyncio.Event()
            self.worker = loop.create_task(self._run())
        futures = [loop.create_future() for _ in records]
        self.queue.extend((record, future, chunk) for record, future in zip(records, futures))
        self.ready.set()
        return futures

    def close(self) -> None:
        """Shutdown: queued records get 503 at once; the running call finishes and answers its requests."""
        self.closed = True
        self.model_thread.shutdown(wait=False)  # the running call finishes; the thread ends after it
        error = RequestError(503, "the service is shutting down", {"Retry-After": "5"})
        while self.queue:
            _, future, _ = self.queue.popleft()
            if not future.done():
                future.set_exception(error)

    def abandon(self) -> None:
        """Shutdown, out of time: the running call's requests get 503 now (the call itself cannot be stopped)."""
        error = RequestError(503, "the service is shutting down; the scoring call did not finish in time")
        for future in self.running:
            if not future.done():
                future.set_exception(error)

    def _take(self) -> list[tuple[dict, asyncio.Future]]:
        """The next call's records: live ones only (not answered, not past their deadline)."""
        now, batch = time.monotonic(), []
        while self.queue and len(batch) < self.batch_records:
            record, future, chunk = self.queue[0]
            if batch and not self.merge and chunk is not batch[0][2]:
                break  # without merging, one chunk per call
            self.queue.popleft()
            if not future.done() and now < chunk.deadline:
                batch.append((record, future, chunk))
        return [(r, f) for r, f, _ in batch]

    def _score(self, records: list[dict]):
        try:
            return self.scorer.score(records)
        finally:
            _trim_heap()

    async def _run(self) -> None:
        while not self.closed:
            if not self.queue:
                self.ready.clear()
                await self.ready.wait()
                continue
            await asyncio.sleep(0)  # let requests that arrived together queue their records
            live = self._take()
            if not live:
                continue
            self.calls, self.running = self.calls + 1, [f for _, f in live]
            start = time.monotonic()
            try:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self.model_thread, self._score, [r for r, _ in live])
            except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
                for _, f in live:
                    if not f.done():
                        f.set_exception(exc)
                continue
            finally:
                self.running = []
            per_record = (time.monotonic() - start) / len(live)
            old = self.seconds_per_record
            self.seconds_per_record = per_record if old is None else 0.7 * old + 0.3 * per_record
            for (_, f), result in zip(live, results):
                if not f.done():
                    f.set_result(result)


def _trim_heap() -> None:
    """Hand the memory a model call freed back to the OS (glibc's malloc_trim); nothing elsewhere."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None  # resolved on first use: False where there is no glibc


@dataclass(eq=False)
class Chunk:
    """Records of one request queued together, with the request's deadline (monotonic seconds)."""

    deadline: float


class RequestError(Exception):
    """A request the service refuses: the HTTP status and a one-line reason (``{"detail": ...}`` in the reply)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


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


class RewardService:
    """One scorer served to concurrent requests within :class:`ServiceLimits`, through a :class:`Scheduler` that
    scores one chunk at a time or merges the chunks of concurrent requests.

    Admission: a request starts only if it can finish before its deadline (``request_timeout`` from its arrival),
    judged from the measured seconds per record and the records queued ahead, and only while fewer than
    ``max_queue`` requests are in; otherwise 503 at once, with Retry-After. A request stops waiting (and its
    records are dropped unscored) when its deadline passes (503), its client goes (499) or the service shuts down
    (503)."""

    def __init__(
        self,
        scorer: BaseScorer,
        limits: ServiceLimits | None = None,
        api_key: str | None = None,
        query_template: str = "chatml",
    ):
        self.scorer, self.limits = scorer, limits or ServiceLimits()
        self.api_key, self.query_template = api_key, query_template
        merge = _micro_batching(self.limits, scorer)
        self.scheduler = Scheduler(scorer, merge, self.limits.batch_records if merge else self.limits.chunk_records)
        self.active = 0  # requests admitted and not yet answered
        self.closing = False

    def check_headers(self, headers: Mapping[str, str]) -> None:
        """Token and declared size, before the body is read (401, 413)."""
        if self.api_key is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                raise RequestError(401, "missing or wrong bearer token")
        size = headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > self.limits.max_request_bytes:
            raise RequestError(413, f"at most {self.limits.max_request_bytes} bytes per request")

    def info(self) -> dict:
        """``GET /info`` (behind the token): the scorer, the limits and the queue."""
        return {
            "scorer": self.scorer.describe(),
            "fingerprint": self.scorer.fingerprint(),
            "limits": vars(self.limits),
            "micro_batching": self.scheduler.merge,
            "scoring_calls": self.scheduler.calls,
            "requests_in": self.active,
            "records_queued": self.scheduler.backlog(),
            "seconds_per_record": self.scheduler.seconds_per_record,
            "closing": self.closing,
        }

    def close(self) -> None:
        """Stop taking work (SIGTERM): new and queued requests get 503, the running model call finishes."""
        self.closing = True
        self.scheduler.close()

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

    async def score(self, payload: dict, gone: asyncio.Future, started: float) -> dict:
        """``POST /score``: ``{records: [{prompt, response}]}`` -> rewards, categories, truncated. ``gone`` completes
        when the client disconnects; ``started`` is the request's arrival (monotonic seconds)."""
        records = payload.get("records")
        if not isinstance(records, list):
            raise RequestError(422, 'expected {"records": [{prompt, response}, ...]}')
        self._check_count(len(records), "records")
        results = await self._score_records(records, gone, started)
        return {
            "rewards": [r.reward for r in results],
            "categories": [r.categories for r in results],
            "truncated": [r.truncated for r in results],
        }

    async def get_reward(self, payload: dict, gone: asyncio.Future, started: float) -> dict:
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
        results = await self._score_records(records, gone, started)
        return {"rewards": [r.reward for r in results]}

    def _check_count(self, n: int, what: str) -> None:
        if n > self.limits.max_records:
            raise RequestError(
                413, f"at most {self.limits.max_records} {what} per request, got {n}", self._fewer(n, n)
            )

    def _admit(self, n: int, deadline: float) -> None:
        """Refuse at once (503 + Retry-After) a request that cannot finish by its deadline, rather than let it wait
        for nothing; before the first scoring call nothing is measured and only ``max_queue`` applies."""
        if self.closing:
            raise RequestError(503, "the service is shutting down", {"Retry-After": "5"})
        per_record, ahead = self.scheduler.seconds_per_record, self.scheduler.backlog()
        if self.active >= self.limits.max_queue:
            wait = ahead * (per_record or 1.0)
            raise RequestError(
                503, f"busy: {self.active} requests in (--max-queue {self.limits.max_queue})", _retry_after(wait)
            )
        if per_record is None:
            return
        if n * per_record > self.limits.request_timeout:
            raise RequestError(
                503,
                f"{n} records take about {n * per_record:.0f} s here, more than {self.limits.request_timeout:g} s: "
                "send fewer records",
                self._fewer(n, max(int(self.limits.request_timeout / per_record), 1)),
            )
        if time.monotonic() + (ahead + n) * per_record > deadline:
            raise RequestError(
                503,
                f"busy: about {ahead * per_record:.0f} s of work queued ahead, the request would not finish within "
                f"{self.limits.request_timeout:g} s",
                _retry_after(ahead * per_record),
            )

    @staticmethod
    def _fewer(n: int, fits: int) -> dict[str, str]:
        """The hint a client splits on: how many records one request may carry (413 or a 503 that asks for fewer)."""
        return {"FLR-Max-Records": str(max(min(fits, n - 1), 1))}

    async def _score_records(self, records: list, gone: asyncio.Future, started: float) -> list:
        """Results for the records: checked first, admitted (or refused at once), then scored chunk by chunk."""
        from flr.errors import InputError

        try:
            records = validate_records(records, self.limits)
        except RecordTooLarge as exc:
            raise RequestError(413, str(exc)) from None
        except InputError as exc:
            raise RequestError(422, str(exc)) from None
        deadline = started + self.limits.request_timeout
        self._admit(len(records), deadline)
        self.active += 1
        try:
            results, step = [], self.limits.chunk_records
            for start in range(0, len(records), step):
                try:
                    results += await self._score_chunk(records[start : start + step], gone, deadline)
                except FLRError as exc:
                    raise RequestError(422, str(exc)) from None
            return results
        finally:
            self.active -= 1

    async def _score_chunk(self, chunk: list[dict], gone: asyncio.Future, deadline: float) -> list:
        """Queue the chunk and wait for its results, its deadline or its client's leaving, whichever comes first;
        on the last two its queued records are dropped (cancelled futures: the scheduler skips them)."""
        if gone.done():
            raise RequestError(499, "client disconnected")
        if time.monotonic() >= deadline:
            raise self._too_slow(len(chunk))
        waiting = asyncio.gather(*self.scheduler.submit(chunk, Chunk(deadline)))
        done, _ = await asyncio.wait(
            {waiting, gone}, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
        )
        if waiting in done:
            return waiting.result()
        waiting.cancel()  # its futures: the scheduler skips them
        waiting.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody waits for it any more
        if gone.done():
            raise RequestError(499, "client disconnected")
        raise self._too_slow(len(chunk))

    def _too_slow(self, n: int) -> RequestError:
        return RequestError(
            503,
            f"request took longer than {self.limits.request_timeout:g} s; retry later or send fewer records",
            _retry_after(self.scheduler.backlog() * (self.scheduler.seconds_per_record or 0.0)),
        )


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(math.ceil(seconds), 1))}


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

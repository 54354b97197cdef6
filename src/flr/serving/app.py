"""The HTTP face of :class:`~flr.serving.service.RewardService`: FastAPI routes that read the request and hand it
on, and the one place a :class:`~flr.serving.service.RequestError` becomes a reply. Imported only by create_app
(FastAPI is the optional extra ``flr[serve]``)."""

# No `from __future__ import annotations`: FastAPI must see the Request annotation as a class, not a string.
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flr.serving.service import RequestError, RewardService


def build_app(service: RewardService) -> FastAPI:
    app = FastAPI(title="flr reward service", description="Follow-up Likelihood as Reward")
    app.state.service, app.state.batcher = service, service.batcher
    app.middleware("http")(guard)
    app.add_exception_handler(RequestError, refused)
    app.get("/health")(health)
    app.post("/score")(score)
    app.post("/get_reward")(get_reward)
    return app


def refused(request: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


async def guard(request: Request, call_next):
    """Every path, /health included: the token and the declared size, before any work."""
    try:
        request.app.state.service.check_headers(request.headers)
    except RequestError as exc:  # a middleware's exceptions bypass the exception handlers
        return refused(request, exc)
    return await call_next(request)


def health(request: Request) -> dict:
    return request.app.state.service.health()


async def score(request: Request) -> dict:
    """POST /score: {records: [{prompt, response}]} -> {rewards, categories, truncated}."""
    started = time.monotonic()
    service = request.app.state.service
    return await service.score(service.parse(await request.body()), request.is_disconnected, started)


async def get_reward(request: Request) -> dict:
    """POST /get_reward (OpenRLHF's remote reward model API): {query: [full texts], prompts?: [texts]} -> {rewards}."""
    started = time.monotonic()
    service = request.app.state.service
    return await service.get_reward(service.parse(await request.body()), request.is_disconnected, started)

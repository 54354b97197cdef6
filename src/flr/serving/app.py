"""The HTTP face of :class:`~flr.serving.service.RewardService`: FastAPI routes that read the request and hand it
on, the one place a :class:`~flr.serving.service.RequestError` becomes a reply, and the server that drains on
SIGTERM. Imported only by create_app and ``flr serve`` (FastAPI is the optional extra ``flr[serve]``)."""

# No `from __future__ import annotations`: FastAPI must see the Request annotation as a class, not a string.
import asyncio
import contextlib
import os
import sys
import threading
import time

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from flr.serving.service import RequestError, RewardService


def build_app(service: RewardService) -> FastAPI:
    app = FastAPI(title="flr reward service", description="Follow-up Likelihood as Reward")
    app.state.service = service
    app.add_exception_handler(RequestError, refused)
    # Probes need no secret (a Kubernetes probe carries none) and say nothing; the rest needs the token.
    app.get("/health")(health)
    app.get("/ready")(ready)
    token = [Depends(authorized)]
    app.get("/info", dependencies=token)(info)
    app.post("/score", dependencies=token)(score)
    app.post("/get_reward", dependencies=token)(get_reward)
    return app


def refused(request: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


def authorized(request: Request) -> None:
    """The token and the declared size, before the body is read."""
    request.app.state.service.check_headers(request.headers)


def health() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


def ready(request: Request) -> JSONResponse:
    """Readiness: the scorer is loaded (the port opens only then) and the service is not shutting down."""
    closing = request.app.state.service.closing
    return JSONResponse({"ready": not closing}, status_code=503 if closing else 200)


def info(request: Request) -> dict:
    return request.app.state.service.info()


@contextlib.asynccontextmanager
async def client_gone(request: Request):
    """A task that finishes when the client disconnects: the body has been read, so the next ASGI message is
    http.disconnect, sent by the server the moment the connection drops."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(wait())
    try:
        yield task
    finally:
        task.cancel()


async def score(request: Request) -> dict:
    """POST /score: {records: [{prompt, response}]} -> {rewards, categories, truncated}."""
    started = time.monotonic()
    service = request.app.state.service
    payload = service.parse(await request.body())
    async with client_gone(request) as gone:
        return await service.score(payload, gone, started)


async def get_reward(request: Request) -> dict:
    """POST /get_reward (OpenRLHF's remote reward model API): {query: [full texts], prompts?: [texts]} -> {rewards}."""
    started = time.monotonic()
    service = request.app.state.service
    payload = service.parse(await request.body())
    async with client_gone(request) as gone:
        return await service.get_reward(payload, gone, started)


def serve(app: FastAPI, host: str, port: int, shutdown_timeout: float) -> None:
    """Run ``app`` under uvicorn until SIGTERM/SIGINT, then drain: stop accepting, answer queued requests 503, let
    the running model call finish, and exit within ``shutdown_timeout`` seconds whatever is still running."""
    import uvicorn

    service: RewardService = app.state.service

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if not self.should_exit:
                # A model call cannot be interrupted: past the timeout the process ends without it.
                threading.Timer(shutdown_timeout, _exit_now, (shutdown_timeout,)).start()
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets=None):
            service.close()
            # a running call still unfinished near the timeout: its requests get 503 before uvicorn cancels them
            asyncio.get_running_loop().call_later(max(shutdown_timeout - 1.5, 0), service.scheduler.abandon)
            await super().shutdown(sockets)

    config = uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=max(shutdown_timeout - 1, 0.5))
    Server(config).run()


def _exit_now(seconds: float) -> None:
    print(f"flr serve: still busy {seconds:g} s after the stop signal; exiting", file=sys.stderr, flush=True)
    os._exit(1)

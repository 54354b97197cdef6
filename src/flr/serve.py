"""A reward service: one loaded scorer behind HTTP, for online RL loops on other machines or processes.

``POST /score`` takes ``{"records": [{"prompt": str | messages, "response": str}, ...]}`` and returns
``{"rewards": [...], "categories": [...], "truncated": [...]}``; ``GET /health`` describes the scorer.
Needs the optional extra ``pip install flr[serve]`` (FastAPI + uvicorn).
"""

# No `from __future__ import annotations`: FastAPI must see the request model as a class, not a string.
import threading

from flr.errors import FLRError
from flr.scorers.base import BaseScorer


def create_app(scorer: BaseScorer, *, max_records: int = 1024):
    try:
        from fastapi import FastAPI, HTTPException
        from pydantic import BaseModel
    except ImportError as exc:
        raise FLRError("the reward service needs FastAPI: pip install 'flr[serve]'") from exc

    class Request(BaseModel):
        records: list[dict]

    app = FastAPI(title="flr reward service", description="Follow-up Likelihood as Reward")
    lock = threading.Lock()  # one model: requests are scored one batch at a time

    @app.get("/health")
    def health():
        return {"status": "ok", "scorer": scorer.describe(), "fingerprint": scorer.fingerprint()}

    @app.post("/score")
    def score(request: Request):
        if len(request.records) > max_records:
            raise HTTPException(413, f"at most {max_records} records per request")
        for i, r in enumerate(request.records):
            if not isinstance(r.get("response"), str) or not isinstance(r.get("prompt"), str | list):
                raise HTTPException(422, f"records[{i}]: needs 'prompt' (string or messages) and 'response' (string)")
        try:
            with lock:
                results = scorer.score(request.records)
        except FLRError as exc:
            raise HTTPException(422, str(exc)) from None
        return {
            "rewards": [r.reward for r in results],
            "categories": [r.categories for r in results],
            "truncated": [r.truncated for r in results],
        }

    return app

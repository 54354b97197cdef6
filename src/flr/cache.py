"""A persistent score cache: (scorer fingerprint, prompt, response) -> result, in one SQLite file.

``flr eval`` looks every score up here first and stores each finished chunk at once, so a killed run resumes
and a run that adds a scorer or a benchmark recomputes nothing already known.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

from flr.models import cache_dir
from flr.scorers.base import ScoreResult


def text_key(prompt, response: str) -> str:
    blob = json.dumps([prompt, response], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class ScoreCache:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else cache_dir() / "scores.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=120)  # several runs may share one cache
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS scores (scorer TEXT, key TEXT, reward REAL, categories TEXT, "
            "truncated INTEGER, PRIMARY KEY (scorer, key))"
        )

    def get(self, scorer: str, keys: list[str]) -> dict[str, ScoreResult]:
        out = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self.db.execute(
                f"SELECT key, reward, categories, truncated FROM scores WHERE scorer = ? AND key IN "
                f"({','.join('?' * len(chunk))})",
                [scorer, *chunk],
            )
            for key, reward, categories, truncated in rows:
                out[key] = ScoreResult(
                    float("nan") if reward is None else reward, json.loads(categories), bool(truncated)
                )
        return out

    def put(self, scorer: str, results: dict[str, ScoreResult]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
            [(scorer, k, r.reward, json.dumps(r.categories), int(r.truncated)) for k, r in results.items()],
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()

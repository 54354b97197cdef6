"""A persistent score cache: (scorer fingerprint, prompt, response) -> result, in one SQLite file.

``flr eval`` looks every score up here first and stores each finished chunk at once, so a killed run resumes
and a run that adds a scorer or a benchmark recomputes nothing already known.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from flr.errors import FLRError
from flr.hashing import content_fingerprint
from flr.paths import cache_dir
from flr.scorers.base import ScoreResult

logger = logging.getLogger(__name__)


def text_key(prompt, response: str) -> str:
    """The cache key of one (prompt, response): the full sha256 of the pair as JSON."""
    return content_fingerprint([prompt, response], ensure_ascii=False, length=None)


def unique_requests(pairs: Iterable[tuple]) -> list[tuple[str, tuple]]:
    """The scoring requests of (prompt, response) ``pairs``: ``(text key, (prompt, response))`` once per distinct
    pair, in first-seen order (what :func:`score_with_cache` takes)."""
    unique: dict[str, tuple] = {}
    for prompt, response in pairs:
        unique.setdefault(text_key(prompt, response), (prompt, response))
    return list(unique.items())


class ScoreCache:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else cache_dir() / "scores.sqlite"
        if self.path.is_dir():
            raise FLRError(f"score cache {self.path} is a directory: give a file path with --cache")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:  # a damaged file: keep it for inspection, start a new cache
            if getattr(self, "db", None) is not None:
                self.db.close()
            aside = self.path.with_name(self.path.name + f".corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            logger.warning("score cache %s is damaged (%s): moved to %s, starting a new one", self.path, exc, aside)
            self._open()

    def _open(self) -> None:
        self.db = sqlite3.connect(self.path, timeout=120)  # several runs may share one cache
        (status,) = self.db.execute("PRAGMA quick_check").fetchone()
        if status != "ok":
            raise sqlite3.DatabaseError(status)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS scores (scorer TEXT, key TEXT, reward REAL, categories TEXT, "
            "truncated INTEGER, PRIMARY KEY (scorer, key))"
        )
        # per-follow-up log-probs, shared by every follow-up set, weighting and calibration on the same model
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS followups (model TEXT, key TEXT, text TEXT, mean REAL, sum REAL, "
            "tokens INTEGER, truncated INTEGER, PRIMARY KEY (model, key, text))"
        )

    def _select(self, query: str, owner: str, keys: list[str]):
        """Rows of ``query`` (ending in ``key IN``) for ``owner`` and ``keys``, in chunks SQLite accepts."""
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            yield from self.db.execute(f"{query} ({','.join('?' * len(chunk))})", [owner, *chunk])

    def get(self, scorer: str, keys: list[str]) -> dict[str, ScoreResult]:
        query = "SELECT key, reward, categories, truncated FROM scores WHERE scorer = ? AND key IN"
        return {
            key: ScoreResult(float("nan") if reward is None else reward, json.loads(categories), bool(truncated))
            for key, reward, categories, truncated in self._select(query, scorer, keys)
        }

    def put(self, scorer: str, results: dict[str, ScoreResult]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
            [(scorer, k, r.reward, json.dumps(r.categories), int(r.truncated)) for k, r in results.items()],
        )
        self.db.commit()

    def get_followups(self, model: str, keys: list[str], texts: list[str]) -> dict[tuple[str, str], dict]:
        """``{(key, text): {mean, sum, authors, tokens, truncated}}`` for the pairs the cache holds. Rows of
        ``--statistic authors`` (their own ``model`` fingerprint) hold its logit mean in mean and sum; ``authors``
        names it for readers that index a row by the statistic."""
        wanted = set(texts)
        query = "SELECT key, text, mean, sum, tokens, truncated FROM followups WHERE model = ? AND key IN"
        return {
            (key, text): {"mean": mean, "sum": total, "authors": mean, "tokens": tokens, "truncated": bool(truncated)}
            for key, text, mean, total, tokens, truncated in self._select(query, model, keys)
            if text in wanted
        }

    def put_followups(self, model: str, values: dict[tuple[str, str], dict]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO followups VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(model, k, t, v["mean"], v["sum"], v["tokens"], int(v["truncated"])) for (k, t), v in values.items()],
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def score_with_cache(scorer, requests: list[tuple], cache: ScoreCache, desc: str) -> dict:
    """Scores for every request, computing only the ones the cache lacks and saving each chunk as it finishes."""
    fingerprint = scorer.fingerprint()
    scorer.attach_cache(cache)
    known = cache.get(fingerprint, [k for k, _ in requests])
    todo = [(k, pr) for k, pr in requests if k not in known]
    if known:
        logger.info("%s: %d scores from the cache, %d to compute", desc, len(known), len(todo))
    records = [{"prompt": p, "response": r} for _, (p, r) in todo]
    with tqdm(total=len(todo), desc=desc, unit="ex", disable=not todo) as bar:  # no empty bars for cached work
        done = 0
        for chunk in scorer.iter_score(records):
            fresh = {todo[done + i][0]: res for i, res in enumerate(chunk)}
            cache.put(fingerprint, fresh)
            known.update(fresh)
            done += len(chunk)
            bar.update(len(chunk))
    return known


def cached_scores(scorer, records: list[dict], cache_path: str | os.PathLike | None, desc: str) -> list[ScoreResult]:
    """``scorer``'s results for ``records`` (in order) through the score cache: known ones are reused, new ones
    saved as each chunk finishes, so a killed job resumes and a re-run recomputes nothing."""
    with open_cache(cache_path, [scorer]) as cache:
        known = score_with_cache(scorer, unique_requests((r["prompt"], r["response"]) for r in records), cache, desc)
    return [known[text_key(r["prompt"], r["response"])] for r in records]


@contextmanager
def open_cache(path: str | os.PathLike | None, scorers: Iterable) -> Iterator[ScoreCache]:
    """The score cache at ``path`` for a block of work; when it ends, even by an error, ``scorers`` (which
    :func:`score_with_cache` attaches to it) are detached and the cache is closed."""
    cache = ScoreCache(path)
    try:
        yield cache
    finally:
        for scorer in scorers:
            scorer.attach_cache(None)
        cache.close()

"""Content keys: the one hashing helper behind scorer, run, follow-up set, cache and resume keys."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any


def text_digest(text: str, *, length: int | None = 16, algorithm: str = "sha256") -> str:
    """The first ``length`` hex chars (all with None) of the ``algorithm`` digest of ``text`` in UTF-8."""
    return hashlib.new(algorithm, text.encode("utf-8")).hexdigest()[:length]


def content_fingerprint(
    value: Any,
    *,
    sort_keys: bool = True,
    ensure_ascii: bool = True,
    separators=None,
    length: int | None = 16,
    algorithm: str = "sha256",
) -> str:
    """First 16 hex chars of the sha256 of ``value`` as JSON: the key of a scorer, a run, a follow-up set or a
    model's weights. The options exist so that keys already stored in caches and outputs stay the same."""
    blob = json.dumps(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii, separators=separators, default=str)
    return text_digest(blob, length=length, algorithm=algorithm)


def content_keys(pairs: Iterable[tuple[Any, Any]]) -> list[str]:
    """Stable keys for records without ids: a content hash plus an occurrence count (duplicates stay distinct)."""
    seen: Counter[str] = Counter()
    keys = []
    for pair in pairs:
        digest = content_fingerprint(pair, ensure_ascii=False, algorithm="sha1")
        keys.append(f"{digest}#{seen[digest]}")
        seen[digest] += 1
    return keys

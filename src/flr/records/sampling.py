"""The one seeded sampler: the records a job takes of a file or a registered benchmark."""

from __future__ import annotations

import random

from flr.errors import FLRError


def seeded_sample(items: list, limit: int | None, seed: int) -> list:
    """``limit`` items drawn with Python's ``random.Random(seed)``, in their original order (all for None): the
    records ``flr eval``, ``flr audit`` and ``flr followups`` take of a user file or a registered benchmark (for a
    system benchmark, its prompt ids), the same for the same seed. A larger ``limit`` mostly keeps the smaller
    one's draw, so raising it reuses cached scores."""
    if limit is not None and limit < 0:
        raise FLRError(f"limit must be >= 0, got {limit}")
    if limit is None or limit >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]

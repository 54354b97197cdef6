"""The one seeded sampler: the records a job takes of a file or a registered benchmark."""

from __future__ import annotations


def seeded_sample(items: list, limit: int | None, seed: int) -> list:
    """``limit`` items drawn with numpy's generator seeded by ``seed``, in their original order (all for None): the
    records ``flr eval`` and ``flr audit`` take of a user file, the same for the same seed."""
    import numpy as np

    if limit is None or limit >= len(items):
        return items
    keep = sorted(np.random.default_rng(seed).choice(len(items), limit, replace=False))
    return [items[i] for i in keep]

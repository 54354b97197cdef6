"""Length-debiased rewards, without labels: a reward minus its least-squares fit on log response length.

With ``x = log(max(1, characters of the response))`` and ``r`` the reward:

- ``batch``: one line ``a + b x`` fitted by least squares over every response scored together; the debiased
  reward is ``r - a - b x``.
- ``prompt``: one line per prompt, fitted over that prompt's responses; a prompt with fewer than
  :data:`MIN_DISTINCT_LENGTHS` distinct lengths (a line through two points fits them exactly) takes the pooled
  within-prompt slope ``b_w`` instead (the least-squares slope of ``r - mean_p(r)`` on ``x - mean_p(x)`` over all
  prompts): ``r - mean_p(r) - b_w (x - mean_p(x))``. Either way the debiased rewards of one prompt average zero.

A batch with fewer than :data:`MIN_DISTINCT_LENGTHS` distinct lengths gets slope 0 (the reward minus its mean).
Non-finite rewards stay out of every fit and come back as NaN. Within one prompt both modes rank responses by
``r - b x`` (``b`` the batch's slope, or the prompt's own or pooled one): the reward with what length alone
predicts taken out. Pure numpy; no labels, no model.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from flr.errors import FLRError

DEBIAS_MODES = ("none", "batch", "prompt")
MIN_DISTINCT_LENGTHS = 3  # fewer: a per-prompt line would fit (almost) exactly and leave nothing

DEBIAS_HELP = (
    "Length-debiased reward (no labels): none; batch: reward - (a + b*x), x = log(max(1, response length)) in characters (flr eval: in its --length-unit), "
    "a and b the least-squares line of reward on x over all responses scored together; prompt: the same line per "
    f"prompt over its responses (a prompt with fewer than {MIN_DISTINCT_LENGTHS} distinct lengths uses the pooled "
    "within-prompt slope instead: reward - prompt mean - b_w*(x - prompt mean of x))."
)


def check_mode(mode: str, flag: str = "--length-debias") -> str:
    if mode not in DEBIAS_MODES:
        raise FLRError(f"{flag} must be one of {', '.join(DEBIAS_MODES)}, got {mode!r}")
    return mode


def log_length(lengths) -> np.ndarray:
    """``log(max(1, n))``: an empty response counts as one character, so its log stays finite."""
    return np.log(np.maximum(np.asarray(lengths, dtype=float), 1.0))


def _line(x: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line of ``r`` on ``x``; slope 0 with too few distinct ``x``."""
    if len(np.unique(x)) < MIN_DISTINCT_LENGTHS:
        return float(r.mean()), 0.0
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(x), x]), r, rcond=None)
    return float(a), float(b)


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None  # JSON has no NaN


def residualize(rewards, lengths, groups: Sequence[Hashable] | None = None) -> tuple[np.ndarray, dict]:
    """Rewards minus their least-squares line on log length: one line over all (``groups=None``: ``batch``), or
    one per group (``prompt``: pass each response's prompt key). Returns ``(debiased, info)``; ``info`` says what
    was fitted (slopes, how many groups had their own line) and holds only JSON-safe numbers."""
    r = np.asarray(rewards, dtype=float)
    x = log_length(lengths)
    if r.shape != x.shape or r.ndim != 1:
        raise FLRError(f"{r.size} rewards but {x.size} lengths")
    if groups is not None and len(groups) != len(r):
        raise FLRError(f"{len(r)} rewards but {len(groups)} group keys")
    out = np.full_like(r, np.nan)
    ok = np.isfinite(r)
    if groups is None:
        a, b = _line(x[ok], r[ok]) if ok.any() else (float("nan"), 0.0)
        out[ok] = r[ok] - a - b * x[ok]
        return out, {"mode": "batch", "n": int(ok.sum()), "intercept": _number(a), "slope": b}

    index: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        if ok[i]:
            index.setdefault(g, []).append(i)
    members = [np.array(v) for v in index.values()]
    # pooled within-prompt slope: every prompt's reward and log length centred on the prompt's own means
    dx = np.concatenate([x[m] - x[m].mean() for m in members]) if members else np.zeros(0)
    dr = np.concatenate([r[m] - r[m].mean() for m in members]) if members else np.zeros(0)
    pooled = float(np.linalg.lstsq(dx[:, None], dr, rcond=None)[0][0]) if np.any(dx != 0) else 0.0
    slopes = []
    for m in members:
        if len(np.unique(x[m])) >= MIN_DISTINCT_LENGTHS:
            a, b = _line(x[m], r[m])
            out[m] = r[m] - a - b * x[m]
            slopes.append(b)
        else:
            out[m] = r[m] - r[m].mean() - pooled * (x[m] - x[m].mean())
    info = {
        "mode": "prompt",
        "n": int(ok.sum()),
        "groups": len(members),
        "own_line": len(slopes),
        "pooled_slope_groups": len(members) - len(slopes),
        "pooled_slope": pooled,
        "median_slope": _number(float(np.median(slopes))) if slopes else None,
    }
    return out, info


def debias(rewards, lengths, mode: str, groups: Sequence[Hashable] | None = None) -> tuple[np.ndarray, dict]:
    """:func:`residualize` by mode name: ``none`` returns the rewards as they are, ``batch`` ignores ``groups``,
    ``prompt`` needs them."""
    check_mode(mode)
    if mode == "none":
        return np.asarray(rewards, dtype=float).copy(), {"mode": "none"}
    if mode == "prompt" and groups is None:
        raise FLRError("--length-debias prompt needs each response's prompt")
    return residualize(rewards, lengths, groups if mode == "prompt" else None)

"""Length-debiased rewards, without labels: a reward minus its least-squares fit on log response length.

With ``x = log(max(1, characters of the response))`` and ``r`` the reward:

- ``batch``: one line ``a + b x`` fitted by least squares over every response scored together; the debiased
  reward is ``r - a - b x``.
- ``prompt``: one line per prompt, fitted over that prompt's responses; a prompt with fewer than
  :data:`MIN_DISTINCT_LENGTHS` distinct lengths (a line through two points fits them exactly) takes the pooled
  within-prompt slope ``b_w`` instead (the least-squares slope of ``r - mean_p(r)`` on ``x - mean_p(x)`` over all
  prompts): ``r - mean_p(r) - b_w (x - mean_p(x))``. Either way the debiased rewards of one prompt average zero.

- ``lowess``: post-hoc length calibration (Huang et al. 2024, arXiv 2409.17407): the reward minus its locally
  weighted regression on ``x`` over every response scored together (statsmodels' LOWESS, ``frac`` =
  :data:`LOWESS_FRAC`, no robustifying iterations), a curve instead of a line.

Style control (``--style-debias batch|prompt``, Chatbot Arena's style-controlled leaderboard without labels): the
same least squares with the style vector (:data:`flr.patterns.STYLE_FEATURES`: log length, counts of markdown headers,
list items and bold spans, an opener, a closer, a bait question) in place of ``x``: ``batch`` over every response,
``prompt`` with the pooled within-prompt coefficients (each prompt's rewards and style centred on its own means; a
fit of seven covariates per prompt would fit a handful of candidates exactly). A covariate constant over the fit
gets coefficient 0. Style includes length, so a style mode and a length mode together are an error.

A batch with fewer than :data:`MIN_DISTINCT_LENGTHS` distinct lengths gets slope 0 (the reward minus its mean).
Non-finite rewards stay out of every fit and come back as NaN. Within one prompt both modes rank responses by
``r - b x`` (``b`` the batch's slope, or the prompt's own or pooled one): the reward with what length alone
predicts taken out. Pure numpy; no labels, no model.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from flr.errors import FLRError
from flr.patterns import log_length

DEBIAS_MODES = ("none", "batch", "prompt", "lowess")
STYLE_MODES = ("none", "batch", "prompt")
LOWESS_FRAC = 2 / 3  # statsmodels' default share of the responses each local fit uses
MIN_DISTINCT_LENGTHS = 3  # fewer: a per-prompt line would fit (almost) exactly and leave nothing

DEBIAS_HELP = (
    "Length-debiased reward (no labels): none; batch: reward - (a + b*x), x = log(max(1, response length)) in characters (flr eval: in its --length-unit), "
    "a and b the least-squares line of reward on x over all responses scored together; prompt: the same line per "
    f"prompt over its responses (a prompt with fewer than {MIN_DISTINCT_LENGTHS} distinct lengths uses the pooled "
    "within-prompt slope instead: reward - prompt mean - b_w*(x - prompt mean of x)); lowess: reward - its "
    "LOWESS curve on x over all responses scored together (Huang et al. 2024's post-hoc length calibration)."
)
STYLE_HELP = (
    "Style-controlled reward (no labels): none; batch: reward minus its least-squares fit on the style vector (log "
    "length, counts of markdown headers, list items and bold spans, and 0/1 for an opener, a closer and a bait "
    "question) over all responses scored together; prompt: the same with pooled within-prompt coefficients (each "
    "prompt's rewards and styles centred on their own means). Includes length: not with --length-debias."
)


def check_mode(mode: str, flag: str = "--length-debias", style: str = "none") -> str:
    """``mode`` if it is a --length-debias mode and ``style`` a --style-debias one, not both on; else one error."""
    if mode not in DEBIAS_MODES:
        raise FLRError(f"{flag} must be one of {', '.join(DEBIAS_MODES)}, got {mode!r}")
    if style not in STYLE_MODES:
        raise FLRError(f"--style-debias must be one of {', '.join(STYLE_MODES)}, got {style!r}")
    if mode != "none" and style != "none":
        raise FLRError("--style-debias already controls for length: use it or --length-debias, not both")
    return mode


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

    members = _members(groups, ok)
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


def lowess_residuals(rewards, lengths) -> tuple[np.ndarray, dict]:
    """Rewards minus their LOWESS curve on log length (``lowess`` mode); too few distinct lengths: minus the mean."""
    from statsmodels.nonparametric.smoothers_lowess import lowess

    r = np.asarray(rewards, dtype=float)
    x = log_length(lengths)
    out = np.full_like(r, np.nan)
    ok = np.isfinite(r)
    if len(np.unique(x[ok])) < MIN_DISTINCT_LENGTHS:
        out[ok] = r[ok] - (r[ok].mean() if ok.any() else 0.0)
        return out, {"mode": "lowess", "n": int(ok.sum()), "fitted": False}
    curve = lowess(r[ok], x[ok], frac=LOWESS_FRAC, it=0, return_sorted=False)
    out[ok] = r[ok] - curve
    return out, {"mode": "lowess", "n": int(ok.sum()), "fitted": True, "frac": LOWESS_FRAC}


def style_residuals(rewards, features, groups: Sequence[Hashable] | None = None) -> tuple[np.ndarray, dict]:
    """Rewards minus their least-squares fit on ``features`` (``[n, k]``, the style vectors): with an intercept over
    all (``groups=None``), or with pooled within-group coefficients. Returns ``(residuals, info)``."""
    from flr.patterns import STYLE_FEATURES

    r = np.asarray(rewards, dtype=float)
    X = np.asarray(features, dtype=float).reshape(len(r), -1).copy()  # a copy: centring below leaves it alone
    out = np.full_like(r, np.nan)
    ok = np.isfinite(r)
    if groups is None:
        design = np.column_stack([np.ones(len(r)), X])[ok]
        target = r[ok]
    else:  # centre on each group's own means: the fit sees within-prompt differences only
        target = r.copy()
        for m in _members(groups, ok):
            X[m] -= X[m].mean(axis=0)
            target[m] -= target[m].mean()
        design, target = X[ok], target[ok]
    coef = np.linalg.lstsq(design, target, rcond=None)[0] if len(target) else np.zeros(design.shape[1])
    out[ok] = target - design @ coef
    names = STYLE_FEATURES if X.shape[1] == len(STYLE_FEATURES) else range(X.shape[1])
    slopes = coef[1:] if groups is None else coef
    info = {"mode": "batch" if groups is None else "prompt", "n": int(ok.sum())}
    info["coefficients"] = {str(k): _number(float(v)) for k, v in zip(names, slopes)}
    return out, info


def _members(groups: Sequence[Hashable], ok: np.ndarray) -> list[np.ndarray]:
    """Per group, in order of first appearance, the indices of its responses with a finite reward."""
    index: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        if ok[i]:
            index.setdefault(g, []).append(i)
    return [np.array(v) for v in index.values()]


def debias(
    rewards,
    lengths,
    mode: str,
    groups: Sequence[Hashable] | None = None,
    *,
    style: str = "none",
    texts=None,
    features=None,
) -> tuple[np.ndarray, dict]:
    """Debiased rewards by mode name: a length ``mode`` (:func:`residualize`; ``lowess``: :func:`lowess_residuals`)
    or a ``style`` mode (:func:`style_residuals` on the style vectors of ``texts``, log length from ``lengths``;
    ``features``: those vectors, already measured).
    ``none`` for both returns the rewards as they are; ``batch`` ignores ``groups``, ``prompt`` needs them."""
    check_mode(mode, style=style)
    if len(rewards) == 0:  # nothing to fit (e.g. every candidate left out as unfinished)
        return np.zeros(0), {"mode": mode, **({"style": True} if style != "none" else {}), "n": 0}
    grouped = "prompt" in (mode, style)
    if grouped and groups is None:
        raise FLRError(f"--{'style' if style == 'prompt' else 'length'}-debias prompt needs each response's prompt")
    if style != "none":
        from flr.patterns import style_matrix

        if features is None and texts is None:
            raise FLRError("--style-debias needs the responses' texts")
        features = style_matrix(texts, lengths) if features is None else features
        values, info = style_residuals(rewards, features, groups if grouped else None)
        return values, {**info, "style": True}
    if mode == "none":
        return np.asarray(rewards, dtype=float).copy(), {"mode": "none"}
    if mode == "lowess":
        return lowess_residuals(rewards, lengths)
    return residualize(rewards, lengths, groups if mode == "prompt" else None)


def debias_requests(
    tables: dict[str, dict], requests: Sequence[tuple], *, mode: str = "none", style: str = "none", length_of=len
) -> dict[str, dict]:
    """Each of ``tables`` (scorer -> text key -> reward) with the rewards of ``requests`` (``(key, (prompt,
    response))``, the unique texts of a benchmark or an audit) replaced by their debiased values (:func:`debias`),
    fitted per table over all of them; a prompt groups the responses to it. The lengths, prompts and style vectors
    are measured once for every table; keys not in ``requests`` keep their reward."""
    from flr.patterns import style_matrix
    from flr.scorers.cache import text_key

    keys = [k for k, _ in requests]
    texts = [response for _, (_, response) in requests]
    lengths = [length_of(t) for t in texts]
    groups = [text_key(prompt, "") for _, (prompt, _) in requests]
    features = style_matrix(texts, lengths) if style != "none" else None
    out = {}
    for name, rewards in tables.items():
        values, _ = debias([rewards[k] for k in keys], lengths, mode, groups, style=style, features=features)
        out[name] = {**rewards, **{k: float(v) for k, v in zip(keys, values)}}
    return out

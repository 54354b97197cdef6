"""Evaluation metrics: pure numpy/scipy functions over score arrays."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import special, stats


def _array(values) -> np.ndarray:
    return np.asarray(values, dtype=float).ravel()


def _same_length(*arrays: np.ndarray) -> None:
    if len({len(a) for a in arrays}) > 1:
        raise ValueError(f"inputs have different lengths: {[len(a) for a in arrays]}")


def _correct(chosen_scores, rejected_scores) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair correctness (chosen strictly higher; NaN = wrong) and tie indicators."""
    chosen, rejected = _array(chosen_scores), _array(rejected_scores)
    _same_length(chosen, rejected)
    with np.errstate(invalid="ignore"):
        return (chosen > rejected).astype(float), (chosen == rejected).astype(float)


def pairwise_accuracy(chosen_scores, rejected_scores) -> dict:
    """Fraction of pairs with score(chosen) > score(rejected); ties and NaN scores count as wrong (RewardBench)."""
    correct, ties = _correct(chosen_scores, rejected_scores)
    n = len(correct)
    return {
        "accuracy": float(correct.mean()) if n else float("nan"),
        "tie_rate": float(ties.mean()) if n else float("nan"),
        "n": n,
    }


def bootstrap_ci(
    values,
    statistic: Callable[..., float] = np.mean,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over ``values`` (NaNs dropped); (nan, nan) if fewer than 2 values."""
    x = _array(values)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        v = float(statistic(x))
        if 0 <= v <= 1:  # every resample is the same: a Wilson interval, never a zero-width one
            return _wilson(v, len(x), level)
        return v, v
    rng = np.random.default_rng(seed)
    stats_ = np.array([statistic(x[rng.integers(0, len(x), len(x))]) for _ in range(n_resamples)], dtype=float)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats_, [alpha, 1 - alpha])
    return float(low), float(high)


def _wilson(p: float, n: int, level: float) -> tuple[float, float]:
    z = stats.norm.ppf(1 - (1 - level) / 2)
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(center - half), float(center + half)


def pairwise_report(chosen_scores, rejected_scores, subsets: Sequence[str] | None = None, seed: int = 0) -> dict:
    """Overall accuracy with bootstrap CI and tie rate, per-subset accuracies, and their macro average."""
    chosen, rejected = _array(chosen_scores), _array(rejected_scores)
    correct, _ = _correct(chosen, rejected)
    report = pairwise_accuracy(chosen, rejected)
    report["ci"] = bootstrap_ci(correct, seed=seed)
    groups = np.asarray(subsets if subsets is not None else ["all"] * len(correct), dtype=object)
    _same_length(correct, groups)
    report["subsets"] = {
        str(name): pairwise_accuracy(chosen[groups == name], rejected[groups == name])
        for name in sorted(set(groups.tolist()), key=str)
    }
    accs = [s["accuracy"] for s in report["subsets"].values()]
    report["macro_accuracy"] = float(np.mean(accs)) if accs else float("nan")
    return report


def _finite_pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    x, y = _array(a), _array(b)
    _same_length(x, y)
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def rating_correlations(scores, ratings) -> dict:
    """Pearson, Spearman and Kendall correlation over pairs without NaN; NaN if n < 2 or an input is constant."""
    x, y = _finite_pairs(scores, ratings)
    n = len(x)
    out = {"pearson": float("nan"), "spearman": float("nan"), "kendall": float("nan"), "n": n}
    if n < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["pearson"] = float(stats.pearsonr(x, y)[0])
        out["spearman"] = float(stats.spearmanr(x, y)[0])
        out["kendall"] = float(stats.kendalltau(x, y)[0])
    return out


def system_correlations(model_scores: dict[str, float], targets: dict[str, float]) -> dict:
    """Correlations between per-model scores and targets over the models present (and finite) in both."""
    models = sorted(
        m for m in set(model_scores) & set(targets) if np.isfinite(model_scores[m]) and np.isfinite(targets[m])
    )
    corr = rating_correlations([model_scores[m] for m in models], [targets[m] for m in models])
    return {
        "spearman": corr["spearman"],
        "kendall": corr["kendall"],
        "pearson": corr["pearson"],
        "n": corr["n"],
        "models": models,
    }


def win_rate(preferences, level: float = 0.95) -> dict:
    """Mean preference (1 = candidate wins, 0.5 = tie, 0 = loses), its standard error and a normal CI in [0, 1]."""
    p = _array(preferences)
    p = p[~np.isnan(p)]
    if np.any((p < 0) | (p > 1)):
        raise ValueError("preferences must lie in [0, 1]")
    n = len(p)
    if n == 0:
        return {"win_rate": float("nan"), "se": float("nan"), "ci": (float("nan"), float("nan"))}
    wr = float(p.mean())
    se = float(p.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = stats.norm.ppf(0.5 + level / 2)
    ci = (float(max(0.0, wr - z * se)), float(min(1.0, wr + z * se))) if n > 1 else (float("nan"), float("nan"))
    return {"win_rate": wr, "se": se, "ci": ci}


def _fit_logistic(features: np.ndarray, targets: np.ndarray, ridge: float = 1e-3, steps: int = 100) -> np.ndarray:
    """Newton/IRLS fit of a logistic regression with soft targets in [0, 1] and a small L2 penalty."""
    w = np.zeros(features.shape[1])
    for _ in range(steps):
        prob = special.expit(features @ w)
        grad = features.T @ (prob - targets) + ridge * w
        hess = (features * (prob * (1 - prob))[:, None]).T @ features + ridge * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return w


def length_controlled_win_rate(preferences, len_candidate, len_baseline) -> float:
    """AlpacaEval-2-style length-controlled win rate (simplified: no per-instruction term).

    Fits ``logit P(candidate wins) = a + b * tanh((len_c - len_b) / std(len_c - len_b))`` to the (soft) preferences
    by maximum likelihood, then predicts with the length term zeroed: ``LC = sigmoid(a)``. Rows with a NaN are
    dropped; equal lengths everywhere give the plain win rate. Raises ValueError if input lengths differ.
    """
    p, lc, lb = _array(preferences), _array(len_candidate), _array(len_baseline)
    _same_length(p, lc, lb)
    keep = ~(np.isnan(p) | np.isnan(lc) | np.isnan(lb))
    p, diff = p[keep], (lc - lb)[keep]
    if np.any((p < 0) | (p > 1)):
        raise ValueError("preferences must lie in [0, 1]")
    if len(p) == 0:
        return float("nan")
    std = diff.std()
    if len(p) < 2 or std == 0:
        return float(p.mean())
    features = np.column_stack([np.ones_like(diff), np.tanh(diff / std)])
    return float(special.expit(_fit_logistic(features, p)[0]))

"""Evaluation metrics: pure numpy/scipy functions over score arrays."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np


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
    from scipy import stats

    x = _array(values)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        v = float(statistic(x))
        if 0 <= v <= 1:  # every resample is the same: a Wilson interval, never a zero-width one
            return tuple(share_ci(round(v * len(x)), len(x), level))  # ties (1/2 each) round to a count
        return v, v
    with warnings.catch_warnings():  # its NaN warning speaks of BCa, which is not used here
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        ci = stats.bootstrap(
            (x,),
            statistic,
            n_resamples=n_resamples,
            batch=100,  # resamples in memory at once: bounded for large benchmarks
            confidence_level=level,
            method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval
    return float(ci.low), float(ci.high)


def share_ci(k: int, n: int, level: float = 0.95) -> list[float] | None:
    """Wilson interval of the share k/n (scipy's ``binomtest(k, n).proportion_ci``); None for n = 0."""
    from scipy import stats

    if n == 0:
        return None
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return [float(max(0.0, ci.low)), float(min(1.0, ci.high))]  # no float dust outside [0, 1]


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
    from scipy import stats

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
    from scipy import stats

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


def _fit_logistic(features: np.ndarray, targets: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Logistic regression with soft targets in [0, 1] and a small L2 penalty on every coefficient (no separate
    intercept): each row enters twice, as a win weighted by its target and a loss weighted by the rest."""
    from sklearn.linear_model import LogisticRegression

    n = len(targets)
    model = LogisticRegression(C=1 / ridge, fit_intercept=False, solver="newton-cholesky", tol=1e-10, max_iter=100)
    model.fit(
        np.vstack([features, features]),
        np.r_[np.ones(n), np.zeros(n)],
        sample_weight=np.r_[targets, 1 - targets],
    )
    return model.coef_[0]


def length_controlled_win_rate(preferences, len_candidate, len_baseline) -> float:
    """AlpacaEval-2-style length-controlled win rate (simplified: no per-instruction term).

    Fits ``logit P(candidate wins) = a + b * tanh((len_c - len_b) / std(len_c - len_b))`` to the (soft) preferences
    by maximum likelihood, then predicts with the length term zeroed: ``LC = sigmoid(a)``. Rows with a NaN are
    dropped; equal lengths everywhere give the plain win rate. Raises ValueError if input lengths differ.
    """
    from scipy import special

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


# -- length control ------------------------------------------------------------------------------------------

MIN_PAIRS_FOR_CI = 10  # fewer length-matched pairs: report n and no accuracy (a CI over a handful is noise)
MIN_PAIRS_FOR_REGRESSION = 20


def length_matched(len_chosen, len_rejected, ratio: float = 1.25) -> np.ndarray:
    """True where the longer response is at most ``ratio`` times the shorter (both empty: matched)."""
    a, b = _array(len_chosen), _array(len_rejected)
    _same_length(a, b)
    if ratio < 1:
        raise ValueError(f"length ratio must be at least 1, got {ratio}")
    longer, shorter = np.maximum(a, b), np.minimum(a, b)
    return (longer == shorter) | (longer <= ratio * shorter)


def ratio_of_lengths(len_a: int, len_b: int) -> float:
    """Longer over shorter, a length below 1 counting as 1: the ratio ``flr mine --length-band`` bounds and its
    summary reports (:func:`length_matched` is the vectorised test ``flr eval`` applies, where only two empty
    responses match each other)."""
    la, lb = max(1, len_a), max(1, len_b)
    return max(la, lb) / min(la, lb)


def matched_accuracy(chosen_scores, rejected_scores, len_chosen, len_rejected, ratio: float = 1.25, seed: int = 0):
    """Pairwise accuracy (ties wrong) on the length-matched pairs, with a bootstrap CI; ``accuracy`` and ``ci``
    are None when fewer than ``MIN_PAIRS_FOR_CI`` pairs match (``n`` says how many did)."""
    mask = length_matched(len_chosen, len_rejected, ratio)
    correct, ties = _correct(_array(chosen_scores)[mask], _array(rejected_scores)[mask])
    n = int(mask.sum())
    if n < MIN_PAIRS_FOR_CI:
        return {"n": n, "accuracy": None, "ci": None, "tie_rate": None, "ratio": ratio}
    return {
        "n": n,
        "accuracy": float(correct.mean()),
        "ci": list(bootstrap_ci(correct, seed=seed)),
        "tie_rate": float(ties.mean()),
        "ratio": ratio,
    }


def length_agreement(chosen_scores, rejected_scores, len_chosen, len_rejected) -> dict:
    """Share of pairs (whose responses differ in length) on which the scorer prefers the longer response;
    a tie in score counts as not agreeing."""
    margin = _array(chosen_scores) - _array(rejected_scores)
    length = _array(len_chosen) - _array(len_rejected)
    _same_length(margin, length)
    keep = length != 0
    n = int(keep.sum())
    if n == 0:
        return {"share": None, "n": 0}
    with np.errstate(invalid="ignore"):
        same = np.sign(margin[keep]) == np.sign(length[keep])
    return {"share": float(same.mean()), "n": n}


def _oriented(margin: np.ndarray, covariates: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs as (features, label) rows with a seeded half of them flipped (features negated, label 0): the same
    likelihood as mirroring every pair, with n rows, so standard errors are those of n pairs, not 2n. The margin
    is the last column."""
    flip = np.random.default_rng(seed).random(len(margin)) < 0.5
    sign = np.where(flip, -1.0, 1.0)
    features = np.column_stack([covariates.reshape(len(margin), -1), margin]) * sign[:, None]
    return features, (~flip).astype(int)


def signal_beyond(
    chosen_scores, rejected_scores, covariates, *, folds: int = 5, level: float = 0.95, seed: int = 0
) -> dict:
    """The reward's signal beyond ``covariates`` (``[n, k]``, chosen minus rejected): a logistic regression of the
    human preference on the covariates and the standardized reward margin, no intercept (a pair read either way
    round gives the mirrored row). Returns the reward's coefficient (per SD of the margin) with a Wald CI, the
    covariates' coefficients, and the cross-validated accuracy of covariates + reward against covariates alone.
    Pairs with a NaN score or covariate are left out; numbers are None when fewer than ``MIN_PAIRS_FOR_REGRESSION``
    remain or the margin is constant. A covariate that is 0 for every pair is dropped from the fit."""
    from scipy import stats
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    margin = _array(chosen_scores) - _array(rejected_scores)
    cov = np.asarray(covariates, dtype=float).reshape(len(margin), -1)
    keep = np.isfinite(margin) & np.all(np.isfinite(cov), axis=1)
    margin, cov = margin[keep], cov[keep]
    used = np.any(cov != 0, axis=0)
    n = len(margin)
    out = {
        "n": n,
        "coef": None,
        "ci": None,
        "covariate_coefs": None,
        "cv_accuracy": None,
        "cv_accuracy_covariates": None,
    }
    scale = float(np.sqrt(np.mean(margin**2))) if n else 0.0  # the margin's SD about zero (mirrored pairs)
    if n < MIN_PAIRS_FOR_REGRESSION or scale == 0:
        return out
    X, y = _oriented(margin / scale, cov[:, used], seed)
    if y.min() == y.max():  # a seeded flip that left one class (only possible for tiny n)
        return out
    model = LogisticRegression(C=1e6, fit_intercept=False, max_iter=1000).fit(X, y)  # C: effectively unpenalised
    w = model.coef_[0]
    p = model.predict_proba(X)[:, 1]
    fisher = (X * (p * (1 - p))[:, None]).T @ X
    try:  # a covariate collinear with the reward: no CI
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(np.linalg.inv(fisher)))
    except np.linalg.LinAlgError:
        se = np.full(X.shape[1], np.nan)
    z = stats.norm.ppf(0.5 + level / 2)
    cv = StratifiedKFold(n_splits=min(folds, int(min(np.bincount(y)))), shuffle=True, random_state=seed)
    plain = LogisticRegression(C=1e6, fit_intercept=False, max_iter=1000)
    coefs = np.zeros(cov.shape[1])
    coefs[used] = w[:-1]
    out.update(
        coef=float(w[-1]),
        ci=[float(w[-1] - z * se[-1]), float(w[-1] + z * se[-1])] if np.isfinite(se[-1]) else None,
        covariate_coefs=[float(c) for c in coefs],
        cv_accuracy=float(cross_val_score(plain, X, y, cv=cv).mean()),
        cv_accuracy_covariates=float(cross_val_score(plain, X[:, :-1], y, cv=cv).mean()) if used.any() else None,
    )
    return out


def beyond_length(
    chosen_scores, rejected_scores, len_chosen, len_rejected, *, folds: int = 5, level: float = 0.95, seed: int = 0
) -> dict:
    """The signal beyond length: :func:`signal_beyond` with the log length ratio as the one covariate (pairs with
    an empty response are left out). Keys: n, coef, ci, length_coef, cv_accuracy, cv_accuracy_length."""
    lc, lr = _array(len_chosen), _array(len_rejected)
    margin = _array(chosen_scores) - _array(rejected_scores)
    _same_length(margin, lc, lr)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where((lc > 0) & (lr > 0), np.log(lc / np.where(lr > 0, lr, 1)), np.nan)
    out = signal_beyond(chosen_scores, rejected_scores, log_ratio, folds=folds, level=level, seed=seed)
    coefs = out.pop("covariate_coefs")
    out["length_coef"] = coefs[0] if coefs else None
    out["cv_accuracy_length"] = out.pop("cv_accuracy_covariates")
    return out


def beyond_style(chosen_scores, rejected_scores, style_chosen, style_rejected, *, seed: int = 0) -> dict:
    """The signal beyond style: :func:`signal_beyond` with the style vectors' differences (chosen minus rejected;
    :data:`flr.patterns.STYLE_FEATURES`: log length, markdown headers, list items, bold spans, opener, closer,
    bait question) as covariates, as Chatbot Arena's style control does. ``covariate_coefs`` follow that order."""
    diff = np.asarray(style_chosen, dtype=float) - np.asarray(style_rejected, dtype=float)
    return signal_beyond(chosen_scores, rejected_scores, diff, seed=seed)


def length_control_report(
    chosen_scores,
    rejected_scores,
    len_chosen,
    len_rejected,
    ratio: float = 1.25,
    seed: int = 0,
    *,
    style_chosen=None,
    style_rejected=None,
) -> dict:
    """Every length-controlled number of one scorer on one set of pairs (see the functions it calls), and the
    signal beyond style when the pairs' style vectors are given."""
    args = (chosen_scores, rejected_scores, len_chosen, len_rejected)
    out = {
        "matched": matched_accuracy(*args, ratio=ratio, seed=seed),
        "length_agreement": length_agreement(*args),
        "beyond_length": beyond_length(*args, seed=seed),
    }
    if style_chosen is not None:
        out["beyond_style"] = beyond_style(chosen_scores, rejected_scores, style_chosen, style_rejected, seed=seed)
    return out


def partial_spearman(x, y, control) -> dict:
    """Spearman correlation of x and y controlling for ``control`` (the partial correlation of the ranks), with
    its two-sided p-value (t with n - 3 degrees of freedom); None where n < 4 or a rank correlation is undefined."""
    from scipy import stats

    a, b, c = _array(x), _array(y), _array(control)
    _same_length(a, b, c)
    keep = np.isfinite(a) & np.isfinite(b) & np.isfinite(c)
    a, b, c = a[keep], b[keep], c[keep]
    n = len(a)
    if n < 4 or any(np.all(v == v[0]) for v in (a, b, c)):
        return {"spearman": None, "p": None, "n": n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r_ab, r_ac, r_bc = (float(stats.spearmanr(u, v)[0]) for u, v in ((a, b), (a, c), (b, c)))
    denom = math.sqrt(max((1 - r_ac**2) * (1 - r_bc**2), 0.0))
    if denom == 0:
        return {"spearman": None, "p": None, "n": n}
    r = max(-1.0, min(1.0, (r_ab - r_ac * r_bc) / denom))
    t = r * math.sqrt((n - 3) / max(1 - r * r, 1e-12))
    return {"spearman": r, "p": float(2 * stats.t.sf(abs(t), n - 3)), "n": n}


def paired_difference(candidate, base, *, seed: int = 0, n_resamples: int = 1000) -> dict:
    """Mean of ``candidate - base`` over paired items (prompts) with a percentile bootstrap CI; both means too."""
    c, b = _array(candidate), _array(base)
    _same_length(c, b)
    diff = c - b
    same = len(diff) > 1 and np.all(diff == diff[0])  # no variation: bootstrap_ci's Wilson interval is for shares
    return {
        "n": len(diff),
        "candidate": float(c.mean()) if len(c) else float("nan"),
        "base": float(b.mean()) if len(b) else float("nan"),
        "difference": float(diff.mean()) if len(diff) else float("nan"),
        "ci": [float(diff[0])] * 2 if same else list(bootstrap_ci(diff, n_resamples=n_resamples, seed=seed)),
        "candidate_higher": float(np.mean(diff > 0)) if len(diff) else float("nan"),
    }


def surface_drift(candidate_texts: Sequence[str], base_texts: Sequence[str], *, seed: int = 0) -> dict:
    """What tuning changed on the surface of a policy's answers to the same prompts: mean length (characters) and
    the share carrying each content-free pattern (:data:`flr.patterns.DETECTORS`), candidate against base, each
    a :func:`paired_difference` with a bootstrap CI over prompts."""
    from flr.patterns import DETECTORS, detect_patterns

    found = {role: [detect_patterns(t) for t in texts] for role, texts in (("c", candidate_texts), ("b", base_texts))}
    out = {"length": paired_difference([len(t) for t in candidate_texts], [len(t) for t in base_texts], seed=seed)}
    for name in DETECTORS:
        out[name] = paired_difference(
            [float(name in f) for f in found["c"]], [float(name in f) for f in found["b"]], seed=seed
        )
    return out


# -- perturbations (flr audit) ---------------------------------------------------------------------------------


def median_abs_margin(chosen: Sequence[float], rejected: Sequence[float]) -> float | None:
    """The scorer's typical |chosen - rejected| on labelled pairs (finite ones); None without pairs or when it is 0."""
    margins = np.abs(_array(chosen) - _array(rejected))
    margins = margins[np.isfinite(margins)]
    if not len(margins) or float(np.median(margins)) == 0:
        return None
    return float(np.median(margins))


def perturbation_effect(before: Sequence[float], after: Sequence[float], margin: float | None = None) -> dict:
    """How a perturbation moves one scorer's rewards: shares that rise and fall (strictly) with Wilson CIs, the
    median and mean change, the median change in units of ``margin``, and a reading: ``rises`` (the share that
    rises is above 1/2 with 95% confidence), ``falls`` (likewise for the share that falls) or ``mixed``. Pairs
    with a NaN reward are left out (``n`` counts the rest)."""
    delta = _array(after) - _array(before)
    delta = delta[np.isfinite(delta)]
    n = len(delta)
    rises, falls = int((delta > 0).sum()), int((delta < 0).sum())
    rise_ci, fall_ci = share_ci(rises, n), share_ci(falls, n)
    median = float(np.median(delta)) if n else None
    reading = "mixed"
    if rise_ci and rise_ci[0] > 0.5:
        reading = "rises"
    elif fall_ci and fall_ci[0] > 0.5:
        reading = "falls"
    return {
        "n": n,
        "share_rises": rises / n if n else None,
        "ci": rise_ci,
        "share_falls": falls / n if n else None,
        "falls_ci": fall_ci,
        "share_unchanged": (n - rises - falls) / n if n else None,
        "median_change": median,
        "mean_change": float(delta.mean()) if n else None,
        "median_change_margins": median / margin if median is not None and margin else None,
        "reading": reading if n else None,
    }


def perturbation_flagged(kind: str, effect: dict) -> bool:
    """A finding: a content-free edit that raises the reward for most responses, or a destructive one that does not
    lower it for most (``effect``: :func:`perturbation_effect`)."""
    if not effect.get("n"):
        return False
    if kind == "content-free":
        return effect["reading"] == "rises"
    if kind == "destructive":
        return effect["reading"] != "falls"
    return False

"""Fitted follow-up weights: an L2-regularised logistic regression on per-follow-up margins of labelled pairs.

Each follow-up ``f`` gives a pair a feature ``z_f(chosen) - z_f(rejected)``, with ``z_f = +s_f`` for a positive
follow-up and ``-s_f`` for a negative one (``s_f`` its log-prob statistic). A logistic regression without intercept
(scikit-learn, regularisation strength chosen by cross-validation) on the pairs, mirrored so that both label
values occur, gives one coefficient per follow-up: the follow-up's weight in a *weighted* set, whose reward is
``sum_f w_f z_f``. Per-follow-up log-probs come from the score cache, so refitting costs seconds.

With ``--control-length`` the pair's log length ratio ``log(chars(chosen) / chars(rejected))`` (each length at
least 1) is one more feature, mirrored with the pair and left (in effect) unpenalised, as a covariate one controls
for: under a shared L2 penalty a follow-up that tracks length would split the length effect with it. The follow-up
weights then learn what length does not predict. Its coefficient ``beta`` is the set's ``length_coefficient``, in the reward's
units, so ``reward + beta * log(chars)`` (``--length-term``) is the fitted model's logit up to a per-prompt constant.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from flr.errors import FLRError
from flr.followups.sets import Category, FollowUpSet
from flr.patterns import log_length

LENGTH_SCALE = 100.0  # the length covariate's RMS in the fit: its penalty is 1e-4 of a unit-scale feature's


def length_feature(records: Sequence[dict]) -> np.ndarray:
    """Per pair: ``log(chars(chosen) / chars(rejected))``, each length at least 1 (the fit's length covariate)."""
    return log_length([len(r["chosen"]) for r in records]) - log_length([len(r["rejected"]) for r in records])


def cv_folds(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) indices into the ``2 * n`` mirrored rows (pair ``i`` and its mirror ``n + i``): the pairs
    shuffled by ``seed`` into ``folds`` folds, a pair and its mirror always in the same one."""
    from sklearn.model_selection import GroupKFold

    groups = np.concatenate([np.arange(n), np.arange(n)])
    return list(GroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(groups, groups=groups))


def fit_weights(
    features: np.ndarray, *, folds: int = 5, seed: int = 0, length: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """Coefficients of an L2 logistic regression of 'chosen wins' on the margins, and fit statistics.

    With ``length`` (per pair, :func:`length_feature`) the log length ratio enters as one more covariate, in effect
    unpenalised (scaled up to RMS :data:`LENGTH_SCALE` for the fit, its coefficient scaled back); the
    follow-up coefficients are returned as before and the length's as ``stats["length_coefficient"]``. ``seed``
    shuffles the pairs into cross-validation folds (:func:`cv_folds`), so the strength chosen and ``cv_accuracy``
    depend on it.
    """
    from sklearn.linear_model import LogisticRegressionCV

    n = len(features)
    if n < 2 * folds:
        raise FLRError(f"need at least {2 * folds} labelled pairs to fit follow-up weights, got {n}")
    scale = 1.0
    if length is not None:
        length = np.asarray(length, dtype=float)
        if len(length) != n:
            raise FLRError(f"{len(length)} length ratios for {n} pairs")
        rms = float(np.sqrt(np.mean(length**2)))
        # blown up to RMS LENGTH_SCALE, the column's L2 penalty on its original scale shrinks by 1/LENGTH_SCALE^2
        scale = LENGTH_SCALE / rms if rms > 0 else 1.0
    full = features if length is None else np.column_stack([features, length * scale])
    X = np.concatenate([full, -full])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    model = LogisticRegressionCV(
        Cs=np.logspace(-3, 3, 13), cv=cv_folds(n, folds, seed), fit_intercept=False, scoring="accuracy"
    )
    with warnings.catch_warnings():  # scikit-learn 1.9's notices of 1.10 API changes; flr reads C_ and scores_ as now
        warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
        model.fit(X, y)
    coef = model.coef_[0].copy()
    if length is not None:
        coef[-1] *= scale  # back on the scale of log(chars(chosen) / chars(rejected))
        full = np.column_stack([features, length])
    stats = {
        "pairs": n,
        "C": float(model.C_[0]),
        "cv_accuracy": float(np.max(np.mean(model.scores_[1.0], axis=0))),
        "train_accuracy": float(np.mean(full @ coef > 0)),
        "unweighted_train_accuracy": float(np.mean(features.sum(1) > 0)),
    }
    if length is not None:
        coef, beta = coef[:-1], float(coef[-1])
        stats.update(
            control_length=True,
            length_coefficient=beta,
            followups_only_train_accuracy=float(np.mean(features @ coef > 0)),  # the scorer without --length-term
            length_only_train_accuracy=float(np.mean(full[:, -1] > 0)),  # the longer response wins
        )
    return coef, stats


def weighted_set(
    fset: FollowUpSet, coef: np.ndarray, name: str | None = None, length_coefficient: float | None = None
) -> FollowUpSet:
    """``fset`` with each utterance weighted by its coefficient (scaled so the category mean reads sum_f w_f z_f),
    and the fitted length coefficient when the fit had one (already in those units: the reward is sum_f w_f z_f)."""
    if fset.weighted:
        raise FLRError("fit weights on an unweighted follow-up set")
    if len(coef) != len(fset.utterances):
        raise FLRError(f"{len(coef)} weights for a set of {len(fset.utterances)} follow-ups")
    scale = len(fset.categories)  # the reward averages the categories
    i, categories = 0, {}
    for cat in fset.categories.values():
        pos = tuple(float(w) * scale for w in coef[i : i + len(cat.positive)])
        i += len(cat.positive)
        neg = tuple(float(w) * scale for w in coef[i : i + len(cat.negative)])
        i += len(cat.negative)
        categories[cat.name] = Category(cat.name, cat.positive, cat.negative, cat.description, pos, neg)
    return FollowUpSet(name or f"{fset.name}-fitted", categories, fset.default_categories, length_coefficient)

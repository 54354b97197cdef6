"""Hand-checked cases for flr.eval.metrics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from flr.eval.metrics import (
    bootstrap_ci,
    length_controlled_win_rate,
    pairwise_accuracy,
    pairwise_report,
    rating_correlations,
    system_correlations,
    win_rate,
)

nan = float("nan")


def test_pairwise_accuracy_ties_and_nan_are_wrong():
    out = pairwise_accuracy([2.0, 1.0, 3.0, nan, 5.0], [1.0, 1.0, 4.0, 0.0, nan])
    assert out == {"accuracy": 0.2, "tie_rate": 0.2, "n": 5}


def test_pairwise_accuracy_empty_and_mismatch():
    assert math.isnan(pairwise_accuracy([], [])["accuracy"])
    with pytest.raises(ValueError):
        pairwise_accuracy([1, 2], [1])


def test_pairwise_report_subsets_and_macro():
    chosen = [1, 1, 1, 1, 0, 0]
    rejected = [0, 0, 0, 2, 1, 0]
    report = pairwise_report(chosen, rejected, subsets=["a", "a", "a", "a", "b", "b"])
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["tie_rate"] == pytest.approx(1 / 6)
    assert report["subsets"]["a"] == {"accuracy": 0.75, "tie_rate": 0.0, "n": 4}
    assert report["subsets"]["b"] == {"accuracy": 0.0, "tie_rate": 0.5, "n": 2}
    assert report["macro_accuracy"] == pytest.approx(0.375)
    low, high = report["ci"]
    assert low <= report["accuracy"] <= high


def test_pairwise_report_without_subsets():
    report = pairwise_report([1, 0], [0, 1])
    assert list(report["subsets"]) == ["all"] and report["macro_accuracy"] == report["accuracy"] == 0.5


def test_bootstrap_ci():
    values = np.r_[np.ones(70), np.zeros(30)]
    low, high = bootstrap_ci(values, seed=3)
    assert low < 0.7 < high and 0.55 < low and high < 0.85
    assert bootstrap_ci(values, seed=3) == (low, high)
    with warnings.catch_warnings():  # degenerate inputs: the old answers, and no warning
        warnings.simplefilter("error")
        assert bootstrap_ci([2.5, 2.5, 2.5]) == (2.5, 2.5)
        assert all(math.isnan(v) for v in bootstrap_ci([1.0]))
        assert all(math.isnan(v) for v in bootstrap_ci([]))
        assert all(math.isnan(v) for v in bootstrap_ci([nan, 2.0]))


@pytest.mark.parametrize("level", [0.95, 0.5])
@pytest.mark.parametrize("statistic", [np.median, np.mean])
def test_bootstrap_ci_is_a_percentile_bootstrap(statistic, level):
    """The interval of the statistic asked for, at the level asked for: a percentile bootstrap written out here with
    numpy (independent resamples, so up to Monte Carlo error). Skewed data: the median's and the mean's intervals do
    not overlap, so an interval of the wrong statistic fails."""
    values = np.random.default_rng(1).exponential(size=201)  # median ~0.75, mean ~1.05
    low, high = bootstrap_ci(values, statistic=statistic, n_resamples=4000, level=level, seed=3)
    rng = np.random.default_rng(5)
    resampled = [statistic(rng.choice(values, len(values))) for _ in range(4000)]
    ref = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    assert (low, high) == pytest.approx(tuple(ref), abs=0.03)
    assert low < statistic(values) < high


def test_bootstrap_ci_takes_a_statistic_of_one_sample():
    """A statistic without an ``axis`` argument (flr compare's, over resampled indices) is applied per resample:
    the same resamples, so the same interval as numpy's vectorised mean."""
    values = np.random.default_rng(2).normal(size=50)
    assert bootstrap_ci(values, statistic=lambda v: float(np.mean(v)), seed=4) == bootstrap_ci(values, seed=4)


def test_rating_correlations_perfect_and_constant():
    out = rating_correlations([1, 2, 3, 4], [10, 20, 30, 40])
    assert out["pearson"] == pytest.approx(1) and out["spearman"] == pytest.approx(1)
    assert out["kendall"] == pytest.approx(1) and out["n"] == 4
    assert rating_correlations([1, 2, 3], [3, 2, 1])["spearman"] == pytest.approx(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        const = rating_correlations([1, 2, 3], [5, 5, 5])
        short = rating_correlations([1], [2])
    assert all(math.isnan(const[k]) for k in ("pearson", "spearman", "kendall")) and const["n"] == 3
    assert math.isnan(short["spearman"]) and short["n"] == 1


def test_rating_correlations_drop_nan_pairs():
    out = rating_correlations([1, 2, nan, 4, 5], [1, 2, 3, nan, 3])
    assert out["n"] == 3 and out["spearman"] == pytest.approx(1)


def test_system_correlations_intersection():
    scores = {"a": 1.0, "b": 2.0, "c": 3.0, "x": 9.0, "d": nan}
    targets = {"a": 1000.0, "b": 1100.0, "c": 1050.0, "d": 1.0, "y": 5.0}
    out = system_correlations(scores, targets)
    assert out["models"] == ["a", "b", "c"] and out["n"] == 3
    assert out["spearman"] == pytest.approx(0.5) and out["kendall"] == pytest.approx(1 / 3)


def test_win_rate_ties_count_half():
    out = win_rate([1, 1, 0.5, 0])
    assert out["win_rate"] == pytest.approx(0.625)
    assert out["se"] == pytest.approx(np.std([1, 1, 0.5, 0], ddof=1) / 2)
    assert 0 <= out["ci"][0] < 0.625 < out["ci"][1] <= 1
    assert win_rate([0.5] * 10)["win_rate"] == 0.5
    with pytest.raises(ValueError):
        win_rate([1.5])


def test_lc_win_rate_equal_lengths_is_plain_win_rate():
    prefs = [1, 1, 1, 0, 0.5]
    assert length_controlled_win_rate(prefs, [100] * 5, [100] * 5) == pytest.approx(win_rate(prefs)["win_rate"])


def test_lc_win_rate_falls_when_wins_come_from_length():
    # 80 prompts where the candidate is longer (60 wins), 20 where it is shorter (2 wins): plain 0.62
    prefs = [1] * 60 + [0] * 20 + [1] * 2 + [0] * 18
    longer, shorter = [200] * 80 + [100] * 20, [100] * 80 + [200] * 20
    plain = win_rate(prefs)["win_rate"]
    lc = length_controlled_win_rate(prefs, longer, shorter)
    assert plain == pytest.approx(0.62) and lc < plain - 0.15
    # the fit is symmetric here: logit(LC) = mean of logit(0.75) and logit(0.1)
    assert lc == pytest.approx(1 / (1 + math.exp(-(math.log(3) + math.log(1 / 9)) / 2)), abs=1e-3)


def test_lc_win_rate_soft_targets():
    """Ties (0.5) everywhere: whatever the lengths, the fitted intercept is 0 and the LC win rate one half; a
    preference of 0.75 is as three wins in four at every length."""
    lengths = np.random.default_rng(0).integers(10, 500, size=(2, 40))
    assert length_controlled_win_rate([0.5] * 40, *lengths) == pytest.approx(0.5, abs=1e-6)
    hard = length_controlled_win_rate([1, 1, 1, 0] * 10, np.repeat(lengths[0][:10], 4), np.repeat(lengths[1][:10], 4))
    assert length_controlled_win_rate([0.75] * 10, lengths[0][:10], lengths[1][:10]) == pytest.approx(hard, abs=1e-4)


def test_lc_win_rate_nan_and_mismatch():
    prefs, lc, lb = [1, 0, nan, 1], [10, 20, 30, nan], [10, 20, 30, 40]
    assert length_controlled_win_rate(prefs, lc, lb) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        length_controlled_win_rate([1, 0], [1, 2, 3], [1, 2])


def test_no_zero_width_interval_for_identical_outcomes():
    from flr.eval.metrics import bootstrap_ci

    low, high = bootstrap_ci([0.5, 0.5])  # two ties: we know little
    assert low < 0.5 < high and high - low > 0.5
    low, high = bootstrap_ci([1.0] * 5)
    assert low < 1.0 and high == pytest.approx(1.0)

"""Evaluating rewards: the benchmark registry (benchmarks), pure metrics (metrics), the `flr eval` runner and its
reports (runner, report, html, browser), follow-up selection and fitting (selection, fitting), and content-free
patterns and perturbations (patterns). Imports flr's plain modules and scorers; no torch at import time."""

from flr.eval.benchmarks import (
    BENCHMARKS,
    Benchmark,
    detect_kind,
    get_benchmark,
    load_benchmark,
    load_targets,
    resolve_data_dir,
)
from flr.eval.metrics import (
    bootstrap_ci,
    length_controlled_win_rate,
    pairwise_accuracy,
    pairwise_report,
    rating_correlations,
    system_correlations,
    win_rate,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "bootstrap_ci",
    "detect_kind",
    "get_benchmark",
    "length_controlled_win_rate",
    "load_benchmark",
    "load_targets",
    "pairwise_accuracy",
    "pairwise_report",
    "rating_correlations",
    "resolve_data_dir",
    "system_correlations",
    "win_rate",
]

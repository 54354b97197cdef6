"""Evaluating rewards, as data and pure functions: the benchmark registry and its readers (benchmarks) and the
metrics (metrics). The `flr eval` job lives in flr.jobs.eval, its pages in flr.reports; no torch at import time.

Imports: flr.errors, flr.patterns, flr.records
"""

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

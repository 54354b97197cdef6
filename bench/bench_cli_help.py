"""CPU seconds of ``flr --help`` and some ``flr <command> --help``: each runs in a fresh process, and its cost is the
user + system time of that child (``resource.getrusage(RUSAGE_CHILDREN)``), so other load on the machine does not
count. The target for ``flr --help`` is under 1.5 CPU seconds (it loads no torch, transformers or TRL).

    python bench/bench_cli_help.py                 # 3 runs each, the median printed
    python bench/bench_cli_help.py --runs 5 --commands score "train dpo"
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys

DEFAULT = ["", "score", "eval", "mine", "train", "serve", "pipeline", "followups select", "train dpo"]
TARGET = 1.5  # CPU seconds for `flr --help`


def cpu_seconds(argv: list[str]) -> float:
    """User + system CPU seconds of ``python -m flr.cli ARGV`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "flr.cli", *argv],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="Runs per command; the median is printed.")
    ap.add_argument("--commands", nargs="+", default=DEFAULT, help="Commands whose --help to time ('' is flr).")
    args = ap.parse_args()
    baseline = statistics.median(_python_start() for _ in range(args.runs))
    print(f"{'python -c pass':32s} {baseline:6.2f} s CPU   (interpreter start, included below)")
    ok = True
    for command in args.commands:
        times = [cpu_seconds([*command.split(), "--help"]) for _ in range(args.runs)]
        median = statistics.median(times)
        note = ""
        if command == "":
            ok = median < TARGET
            note = f"   target < {TARGET} s: {'met' if ok else 'MISSED'}"
        label = f"flr {command} --help".replace("  ", " ")
        print(f"{label:32s} {median:6.2f} s CPU   (runs: {', '.join(f'{t:.2f}' for t in times)}){note}")
    return 0 if ok else 1


def _python_start() -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


if __name__ == "__main__":
    sys.exit(main())

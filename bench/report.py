"""Markdown tables from bench result JSON files (the tables of docs/PERFORMANCE.md).

    python bench/report.py bench/results/scoring_cuda_llama-3-8b_full.json [--batch 16] [--peak 779e12]

``--peak``: also give MFU against this FLOP/s (e.g. the best peak measured on the same kind of device).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--batch", type=int, nargs="+", default=None)
    ap.add_argument("--peak", type=float, default=None)
    args = ap.parse_args(argv)
    for path in args.files:
        result = json.loads(Path(path).read_text())
        peak = result.get("peak", {})
        env = result.get("environment", {})
        print(f"### {result.get('model')} — {env.get('gpu') or env.get('cpu')} ({result.get('dtype', '')})")
        print(
            f"`{result.get('command')}` ({result.get('date')}); peak {peak.get('flops_per_s', 0) / 1e12:.1f} TFLOP/s: "
            f"{peak.get('what')}\n"
        )
        if "rows" in result and result["rows"] and "fast_examples_per_s" in result["rows"][0]:
            print(C.scoring_table(result, args.batch, args.peak))
        else:
            print(json.dumps({k: v for k, v in result.items() if k not in ("environment",)}, indent=1)[:3000])
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

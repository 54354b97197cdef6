"""The tables of docs/RESULTS.md, "Does aligning with FLR help?", from a finished ``scripts/close_loop.sh`` run.

    python scripts/close_loop_table.py runs/loop

Per arm: the mined pairs, then the four judges (none of them the reward the arm was tuned on), each with a 95% CI:
implicit reward on the length-matched human pairs (ties count 1/2, so chance is 50%), reference likelihood gain over
the base, win rate against the base judged by FLR with the held-out follow-ups, and surface drift. Then FLR's arms
against the length and random arms, prompt by prompt (pair by pair for the implicit judge): paired bootstrap CIs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from flr.eval.metrics import bootstrap_ci, surface_drift

ARMS = ("dpo-flr", "dpo-robust", "dpo-length", "dpo-random", "grpo-flr", "grpo-robust", "grpo-length", "grpo-random")
CONTRASTS = (("dpo-flr", "dpo-length"), ("dpo-flr", "dpo-random"), ("dpo-robust", "dpo-length"),
             ("dpo-robust", "dpo-random"), ("dpo-flr", "dpo-robust"), ("grpo-flr", "grpo-robust"),
             ("grpo-flr", "grpo-length"), ("grpo-flr", "grpo-random"))  # fmt: skip


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()] if path.exists() else []


def _ci(values) -> str:
    values = np.asarray(values, dtype=float)
    low, high = bootstrap_ci(values, seed=0)
    return f"{values.mean():+.3f} [{low:+.3f}, {high:+.3f}]"


def _pct(values) -> str:
    values = np.asarray(values, dtype=float)
    low, high = bootstrap_ci(values, seed=0)
    return f"{100 * values.mean():.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def per_item(run: Path, arm: str) -> dict[str, dict]:
    """Each judge's per-item values of one arm: implicit (pair -> 1, 1/2, 0), reference gain and FLR-b preference
    (prompt -> value)."""
    out: dict[str, dict] = {"implicit": {}, "reference": {}, "flr_b": {}}
    judge = run / "judge" / arm
    for row in _jsonl(judge / "implicit" / "test_matched.jsonl"):
        (value,) = [v for k, v in row.items() if k.startswith("implicit:")]
        c, r = value["chosen"], value["rejected"]
        out["implicit"][row["id"]] = 1.0 if c > r else 0.5 if c == r else 0.0
    for row in _jsonl(judge / "compare" / "reference_likelihood.jsonl"):
        out["reference"][row["id"]] = row["candidate"] - row["base"]
    for row in _jsonl(judge / "compare" / "compare.jsonl"):
        out["flr_b"][row["id"]] = row["preference"]
    return out


def beyond_length(run: Path, arm: str) -> str:
    """The implicit reward's signal beyond length on the matched pairs: its standardized logistic coefficient with
    log length in the model (flr eval's ``beyond_length``), with its CI."""
    path = run / "judge" / arm / "implicit" / "summary.json"
    if not path.exists():
        return "not judged"
    (result,) = json.loads(path.read_text())["results"]["test_matched"]["scorers"].values()
    b = result["length_control"]["beyond_length"]
    return f"{b['coef']:+.2f} [{b['ci'][0]:+.2f}, {b['ci'][1]:+.2f}]"


def arm_table(run: Path, arms) -> list[str]:
    lines = [
        "| arm | pairs (chosen longer) | implicit acc. on 200 matched pairs | implicit beyond length | "
        "reference gain (nats/token) | "
        "FLR-b win rate vs base | LC win rate | length Δ (chars) | opener Δ | closer Δ | markdown Δ | bait Δ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        items = per_item(run, arm)
        compare = run / "judge" / arm / "compare" / "summary.json"
        if not compare.exists() and not items["implicit"]:
            continue  # not judged yet
        s = json.loads(compare.read_text()) if compare.exists() else None
        mine = run / f"mine-{arm.split('-', 1)[1]}" / "summary.json"
        pairs = "online (GRPO)"
        if arm.startswith("dpo") and mine.exists():
            length = json.loads(mine.read_text())["stats"]["length"]
            pairs = f"{length['pairs']} ({100 * length['chosen_longer']:.0f}%)"
        implicit = _pct(list(items["implicit"].values())) if items["implicit"] else "not judged"
        implicit = f"{implicit} | {beyond_length(run, arm)}"
        if s is None:
            lines.append(f"| {arm} | {pairs} | {implicit} |" + " not judged |" * 8)
            continue
        m = s["metrics"]
        rows = _jsonl(run / "judge" / arm / "compare" / "compare.jsonl")
        d = surface_drift([r["candidate"] for r in rows], [r["base"] for r in rows], seed=0)

        def delta(name, scale=100, d=d):
            x = d[name]
            return f"{scale * x['difference']:+.0f} [{scale * x['ci'][0]:+.0f}, {scale * x['ci'][1]:+.0f}]"

        lines.append(
            f"| {arm} | {pairs} | {implicit} | {_ci(list(items['reference'].values()))} | "
            f"{100 * m['win_rate']:.1f} [{100 * m['win_rate_ci'][0]:.1f}, {100 * m['win_rate_ci'][1]:.1f}] | "
            f"{100 * m['lc_win_rate']:.1f} | {delta('length', 1)} | {delta('opener')} | {delta('closer')} | "
            f"{delta('markdown')} | {delta('bait_question')} |"
        )
    return lines


def contrast_table(run: Path, arms) -> list[str]:
    lines = [
        "| arm A − arm B | implicit acc. (points) | reference gain (nats/token) | FLR-b preference vs base (points) |",
        "|---|---|---|---|",
    ]
    items = {arm: per_item(run, arm) for arm in arms}
    for a, b in CONTRASTS:
        if a not in items or b not in items:
            continue
        cells = []
        for judge, scale in (("implicit", 100), ("reference", 1), ("flr_b", 100)):
            keys = sorted(set(items[a][judge]) & set(items[b][judge]))
            if not keys:
                cells.append("not judged")
                continue
            diff = scale * np.array([items[a][judge][k] - items[b][judge][k] for k in keys])
            low, high = bootstrap_ci(diff, seed=0)
            cells.append(f"{diff.mean():+.{1 if scale == 100 else 3}f} [{low:+.{1 if scale == 100 else 3}f}, "
                         f"{high:+.{1 if scale == 100 else 3}f}] (n={len(keys)})")  # fmt: skip
        if any(c != "not judged" for c in cells):
            lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default="runs/loop")
    args = parser.parse_args()
    run = Path(args.run)
    arms = [a for a in ARMS if (run / a / "adapter_config.json").exists()]
    print("\n".join(arm_table(run, arms)))
    print()
    print("\n".join(contrast_table(run, arms)))


if __name__ == "__main__":
    main()

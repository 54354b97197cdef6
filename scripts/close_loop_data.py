"""The fixed prompt split of the close-the-loop experiment (docs/RESULTS.md, "Does aligning with FLR help?").

AlpacaEval's 805 instructions (the order of ``results/gpt4/model_outputs.json``), shuffled once with seed 0:
the first ``--train`` are the training prompts (sampling, mining, GRPO), the next ``--judge`` are held out for
judging, each with GPT-4's answer as the reference (``reference``). The two never meet.

    python scripts/close_loop_data.py -o runs/loop/data      # train.jsonl, judge.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output-dir", default="runs/loop/data")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--reference-model", default="gpt4")
    parser.add_argument("--train", type=int, default=48)
    parser.add_argument("--judge", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = Path(args.data_dir) / "alpaca_eval" / "results" / args.reference_model / "model_outputs.json"
    rows = json.loads(source.read_text())
    order = list(range(len(rows)))
    random.Random(args.seed).shuffle(order)
    split = {"train": order[: args.train], "judge": order[args.train : args.train + args.judge]}
    assert not set(split["train"]) & set(split["judge"])
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, indices in split.items():
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for i in indices:
                r = rows[i]
                rec = {"id": f"alpaca_eval-{i}", "prompt": r["instruction"], "reference": r["output"]}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"{len(indices)} {name} prompts -> {out / f'{name}.jsonl'}")


if __name__ == "__main__":
    main()

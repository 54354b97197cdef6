"""``flr demo``: FLR on 24 bundled real preference pairs, as a table of chosen vs rejected rewards."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from flr.commands._common import add_command, add_dataclasses, to_configs


@dataclass
class DemoConfig:
    output_dir: str = field(default="runs/demo", metadata={"help": "Where to write the run.", "aliases": ["-o"]})


def make_parser(subparsers):
    parser = add_command(
        subparsers,
        "demo",
        help="Score the bundled sample of real preference pairs and print a table.",
        description="Scores 24 PandaLM test pairs (human-labelled, shipped in the package) with FLR, the direct "
        "likelihood and length, on the embedded SmolLM2-135M-Instruct unless --model says otherwise.",
        build=build,
    )
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, DemoConfig, ScorerConfig, ModelConfig)
    parser.epilog = """examples:
  flr demo                                   # embedded SmolLM2-135M-Instruct, 2 CPU cores: ~3 min
  flr demo --followups compact -o runs/demo-compact
  flr demo --model HuggingFaceTB/SmolLM2-360M-Instruct
"""


def main(args) -> int:
    from flr.jobs.eval import EvalConfig, run_eval
    from flr.kernel.models import ModelConfig, model_name
    from flr.scorers import ScorerConfig, build_scorers

    demo, flr_config, model_config = to_configs(args, DemoConfig, ScorerConfig, ModelConfig)
    scorers = build_scorers(("flr", "direct", "length"), model_config, flr_config)
    name = model_name(model_config.model)
    config = EvalConfig(benchmarks="demo", output_dir=demo.output_dir)
    summary = run_eval(config, scorers, model_name=name)
    rows = [json.loads(line) for line in (Path(demo.output_dir) / "demo.jsonl").read_text().splitlines()]
    print(f"\nFLR rewards with {name} (higher = better; the human-preferred response is 'chosen')\n")
    print(f"{'pair':<14}{'chosen':>10}{'rejected':>10}  FLR agrees with humans")
    for row in rows:
        r = row["flr"]
        print(f"{row['id']:<14}{r['chosen']:>10.3f}{r['rejected']:>10.3f}  {'yes' if r['correct'] else 'no'}")
    print()
    for scorer, metrics in summary["results"]["demo"]["scorers"].items():
        lo, hi = metrics["ci"]
        print(
            f"{scorer:>7} accuracy: {100 * metrics['accuracy']:.1f}%  (95% CI {100 * lo:.0f}-{100 * hi:.0f}%, "
            f"n={metrics['n']})"
        )
    print(f"\nReport: {demo.output_dir}/report.md")
    return 0

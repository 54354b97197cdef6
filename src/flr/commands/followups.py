"""``flr followups``: inspect follow-up sets and select the ones that carry signal."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from flr.commands._common import add_command, make_subparsers, to_configs
from flr.errors import FLRError
from flr.followups import load_followups
from flr.models import ModelConfig, load_model, model_name
from flr.scorers import FLRConfig, FollowUpReward


@dataclass
class SelectConfig:
    benchmark: str = field(default="autoj", metadata={"help": "Pairwise benchmark name or file to select on."})
    limit: int | None = field(default=200, metadata={"help": "Seeded sample of N pairs (None: all)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    data_dir: str | None = field(default=None, metadata={"help": "Where the public benchmark files live."})
    top: int = field(default=5, metadata={"help": "Utterances kept per category and polarity."})
    output: str = field(
        default="runs/followups/selected.yaml",
        metadata={
            "help": "Selected set (YAML); the per-utterance statistics go next to it as .jsonl.",
            "aliases": ["-o"],
        },
    )


def make_parser(subparsers):
    parser = subparsers.add_parser(
        "followups",
        help="Show follow-up sets; select the ones that carry signal.",
        description="Show a follow-up set, or rank every follow-up by its own pairwise "
        "accuracy on preference data and write a set of the best ones.",
    )
    subs = make_subparsers(parser)
    show = add_command(subs, "show", help="Print a follow-up set (default: flr's own).", dataclasses_=(FLRConfig,))
    show.set_defaults(func=show_main)
    select = add_command(
        subs,
        "select",
        help="Rank follow-ups by their own pairwise accuracy; keep the best per category.",
        description="Scores the pairs of --benchmark with every follow-up of the set, ranks each follow-up by how "
        "often it alone prefers the human-chosen response, and writes the --top best per category and polarity. "
        "Select on one benchmark and evaluate (flr eval --followups OUT.yaml) on others.",
        dataclasses_=(SelectConfig, FLRConfig, ModelConfig),
    )
    select.set_defaults(func=select_main)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    return parser


def show_main(args) -> int:
    config = to_configs(args, FLRConfig)
    followups = load_followups(config.followups).select(config.categories)
    print(f"{followups.name} (fingerprint {followups.fingerprint()})")
    for category, polarity, text in followups.utterances:
        print(f"{category:24s} {polarity:9s} {text}")
    return 0


def select_main(args) -> int:
    from flr.eval.runner import EvalConfig, benchmark_records
    from flr.followups.selection import followup_accuracy, select_followups, write_followups

    config, flr_config, model_config = to_configs(args, SelectConfig, FLRConfig, ModelConfig)
    kind, records = benchmark_records(
        config.benchmark, EvalConfig(data_dir=config.data_dir, limit=config.limit, seed=config.seed)
    )
    if kind != "pairwise":
        raise FLRError(f"{config.benchmark} is {kind}: selection needs pairwise {{prompt, chosen, rejected}} data")
    model, tokenizer = load_model(model_config)
    scorer = FollowUpReward(model, tokenizer, flr_config, model_name=model_name(model_config.model))
    stats = followup_accuracy(scorer, records)
    selected = select_followups(stats, config.top)
    comment = (
        f"Selected by flr followups select: the {config.top} most accurate follow-ups per category and "
        f"polarity on {len(records)} pairs of {config.benchmark} (seed {config.seed}), scorer "
        f"{model_name(model_config.model)}.\nEvaluate it on other benchmarks than the one it was selected on."
    )
    path = write_followups(selected, config.output, comment)
    with Path(config.output).with_suffix(".jsonl").open("w") as f:
        for s in sorted(stats, key=lambda s: -s["accuracy"]):
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    for s in sorted(stats, key=lambda s: -s["accuracy"])[:10]:
        print(f"{100 * s['accuracy']:5.1f}%  {s['category']:22s} {s['polarity']:9s} {s['text']}")
    print(f"flr followups: wrote {path} (and per-utterance statistics in {Path(config.output).with_suffix('.jsonl')})")
    return 0

"""``flr train dpo|kto|feedback``: LoRA training through TRL."""

from __future__ import annotations

from flr.commands._common import add_command, make_subparsers, to_configs
from flr.models import ModelConfig
from flr.train import TrainConfig, train

HELP = {
    "dpo": "DPO on preference pairs {prompt, chosen, rejected} (flr mine's pairs.jsonl).",
    "kto": "KTO on unpaired rows {prompt, completion, label} (flr mine --format kto), or on pairs.",
    "feedback": "SFT of the FLR scorer model on {prompt, response, feedback}: loss on the feedback tokens only.",
}
EXAMPLES = {
    "dpo": """examples:
  flr train dpo --data runs/mine/pairs.jsonl --output-dir runs/dpo --max-steps 200
  flr train dpo --config examples/dpo.yaml --learning-rate 5e-6       # flags override the YAML
  flr score pairs.jsonl -o out.jsonl --model runs/dpo                 # the output folder is a model spec
""",
    "kto": """examples:
  flr train kto --data runs/mine-kto/unpaired.jsonl --output-dir runs/kto --per-device-train-batch-size 8
""",
    "feedback": """examples:
  flr train feedback --data feedback.jsonl --output-dir runs/scorer-ft --model default
  flr score pairs.jsonl -o scored.jsonl --model runs/scorer-ft       # FLR with the tuned scorer
""",
}


def make_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="Train a LoRA adapter: DPO or KTO on mined preferences, or feedback SFT of the scorer model.",
        description="Train a LoRA adapter with TRL. The adapter lands at the root of --output-dir (a model spec for "
        "every flr command), checkpoints in checkpoint-N (resumed automatically), losses and rewards in "
        "summary.json and training.png.",
    )
    methods = make_subparsers(parser, dest="method")
    for method in ("dpo", "kto", "feedback"):
        sub = add_command(methods, method, help=HELP[method], dataclasses_=(TrainConfig, ModelConfig))
        sub.epilog = EXAMPLES[method]
        sub.set_defaults(func=main, method=method)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    return parser


def main(args) -> int:
    cfg, model_config = to_configs(args, TrainConfig, ModelConfig)
    summary = train(args.method, cfg, model_config)
    final = ", ".join(f"{k} {v:.4g}" for k, v in summary["final"].items())
    print(f"flr train {args.method}: {summary['steps']} steps ({final}) -> adapter in {summary['adapter']}")
    return 0

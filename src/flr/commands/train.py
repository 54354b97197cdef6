"""``flr train dpo|kto|grpo|feedback|flr|rm``: LoRA training, with TRL's own argument classes (:mod:`flr.training.args`)."""

from __future__ import annotations

import argparse

from flr.commands._common import add_command, add_dataclasses, make_subparsers

TRAIN_HELP = (
    "Train a LoRA adapter: DPO or KTO on mined preferences, GRPO with an flr reward, feedback SFT or preference "
    "tuning of the scorer."
)
TRL_NOTE = (
    " Flags and --config YAML keys are TRL's own (ScriptArguments, the method's config: DPOConfig, KTOConfig, "
    "GRPOConfig, SFTConfig, RewardConfig, or flr's FLRConfig, a TrainingArguments like them; ModelConfig): a "
    "`trl dpo --config` YAML works unchanged, and a pipeline's train: section takes exactly these keys. flr adds --data "
    "(= --dataset-name, also a local file), --model (= --model-name-or-path, 'default': the embedded model), "
    "--field-map, --limit and --lora-layers, and its defaults differ from TRL's where TRL's do not suit LoRA on a "
    "CPU: learning rate 1e-5 (feedback, flr, rm: 2e-4), LoRA on all linear layers, no gradient checkpointing, "
    "resume from the latest checkpoint; grpo: 8 completions a step, 4 per prompt, 128 new tokens (TRL's loss, "
    "group-normalised rewards and beta 0 kept)."
)
HELP = {
    "dpo": "DPO on preference pairs {prompt, chosen, rejected} (flr mine's pairs.jsonl).",
    "kto": "KTO on unpaired rows {prompt, completion, label} (flr mine --format kto), or on pairs.",
    "grpo": "GRPO (online RL) of the policy on prompts {prompt}, with an flr scorer as the reward (flr, direct, "
    "length, rm:<model>; --reward-*, and flr score's scorer flags: --followups, --contrast, ...).",
    "feedback": "SFT of the FLR scorer model on {prompt, response, feedback}: loss on the feedback tokens only.",
    "flr": "Preference-tune the FLR scorer on labelled pairs {prompt, chosen, rejected}: LoRA, FLR margin loss.",
    "rm": "A classifier reward model (score head + LoRA) on the same backbone and pairs, through TRL.",
}
EXAMPLES = {
    "dpo": """examples:
  flr train dpo --data runs/mine/pairs.jsonl --output-dir runs/dpo --max-steps 200
  flr train dpo --config examples/dpo.yaml --learning-rate 5e-6       # flags override the YAML
  flr train dpo --data runs/mine/pairs.jsonl --output-dir runs/ld-dpo --ld-alpha 0.5   # TRL's LD-DPO length control
  flr score pairs.jsonl -o out.jsonl --model runs/dpo                 # the output folder is a model spec
""",
    "kto": """examples:
  flr train kto --data runs/mine-kto/unpaired.jsonl --output-dir runs/kto --per-device-train-batch-size 8
""",
    "grpo": """examples:
  flr train grpo --data prompts.jsonl --output-dir runs/grpo --reward-scorer flr --followups selected --max-steps 8
  flr train grpo --data prompts.jsonl --output-dir runs/grpo-twin --followups my_followups.yaml --contrast twin_all
  flr train grpo --data prompts.jsonl --reward-scorer rm:runs/rm --num-generations 4 --per-device-train-batch-size 8
  flr train grpo --data prompts.jsonl --reward-length-debias prompt --scale-rewards none   # TRL's Dr. GRPO scaling
""",
    "feedback": """examples:
  flr train feedback --data feedback.jsonl --output-dir runs/scorer-ft --model default
  flr score pairs.jsonl -o scored.jsonl --model runs/scorer-ft       # FLR with the tuned scorer
""",
    "flr": """examples:
  flr train flr --data pairs.jsonl --output-dir runs/flr-tuned --max-length 512 --limit 256
  flr train flr --data pairs.jsonl --output-dir runs/flr-tuned --kl-coef 0 --followups default
  flr eval --benchmarks autoj,pandalm --model runs/flr-tuned          # scores with the adapter's follow-up set
""",
    "rm": """examples:
  flr train rm --data pairs.jsonl --output-dir runs/rm --max-length 512 --limit 256
  flr eval --benchmarks autoj,pandalm --scorers flr,rm:runs/rm,length
""",
}


def make_parser(subparsers):
    """``flr train`` and one parser per method, each built (with TRL's classes: importing TRL takes seconds) only
    when that method runs or its help is shown."""
    parser = subparsers.add_parser(
        "train",
        help=TRAIN_HELP,
        description="Train a LoRA adapter with TRL. The adapter lands at the root of --output-dir (a model spec for "
        "every flr command), checkpoints in checkpoint-N (resumed automatically), losses and rewards in "
        "summary.json and training.png.",
        epilog=EXAMPLES["dpo"]
        + "".join(EXAMPLES[m].removeprefix("examples:\n") for m in ("kto", "grpo", "feedback", "flr", "rm")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    methods = make_subparsers(parser, dest="method")
    for method in HELP:  # flr.training.args.METHODS, without importing TRL
        sub = add_command(methods, method, help=HELP[method], build=lambda p, m=method: build(p, m))
        sub.set_defaults(func=main, method=method)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    return parser


def build(parser, method: str) -> None:
    from flr.training.args import argument_classes, method_defaults

    add_dataclasses(parser, *argument_classes(method))
    parser.set_defaults(**method_defaults(method))
    parser.description = HELP[method] + TRL_NOTE
    parser.epilog = EXAMPLES[method]


def main(args) -> int:
    from flr.training import train
    from flr.training.args import from_namespace

    summary = train(args.method, *from_namespace(args.method, args))
    return _report(args.method, summary)


def _report(method: str, summary: dict) -> int:
    final = ", ".join(f"{k} {v:.4g}" for k, v in summary["final"].items())
    print(f"flr train {method}: {summary['steps']} steps ({final}) -> adapter in {summary['adapter']}")
    return 0

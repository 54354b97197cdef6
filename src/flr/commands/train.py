"""``flr train dpo|kto|feedback``: LoRA training through TRL."""

from __future__ import annotations

import argparse

from flr.commands._common import add_command, make_subparsers, to_configs
from flr.errors import FLRError
from flr.kernel.models import ModelConfig
from flr.training.base import TrainConfig, check_ld_alpha, quiet_renames
from flr.training.policy import check_method_settings, train
from flr.training.reward import RewardTuningConfig, train_flr, train_rm_trl

TRAIN_HELP = "Train a LoRA adapter: DPO or KTO on mined preferences, feedback SFT or preference tuning of the scorer."
TRL_NOTE = (
    " Flags and --config YAML keys are TRL's own (ScriptArguments, DPOConfig/KTOConfig/RewardConfig, ModelConfig): a `trl dpo "
    "--config` YAML works unchanged. flr adds --data (= --dataset-name, also a local file), --model "
    "(= --model-name-or-path, 'default': the embedded model), --field-map and --limit, and its defaults differ from "
    "TRL's where TRL's do not suit LoRA on a CPU: learning rate 1e-5, LoRA on all linear layers, no gradient "
    "checkpointing, resume from the latest checkpoint."
)
HELP = {
    "dpo": "DPO on preference pairs {prompt, chosen, rejected} (flr mine's pairs.jsonl).",
    "kto": "KTO on unpaired rows {prompt, completion, label} (flr mine --format kto), or on pairs.",
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


TRL_METHODS = ("dpo", "kto", "rm")


def accelerator_present() -> bool:
    """TRL's configs default to bf16 and refuse it on a CPU-only machine unless use_cpu is set: set it there."""
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


def make_parser(subparsers, full: bool = True):
    """``full=False`` (another command runs): only the help line, without importing TRL (seconds)."""
    if not full:
        return subparsers.add_parser("train", help=TRAIN_HELP)
    parser = subparsers.add_parser(
        "train",
        help=TRAIN_HELP,
        description="Train a LoRA adapter with TRL. The adapter lands at the root of --output-dir (a model spec for "
        "every flr command), checkpoints in checkpoint-N (resumed automatically), losses and rewards in "
        "summary.json and training.png.",
        epilog=EXAMPLES["dpo"]
        + "".join(EXAMPLES[m].removeprefix("examples:\n") for m in ("kto", "feedback", "flr", "rm")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    methods = make_subparsers(parser, dest="method")
    for method in ("dpo", "kto", "feedback", "flr", "rm"):
        if method in TRL_METHODS:  # TRL's own config classes: a `trl dpo --config` YAML works unchanged
            from flr.training.args import FLR_DEFAULTS, METHOD_DEFAULTS, argument_classes

            extra = (RewardTuningConfig,) if method == "rm" else ()
            sub = add_command(methods, method, help=HELP[method], dataclasses_=(*argument_classes(method), *extra))
            sub.set_defaults(**FLR_DEFAULTS, output_dir=f"runs/{method}", use_cpu=not accelerator_present())
            sub.set_defaults(**METHOD_DEFAULTS.get(method, {}))
            sub.description = HELP[method] + TRL_NOTE
        else:
            extra = (RewardTuningConfig,) if method in ("flr", "rm") else ()
            sub = add_command(methods, method, help=HELP[method], dataclasses_=(TrainConfig, *extra, ModelConfig))
        sub.epilog = EXAMPLES[method]
        sub.set_defaults(func=main, method=method)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    return parser


def main(args) -> int:
    if args.method in TRL_METHODS:
        from flr.training.args import argument_classes
        from flr.training.policy import train_trl

        extra = (RewardTuningConfig,) if args.method == "rm" else ()
        try:
            with quiet_renames():  # TRL's configs default gradient_checkpointing, which transformers renamed
                configs = to_configs(args, *argument_classes(args.method), *extra)
        except (TypeError, ValueError) as exc:  # TRL's and transformers' own checks in __post_init__
            raise FLRError(f"invalid training settings: {str(exc).splitlines()[0]}") from None
        check_ld_alpha(getattr(configs[1], "ld_alpha", None))  # TRL does not check it
        summary = train_rm_trl(*configs) if args.method == "rm" else train_trl(args.method, *configs)
        return _report(args.method, summary)
    cfg, tuning, model_config = to_configs(args, TrainConfig, RewardTuningConfig, ModelConfig)
    check_method_settings(cfg, args.method)
    if args.method == "flr":
        summary = train_flr(cfg, model_config, tuning=tuning)
    else:
        summary = train(args.method, cfg, model_config)
    return _report(args.method, summary)


def _report(method: str, summary: dict) -> int:
    final = ", ".join(f"{k} {v:.4g}" for k, v in summary["final"].items())
    print(f"flr train {method}: {summary['steps']} steps ({final}) -> adapter in {summary['adapter']}")
    return 0

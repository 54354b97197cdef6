"""What every ``flr train`` method shares: the data and LoRA settings (:class:`TrainConfig`), LoRA configs, checkpoint
resolution, and :func:`run_trainer`, which trains, saves the adapter where every flr command finds it, and writes
summary.json with the loss curves and training.png. The methods themselves are jobs: :mod:`flr.training.policy` (DPO, KTO,
feedback SFT through TRL) and :mod:`flr.training.reward` (FLR preference tuning, classifier reward models)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flr.errors import FLRError
from flr.kernel.models import quiet_renames, record_adapter_base  # noqa: F401 - re-exported for the trainers
from flr.provenance import write_summary

logger = logging.getLogger(__name__)

PLOTTED = ("loss", "rewards/margins", "rewards/accuracies", "kl", "accuracy", "margin")


@dataclass
class TrainConfig:
    """Data, optimisation and LoRA settings shared by ``flr train dpo|kto|feedback``."""

    data: str | None = field(
        default=None,
        metadata={
            "help": "Training records (file or HF dataset id): dpo: {prompt, chosen, rejected} (flr mine's pairs.jsonl); "
            "kto: {prompt, completion, label} (flr mine --format kto) or pairs; feedback: {prompt, response, feedback}."
        },
    )
    output_dir: str = field(
        default="runs/train", metadata={"help": "Adapter, checkpoints, summary.json, training.png."}
    )
    split: str = field(default="train", metadata={"help": "Split, when --data is an HF dataset id."})
    field_map: str | None = field(
        default=None, metadata={"help": "Rename your fields to ours, e.g. feedback=critique."}
    )
    limit: int | None = field(default=None, metadata={"help": "Train on the first N records only."})
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Default 1e-5 (dpo, kto) and 2e-4 (feedback): TRL's full fine-tuning defaults (1e-6, 2e-5) x10, "
            "as TRL's docs advise for LoRA, whose zero-initialised low-rank update needs larger steps."
        },
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the data (unless --max-steps)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1: use epochs)."})
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Examples per device and step (KTO needs at least 2 for its KL estimate)."}
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    beta: float = field(default=0.1, metadata={"help": "DPO/KTO: strength of the pull towards the reference model."})
    loss_type: str | None = field(
        default=None, metadata={"help": "TRL loss type (dpo: sigmoid, ipo, hinge, ...; kto: kto, apo_zero_unpaired)."}
    )
    max_length: int = field(default=1024, metadata={"help": "Cap on prompt + completion tokens."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling (alpha / r multiplies the update)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str = field(
        default="all-linear",
        metadata={"help": "Modules to adapt: all-linear, or comma-separated names (q_proj,v_proj)."},
    )
    logging_steps: int = field(default=1, metadata={"help": "Log losses and rewards every N steps."})
    save_steps: int = field(default=50, metadata={"help": "Checkpoint (adapter + optimizer state) every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep only the latest N checkpoints."})
    seed: int = field(default=0, metadata={"help": "Random seed (data order, LoRA init, dropout)."})
    resume_from_checkpoint: str | None = field(
        default="auto",
        metadata={
            "help": "auto: resume from the latest checkpoint-N in --output-dir when there is one; 'none': start "
            "fresh; or a checkpoint folder. Optimizer, scheduler and data position are restored."
        },
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Trade compute for memory (off: TRL's default is on, which is slow on CPU)."}
    )
    precompute_ref_log_probs: bool = field(
        default=False, metadata={"help": "DPO/KTO: compute reference log-probs once before training."}
    )
    ld_alpha: float | None = field(
        default=None,
        metadata={
            "help": "DPO only, TRL's LD-DPO length control (DPOConfig.ld_alpha, in [0, 1]): the log-probs of the tokens "
            "past the shorter response's length count alpha times, so the longer response's extra tokens move the "
            "loss less (1: plain DPO; 0: they do not count). Default: off."
        },
    )
    trainer_args: str | None = field(
        default=None,
        metadata={
            "help": 'More TRL config fields as JSON, e.g. \'{"warmup_steps": 10, "lr_scheduler_type": "cosine"}\'.'
        },
    )

    def __post_init__(self):
        check_ld_alpha(self.ld_alpha)


def check_ld_alpha(value: float | None) -> None:
    """TRL takes any number; LD-DPO's alpha is a weight in [0, 1]."""
    if value is not None and not 0 <= value <= 1:
        raise FLRError(
            f"--ld-alpha must be between 0 and 1 (LD-DPO's weight of the tokens past the shared length), got {value}"
        )


def lora_config(cfg: TrainConfig):
    from peft import LoraConfig

    targets = cfg.lora_target_modules
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        task_type="CAUSAL_LM",
    )


def resolve_checkpoint(value: str | None, output_dir: str) -> str | None:
    """``auto`` -> the latest ``checkpoint-N`` in the output folder (or None); ``none`` -> None; else the path."""
    from transformers.trainer_utils import get_last_checkpoint

    if value is None or str(value).lower() in ("none", "false", "no", ""):
        return None
    if value == "auto":
        return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    if not Path(value).is_dir():
        raise FLRError(f"checkpoint folder not found: {value}")
    return value


# -- results ---------------------------------------------------------------------------------------------


def training_curves(log_history: Sequence[dict]) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` for the logged training metrics (loss, rewards/*, kl, ...)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        if "train_runtime" in entry:  # the final aggregate, not a point on the curve
            continue
        for key, value in entry.items():
            if key in ("step", "epoch") or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            curves.setdefault(key, []).append((entry.get("step", 0), float(value)))
    return curves


def plot_curves(curves: dict[str, list[tuple[int, float]]], path: str | Path, title: str) -> bool:
    """One panel per plotted metric that was logged; False when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in PLOTTED if curves.get(k)]
    if not keys:
        return False
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        steps, values = zip(*curves[key])
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def run_trainer(trainer, method: str, records, *, resume, model_spec: str, configs=(), extra=None) -> dict:
    """Train (resuming from the latest checkpoint), save the adapter at the output root, write summary.json and
    training.png; returns the summary. Shared by every ``flr train`` method."""
    import time

    checkpoint = resolve_checkpoint(resume, trainer.args.output_dir)
    if checkpoint:
        logger.info("resuming from %s (optimizer and scheduler state included)", checkpoint)
    started = time.perf_counter()
    with quiet_renames():
        result = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    out = Path(trainer.args.output_dir)
    trainer.save_model(str(out))
    trainer.processing_class.save_pretrained(str(out))
    record_adapter_base(out, model_spec)
    curves = training_curves(trainer.state.log_history)
    last = {k: v[-1][1] for k, v in curves.items()}
    steps_run = trainer.state.global_step - (int(Path(checkpoint).name.split("-")[-1]) if checkpoint else 0)
    summary = {
        "method": method,
        "adapter": str(out),
        "base_model": model_spec,
        "examples": len(records),
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint,
        "learning_rate": trainer.args.learning_rate,
        "train_loss": result.training_loss,
        "seconds_per_step": seconds / steps_run if steps_run > 0 else None,
        "final": {k: last[k] for k in PLOTTED if k in last},
        "curves": curves,
        "plot": "training.png" if plot_curves(curves, out / "training.png", f"flr train {method}") else None,
        **(extra or {}),
    }
    summary["trainer_config"] = {type(trainer.args).__name__: trainer.args.to_dict()}
    write_summary(out, summary, *configs)
    return summary


def checkpointing_kwargs(config_class, enabled: bool) -> dict:
    """Gradient checkpointing under the name the installed transformers uses (it renamed it to
    activation_checkpointing and warns on the old name)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_class)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}

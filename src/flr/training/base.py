"""What every ``flr train`` method shares: one reader of training records, loading the model to train (the one
"already a PEFT adapter" check), fitting a TRL config to the device (the one bf16-off-CUDA check), the LoRA
config, checkpoint resolution, and :func:`run_trainer`, which trains, saves the adapter where every flr command finds
it, and writes summary.json with the loss curves and training.png. The methods: :mod:`flr.training.policy` (DPO,
KTO), :mod:`flr.training.feedback` (feedback SFT), :mod:`flr.training.flr` (FLR preference tuning) and
:mod:`flr.training.rm` (the classifier reward model); their arguments: :mod:`flr.training.args`."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from flr.errors import FLRError, InputError
from flr.kernel.models import quiet_renames, record_adapter_base
from flr.records.provenance import write_summary

logger = logging.getLogger(__name__)

# GRPO logs "reward" (the mean reward of a step's completions) and their mean length in tokens
PLOTTED = (
    "loss", "rewards/margins", "rewards/accuracies", "kl", "accuracy", "margin", "reward", "completions/mean_length",
)  # fmt: skip
COLUMNS = {
    "dpo": (("prompt", "chosen", "rejected"),),
    "kto": (("prompt", "completion", "label"), ("prompt", "chosen", "rejected")),  # TRL's KTO unpairs pairs itself
    "grpo": (("prompt",),),  # the policy writes the responses
    "feedback": (("prompt", "response", "feedback"),),
    "flr": (("prompt", "chosen", "rejected"),),
    "rm": (("prompt", "chosen", "rejected"),),
}
TEXT_PAIRS = ("flr", "rm")  # flr renders these itself: each side a text (a conversation's last message)


# -- data ------------------------------------------------------------------------------------------------


def read_training_records(data, method: str) -> list[dict]:
    """The records ``data`` (:class:`flr.training.args.DataArguments`) names, with the columns ``method`` needs
    (extra columns dropped), each row checked: a bad one stops with one line naming file, line and field."""
    from flr.records import read_records

    wanted = " or ".join("{" + ", ".join(c) + "}" for c in COLUMNS[method])
    if not data.dataset_name:
        raise FLRError(f"no training data: pass --data FILE with {wanted} records")
    records = read_records(
        data.dataset_name, split=data.dataset_train_split, field_map=data.field_map, limit=data.limit
    )
    if not records:
        raise FLRError(f"{data.dataset_name}: no records")
    first = records[0]
    columns = next((cols for cols in COLUMNS[method] if all(c in first.data for c in cols)), None)
    if columns is None:
        missing = next(c for c in COLUMNS[method][0] if c not in first.data)
        message = f"{method} needs {wanted} (map yours with --field-map)"
        raise InputError(message, file=first.source, line=first.line, field=missing)
    if method in TEXT_PAIRS:
        return [_text_pair(rec) for rec in records]
    rows = []
    for rec in records:
        missing = [c for c in columns if rec.data.get(c) is None]
        if missing:
            raise InputError("missing", file=rec.source, line=rec.line, field=missing[0])
        rows.append({c: rec.data[c] for c in columns})
    return rows


def _text_pair(rec) -> dict:
    """``{prompt, chosen, rejected}`` (TRL's standard or conversational preference format) with text sides."""
    from flr.records import get_prompt, get_text, validate_messages

    row = {"prompt": get_prompt(rec)}
    for side in ("chosen", "rejected"):
        value = rec.data.get(side)
        if isinstance(value, list):  # conversational: the last (assistant) message
            rec.data = {**rec.data, side: validate_messages(value, rec, side)[-1]["content"]}
        row[side] = get_text(rec, side)
    return row


# -- model and trainer setup -----------------------------------------------------------------------------


def check_no_adapter(model) -> None:
    if hasattr(model, "peft_config"):
        raise FLRError("the model already carries a PEFT adapter: train from its base model (or merge it first)")


def load_for_training(model_args, args):
    """``(model, tokenizer, args)`` of TRL's ``ModelConfig`` on the device ``args`` (a TRL config) allows, with
    ``args`` fitted to that device (:func:`fit_to_device`)."""
    from flr.kernel.models import load_model

    revision = None if model_args.model_revision in (None, "main") else model_args.model_revision
    model, tokenizer = load_model(
        model_args.model_name_or_path,
        device="cpu" if args.use_cpu else "auto",
        dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation,
        revision=revision,
        trust_remote_code=getattr(args, "trust_remote_code", False),  # TRL keeps it on the trainer config
    )
    check_no_adapter(model)
    return model, tokenizer, fit_to_device(args, next(model.parameters()).device)


def fit_to_device(args, device):
    """TRL's configs default to bf16, which a model off CUDA cannot train in (and TRL would ask the accelerator)."""
    if device.type == "cuda":
        return args
    with quiet_renames():
        return dataclasses.replace(args, use_cpu=device.type == "cpu", bf16=False, fp16=False)


def peft_config(model_args, model, task_type: str = "CAUSAL_LM"):
    """TRL's LoRA config of ``model_args`` (None: full fine-tuning), on the top ``--lora-layers`` layers only."""
    from trl import get_peft_config

    config = get_peft_config(model_args)
    if config is not None:
        config.task_type = task_type
        if model_args.lora_layers:  # the backward pass stops at the lowest adapted layer
            n = model.config.num_hidden_layers
            config.layers_to_transform = list(range(max(0, n - model_args.lora_layers), n))
    return config


def trl_trainer(cls, model, args, rows: Sequence[dict], tokenizer, peft, *, chats: bool = True):
    """A TRL trainer ``cls`` on ``rows``. With ``chats`` (TRL renders the rows), a tokenizer without a chat template
    gets flr's plain one."""
    from datasets import Dataset

    from flr.kernel.chat import ChatRenderer

    if chats and not tokenizer.chat_template:
        tokenizer.chat_template = ChatRenderer(tokenizer).chat_template
    with quiet_renames():
        return cls(
            model=model, args=args, train_dataset=Dataset.from_list(list(rows)), processing_class=tokenizer,
            peft_config=peft,
        )  # fmt: skip


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


def restore_if_finished(checkpoint: str, trainer) -> bool:
    """Whether ``checkpoint`` already holds every one of ``max_steps`` steps of an adapter; if so, its adapter and
    state are loaded into ``trainer``, so that a rerun of a finished run saves the same adapter instead of training
    on (transformers' resume takes one more step when ``max_steps`` ends inside an epoch)."""
    from transformers import TrainerState

    path = Path(checkpoint)
    state = TrainerState.load_from_json(str(path / "trainer_state.json"))
    adapter = path / "adapter_model.safetensors"
    if trainer.args.max_steps <= 0 or state.global_step < trainer.args.max_steps or not adapter.exists():
        return False
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(trainer.model, load_file(str(adapter)))
    trainer.state = state
    logger.info("%s holds all %d steps: nothing to train", checkpoint, trainer.args.max_steps)
    return True


def run_trainer(trainer, method: str, records, data, model_args, extra=None) -> dict:
    """Train (resuming from the latest checkpoint), save the adapter at the output root, write summary.json (with
    the ``data`` and ``model_args`` configs) and training.png; returns the summary. Shared by every method."""
    import time

    checkpoint = resolve_checkpoint(trainer.args.resume_from_checkpoint, trainer.args.output_dir)
    if checkpoint:
        logger.info("resuming from %s (optimizer and scheduler state included)", checkpoint)
    started = time.perf_counter()
    if checkpoint and restore_if_finished(checkpoint, trainer):
        training_loss = None  # transformers would train one step more when max_steps falls inside an epoch
    else:
        with quiet_renames():
            training_loss = trainer.train(resume_from_checkpoint=checkpoint).training_loss
    seconds = time.perf_counter() - started
    out = Path(trainer.args.output_dir)
    trainer.save_model(str(out))
    trainer.processing_class.save_pretrained(str(out))
    record_adapter_base(out, model_args.model_name_or_path)
    curves = training_curves(trainer.state.log_history)
    last = {k: v[-1][1] for k, v in curves.items()}
    steps_run = trainer.state.global_step - (int(Path(checkpoint).name.split("-")[-1]) if checkpoint else 0)
    summary = {
        "method": method,
        "adapter": str(out),
        "base_model": model_args.model_name_or_path,
        "examples": len(records),
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint,
        "learning_rate": trainer.args.learning_rate,
        "train_loss": training_loss,
        "seconds_per_step": seconds / steps_run if steps_run > 0 else None,
        "final": {k: last[k] for k in PLOTTED if k in last},
        "curves": curves,
        "plot": "training.png" if plot_curves(curves, out / "training.png", f"flr train {method}") else None,
        **(extra or {}),
    }
    summary["trainer_config"] = {type(trainer.args).__name__: trainer.args.to_dict()}
    write_summary(out, summary, data, model_args)
    return summary

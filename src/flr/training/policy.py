"""LoRA training through TRL: DPO and KTO on mined preferences, and feedback SFT of the FLR scorer model.

All three save the adapter (plus tokenizer) at the root of ``output_dir``, so the folder is itself a model spec
(``flr score --model runs/train``), keep TRL checkpoints (adapter, optimizer, scheduler, RNG) in
``output_dir/checkpoint-N``, and resume from the latest one automatically. With LoRA the DPO/KTO reference model
is the base with the adapters switched off: no second copy of the model.

Learning rates: TRL's defaults are for full fine-tuning (1e-6 for DPO and KTO, 2e-5 for SFT); its docs advise about
10x more with LoRA, because the low-rank update starts at zero and moves few parameters. The defaults here are
therefore 1e-5 (DPO, KTO) and 2e-4 (feedback SFT).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence

from flr.errors import FLRError, InputError
from flr.kernel.chat import ChatRenderer
from flr.kernel.models import ModelConfig, load_model
from flr.records import read_records
from flr.training.base import TrainConfig, checkpointing_kwargs, lora_config, quiet_renames, run_trainer

logger = logging.getLogger(__name__)

METHODS = ("dpo", "kto", "feedback")
LORA_LEARNING_RATES = {"dpo": 1e-5, "kto": 1e-5, "feedback": 2e-4}
COLUMNS = {
    "dpo": (("prompt", "chosen", "rejected"),),
    "kto": (("prompt", "completion", "label"), ("prompt", "chosen", "rejected")),  # TRL's KTO unpairs pairs itself
    "feedback": (("prompt", "response", "feedback"),),
}


# -- data ------------------------------------------------------------------------------------------------


def load_training_records(cfg: TrainConfig, method: str) -> list[dict]:
    """Records with the columns ``method`` needs (extra columns dropped), checked row by row."""
    return read_training_records(cfg.data, method, split=cfg.split, field_map=cfg.field_map, limit=cfg.limit)


def read_training_records(source: str | None, method: str, *, split="train", field_map=None, limit=None):
    if not source:
        raise FLRError("no training data: pass --data FILE")
    records = read_records(source, split=split, field_map=field_map, limit=limit)
    if not records:
        raise FLRError(f"{source}: no records")
    first = records[0].data
    columns = next((cols for cols in COLUMNS[method] if all(c in first for c in cols)), None)
    if columns is None:
        wanted = " or ".join("{" + ", ".join(c) + "}" for c in COLUMNS[method])
        raise InputError(f"{method} needs {wanted} (map yours with --field-map)", file=records[0].source, line=1)
    rows = []
    for rec in records:
        missing = [c for c in columns if rec.data.get(c) is None]
        if missing:
            raise InputError("missing", file=rec.source, line=rec.line, field=missing[0])
        rows.append({c: rec.data[c] for c in columns})
    return rows


def feedback_example(renderer: ChatRenderer, prompt, response: str, feedback: str) -> dict:
    """[user prompt, assistant response, user feedback] -> ``input_ids`` + ``labels`` (-100 except the feedback).

    The labelled tokens are exactly those FLR scores for a follow-up (the same renderer and span), so training
    raises the likelihood the scorer reads. Too long conversations are cut as the scorer cuts them.
    """
    item = renderer.followup_item(prompt, response, [feedback])
    start, end = item.spans[0]
    ids = item.prefix + item.continuations[0][:end]
    cut = len(item.prefix) + start
    labels = [-100] * cut + ids[cut:]
    return {"input_ids": ids, "labels": labels}


# -- trainer setup ---------------------------------------------------------------------------------------


def check_method_settings(cfg: TrainConfig, method: str) -> None:
    """Settings that only one method reads, refused for the others (before a model loads)."""
    if cfg.ld_alpha is not None and method != "dpo":
        raise FLRError(f"--ld-alpha is DPO's length control (TRL's LD-DPO); it does not apply to {method}")


def trl_config(cfg: TrainConfig, method: str, device):
    """The TRL config: CPU-safe precision, no gradient checkpointing unless asked, no external loggers."""
    import torch
    from trl import DPOConfig, KTOConfig, SFTConfig

    kwargs = {
        "output_dir": cfg.output_dir,
        "learning_rate": cfg.learning_rate or LORA_LEARNING_RATES[method],
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "max_length": cfg.max_length,
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "seed": cfg.seed,
        "use_cpu": device.type == "cpu",
        "bf16": device.type == "cuda" and torch.cuda.is_bf16_supported(),
        "report_to": "none",
    }
    if method in ("dpo", "kto"):
        kwargs.update(beta=cfg.beta, precompute_ref_log_probs=cfg.precompute_ref_log_probs)
    check_method_settings(cfg, method)
    if cfg.ld_alpha is not None:
        kwargs["ld_alpha"] = cfg.ld_alpha
    if cfg.loss_type and method == "dpo":
        kwargs["loss_type"] = [t.strip() for t in cfg.loss_type.split(",")]
    elif cfg.loss_type and method == "kto":
        kwargs["loss_type"] = cfg.loss_type
    if cfg.trainer_args:
        try:
            kwargs.update(json.loads(cfg.trainer_args))
        except json.JSONDecodeError as exc:
            raise FLRError(f"--trainer-args is not valid JSON: {exc.msg}") from None
    cls = {"dpo": DPOConfig, "kto": KTOConfig, "feedback": SFTConfig}[method]
    for name, value in checkpointing_kwargs(cls, cfg.gradient_checkpointing).items():
        kwargs.setdefault(name, value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise FLRError(f"invalid training settings: {exc}") from None


def build_trainer(
    method: str, cfg: TrainConfig, model_config: ModelConfig, records: Sequence[dict], *, model=None, tokenizer=None
):
    """A TRL trainer with a fresh LoRA adapter on the model of ``model_config`` (or the model given)."""
    if method not in METHODS:
        raise FLRError(f"unknown training method '{method}': use {', '.join(METHODS)}")
    if model is None:
        model, tokenizer = load_model(model_config)
    args = trl_config(cfg, method, next(model.parameters()).device)
    return make_trainer(method, args, records, model, tokenizer, lora_config(cfg))


def make_trainer(method: str, args, records: Sequence[dict], model, tokenizer, peft_config):
    """The TRL trainer of ``method`` from its TRL config ``args`` and a PEFT config (None: full fine-tuning)."""
    from datasets import Dataset
    from trl import DPOTrainer, KTOTrainer, SFTTrainer

    if method == "kto" and args.per_device_train_batch_size < 2:
        raise FLRError("KTO needs --per-device-train-batch-size of at least 2 (its KL term pairs examples in a batch)")
    if hasattr(model, "peft_config"):
        raise FLRError("the model already carries a PEFT adapter: train from its base model (or merge it first)")
    if method == "feedback":
        renderer = ChatRenderer(tokenizer, max_length=args.max_length)
        records = [feedback_example(renderer, r["prompt"], r["response"], r["feedback"]) for r in records]
    dataset = Dataset.from_list(list(records))
    cls = {"dpo": DPOTrainer, "kto": KTOTrainer, "feedback": SFTTrainer}[method]
    if not tokenizer.chat_template:
        tokenizer.chat_template = ChatRenderer(tokenizer).chat_template  # TRL renders conversational data with it
    with quiet_renames():
        return cls(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config)


def train(method: str, cfg: TrainConfig, model_config: ModelConfig, *, model=None, tokenizer=None) -> dict:
    """Train a LoRA adapter with ``method`` (dpo, kto, feedback); returns the summary also written to disk."""
    check_method_settings(cfg, method)
    records = load_training_records(cfg, method)
    trainer = build_trainer(method, cfg, model_config, records, model=model, tokenizer=tokenizer)
    return run_trainer(
        trainer,
        method,
        records,
        resume=cfg.resume_from_checkpoint,
        model_spec=model_config.model,
        configs=(cfg, model_config),
    )


def train_trl(method: str, data, args, model_args) -> dict:
    """``flr train dpo|kto`` from TRL's own configs (:mod:`flr.training.args`): data, DPOConfig/KTOConfig, ModelConfig."""

    import torch
    from trl import get_peft_config

    records = read_training_records(
        data.dataset_name, method, split=data.dataset_train_split, field_map=data.field_map, limit=data.limit
    )
    revision = None if model_args.model_revision in (None, "main") else model_args.model_revision
    model, tokenizer = load_model(
        model_args.model_name_or_path,
        device="cpu" if args.use_cpu else "auto",
        dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation,
        revision=revision,
    )
    device = next(model.parameters()).device
    if device.type != "cuda":  # TRL would ask the accelerator for bf16 / a GPU the model is not on
        args = dataclasses.replace(args, use_cpu=device.type == "cpu", bf16=False, fp16=False)
    elif args.bf16 is None:
        args = dataclasses.replace(args, bf16=torch.cuda.is_bf16_supported())
    resume = args.resume_from_checkpoint
    trainer = make_trainer(method, args, records, model, tokenizer, get_peft_config(model_args))
    return run_trainer(
        trainer, method, records, resume=resume, model_spec=model_args.model_name_or_path, configs=(data, model_args)
    )

"""DPO and KTO of the policy on mined preferences (``flr train dpo|kto``), through TRL's trainers.

The adapter (plus tokenizer) lands at the root of ``output_dir``, so the folder is itself a model spec
(``flr score --model runs/dpo``); TRL checkpoints (adapter, optimizer, scheduler, RNG) go to
``output_dir/checkpoint-N`` and the latest is resumed automatically. With LoRA the reference model is the base with
the adapters switched off: no second copy of the model.
"""

from __future__ import annotations

from collections.abc import Sequence

from flr.training.base import (
    load_for_training,
    peft_config,
    read_training_records,
    run_trainer,
    trl_trainer,
)

METHODS = ("dpo", "kto")


def build_trainer(method: str, args, model_args, records: Sequence[dict]):
    """TRL's DPO or KTO trainer from its config ``args`` (``DPOConfig``/``KTOConfig``) and TRL's ``ModelConfig``."""
    from trl import DPOTrainer, KTOTrainer

    model, tokenizer, args = load_for_training(model_args, args)
    cls = {"dpo": DPOTrainer, "kto": KTOTrainer}[method]
    return trl_trainer(cls, model, args, records, tokenizer, peft_config(model_args, model))


def train(method: str, data, args, model_args) -> dict:
    """Train a LoRA adapter on the policy with DPO or KTO; returns the summary also written to disk."""
    from flr.training.args import check_configs

    check_configs((data, args, model_args))
    records = read_training_records(data, method)
    trainer = build_trainer(method, args, model_args, records)
    return run_trainer(trainer, method, records, data, model_args)

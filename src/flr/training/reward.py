"""Learn the reward from labelled pairs: preference-tuned FLR (``flr train flr``) and its anchor, a classifier
reward model on the same backbone and pairs (``flr train rm``).

Preference-tuned FLR trains LoRA adapters on the follow-up LM so that the FLR margin
``r(x, chosen) - r(x, rejected)`` grows: loss ``-log sigmoid(beta * margin)``, with ``r`` computed by the packed
kernel with gradients (teacher-forced follow-up log-probs, the same rendering and spans the scorer reads). Each
step scores a random subset of the follow-ups (``--followups-per-step`` per category and polarity, the same subset
for both sides of a pair), aggregated as the scorer aggregates them and rescaled so that the step's reward is an
unbiased estimate of the full set's; scoring afterwards uses the full set. A KL term keeps the follow-up
distribution after a content-free response where the base model had it (``--kl-coef``), so the tuned model still
reads follow-ups as a language model and does not learn a fixed bias towards positive follow-ups.

Both save a LoRA adapter at the root of ``output_dir`` (a model spec for every flr command: ``--model DIR`` for
FLR, ``--scorers rm:DIR`` for the classifier), keep HF Trainer checkpoints (adapter, optimizer, scheduler, RNG) in
``checkpoint-N`` and resume from the latest one.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import Trainer

from flr.errors import FLRError
from flr.followups import SCORER_FOLLOWUPS, dump_followups
from flr.kernel.chat import ChatRenderer
from flr.kernel.models import ModelConfig, load_model
from flr.scorers.baselines import classifier_ids, load_classifier
from flr.scorers.followup import (
    FOLLOWUP_RESERVE,
    ScorerConfig,
    category_weights,
    followup_reward,
    sample_followups,
)
from flr.training.base import TrainConfig, checkpointing_kwargs, lora_config, quiet_renames, run_trainer

logger = logging.getLogger(__name__)

DEFAULT_LEARNING_RATES = {"flr": 2e-4, "rm": 2e-4}


@dataclass
class RewardTuningConfig:
    """What ``flr train flr`` adds to the shared training settings."""

    followups: str | None = field(
        default="compact",
        metadata={
            "help": "Follow-up set the scorer is tuned with (a file, or default / compact); it is saved with the "
            "adapter and used by FLR whenever the adapter is the model and no --followups is given."
        },
    )
    categories: str | None = field(default=None, metadata={"help": "Categories of the set (default: the set's own)."})
    margin_scale: float = field(
        default=10.0,
        metadata={"help": "beta of the loss -log sigmoid(beta * margin); FLR margins are about 0.01-0.1."},
    )
    followups_per_step: int = field(
        default=1,
        metadata={
            "help": "Follow-ups scored per category and polarity in each step (random, the same for both sides of a "
            "pair). Scoring cost grows with it; evaluation always uses the full set."
        },
    )
    kl_coef: float = field(
        default=0.5,
        metadata={
            "help": "Weight of KL(base || tuned) over the follow-up tokens after a content-free response (0: off)."
        },
    )
    content_free: str = field(default="", metadata={"help": "The content-free response of the KL term."})
    lora_layers: int | None = field(
        default=8,
        metadata={
            "help": "Adapt only the top N decoder layers (backward then stops there: about 2x faster steps on "
            "CPU). None: every layer."
        },
    )

    def __post_init__(self):
        if self.followups_per_step < 1:
            raise FLRError(f"--followups-per-step must be at least 1, got {self.followups_per_step}")
        if self.kl_coef < 0:
            raise FLRError(f"--kl-coef must be >= 0, got {self.kl_coef}")
        if self.lora_layers is not None and self.lora_layers < 1:
            raise FLRError(f"--lora-layers must be at least 1, got {self.lora_layers}")


def _layers_config(cfg: TrainConfig, model, lora_layers: int | None, task_type: str):
    config = lora_config(cfg)
    config.task_type = task_type
    return _top_layers(config, model, lora_layers)


def _top_layers(config, model, lora_layers: int | None):
    """LoRA on the top ``lora_layers`` decoder layers only (None: all): the backward pass stops there."""
    if lora_layers:
        n = model.config.num_hidden_layers
        config.layers_to_transform = list(range(max(0, n - lora_layers), n))
    return config


def load_pairs(cfg: TrainConfig) -> list[dict]:
    return read_pairs(cfg.data, split=cfg.split, field_map=cfg.field_map, limit=cfg.limit)


def read_pairs(source: str | None, *, split="train", field_map=None, limit=None) -> list[dict]:
    """``{prompt, chosen, rejected}`` records (TRL's standard or conversational preference format), each checked:
    a missing, empty or non-text field stops with one line naming file, line and field."""
    from flr.records import get_prompt, get_text, read_records, validate_messages

    if not source:
        raise FLRError("no training data: pass --data FILE with {prompt, chosen, rejected} records")
    records = read_records(source, split=split, field_map=field_map, limit=limit)
    if not records:
        raise FLRError(f"{source}: no records")
    rows = []
    for rec in records:
        row = {"prompt": get_prompt(rec)}
        for side in ("chosen", "rejected"):
            value = rec.data.get(side)
            if isinstance(value, list):  # conversational: the last (assistant) message
                value = validate_messages(value, rec, side)[-1]["content"]
                rec.data = {**rec.data, side: value}
            row[side] = get_text(rec, side)
        rows.append(row)
    return rows


# -- preference-tuned FLR --------------------------------------------------------------------------------


class _ListDataset(torch.utils.data.Dataset):
    """Records of mixed shapes (string and message-list prompts), which Arrow tables cannot hold together."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


class FLRTrainer(Trainer):
    """A Trainer whose loss is the FLR pairwise loss (plus the KL term); logs rewards, margins, accuracy and KL.

    The reward is :func:`flr.scorers.followup.followup_reward`, the scorer's own aggregation (coefficients, category
    weights, statistic), on the follow-ups :func:`~flr.scorers.followup.sample_followups` draws for the step: with
    every follow-up drawn it is the reward ``FollowUpReward`` scores, otherwise an unbiased estimate of it.
    Calibration and the length term are not part of the tuned reward.
    """

    def __init__(self, *args, flr_config: ScorerConfig, tuning: RewardTuningConfig, beta: float, **kwargs):
        super().__init__(*args, **kwargs)
        from flr.followups import load_followups

        if flr_config.calibration != "none" or flr_config.length_term:
            raise FLRError("flr train flr tunes the plain FLR reward: no calibration or length term")
        self.fset = load_followups(flr_config.followups).select(flr_config.categories)
        self.weights = category_weights(flr_config.weights, list(self.fset.categories))
        self.flr_config, self.tuning, self.beta = flr_config, tuning, beta
        self.renderer = ChatRenderer(
            self.processing_class, include_eot=flr_config.include_eot, max_length=flr_config.max_length
        )
        self.stats: dict[str, list[float]] = defaultdict(list)

    def _sample_followups(self) -> tuple[list[tuple[str, str, str]], list[float]]:
        """This step's follow-ups (the same for every record of the step) and their rescaled coefficients."""
        rng = random.Random(self.args.seed * 1_000_003 + self.state.global_step)
        indices, coefficients = sample_followups(self.fset, self.tuning.followups_per_step, rng)
        utterances = self.fset.utterances
        return [utterances[i] for i in indices], coefficients

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        from flr.kernel.logprobs import packed_hidden, scaled_logits

        records = inputs["records"]
        followups, coefficients = self._sample_followups()
        texts = [t for _, _, t in followups]
        reserve = min(FOLLOWUP_RESERVE, self.flr_config.max_length // 8)
        items = []
        for r in records:
            for side in ("chosen", "rejected"):
                items.append(self.renderer.followup_item(r["prompt"], r[side], texts, reserve=reserve))
        n_scored = len(items)
        if self.tuning.kl_coef > 0:
            items += [
                self.renderer.followup_item(r["prompt"], self.tuning.content_free, texts, reserve=reserve)
                for r in records
            ]
        hidden, targets, where, (head, lm) = packed_hidden(model, items)
        logits = scaled_logits(lm, head(hidden).float())
        token_lp = logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        # per (item, follow-up) statistic, then the FLR reward of each item on this step's follow-ups
        values = torch.zeros(len(items), len(texts), device=hidden.device)
        start = 0
        kl_rows = []
        for item, k, count in where:
            part = token_lp[start : start + count]
            values[item, k] = part.mean() if self.flr_config.statistic == "mean" else part.sum()
            if item >= n_scored:
                kl_rows.append(torch.arange(start, start + count, device=hidden.device))
            start += count
        rewards, _ = followup_reward(values[:n_scored].unbind(-1), followups, coefficients, self.weights)
        chosen, rejected = rewards[0::2], rewards[1::2]
        margins = chosen - rejected
        loss = -torch.nn.functional.logsigmoid(self.beta * margins).mean()
        self.stats["rewards/chosen"].append(chosen.mean().item())
        self.stats["rewards/rejected"].append(rejected.mean().item())
        self.stats["rewards/margins"].append(margins.mean().item())
        self.stats["rewards/accuracies"].append((margins > 0).float().mean().item())
        if kl_rows:
            rows = torch.cat(kl_rows)
            tuned = torch.log_softmax(logits[rows], dim=-1)
            with torch.no_grad(), model.disable_adapter():
                base_hidden, _, _, _ = packed_hidden(model, items[n_scored:])
                base = torch.log_softmax(scaled_logits(lm, head(base_hidden).float()), dim=-1)
            kl = (base.exp() * (base - tuned)).sum(-1).mean()
            loss = loss + self.tuning.kl_coef * kl
            self.stats["kl"].append(kl.item())
        return loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        for key, values in self.stats.items():
            if values:
                logs[key] = sum(values) / len(values)
        self.stats.clear()
        super().log(logs, *args, **kwargs)


def _trainer_args(cfg: TrainConfig, method: str, device, **extra):
    from transformers import TrainingArguments

    kwargs = dict(
        output_dir=cfg.output_dir,
        learning_rate=cfg.learning_rate or DEFAULT_LEARNING_RATES[method],
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        use_cpu=device.type == "cpu",
        bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
        report_to="none",
        remove_unused_columns=False,
        **extra,
    )
    if method == "rm":
        from trl import RewardConfig

        cls = RewardConfig
        kwargs.update(max_length=None, **checkpointing_kwargs(RewardConfig, cfg.gradient_checkpointing))
    else:
        cls = TrainingArguments
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise FLRError(f"invalid training settings: {exc}") from None


def train_flr(
    cfg: TrainConfig,
    model_config: ModelConfig,
    flr_config: ScorerConfig | None = None,
    tuning: RewardTuningConfig | None = None,
    *,
    model=None,
    tokenizer=None,
) -> dict:
    """Preference-tune the FLR scorer model on ``{prompt, chosen, rejected}`` pairs; returns the summary."""
    from peft import get_peft_model

    tuning = tuning or RewardTuningConfig()
    flr_config = flr_config or ScorerConfig(
        followups=tuning.followups, categories=tuning.categories, max_length=cfg.max_length
    )
    from flr.followups import load_followups

    fset = load_followups(flr_config.followups).select(flr_config.categories)  # bad sets fail before the model loads
    if fset.weighted:
        raise FLRError("flr train flr tunes the model with an unweighted follow-up set; fit weights afterwards")
    records = load_pairs(cfg)
    if model is None:
        model, tokenizer = load_model(model_config)
    if hasattr(model, "peft_config"):
        raise FLRError("the model already carries a PEFT adapter: train from its base model (or merge it first)")
    device = next(model.parameters()).device
    model = get_peft_model(model, _layers_config(cfg, model, tuning.lora_layers, "CAUSAL_LM"))
    trainer = FLRTrainer(
        model=model,
        args=_trainer_args(cfg, "flr", device),
        train_dataset=_ListDataset(records),
        data_collator=lambda batch: {"records": batch},
        processing_class=tokenizer,
        flr_config=flr_config,
        tuning=tuning,
        beta=tuning.margin_scale,
    )
    summary = run_trainer(
        trainer,
        "flr",
        records,
        resume=cfg.resume_from_checkpoint,
        model_spec=model_config.model,
        configs=(cfg, model_config),
        extra={"tuning": vars(tuning)},
    )
    dump_followups(fset, Path(cfg.output_dir) / SCORER_FOLLOWUPS)
    return summary


# -- classifier reward model (the anchor) ----------------------------------------------------------------


def train_rm(
    cfg: TrainConfig, model_config: ModelConfig, tuning: RewardTuningConfig | None = None, *, max_length: int = 512
) -> dict:
    """A classifier reward model (score head + LoRA) on the same backbone and pairs, through TRL's RewardTrainer."""
    from flr.kernel.models import resolve_device

    tuning = tuning or RewardTuningConfig()
    records = load_pairs(cfg)
    device = resolve_device(model_config.device)
    model, tokenizer = load_classifier(model_config.model, num_labels=1, device=device)
    peft = _layers_config(cfg, model, tuning.lora_layers, "SEQ_CLS")
    args = _trainer_args(cfg, "rm", device)
    spec, resume = model_config.model, cfg.resume_from_checkpoint
    return _fit_rm(model, tokenizer, records, args, peft, max_length, resume, spec, configs=(cfg, model_config))


def train_rm_trl(data, args, model_args, tuning: RewardTuningConfig | None = None) -> dict:
    """``flr train rm`` from TRL's own configs (:mod:`flr.training.args`): data, ``RewardConfig``, ``ModelConfig``."""
    import dataclasses

    from trl import get_peft_config

    from flr.kernel.models import resolve_device

    tuning = tuning or RewardTuningConfig()
    records = read_pairs(data.dataset_name, split=data.dataset_train_split, field_map=data.field_map, limit=data.limit)
    device = resolve_device("cpu" if args.use_cpu else "auto")
    model, tokenizer = load_classifier(model_args.model_name_or_path, num_labels=1, device=device)
    max_length = args.max_length or 512
    # flr renders and cuts each pair as FLR does (TRL would drop long pairs): no TRL-side truncation
    args = dataclasses.replace(
        args,
        max_length=None,
        remove_unused_columns=False,
        **({"bf16": False, "fp16": False} if device.type != "cuda" else {}),
    )
    peft = get_peft_config(model_args)
    if peft is not None:
        peft.task_type = "SEQ_CLS"
        _top_layers(peft, model, tuning.lora_layers)
    spec, resume = model_args.model_name_or_path, args.resume_from_checkpoint
    return _fit_rm(model, tokenizer, records, args, peft, max_length, resume, spec, configs=(data, model_args, tuning))


def _fit_rm(model, tokenizer, records, args, peft, max_length: int, resume, model_spec: str, configs) -> dict:
    from datasets import Dataset
    from trl import RewardTrainer

    renderer = ChatRenderer(tokenizer, max_length=max_length)
    rows = [
        {
            "chosen_ids": classifier_ids(renderer, r["prompt"], r["chosen"]),
            "rejected_ids": classifier_ids(renderer, r["prompt"], r["rejected"]),
        }
        for r in records
    ]
    if peft is not None:
        peft.modules_to_save = ["score"]  # the fresh score head trains in full
    with quiet_renames():
        trainer = RewardTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=peft
        )
    return run_trainer(
        trainer, "rm", records, resume=resume, model_spec=model_spec, configs=configs, extra={"max_length": max_length}
    )

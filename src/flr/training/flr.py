"""Preference-tuned FLR (``flr train flr``): its config (:class:`FLRConfig`) and trainer (:class:`FLRTrainer`).

LoRA adapters on the follow-up LM learn to widen the FLR margin ``r(x, chosen) - r(x, rejected)``: loss
``-log sigmoid(beta * margin)``, with ``r`` computed by the packed kernel with gradients (teacher-forced follow-up
log-probs, the same rendering and spans the scorer reads). Each step scores a random subset of the follow-ups
(``--followups-per-step`` per category and polarity, the same subset for both sides of a pair), aggregated as the
scorer aggregates them and rescaled so that the step's reward is an unbiased estimate of the full set's; scoring
afterwards uses the full set. A KL term keeps the follow-up distribution after a content-free response where the
base model had it (``--kl-coef``), so the tuned model still reads follow-ups as a language model and does not learn
a fixed bias towards positive follow-ups.

The adapter lands at the root of ``output_dir`` (``--model DIR`` for every flr command), with the follow-up set it
was tuned with; HF Trainer checkpoints go to ``checkpoint-N`` and the latest is resumed.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from flr.errors import FLRError
from flr.followups import SCORER_FOLLOWUPS, dump_followups
from flr.kernel.chat import ChatRenderer
from flr.scorers.flr import (
    FOLLOWUP_RESERVE,
    ScorerConfig,
    category_weights,
    followup_reward,
    sample_followups,
)
from flr.training.base import load_for_training, peft_config, read_training_records, run_trainer

logger = logging.getLogger(__name__)


@dataclass
class FLRConfig(TrainingArguments):
    """The trainer config of ``flr train flr``: transformers' ``TrainingArguments`` (as TRL's configs are) plus the
    follow-up set, the loss and its KL term."""

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
    max_length: int = field(
        default=1024, metadata={"help": "Cap on prompt + response + follow-up tokens, cut as the scorer cuts them."}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep the records whole (flr renders them)."})
    bf16: bool | None = field(default=None, metadata={"help": "bfloat16 mixed precision (default: on, as in TRL)."})

    def __post_init__(self):
        if self.followups_per_step < 1:
            raise FLRError(f"--followups-per-step must be at least 1, got {self.followups_per_step}")
        if self.kl_coef < 0:
            raise FLRError(f"--kl-coef must be >= 0, got {self.kl_coef}")
        if self.bf16 is None:  # TRL's configs' default; flr turns it off where the model is not on CUDA
            self.bf16 = not self.fp16
        super().__post_init__()


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

    The reward is :func:`flr.scorers.flr.followup_reward`, the scorer's own aggregation (coefficients, category
    weights, statistic), on the follow-ups :func:`~flr.scorers.flr.sample_followups` draws for the step: with
    every follow-up drawn it is the reward ``FollowUpReward`` scores, otherwise an unbiased estimate of it.
    Calibration and the length term are not part of the tuned reward.
    """

    def __init__(self, *args, flr_config: ScorerConfig | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        from flr.followups import load_followups

        tuning: FLRConfig = self.args
        flr_config = flr_config or scorer_config(tuning)
        if flr_config.calibration != "none" or flr_config.length_term:
            raise FLRError("flr train flr tunes the plain FLR reward: no calibration or length term")
        self.fset = load_followups(flr_config.followups).select(flr_config.categories)
        self.weights = category_weights(flr_config.weights, list(self.fset.categories))
        self.flr_config, self.tuning, self.beta = flr_config, tuning, tuning.margin_scale
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


def scorer_config(args: FLRConfig) -> ScorerConfig:
    """The FLR scorer the config tunes: its follow-up set and categories, cut at its max_length."""
    return ScorerConfig(followups=args.followups, categories=args.categories, max_length=args.max_length)


def train(method: str, data, args: FLRConfig, model_args) -> dict:
    """Preference-tune the FLR scorer model (``method`` is 'flr') on ``{prompt, chosen, rejected}`` pairs; returns
    the summary also written to disk."""
    from peft import get_peft_model

    from flr.followups import load_followups

    fset = load_followups(args.followups).select(args.categories)  # bad sets fail before the model loads
    if fset.weighted:
        raise FLRError(
            f"flr train flr tunes the model with an unweighted follow-up set, and {args.followups!r} is weighted"
            " (the packaged 'authors' set by its repeats; a fitted set by its fit): tune on an unweighted set"
        )
    if not model_args.use_peft:
        raise FLRError("flr train flr trains a LoRA adapter (its KL term reads the base with the adapter off)")
    records = read_training_records(data, method)
    model, tokenizer, args = load_for_training(model_args, args)
    model = get_peft_model(model, peft_config(model_args, model))
    trainer = FLRTrainer(
        model=model,
        args=args,
        train_dataset=_ListDataset(records),
        data_collator=lambda batch: {"records": batch},
        processing_class=tokenizer,
    )
    summary = run_trainer(trainer, method, records, data, model_args)
    dump_followups(fset, Path(args.output_dir) / SCORER_FOLLOWUPS)
    return summary

"""Feedback SFT of the FLR scorer model (``flr train feedback``): a LoRA adapter that raises the likelihood of the
user's feedback after a response, on exactly the tokens FLR scores for a follow-up, through TRL's ``SFTTrainer``.
The adapter folder is a model spec: ``flr score --model runs/feedback`` scores with the tuned scorer."""

from __future__ import annotations

from collections.abc import Sequence

from flr.kernel.chat import ChatRenderer
from flr.training.base import (
    load_for_training,
    peft_config,
    read_training_records,
    run_trainer,
    trl_trainer,
)


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


def build_trainer(args, model_args, records: Sequence[dict]):
    """TRL's SFTTrainer from its ``SFTConfig`` and ``ModelConfig``, on the records rendered as FLR renders them."""
    from trl import SFTTrainer

    model, tokenizer, args = load_for_training(model_args, args)
    renderer = ChatRenderer(tokenizer, max_length=args.max_length)
    rows = [feedback_example(renderer, r["prompt"], r["response"], r["feedback"]) for r in records]
    return trl_trainer(SFTTrainer, model, args, rows, tokenizer, peft_config(model_args, model))


def train(method: str, data, args, model_args) -> dict:
    """Train the feedback adapter (``method`` is 'feedback'); returns the summary also written to disk."""
    records = read_training_records(data, method)
    trainer = build_trainer(args, model_args, records)
    return run_trainer(trainer, method, records, data, model_args)

"""The classifier reward model (``flr train rm``): the anchor FLR is compared with, on the same backbone and pairs.

A one-logit sequence-classification head plus LoRA, through TRL's ``RewardTrainer`` (``RewardConfig``). Each side
is rendered and cut from the left exactly as flr renders it for scoring (TRL itself would drop pairs over
``max_length``); ``--scorers rm:DIR`` scores with the result.
"""

from __future__ import annotations

import dataclasses

from flr.kernel.chat import ChatRenderer
from flr.training.base import (
    check_no_adapter,
    fit_to_device,
    peft_config,
    read_training_records,
    run_trainer,
    trl_trainer,
)


def train(method: str, data, args, model_args) -> dict:
    """Train the classifier reward model (``method`` is 'rm'); returns the summary also written to disk."""
    from trl import RewardTrainer

    from flr.kernel.models import quiet_renames, resolve_device
    from flr.scorers.baselines import classifier_ids, load_classifier

    records = read_training_records(data, method)
    device = resolve_device("cpu" if args.use_cpu else "auto")
    spec = model_args.model_name_or_path
    model, tokenizer = load_classifier(spec, num_labels=1, device=device, trust_remote_code=args.trust_remote_code)
    check_no_adapter(model)
    max_length = args.max_length or 512
    with quiet_renames():  # flr renders and cuts each pair itself: no TRL-side truncation
        args = dataclasses.replace(fit_to_device(args, device), max_length=None, remove_unused_columns=False)
    renderer = ChatRenderer(tokenizer, max_length=max_length)
    rows = [
        {
            "chosen_ids": classifier_ids(renderer, r["prompt"], r["chosen"]),
            "rejected_ids": classifier_ids(renderer, r["prompt"], r["rejected"]),
        }
        for r in records
    ]
    peft = peft_config(model_args, model, "SEQ_CLS")
    if peft is not None:
        peft.modules_to_save = ["score"]  # the fresh score head trains in full
    trainer = trl_trainer(RewardTrainer, model, args, rows, tokenizer, peft, chats=False)
    extra = {"max_length": max_length}
    return run_trainer(trainer, method, records, data, model_args, extra=extra)

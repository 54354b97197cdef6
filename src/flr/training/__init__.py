"""Trainers, one module per method, each with its trainer and config side by side: the policy's DPO/KTO (policy),
its online RL with an flr scorer as the reward (grpo, TRL's GRPOTrainer), feedback SFT of the scorer (feedback),
preference-tuned FLR (flr) and the classifier RM (rm); what they share (base), and the one config path of
``flr train`` and the pipeline, TRL's argument classes (args).

Imports: flr.arguments, flr.errors, flr.followups, flr.kernel, flr.records, flr.rl, flr.scorers
"""


def train(method: str, data, args, model_args, *more) -> dict:
    """Train ``method`` (dpo, kto, grpo, feedback, flr, rm) from its configs (:mod:`flr.training.args`: data, the
    trainer config, the model; grpo: and its reward, ``more``); returns the summary also written to disk."""
    import importlib

    from flr.training.args import MODULES

    return importlib.import_module(f"flr.training.{MODULES[method]}").train(method, data, args, model_args, *more)

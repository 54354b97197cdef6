"""Trainers, one module per method, each with its trainer and config side by side: the policy's DPO/KTO (policy),
its online RL with an flr scorer as the reward (grpo, TRL's GRPOTrainer), feedback SFT of the scorer (feedback),
preference-tuned FLR (flr) and the classifier RM (rm); what they share (base), and the one config path of
``flr train`` and the pipeline, TRL's argument classes (args).

Imports: flr.arguments, flr.errors, flr.followups, flr.kernel, flr.records, flr.rl, flr.scorers
"""


def train(method: str, data, args, model_args, *more) -> dict:
    """Train ``method`` (dpo, kto, grpo, feedback, flr, rm) from its configs (:mod:`flr.training.args`: data, the
    trainer config, the model; grpo: and its reward, ``more``); returns the summary also written to disk."""
    from flr.errors import FLRError

    if method not in TRAINERS:
        raise FLRError(f"unknown training method '{method}': use {', '.join(TRAINERS)}")
    return TRAINERS[method]()(method, data, args, model_args, *more)


# the module that trains each method, imported when that method runs (each imports TRL or torch)
def _policy():
    from flr.training.policy import train

    return train


def _grpo():
    from flr.training.grpo import train

    return train


def _feedback():
    from flr.training.feedback import train

    return train


def _flr():
    from flr.training.flr import train

    return train


def _rm():
    from flr.training.rm import train

    return train


TRAINERS = {"dpo": _policy, "kto": _policy, "grpo": _grpo, "feedback": _feedback, "flr": _flr, "rm": _rm}

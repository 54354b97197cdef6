"""Online RL of the policy with any flr scorer as the reward (``flr train grpo``), through TRL's ``GRPOTrainer``.

Each step samples ``num_generations`` completions per prompt from the policy (LoRA on the base), scores them in
process with an flr scorer (:class:`flr.rl.FLRRewardFunction` over FLR, the direct likelihood, length or a
classifier RM, on its own copy of its model: ``--reward-model`` is loaded separately even when it names the policy's
base, which stays frozen under LoRA but would see the adapter), optionally debiases the rewards for length or style
within the reward call, and TRL turns them into advantages normalised within each prompt's group (TRL's
``scale_rewards: group``, kept; ``none`` is Dr. GRPO's choice, ``batch`` PPO-Lite's). TRL's other GRPO defaults are
kept too (``loss_type: dapo``, ``beta: 0``: no reference model).

The reward settings are :class:`RewardArguments`: ``--reward-scorer``, ``--reward-model``, the debias modes, and every
field of :class:`flr.scorers.ScorerConfig` under ``flr score``'s flag names (``--followups``, ``--categories``,
``--contrast``, ...), so a ``--config`` YAML is GRPOConfig's keys plus these. The adapter lands at the root of
``output_dir`` (a model spec), checkpoints in ``checkpoint-N`` (resumed), the reward curves in summary.json.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from flr.errors import FLRError, InputError
from flr.records import assistant_text
from flr.scorers.base import ScorerConfig
from flr.scorers.debias import DEBIAS_MODES, STYLE_MODES

# ScorerConfig fields RewardArguments leaves out: 'method' (packed or reference scoring) is the name of flr train's
# subcommand, and GRPO rewards want the packed path anyway
LEFT_OUT = ("method",)


@dataclass
class _RewardOptions:
    reward_scorer: str = field(
        default="flr",
        metadata={
            "help": "The reward: flr (follow-up likelihood), direct (the response's own likelihood), length "
            "(characters: a baseline) or rm:<model> (a classifier reward model, e.g. rm:runs/rm)."
        },
    )
    reward_model: str = field(
        default="default",
        metadata={
            "help": "Model spec of the flr/direct scorer ('default': the embedded SmolLM2-135M-Instruct; an adapter "
            "folder such as runs/flr-tuned). Loaded on its own, even when it is the policy's base."
        },
    )
    reward_length_debias: str = field(
        default="none",
        metadata={
            "help": "Length-debias the rewards of each reward call before GRPO sees them: none; batch: the reward minus "
            "its least-squares line on log length over the call's completions (the generation batch); prompt: one "
            "line per prompt group (its num_generations completions); lowess: a curve over the call's completions.",
            "choices": list(DEBIAS_MODES),
        },
    )
    reward_style_debias: str = field(
        default="none",
        metadata={
            "help": "Style-control the rewards of each reward call (log length, markdown headers, list items, bold, "
            "opener, closer, bait question): none; batch: over the call's completions; prompt: within each prompt "
            "group. Includes length: not with --reward-length-debias.",
            "choices": list(STYLE_MODES),
        },
    )

    def __post_init__(self):
        from flr.scorers import SCORERS, is_scorer_name

        if not is_scorer_name(self.reward_scorer or ""):
            raise FLRError(f"unknown --reward-scorer '{self.reward_scorer}': use one of {', '.join(SCORERS)}")
        for flag, value, modes in (
            ("--reward-length-debias", self.reward_length_debias, DEBIAS_MODES),
            ("--reward-style-debias", self.reward_style_debias, STYLE_MODES),
        ):
            if value not in modes:
                raise FLRError(f"{flag} must be one of {', '.join(modes)}, got {value!r}")
        if self.reward_length_debias != "none" and self.reward_style_debias != "none":
            raise FLRError("--reward-style-debias already controls for length: use it or --reward-length-debias")
        config = self.scorer_config()  # ScorerConfig's own checks (ranges, --contrast), before any model loads
        if self.reward_scorer == "flr":  # the follow-up set: its file, its categories, a --length-term it lacks
            from flr.followups import load_followups
            from flr.scorers.flr import check_length_term

            check_length_term(config, load_followups(config.followups).select(config.categories))

    def scorer_config(self) -> ScorerConfig:
        names = {f.name for f in dataclasses.fields(ScorerConfig)}
        return ScorerConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


def _scorer_fields() -> list[tuple]:
    """ScorerConfig's fields (less :data:`LEFT_OUT`), their help marked as the reward scorer's."""
    out = []
    for f in dataclasses.fields(ScorerConfig):
        if f.name in LEFT_OUT:
            continue
        default = {"default": f.default} if f.default is not dataclasses.MISSING else {}
        if f.default_factory is not dataclasses.MISSING:
            default = {"default_factory": f.default_factory}
        metadata = {**f.metadata, "help": "Reward scorer (as in flr score): " + f.metadata.get("help", "")}
        out.append((f.name, f.type, field(**default, metadata=metadata)))
    return out


# one class, so that ScorerConfig's fields added later reach flr train grpo with no change here
RewardArguments = dataclasses.make_dataclass(
    "RewardArguments",
    _scorer_fields(),
    bases=(_RewardOptions,),
    namespace={
        "__module__": __name__,
        "__doc__": "The reward of ``flr train grpo``: the scorer, its model, debiasing, and flr score's scorer "
        "settings (:class:`flr.scorers.ScorerConfig`, without 'method').",
    },
)


# -- data ------------------------------------------------------------------------------------------------


def read_prompts(data) -> list[dict]:
    """``[{"prompt": messages}]`` from ``data`` (a string prompt becomes one user message, so TRL renders it with
    the chat template; a list of user turns keeps the first); a bad one is one line naming file, line and field."""
    from flr.records import prompt_messages, read_records
    from flr.training.base import read_training_records

    rows = read_training_records(data, "grpo")  # the file, the prompt column, null prompts: located there
    try:
        return [{"prompt": prompt_messages(r["prompt"], {"field": "prompt"})} for r in rows]
    except InputError:
        pass
    # an empty or malformed prompt: the reader keeps values, not lines, so find it again to say where
    records = read_records(
        data.dataset_name, split=data.dataset_train_split, field_map=data.field_map, limit=data.limit
    )
    for rec in records:
        prompt_messages(rec.data["prompt"], {"file": rec.source, "line": rec.line, "field": "prompt"})
    raise AssertionError("unreachable: a prompt failed once and passed again")


# -- reward ----------------------------------------------------------------------------------------------


def _response(completion) -> str:
    """TRL passes completions as strings or, for message prompts, as lists of messages."""
    return assistant_text(completion)


class DebiasedReward:
    """A TRL reward function: ``reward`` (an :class:`~flr.rl.FLRRewardFunction`) with its rewards
    debiased within each call (:func:`flr.scorers.debias.debias`; ``prompt`` groups by prompt, that is by GRPO
    group). The raw rewards' mean is logged as ``rewards/<name>/raw_mean``."""

    def __init__(self, reward, length: str = "none", style: str = "none"):
        self.reward, self.length, self.style = reward, length, style
        self.__name__ = reward.__name__  # TRL logs a reward function under its __name__

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs) -> list[float]:
        import numpy as np

        from flr.scorers.debias import debias

        rewards = self.reward(prompts, completions, **kwargs)
        texts = [_response(c) for c in completions]
        groups = [json.dumps(p, sort_keys=True) for p in prompts]
        values, _ = debias(rewards, [len(t) for t in texts], self.length, groups, style=self.style, texts=texts)
        if kwargs.get("log_metric") is not None:
            kwargs["log_metric"](f"rewards/{self.__name__}/raw_mean", float(np.nanmean(rewards)))
        return [float(v) for v in values]  # NaN (a non-finite reward) counts as no reward in TRL's sum


def build_reward(reward_args, args, model_args):
    """The TRL reward function of ``reward_args``; flr and direct load ``--reward-model`` on the policy's device."""
    from flr.kernel.models import ModelConfig
    from flr.rl import FLRRewardFunction  # the public short path (serving sits above training)
    from flr.scorers import build_scorer

    model_config = ModelConfig(
        model=reward_args.reward_model,
        device="cpu" if args.use_cpu else "auto",
        dtype=model_args.dtype or "auto",
        trust_remote_code=args.trust_remote_code,
    )
    scorer = build_scorer(reward_args.reward_scorer, model_config=model_config, config=reward_args.scorer_config())
    reward = FLRRewardFunction(scorer)
    if reward_args.reward_length_debias == "none" and reward_args.reward_style_debias == "none":
        return reward
    return DebiasedReward(reward, reward_args.reward_length_debias, reward_args.reward_style_debias)


# -- trainer ---------------------------------------------------------------------------------------------


def load_policy(model_args, args):
    """``(model, tokenizer, args)`` as :func:`flr.training.base.load_for_training` gives them. GRPOConfig's
    ``__post_init__`` fills both generation_batch_size and steps_per_generation and then refuses both set, so a
    ``dataclasses.replace`` (fitting the config to the device) needs one of them unset; the other gives it back."""
    from flr.training.base import load_for_training

    generation_batch_size = args.generation_batch_size
    args.generation_batch_size = None
    try:
        model, tokenizer, fitted = load_for_training(model_args, args)
    finally:
        args.generation_batch_size = generation_batch_size
    if fitted.generation_batch_size is None:  # not replaced (CUDA): the same object, restored above
        fitted.generation_batch_size = generation_batch_size
    return model, tokenizer, fitted


def build_trainer(args, model_args, reward_args, records: Sequence[dict]):
    """TRL's GRPOTrainer from its ``GRPOConfig``, TRL's ``ModelConfig`` and :class:`RewardArguments`. The scorer
    loads first: a reward model that is not there fails before the policy loads."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from flr.kernel.chat import ChatRenderer
    from flr.kernel.models import quiet_renames
    from flr.training.base import peft_config

    reward = build_reward(reward_args, args, model_args)
    model, tokenizer, args = load_policy(model_args, args)
    if not tokenizer.chat_template:  # TRL renders the message prompts with it
        tokenizer.chat_template = ChatRenderer(tokenizer).chat_template
    with quiet_renames():
        return GRPOTrainer(
            model=model, reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(list(records)),
            processing_class=tokenizer, peft_config=peft_config(model_args, model),
        )  # fmt: skip


def train(method: str, data, args, model_args, reward_args=None) -> dict:
    """GRPO of a LoRA adapter on the policy with an flr scorer as the reward (``method`` is 'grpo'); returns the
    summary also written to disk (reward curves included)."""
    from flr.training.args import check_configs
    from flr.training.base import run_trainer

    reward_args = reward_args if reward_args is not None else RewardArguments()
    check_configs((data, args, model_args, reward_args))
    records = read_prompts(data)
    trainer = build_trainer(args, model_args, reward_args, records)
    return run_trainer(trainer, method, records, data, model_args, extra={"reward": dataclasses.asdict(reward_args)})

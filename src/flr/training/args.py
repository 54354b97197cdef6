"""The one config path of ``flr train <method>`` and the pipeline's ``train:`` section: TRL's own argument classes.

Every method parses the same three classes: :class:`DataArguments` (TRL's ``ScriptArguments``), the method's
trainer config (TRL's ``DPOConfig``, ``KTOConfig``, ``SFTConfig``, ``RewardConfig``, ``GRPOConfig``, or flr's
``FLRConfig``, a ``TrainingArguments`` like them) and :class:`ModelArguments` (TRL's ``ModelConfig``), the first and
last subclassed only for flr's aliases (``--data``, ``--model``) and its few fields (``--field-map``, ``--limit``,
``--lora-layers``); grpo adds a fourth, its reward (:class:`flr.training.grpo.RewardArguments`). So a ``trl dpo --config`` YAML works unchanged, and a pipeline section is exactly a
``--config`` file. flr's defaults differ from TRL's where TRL's would fail on a CPU or suit full fine-tuning rather
than LoRA; they are one table (:data:`DEFAULTS`) applied as parser defaults, so a YAML key or a flag still wins.
Importing TRL takes seconds, so only ``flr train`` and the pipeline's train stage import this module.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from trl import DPOConfig, GRPOConfig, KTOConfig, ModelConfig, RewardConfig, ScriptArguments, SFTConfig

from flr.arguments import parse_mapping, split_list, to_configs
from flr.errors import FLRError
from flr.kernel.models import quiet_renames

METHODS = ("dpo", "kto", "grpo", "feedback", "flr", "rm")  # each one's trainer: flr.training.TRAINERS

# flr's defaults where TRL's do not suit LoRA on a CPU: TRL's full fine-tuning learning rates (1e-6 DPO/KTO, 2e-5
# SFT) x10 as its docs advise for LoRA (a zero-initialised low-rank update needs larger steps); no gradient
# checkpointing (slow on CPU, rarely needed with LoRA); log every step, checkpoint every 50 and resume from the
# latest. The reward heads (flr, rm) and feedback SFT learn at 2e-4; rm cuts pairs to 512 tokens as flr eval
# scores them; flr and rm adapt the top 8 layers only (backward stops there). GRPO: 8 completions a step, 4 per
# prompt (TRL's 8 per prompt x 512 tokens is hours a step on a CPU), 128 new tokens; TRL's loss, group-normalised
# rewards and beta 0 (no reference model) as they are.
DEFAULTS = {
    "all": {
        "learning_rate": 1e-5,
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "save_steps": 50,
        "save_total_limit": 2,
        "resume_from_checkpoint": "auto",
        "report_to": "none",
        "dtype": "auto",
    },
    "grpo": {"per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 128, "seed": 0},
    "feedback": {"learning_rate": 2e-4, "per_device_train_batch_size": 4, "seed": 0},
    "flr": {"learning_rate": 2e-4, "per_device_train_batch_size": 4, "seed": 0, "lora_layers": 8},
    "rm": {"learning_rate": 2e-4, "max_length": 512, "lora_layers": 8},
}


@dataclass
class DataArguments(ScriptArguments):
    """TRL's script arguments; ``dataset_name`` also takes a local JSONL/JSON/CSV/Parquet file (``--data``)."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Training records: a file (JSONL, JSON, CSV, Parquet) or an HF dataset id. dpo, flr, rm: {prompt, "
            "chosen, rejected} (flr mine's pairs.jsonl); kto: {prompt, completion, label} or pairs; grpo: {prompt} "
            "(a string or messages; other fields ignored); feedback: {prompt, response, feedback}.",
            "aliases": ["--data"],
        },
    )
    dataset_train_split: str = field(
        default="train", metadata={"help": "Split, when --data is an HF dataset id.", "aliases": ["--split"]}
    )
    field_map: str | None = field(
        default=None, metadata={"help": "flr: rename your fields to ours, e.g. chosen=better,rejected=worse."}
    )
    limit: int | None = field(default=None, metadata={"help": "flr: train on the first N records only."})


@dataclass
class ModelArguments(ModelConfig):
    """TRL's model config; ``model_name_or_path`` also takes flr's specs ('default', .gguf, adapters)."""

    model_name_or_path: str | None = field(
        default="default",
        metadata={
            "help": "Model spec: 'default' (embedded SmolLM2-135M-Instruct), a Hub id, a local folder or a .gguf file.",
            "aliases": ["--model", "-m"],
        },
    )
    model_revision: str = field(
        default="main", metadata={"help": "Hub revision (branch, tag or commit).", "aliases": ["--revision"]}
    )
    use_peft: bool = field(
        default=True, metadata={"help": "Train a LoRA adapter (flr's default; false: full fine-tuning)."}
    )
    lora_target_modules: list[str] | None = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules LoRA adapts: all-linear, or names (q_proj v_proj; a YAML list or string)."},
    )
    lora_layers: int | None = field(
        default=None,
        metadata={
            "help": "flr: adapt only the top N decoder layers (the backward pass then stops there: about 2x faster "
            "steps on CPU). Default: every layer (flr and rm: 8)."
        },
    )

    def __post_init__(self):
        # one list, whether the names came as flags, a YAML list or a string ('q_proj,v_proj' or 'q_proj v_proj')
        if self.lora_target_modules is not None:
            self.lora_target_modules = [n for item in split_list(self.lora_target_modules) for n in item.split()]
        if self.lora_layers is not None and self.lora_layers < 1:
            raise FLRError(f"--lora-layers must be at least 1, got {self.lora_layers}")
        super().__post_init__()


def config_class(method: str):
    """The trainer config of ``method``: TRL's class, or flr's own for FLR preference tuning."""
    if method == "flr":
        from flr.training.flr import FLRConfig

        return FLRConfig
    if method not in METHODS:
        raise FLRError(f"unknown training method '{method}': use {', '.join(METHODS)}")
    return {"dpo": DPOConfig, "kto": KTOConfig, "grpo": GRPOConfig, "feedback": SFTConfig, "rm": RewardConfig}[method]


def argument_classes(method: str) -> tuple:
    """The parser classes of ``method``: data, trainer config, model (grpo: and its reward, fourth)."""
    if method == "grpo":
        from flr.training.grpo import RewardArguments

        return DataArguments, GRPOConfig, ModelArguments, RewardArguments
    return DataArguments, config_class(method), ModelArguments


def accelerator_present() -> bool:
    """TRL's configs default to bf16 and refuse it on a CPU-only machine unless use_cpu is set: set it there."""
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


def method_defaults(method: str) -> dict:
    """flr's defaults for ``method`` (:data:`DEFAULTS`), as parser defaults: the command's and the pipeline's."""
    machine = {"output_dir": f"runs/{method}", "use_cpu": not accelerator_present()}
    return {**DEFAULTS["all"], **machine, **DEFAULTS.get(method, {})}


@contextlib.contextmanager
def trl_checks():
    """TRL's and transformers' own checks (in their configs' ``__post_init__``) as one-line errors."""
    try:
        with quiet_renames():  # TRL's configs set gradient_checkpointing, which transformers may have renamed
            yield
    except (TypeError, ValueError) as exc:
        message = str(exc).splitlines()[0]
        if "divisible by num_generations" in message:  # GRPOConfig's: say which flags make the batch
            message += (
                " (GRPO trains on --per-device-train-batch-size completions a step, --num-generations of them per "
                "prompt: make the batch, times --steps-per-generation or --gradient-accumulation-steps, a multiple)"
            )
        raise FLRError(f"invalid training settings: {message}") from None


def check_configs(configs: tuple) -> tuple:
    """What TRL checks only after the model loads, or not at all: KTO's batch size, LD-DPO's alpha in [0, 1]."""
    if isinstance(configs[1], KTOConfig) and configs[1].per_device_train_batch_size < 2:
        raise FLRError("KTO needs --per-device-train-batch-size of at least 2 (its KL term pairs examples in a batch)")
    alpha = getattr(configs[1], "ld_alpha", None)
    if alpha is not None and not 0 <= alpha <= 1:
        raise FLRError(
            f"--ld-alpha must be between 0 and 1 (LD-DPO's weight of the tokens past the shared length), got {alpha}"
        )
    return configs


def from_namespace(method: str, namespace) -> tuple:
    """``(data, trainer config, model)`` from parsed ``flr train <method>`` flags."""
    with trl_checks():
        return check_configs(to_configs(namespace, *argument_classes(method)))


def from_mapping(method: str, values: dict, source: str) -> tuple:
    """``(data, trainer config, model)`` from a mapping (a pipeline ``train:`` section) exactly as ``flr train
    <method> --config`` builds them from the same keys: the same classes, defaults and checks."""
    with trl_checks():
        configs = parse_mapping(
            values, argument_classes(method), source, f"flr train {method}", defaults=method_defaults(method)
        )
    return check_configs(configs)

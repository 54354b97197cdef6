"""``flr train dpo|kto|rm`` arguments as TRL's own config classes, so that a ``trl dpo --config`` YAML works unchanged.

The parser is TRL's: :class:`trl.ScriptArguments` (data), :class:`trl.DPOConfig` / :class:`trl.KTOConfig` /
:class:`trl.RewardConfig` (every trainer option) and :class:`trl.ModelConfig` (model and LoRA), each subclassed only to add flr's aliases
(``--data``, ``--model``) and the two fields flr adds (``--field-map``, ``--limit``). flr's defaults differ from
TRL's where TRL's would fail on a CPU or with LoRA, and are set as parser defaults, so a YAML or a flag still wins:
see :data:`FLR_DEFAULTS`. Importing TRL takes seconds, so this module is imported only by ``flr train``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig, KTOConfig, ModelConfig, RewardConfig, ScriptArguments

TRL_CONFIGS = {"dpo": DPOConfig, "kto": KTOConfig, "rm": RewardConfig}
# per method, where flr's default differs from FLR_DEFAULTS: the reward model's fresh head learns faster, and
# pairs are cut to 512 tokens as flr eval scores them
METHOD_DEFAULTS = {"rm": {"learning_rate": 2e-4, "max_length": 512}}

# TRL's full fine-tuning learning rates (1e-6) x10 as its docs advise for LoRA; no gradient checkpointing (slow on
# CPU, and a LoRA model rarely needs it); log every step, checkpoint every 50, resume from the latest checkpoint.
FLR_DEFAULTS = {
    "learning_rate": 1e-5,
    "gradient_checkpointing": False,
    "logging_steps": 1,
    "save_steps": 50,
    "save_total_limit": 2,
    "resume_from_checkpoint": "auto",
    "report_to": "none",
    "dtype": "auto",
}


@dataclass
class DataArguments(ScriptArguments):
    """TRL's script arguments; ``dataset_name`` also takes a local JSONL/JSON/CSV/Parquet file (``--data``)."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Training records: a file (JSONL, JSON, CSV, Parquet) or an HF dataset id. dpo: {prompt, chosen, "
            "rejected} (flr mine's pairs.jsonl); kto: {prompt, completion, label} or pairs.",
            "aliases": ["--data"],
        },
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
    use_peft: bool = field(
        default=True, metadata={"help": "Train a LoRA adapter (flr's default; false: full fine-tuning)."}
    )
    lora_target_modules: list[str] | None = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules LoRA adapts: all-linear, or names (q_proj v_proj)."},
    )


def argument_classes(method: str) -> tuple:
    return DataArguments, TRL_CONFIGS[method], ModelArguments

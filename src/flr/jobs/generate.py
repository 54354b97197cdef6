"""Sample k responses per prompt from a policy: batched transformers ``generate``, or vLLM when it is installed.

Output rows (one per prompt, written as they finish, so a killed run resumes where it stopped)::

    {"id", "prompt": [messages], "candidates": [k strings], "finished": [k bools], "num_tokens": [k ints],
     "policy", "seed", "temperature", "top_p", "max_new_tokens"}

``prompt`` is the conversation the policy saw (with the system prompt when one was given), in TRL's
conversational format, so that mining and training see exactly what the policy was sampled on.
Sampling is reproducible for a given seed: each batch of prompts is seeded from the seed and its first prompt's id
(transformers), each prompt from the seed and its id (vLLM, ``SamplingParams(n=k, seed=...)``).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flr.errors import FLRError, InputError
from flr.hashing import text_digest
from flr.kernel.chat import ChatRenderer
from flr.kernel.models import ModelConfig, adapter_base, is_adapter_dir, load_model, resolve_spec
from flr.records import CANDIDATES_FILE, ResumableWriter, prompt_messages, read_records, record_id
from flr.records.provenance import write_summary

logger = logging.getLogger(__name__)


@dataclass
class PromptConfig:
    """Where prompts come from (shared by ``flr generate`` and ``flr compare``)."""

    prompts: str | None = field(
        default=None,
        metadata={"help": "Prompt file (jsonl, json, csv, parquet) or a Hugging Face dataset id."},
    )
    split: str = field(default="train", metadata={"help": "Split, when --prompts is an HF dataset id."})
    field_map: str | None = field(
        default=None,
        metadata={
            "help": "Rename your fields to ours (prompt, id), e.g. prompt=turns,id=question_id. The prompt is a "
            "string, a message list, or a list of user turns (the first is used: later turns need earlier answers)."
        },
    )
    offset: int = field(
        default=0, metadata={"help": "Skip this many prompts first (keeps held-out prompts apart from training ones)."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use at most this many prompts (after --offset)."})


@dataclass
class SamplingConfig:
    """How responses are sampled (the paper's defaults: k=8, temperature 0.7, top-p 0.9)."""

    k: int = field(default=8, metadata={"help": "Responses sampled per prompt."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature; 0 = greedy decoding."})
    top_p: float = field(default=0.9, metadata={"help": "Nucleus sampling mass (top-k is off)."})
    max_new_tokens: int = field(default=512, metadata={"help": "Cap on generated tokens per response."})
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message put before each prompt (unless it has one)."}
    )
    generation_batch_size: int = field(
        default=8, metadata={"help": "Prompts per generate() call (each gives k sequences)."}
    )
    seed: int = field(default=0, metadata={"help": "Random seed; same seed and batch size give the same samples."})
    backend: str = field(
        default="auto",
        metadata={
            "help": "auto (vLLM when installed and on a GPU, else transformers), transformers, vllm.",
            "choices": ["auto", "transformers", "vllm"],
        },
    )

    def __post_init__(self):
        for name in ("k", "max_new_tokens", "generation_batch_size"):
            if getattr(self, name) < 1:
                raise FLRError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.backend not in ("auto", "transformers", "vllm"):
            raise FLRError(f"--backend must be auto, transformers or vllm, got {self.backend!r}")


@dataclass
class GenerateConfig:
    output_dir: str = field(
        default="runs/generate", metadata={"help": f"Folder for {CANDIDATES_FILE} and summary.json."}
    )


# -- prompts -------------------------------------------------------------------------------------------


def load_prompts(cfg: PromptConfig, system_prompt: str | None = None) -> list[dict]:
    """``[{"id", "prompt": messages}]`` after ``offset``/``limit``; ids: the ``id`` field, else the row index."""
    if not cfg.prompts:
        raise FLRError("no prompts: pass --prompts FILE or a dataset id")
    limit = None if cfg.limit is None else cfg.offset + cfg.limit
    records = read_records(cfg.prompts, split=cfg.split, field_map=cfg.field_map, limit=limit)[cfg.offset :]
    out, seen = [], set()
    for index, rec in enumerate(records, start=cfg.offset):
        where = {"file": rec.source, "line": rec.line, "field": "prompt"}
        if "prompt" not in rec.data:
            raise InputError("missing (map yours with --field-map prompt=YOUR_FIELD)", **where)
        messages = prompt_messages(rec.data["prompt"], where)
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}] + messages
        key = record_id(rec, index)
        if key in seen:
            raise InputError(f"duplicate id {key!r}", file=rec.source, line=rec.line, field="id")
        seen.add(key)
        out.append({"id": key, "prompt": messages})
    if not out:
        raise FLRError(f"{cfg.prompts}: no prompts after --offset {cfg.offset}")
    return out


# -- backends ------------------------------------------------------------------------------------------


def _seed_of(seed: int, key: str) -> int:
    return int(text_digest(f"{seed}:{key}", length=8), 16)


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


class TransformersSampler:
    """Left-padded batched ``generate`` with ``num_return_sequences=k``."""

    name = "transformers"

    def __init__(self, spec: ModelConfig, sampling: SamplingConfig, model=None, tokenizer=None):
        if model is None:
            model, tokenizer = load_model(spec)
        self.model, self.tokenizer, self.sampling = model, tokenizer, sampling
        self.renderer = ChatRenderer(tokenizer)
        self.eos = _eos_ids(model, tokenizer)

    def _options(self) -> dict:
        s = self.sampling
        if s.temperature <= 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": 0}

    def sample(self, batch: Sequence[dict]) -> list[dict]:
        import torch

        with torch.inference_mode():
            return self._sample(batch)

    def _sample(self, batch: Sequence[dict]) -> list[dict]:
        import torch

        s, tok = self.sampling, self.tokenizer
        texts = [self.renderer.render(b["prompt"], add_generation_prompt=True) for b in batch]
        side, tok.padding_side = tok.padding_side, "left"
        try:
            enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(self.model.device)
        finally:
            tok.padding_side = side
        torch.manual_seed(_seed_of(s.seed, batch[0]["id"]))
        out = self.model.generate(
            **enc,
            max_new_tokens=s.max_new_tokens,
            num_return_sequences=s.k,
            pad_token_id=tok.pad_token_id,
            eos_token_id=sorted(self.eos),
            **self._options(),
        )
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        results = []
        for i in range(len(batch)):
            rows = [self._decode(ids) for ids in new[i * s.k : (i + 1) * s.k]]
            results.append({key: [r[key] for r in rows] for key in ("candidates", "finished", "num_tokens")})
        return results

    def _decode(self, ids: list[int]) -> dict:
        stop = next((j for j, t in enumerate(ids) if t in self.eos), None)
        kept = ids if stop is None else ids[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
        return {"candidates": text, "finished": stop is not None, "num_tokens": len(kept)}


class VLLMSampler:
    """vLLM's ``LLM.generate`` with ``SamplingParams(n=k, seed=...)`` per prompt; PEFT adapters via LoRARequest."""

    name = "vllm"

    def __init__(self, spec: ModelConfig, sampling: SamplingConfig):
        import json

        from vllm import LLM
        from vllm.lora.request import LoRARequest

        from flr.kernel.models import load_tokenizer

        path, self.lora = resolve_spec(spec.model), None
        kwargs = {"seed": sampling.seed, "trust_remote_code": spec.trust_remote_code}
        if spec.dtype != "auto":
            kwargs["dtype"] = spec.dtype
        if is_adapter_dir(path):
            adapter = json.loads((Path(path) / "adapter_config.json").read_text())
            self.lora = LoRARequest("adapter", 1, path)
            kwargs.update(enable_lora=True, max_lora_rank=max(int(adapter.get("r", 16)), 8))
            path = resolve_spec(adapter_base(path))
        self.tokenizer = load_tokenizer(spec.tokenizer or path, trust_remote_code=spec.trust_remote_code)
        self.llm = LLM(model=path, tokenizer=spec.tokenizer or path, **kwargs)
        self.renderer, self.sampling = ChatRenderer(self.tokenizer), sampling

    def sample(self, batch: Sequence[dict]) -> list[dict]:
        from vllm import SamplingParams

        s = self.sampling
        greedy = s.temperature <= 0
        params = [
            SamplingParams(
                n=s.k,
                temperature=0.0 if greedy else s.temperature,
                top_p=1.0 if greedy else s.top_p,
                max_tokens=s.max_new_tokens,
                seed=_seed_of(s.seed, b["id"]),
            )
            for b in batch
        ]
        # Token ids, not text: the rendered template already holds BOS where the model wants one.
        prompts = [
            {
                "prompt_token_ids": self.tokenizer(self.renderer.render(b["prompt"], True), add_special_tokens=False)[
                    "input_ids"
                ]
            }
            for b in batch
        ]
        outputs = self.llm.generate(prompts, params, lora_request=self.lora, use_tqdm=False)
        return [
            {
                "candidates": [o.text.strip() for o in out.outputs],
                "finished": [o.finish_reason == "stop" for o in out.outputs],
                "num_tokens": [len(o.token_ids) for o in out.outputs],
            }
            for out in outputs
        ]


def make_sampler(spec: ModelConfig, sampling: SamplingConfig, model=None, tokenizer=None):
    backend = sampling.backend
    has_vllm = importlib.util.find_spec("vllm") is not None
    if backend == "vllm" and not has_vllm:
        raise FLRError("--backend vllm needs vLLM: pip install 'flr[vllm]'")
    if backend == "auto":
        import torch

        backend = "vllm" if has_vllm and torch.cuda.is_available() and model is None else "transformers"
    if backend == "vllm":
        return VLLMSampler(spec, sampling)
    return TransformersSampler(spec, sampling, model=model, tokenizer=tokenizer)


# -- the command's work --------------------------------------------------------------------------------


def generate(
    prompts: list[dict],
    output: str | Path,
    model_config: ModelConfig,
    sampling: SamplingConfig,
    *,
    model=None,
    tokenizer=None,
    progress: bool = True,
) -> dict:
    """Sample ``k`` responses for each prompt not yet in ``output`` (JSONL, appended row by row).

    Returns counts: ``{"prompts", "generated", "skipped"}``. A prompt already in the file is never sampled again.
    """
    from tqdm.auto import tqdm

    if sampling.temperature <= 0 and sampling.k > 1:
        logger.warning("greedy decoding (temperature 0) with k=%d gives identical candidates", sampling.k)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "policy": model_config.model,
        "seed": sampling.seed,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_new_tokens": sampling.max_new_tokens,
    }
    with ResumableWriter(output, key="id") as writer:
        todo = [p for p in prompts if p["id"] not in writer.done]
        counts = {"prompts": len(prompts), "generated": len(todo), "skipped": len(prompts) - len(todo)}
        if counts["skipped"]:
            logger.info("%s: %d of %d prompts already done", output, counts["skipped"], len(prompts))
        if not todo:
            return counts
        sampler = make_sampler(model_config, sampling, model=model, tokenizer=tokenizer)
        size = sampling.generation_batch_size
        with tqdm(total=len(todo), unit="prompt", desc="generate", disable=not progress or not todo) as bar:
            for start in range(0, len(todo), size):
                batch = todo[start : start + size]
                for p, result in zip(batch, sampler.sample(batch)):
                    writer.write({"id": p["id"], "prompt": p["prompt"], **result, **meta})
                bar.update(len(batch))
    return counts


def run(prompt_cfg: PromptConfig, sampling: SamplingConfig, cfg: GenerateConfig, model_config: ModelConfig) -> dict:
    """``flr generate``: prompts -> ``<output_dir>/candidates.jsonl`` + ``summary.json``."""
    prompts = load_prompts(prompt_cfg, sampling.system_prompt)
    out = Path(cfg.output_dir)
    counts = generate(prompts, out / CANDIDATES_FILE, model_config, sampling)
    summary = {"counts": counts, "output": str(out / CANDIDATES_FILE)}
    return write_summary(out, summary, prompt_cfg, sampling, cfg, model_config)

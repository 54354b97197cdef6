"""Natural-language feedback for ``flr train feedback``: third-person critiques -> first-person user follow-ups.

Two ways: ``rules`` (deterministic, no model: the critique's first sentences in the second person, after an opener
chosen by the critique's rating when it has one) and ``model`` (an instruct model rewrites each critique with
:data:`REWRITE_PROMPT`; a larger model than the embedded 135M one does this much better).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from flr.errors import FLRError, InputError
from flr.kernel.models import ModelConfig
from flr.records import conversation_text, read_jsonl, read_records, record_id, write_jsonl

# third person -> what the user would say to the assistant; the order matters (longest first)
_PERSON = [
    (r"\bThe response's\b", "Your answer's"),
    (r"\bthe response's\b", "your answer's"),
    (r"\b[Tt]he (?:assistant's )?response\b", "your answer"),
    (r"\b[Tt]he assistant\b", "you"),
    (r"\b[Tt]he user's\b", "my"),
    (r"\b[Tt]he user\b", "me"),
]
POSITIVE_OPENER, NEGATIVE_OPENER = "Thanks, that's helpful.", "That's not good enough."


def critique_to_followup(critique: str, rating: float | None = None, *, sentences: int = 2) -> str:
    """The user's follow-up for a critique, by rule: an opener by rating (>= 7 satisfied, <= 4 not, else none),
    then the critique's first ``sentences`` sentences in the second person."""
    parts = re.split(r"(?<=[.!?])\s+", " ".join(critique.split()))
    text = " ".join(parts[:sentences]).strip()
    for pattern, repl in _PERSON:
        text = re.sub(pattern, repl, text)
    text = re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m[1] + m[2].upper(), text)
    opener = "" if rating is None else POSITIVE_OPENER if rating >= 7 else NEGATIVE_OPENER if rating <= 4 else ""
    return f"{opener} {text}".strip()


REWRITE_PROMPT = """Below is a user's request, an AI assistant's response, and a reviewer's critique of that response.

[User's request]
{prompt}

[Assistant's response]
{response}

[Reviewer's critique]
{critique}

Write the message the user would send next, right after reading the response, that expresses the critique's \
judgement in the user's own words: first person, addressed to the assistant, one or two sentences, no greeting, \
no quotation marks. For example, the critique "The response fails to mention the deadline." becomes "You didn't \
mention the deadline at all.", and "The answer is accurate and well organized." becomes "Thanks, that's clear and \
exactly what I needed."

Reply with the user's message only."""
REWRITE_CONTEXT_CHARS = 2000  # prompt and response are cut to this many characters inside the rewrite prompt


def rewrite_prompt(prompt, response: str, critique: str) -> list[dict]:
    """The conversation sent to the rewriting model (see :data:`REWRITE_PROMPT`)."""
    prompt = conversation_text(prompt)
    text = REWRITE_PROMPT.format(
        prompt=prompt[:REWRITE_CONTEXT_CHARS], response=response[:REWRITE_CONTEXT_CHARS], critique=critique.strip()
    )
    return [{"role": "user", "content": text}]


def clean_rewrite(text: str) -> str:
    """The first non-empty line, without wrapping quotes or a 'User:' label."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    for label in ("User:", "user:", "User's message:"):
        if line.startswith(label):
            line = line[len(label) :].strip()
    return line.strip("\"\u201c\u201d' ")


@dataclass
class RewriteConfig:
    """Inputs and outputs of ``flr feedback rewrite``."""

    method: str = field(
        default="model",
        metadata={
            "help": "model: an instruct model rewrites each critique; rules: deterministic, no model.",
            "choices": ["model", "rules"],
        },
    )
    input: str | None = field(
        default=None,
        metadata={
            "help": "Records {prompt, response, critique[, rating]} (a file or HF dataset id), or autoj_critiques: "
            "the training two thirds of the shared Auto-J critiques."
        },
    )
    output: str | None = field(default=None, metadata={"help": "Output JSONL: each record + 'feedback'."})
    split: str = field(default="train", metadata={"help": "Split, when --input is an HF dataset id."})
    data_dir: str | None = field(
        default=None, metadata={"help": "Where the shared benchmark files live (for --input autoj_critiques)."}
    )
    field_map: str | None = field(
        default=None, metadata={"help": "Rename your fields to ours, e.g. critique=explanation,response=output."}
    )
    limit: int | None = field(default=None, metadata={"help": "Rewrite only the first N records."})
    max_new_tokens: int = field(default=64, metadata={"help": "Cap on each rewritten follow-up."})
    generation_batch_size: int = field(default=8, metadata={"help": "Records per generate() call."})


CRITIQUE_SOURCE = "autoj_critiques"  # --input by name: the training split of the shared Auto-J critiques


def read_critiques(cfg: RewriteConfig) -> list[dict]:
    """``{id, prompt, response, critique[, rating]}`` records from a file, or the training split of the shared
    Auto-J critiques (``--input autoj_critiques``; its held-out third is the benchmark ``autoj_critiques-heldout``)."""
    if cfg.input == CRITIQUE_SOURCE:
        from flr.eval.benchmarks import autoj_critiques, critiques_split, resolve_data_dir

        rows = [r for r in autoj_critiques(resolve_data_dir(cfg.data_dir)) if critiques_split(r) == "train"]
        return rows[: cfg.limit] if cfg.limit is not None else rows
    records = read_records(cfg.input, split=cfg.split, field_map=cfg.field_map, limit=cfg.limit)
    rows = []
    for index, rec in enumerate(records):
        missing = [c for c in ("prompt", "response", "critique") if not rec.data.get(c)]
        if missing:
            raise InputError("missing (map yours with --field-map)", file=rec.source, line=rec.line, field=missing[0])
        rows.append({**rec.data, "id": record_id(rec, index)})
    return rows


def rewrite_critiques(cfg: RewriteConfig, model_config: ModelConfig, *, model=None, tokenizer=None) -> dict:
    """Third-person critiques -> first-person user follow-ups (greedy), written to ``cfg.output``.

    Generation goes through :func:`flr.jobs.generate.generate` into ``<output>.generations.jsonl`` (resumable); the
    output holds each input record plus ``feedback`` (records whose rewrite came out empty are dropped, counted).
    """
    from flr.jobs.generate import SamplingConfig, generate

    if not cfg.input or not cfg.output:
        raise FLRError("give --input FILE and --output OUT.jsonl")
    rows = read_critiques(cfg)
    if cfg.method == "rules":
        out = [{**r, "feedback": critique_to_followup(r["critique"], r.get("rating"))} for r in rows]
        write_jsonl(cfg.output, out)
        return {"records": len(rows), "written": len(out), "empty": 0, "output": cfg.output}
    prompts = [{"id": r["id"], "prompt": rewrite_prompt(r["prompt"], r["response"], r["critique"])} for r in rows]
    sampling = SamplingConfig(
        k=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, generation_batch_size=cfg.generation_batch_size
    )
    raw = Path(str(cfg.output) + ".generations.jsonl")
    generate(prompts, raw, model_config, sampling, model=model, tokenizer=tokenizer)
    rewritten = {r["id"]: clean_rewrite(r["candidates"][0]) for r in read_jsonl(raw)}
    out = [{**r, "feedback": rewritten[r["id"]]} for r in rows if rewritten.get(r["id"])]
    write_jsonl(cfg.output, out)
    return {"records": len(rows), "written": len(out), "empty": len(rows) - len(out), "output": cfg.output}

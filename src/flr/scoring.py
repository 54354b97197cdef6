"""The ``flr score`` job: score a file of records, saving each finished chunk; a re-run resumes."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from flr.data import ResumableWriter, content_keys, read_records, to_scoring_input
from flr.errors import FLRError, InputError
from flr.scorers.base import BaseScorer

logger = logging.getLogger(__name__)


@dataclass
class ScoreJobConfig:
    """Inputs and outputs of ``flr score``."""

    input: str | None = field(
        default=None,
        metadata={
            "help": "JSONL/JSON/CSV/Parquet file or HF dataset id with prompt + response "
            "(or messages ending with the assistant's turn)."
        },
    )
    output: str | None = field(
        default=None, metadata={"help": "Output JSONL; an existing one is resumed.", "aliases": ["-o"]}
    )
    scorer: str = field(default="flr", metadata={"help": "flr, direct, length, or rm:<model> (a classifier RM)."})
    split: str = field(default="train", metadata={"help": "Split, when the input is an HF dataset."})
    field_map: str | None = field(
        default=None, metadata={"help": "Rename your fields to ours, e.g. prompt=question,response=answer."}
    )
    limit: int | None = field(default=None, metadata={"help": "Score only the first N records."})
    details: bool = field(default=False, metadata={"help": "Also write every follow-up's log-probs."})
    skip_invalid: bool = field(default=False, metadata={"help": "Log and skip bad records instead of stopping."})

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise FLRError(f"--limit must be at least 1, got {self.limit}")


def _key(row: dict) -> tuple:
    return (row.get("prompt", row.get("messages")), row.get("response"))


@dataclass
class ScoreInputs:
    """Validated input: scoring records, the original rows they came from, and how many were skipped."""

    inputs: list[dict]
    rows: list[dict]
    skipped: int


def load_inputs(job: ScoreJobConfig) -> ScoreInputs:
    """Read and validate every record (before any model is loaded, so bad input fails fast)."""
    records = read_records(job.input, split=job.split, field_map=job.field_map, limit=job.limit)
    inputs, rows, skipped = [], [], 0
    for record in records:
        try:
            inputs.append(to_scoring_input(record))
            rows.append(record.data)
        except InputError as exc:
            if not job.skip_invalid:
                raise
            skipped += 1
            logger.warning("skipping %s", exc)
    if not inputs:
        raise FLRError(f"{job.input}: no records to score" + (f" ({skipped} skipped as invalid)" if skipped else ""))
    return ScoreInputs(inputs, rows, skipped)


def score_file(
    scorer: BaseScorer, job: ScoreJobConfig, *, data: ScoreInputs | None = None, progress: bool = True
) -> dict:
    """Score ``job.input`` into ``job.output``; returns counts (scored now, resumed, skipped).

    Under ``torchrun`` / ``accelerate launch`` each process scores every world-size-th pending record into
    ``OUTPUT.part<rank>``; the main process then merges the parts into OUTPUT in input order. Parts left by a
    killed run are merged first, so nothing is lost or scored twice.
    """
    data = data or load_inputs(job)
    inputs, rows, skipped = data.inputs, data.rows, data.skipped
    keys = content_keys(_key(r) for r in rows)
    rank, world, barrier = _distributed()
    output_keys = lambda done: content_keys(_key(r) for r in done)  # noqa: E731
    if rank == 0:
        _check_same_scorer(job.output, scorer)
        if _part_files(job.output):  # left by a killed data-parallel run
            with ResumableWriter(job.output, key=output_keys) as writer:
                _merge_parts(job.output, keys, writer)
    barrier()
    output = ResumableWriter(job.output, key=output_keys)  # knows what is done; a single process appends to it
    done_before, resumed = output.done, output.resumed
    if world > 1:
        output.close()
    todo = [i for i, k in enumerate(keys) if k not in done_before][rank::world]
    if resumed and rank == 0:
        logger.info("%s: resuming, %d records already scored", job.output, resumed)
    prefix = "flr" if scorer.name == "flr" else scorer.name.split(":")[0]
    with output if world == 1 else ResumableWriter(f"{job.output}.part{rank}", key="key") as writer:
        bar = tqdm(total=len(todo), unit="ex", desc=f"score ({scorer.name})", disable=not progress or rank != 0)
        done = 0
        for chunk in scorer.iter_score([inputs[i] for i in todo]):
            for result in chunk:
                i = todo[done]
                row = {**rows[i], **result.to_fields(prefix, details=job.details)}
                writer.write(row if world == 1 else {"key": keys[i], "row": row})
                done += 1
            bar.update(len(chunk))
        bar.close()
    barrier()
    if world > 1 and rank == 0:
        with ResumableWriter(job.output, key=output_keys) as writer:
            _merge_parts(job.output, keys, writer)
    return {"scored": len(todo), "resumed": resumed, "skipped": skipped, "output": job.output}


def _distributed():
    """(rank, world size, barrier) under torchrun / accelerate launch; (0, 1, no-op) otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, lambda: None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), dist.barrier


def _part_files(output: str) -> list[Path]:
    return sorted(Path(output).parent.glob(Path(output).name + ".part*"))


def _merge_parts(output: str, keys: list[str], writer: ResumableWriter) -> None:
    """Append the records of ``OUTPUT.part*`` files to the output, in input order, then remove the parts."""
    parts = _part_files(output)
    scored = {}
    for part in parts:
        ResumableWriter(part, key="key").close()  # drops a line torn by a kill
        for line in part.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            scored[record["key"]] = record["row"]
    for key in keys:
        if key in scored and key not in writer.done:
            writer.write(scored[key])
            writer.done.add(key)
    for part in parts:
        part.unlink()


def _check_same_scorer(output: str, scorer: BaseScorer) -> None:
    """An output is resumed only by the scorer configuration that started it (kept in ``OUTPUT.flr.json``)."""
    meta = Path(output + ".flr.json")
    if meta.exists() and Path(output).exists():
        before = json.loads(meta.read_text()).get("fingerprint")
        if before != scorer.fingerprint():
            raise FLRError(f"{output} was written with another scorer configuration ({meta}); choose another -o")
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"fingerprint": scorer.fingerprint(), **scorer.describe()}, indent=2) + "\n")

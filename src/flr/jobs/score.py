"""The ``flr score`` job: score a file of records, saving each finished chunk; a re-run resumes."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from flr.errors import FLRError, InputError
from flr.hashing import content_fingerprint, content_keys
from flr.records import ResumableWriter, read_records, to_scoring_input, write_jsonl
from flr.scorers.base import BaseScorer, scorer_identity
from flr.scorers.debias import DEBIAS_HELP, STYLE_HELP, check_mode, debias

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
    length_debias: str = field(
        default="none",
        metadata={
            "help": DEBIAS_HELP + " Written as <scorer>_reward_debiased (preference records: _chosen_debiased, "
            "_rejected_debiased, _margin_debiased) in a final pass once every record is scored; 'all responses "
            "scored together' = every record of this input; a prompt = records with the same prompt. The raw "
            "rewards stay, and a resumed or finished output only gets the pass again.",
            "choices": ["none", "batch", "prompt", "lowess"],
        },
    )
    style_debias: str = field(
        default="none",
        metadata={
            "help": STYLE_HELP + " Written like --length-debias's fields, in the same final pass.",
            "choices": ["none", "batch", "prompt"],
        },
    )

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise FLRError(f"--limit must be at least 1, got {self.limit}")
        check_mode(self.length_debias, style=self.style_debias)

    @property
    def debiased(self) -> bool:
        return self.length_debias != "none" or self.style_debias != "none"


def _key(row: dict) -> tuple:
    return tuple(
        json.dumps(row.get(k), sort_keys=True) for k in ("prompt", "messages", "response", *SIDES, "completion")
    )


SIDES = ("chosen", "rejected")  # TRL preference records: both sides are scored, and the margin added


@dataclass
class ScoreInputs:
    """Validated input: per row its scoring records (one, or chosen and rejected of a TRL preference record), the
    original rows they came from, and how many were skipped."""

    inputs: list[list[dict]]
    rows: list[dict]
    skipped: int


def load_inputs(job: ScoreJobConfig) -> ScoreInputs:
    """Read and validate every record (before any model is loaded, so bad input fails fast)."""
    records = read_records(job.input, split=job.split, field_map=job.field_map, limit=job.limit)
    inputs, rows, skipped = [], [], 0
    for record in records:
        try:
            inputs.append(_scoring_inputs(record))
            rows.append(record.data)
        except InputError as exc:
            if not job.skip_invalid:
                raise
            skipped += 1
            logger.warning("skipping %s", exc)
    if not inputs:
        raise FLRError(f"{job.input}: no records to score" + (f" ({skipped} skipped as invalid)" if skipped else ""))
    return ScoreInputs(inputs, rows, skipped)


def _scoring_inputs(record) -> list[dict]:
    """``{prompt, response}``, ``{messages}``, TRL ``{prompt, completion}``, or TRL ``{prompt, chosen, rejected}``
    (standard or conversational) -> the records to score for it."""
    data = record.data
    if "response" not in data and "messages" not in data and all(k in data for k in SIDES):
        return [to_scoring_input(record, response_field=side) for side in SIDES]
    if "response" not in data and "completion" in data:
        return [to_scoring_input(record, response_field="completion")]
    return [to_scoring_input(record)]


def score_file(
    scorer: BaseScorer,
    job: ScoreJobConfig,
    *,
    data: ScoreInputs | None = None,
    progress: bool = True,
    key: str | None = None,
) -> dict:
    """Score ``job.input`` into ``job.output``; returns counts (scored now, resumed, skipped).

    Under ``torchrun`` / ``accelerate launch`` each process scores every world-size-th pending record into
    ``OUTPUT.part<rank>``; the main process then merges the parts into OUTPUT in input order. Parts left by a
    killed run are merged first, so nothing is lost or scored twice.
    """
    data = data or load_inputs(job)
    rank, world, barrier = _distributed()
    if world == 1:
        counts = _score_here(scorer, job, data, progress, key)
    else:
        counts = _score_ranks(scorer, job, data, progress, key, rank, world, barrier)
    if rank == 0 and job.debiased:
        counts["length_debias"] = debias_output(job, data, output_prefix(scorer.name))
    return counts


def output_prefix(scorer: str) -> str:
    """The field prefix of a scorer's outputs: flr_reward, direct_reward, length_reward, rm_reward."""
    return scorer.split(":")[0]


DEBIASED = ("_reward_debiased", "_chosen_debiased", "_rejected_debiased", "_margin_debiased")


def debias_output(job: ScoreJobConfig, data: ScoreInputs, prefix: str) -> dict:
    """The final pass of ``--length-debias``: once every row of the input is in the output, compute the debiased
    rewards over them all (:func:`flr.scorers.debias.debias`) and rewrite the output atomically with the extra fields.

    Rows of the output that are not in this input (a run with a larger --limit wrote them) neither enter the fit
    nor keep debiased fields from an earlier pass. Returns what was fitted."""
    import math

    lines = Path(job.output).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    index = {k: i for i, k in enumerate(content_keys(_key(r) for r in data.rows))}
    sides, rewards, lengths, groups, texts = [], [], [], [], []
    for j, (row, key) in enumerate(zip(rows, _output_keys(rows))):
        for name in DEBIASED:
            row.pop(prefix + name, None)
        if key not in index:
            continue
        records = data.inputs[index[key]]
        names = ("reward",) if len(records) == 1 else SIDES
        for name, record in zip(names, records):
            sides.append((j, name))
            rewards.append(row[f"{prefix}_{name}"])
            lengths.append(len(record["response"]))
            texts.append(record["response"])
            groups.append(json.dumps(record["prompt"], sort_keys=True, ensure_ascii=False))
    values, info = debias(rewards, lengths, job.length_debias, groups, style=job.style_debias, texts=texts)
    for (j, name), value in zip(sides, values):
        rows[j][f"{prefix}_{name}_debiased"] = float(value) if math.isfinite(value) else None
    for row in rows:
        c, r = row.get(f"{prefix}_chosen_debiased"), row.get(f"{prefix}_rejected_debiased")
        if c is not None and r is not None:
            row[f"{prefix}_margin_debiased"] = c - r
    write_jsonl(job.output, rows)
    return info


def _output_keys(done: list[dict]) -> list[str]:
    return content_keys(_key(r) for r in done)


def _score_here(scorer: BaseScorer, job: ScoreJobConfig, data: ScoreInputs, progress: bool, key) -> dict:
    """One process: append each finished row to the output as it completes."""
    keys = content_keys(_key(r) for r in data.rows)
    _check_same_scorer(job.output, scorer, key)
    with ResumableWriter(job.output, key=_output_keys) as writer:
        if _part_files(job.output):  # left by a killed data-parallel run
            _merge_parts(job.output, keys, writer)
        if writer.resumed:
            logger.info("%s: resuming, %d records already scored", job.output, writer.resumed)
        todo = [i for i, k in enumerate(keys) if k not in writer.done]
        _score_rows(scorer, job, data, todo, lambda row, _: writer.write(row), progress)
        return {"scored": len(todo), "resumed": writer.resumed, "skipped": data.skipped, "output": job.output}


def _score_ranks(scorer, job: ScoreJobConfig, data: ScoreInputs, progress: bool, key, rank, world, barrier) -> dict:
    """Data parallel: rank r scores every world-th pending row into ``OUTPUT.part<r>``; rank 0 merges the parts."""
    keys = content_keys(_key(r) for r in data.rows)
    if rank == 0:
        _check_same_scorer(job.output, scorer, key)
        if _part_files(job.output):
            with ResumableWriter(job.output, key=_output_keys) as writer:
                _merge_parts(job.output, keys, writer)
    barrier()
    with ResumableWriter(job.output, key=_output_keys) as output:  # read only: what is done
        done_before, resumed = output.done, output.resumed
    todo = [i for i, k in enumerate(keys) if k not in done_before][rank::world]
    with ResumableWriter(f"{job.output}.part{rank}", key="key") as part:
        _score_rows(
            scorer, job, data, todo, lambda row, i: part.write({"key": keys[i], "row": row}), progress and rank == 0
        )
    barrier()
    if rank == 0:
        with ResumableWriter(job.output, key=_output_keys) as writer:
            _merge_parts(job.output, keys, writer)
    return {"scored": len(todo), "resumed": resumed, "skipped": data.skipped, "output": job.output}


def _score_rows(scorer: BaseScorer, job: ScoreJobConfig, data: ScoreInputs, todo: list[int], write, progress: bool):
    """Score the rows ``todo`` and ``write(row, index)`` each one as soon as all its records are scored (a
    preference row scores two)."""
    prefix = output_prefix(scorer.name)
    flat = [(i, record) for i in todo for record in data.inputs[i]]
    bar = tqdm(total=len(todo), unit="ex", desc=f"score ({scorer.name})", disable=not progress or not todo)
    done, pending = 0, []
    for chunk in scorer.iter_score([record for _, record in flat]):
        for result in chunk:
            i = flat[done][0]
            pending.append(result)
            done += 1
            if len(pending) == len(data.inputs[i]):
                write({**data.rows[i], **_fields(pending, prefix, job.details)}, i)
                pending = []
                bar.update(1)
    bar.close()


def _fields(results: list, prefix: str, details: bool) -> dict:
    if len(results) == 1:
        return results[0].to_fields(prefix, details=details)
    chosen, rejected = results
    out = {f"{prefix}_chosen": chosen.reward, f"{prefix}_rejected": rejected.reward}
    out[f"{prefix}_margin"] = chosen.reward - rejected.reward
    out["truncated"] = chosen.truncated or rejected.truncated
    if details and chosen.details is not None:
        out[f"{prefix}_details"] = {"chosen": chosen.details, "rejected": rejected.details}
    return out


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


def run_key(job: ScoreJobConfig, scorer_config, model_config) -> str:
    """What the scores depend on, known before any model loads: scorer, weights (files' fingerprint), dtype and
    scorer settings; batch size, token budget, prefix sharing and kernel do not change scores and are left out."""
    import dataclasses

    from flr.kernel.models import resolve_device, resolve_dtype, weights_fingerprint

    settings = {
        k: v
        for k, v in dataclasses.asdict(scorer_config).items()
        if k not in ("batch_size", "token_budget", "max_padding", "share_prefix", "method")
    }
    if not settings.get("length_term"):  # off: the key outputs written before the option existed carry
        settings.pop("length_term", None)
    spec = job.scorer[3:] if job.scorer.startswith("rm:") else model_config.model
    if job.scorer.startswith("implicit:"):  # the policy's weights (an adapter's include its base's)
        from flr.scorers.implicit import parse_spec

        spec = parse_spec(job.scorer)[0]
    dtype = resolve_dtype(model_config.dtype, resolve_device(model_config.device))
    # settings in field order, unsorted: the key outputs already carry
    return content_fingerprint(
        [job.scorer, weights_fingerprint(spec, model_config.revision), str(dtype), settings], sort_keys=False
    )


def already_complete(job: ScoreJobConfig, data: ScoreInputs, key: str) -> int | None:
    """How many rows a finished output holds, when every input row is in it and the run that wrote it had the same
    :func:`run_key` (so a fully resumed run need not load the model); None when there is work left, or doubt."""
    meta = Path(job.output + ".flr.json")
    if _part_files(job.output) or not Path(job.output).exists() or not meta.exists():
        return None
    if json.loads(meta.read_text()).get("run_key") != key:
        return None  # the full check, after loading, says what differs
    with ResumableWriter(job.output, key=_output_keys) as writer:
        done = writer.done
    keys = content_keys(_key(r) for r in data.rows)
    return len(keys) if all(k in done for k in keys) else None


def _check_same_scorer(output: str, scorer: BaseScorer, key: str | None = None) -> None:
    """An output is resumed only by the scorer configuration that started it (kept in ``OUTPUT.flr.json``)."""
    meta = Path(output + ".flr.json")
    if meta.exists() and Path(output).exists():
        before = json.loads(meta.read_text()).get("fingerprint")
        if before != scorer.fingerprint():
            raise FLRError(f"{output} was written with another scorer configuration ({meta}); choose another -o")
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"run_key": key, **scorer_identity(scorer)}, indent=2) + "\n")

"""Benchmark registry: loaders that turn the local copies in shared/data into uniform records.

Record shapes (exact keys):

- pairwise: ``{"id", "prompt", "chosen", "rejected", "subset"}``
- rating: ``{"id", "prompt", "response", "rating", "subset"}``
- system: ``{"id", "model", "prompt", "response", "subset"}`` (``id`` names the prompt, shared across models)

``prompt`` is a string, or a list of ``{"role", "content"}`` messages ending with the last user turn for
conversational sources. Records with empty text, identical chosen/rejected, or tie labels are dropped.

The loaders live by family: :mod:`.pairwise` (preference pairs), :mod:`.critiques` (Auto-J ratings and critiques),
:mod:`.systems` (models' outputs and their leaderboard targets); :mod:`.common` holds what they share. This module
holds the registry table and the public functions.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flr.errors import FLRError, InputError
from flr.eval.benchmarks import critiques, pairwise, systems
from flr.eval.benchmarks.critiques import autoj_critiques, critiques_split
from flr.records import get_prompt, get_text, read_records, record_id, seeded_sample

Kind = Literal["pairwise", "rating", "system"]

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "Kind",
    "autoj_critiques",
    "critiques_split",
    "detect_kind",
    "get_benchmark",
    "load_benchmark",
    "load_targets",
    "resolve_data_dir",
]


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: Kind
    source: str
    description: str
    load: Callable[[Path], list[dict]]
    load_targets: Callable[[Path], dict[str, dict[str, float]]] | None = None
    needs_data: bool = True  # False: ships inside the package (the demo sample)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "hh-rlhf",
            "pairwise",
            "GitHub anthropics/hh-rlhf harmless-base/test.jsonl.gz; MIT",
            "Anthropic HH-RLHF harmless-base test pairs (chosen = less harmful final assistant turn).",
            pairwise.load_hh_rlhf,
        ),
        Benchmark(
            "autoj",
            "pairwise",
            "GitHub GAIR-NLP/auto-j data/test/testdata_pairwise.jsonl; no data license stated (research use)",
            "Auto-J human pairwise preferences over 58 real-world scenarios (subset = scenario), ties dropped.",
            pairwise.load_autoj,
        ),
        Benchmark(
            "pandalm",
            "pairwise",
            "GitHub WeOpenML/PandaLM data/testset-v1.json; Apache-2.0",
            "PandaLM test set, majority label of 3 annotators (subset = model pair), ties dropped.",
            pairwise.load_pandalm,
        ),
        Benchmark(
            "vicuna80",
            "pairwise",
            "GitHub bcdnlp/PRD data/vicuna80 + artidoro/qlora Guanaco generations; MIT",
            "Human majority-vote preferences between 9 models on the Vicuna 80 questions (subset = category).",
            pairwise.load_vicuna80,
        ),
        Benchmark(
            "rm_bench",
            "pairwise",
            "GitHub THU-KEG/RM-Bench data/*_filtered.json (chat, code, safety); no license stated (research use)",
            "RM-Bench style-controlled pairs, every chosen x rejected per prompt (subset = domain).",
            pairwise.load_rm_bench,
        ),
        Benchmark(
            "rmb",
            "pairwise",
            "GitHub Zhou-Zoey/RMB-Reward-Model-Benchmark Pairwise_set/Harmlessness; no license stated",
            "RMB harmlessness pairwise set (subset = Harmlessness/S1..S10, multi); judge-model labels.",
            pairwise.load_rmb,
        ),
        Benchmark(
            "alpaca_eval",
            "pairwise",
            "GitHub tatsu-lab/alpaca_eval weighted_alpaca_eval_gpt4_turbo annotations; CC BY-NC 4.0 data",
            "GPT-4-turbo judgments of alpaca-7b / gpt-3.5-turbo-1106 vs gpt4_1106_preview (subset = model).",
            pairwise.load_alpaca_eval,
        ),
        Benchmark(
            "lfqa",
            "pairwise",
            "GitHub bcdnlp/PRD data/lfqa (Xu et al. 2023 expert annotations); MIT",
            "Expert preferences between long-form QA answers (subset = answer types, e.g. human-machine).",
            pairwise.load_lfqa,
        ),
        Benchmark(
            "autoj_critiques",
            "rating",
            "GitHub GAIR-NLP/auto-j data/training/single_traindata.jsonl; no data license stated (research use)",
            "960 Chatbot Arena responses with GPT-4 1-10 ratings (subset = scenario): reward vs rating.",
            critiques.load_ratings,
        ),
        Benchmark(
            "autoj_critiques-heldout",
            "rating",
            "The same file; every third record (id % 3 == 0)",
            "The 320 Auto-J critique ratings that flr's feedback-tuning protocol never trains on.",
            critiques.load_heldout_ratings,
        ),
        Benchmark(
            "alpaca_eval-system",
            "system",
            "GitHub tatsu-lab/alpaca_eval results + leaderboards; CC BY-NC 4.0 data; Arena Elo (Apache-2.0)",
            "44 models' outputs on the AlpacaEval 805; targets: AE2 LC win rate, win rate (percent), Arena Elo.",
            systems.load_alpaca_eval,
            systems.alpaca_eval_targets,
        ),
        Benchmark(
            "mt_bench-system",
            "system",
            "GitHub lm-sys/FastChat MT-Bench questions + pre-generated answers; Apache-2.0; Arena Elo (Apache-2.0)",
            "31 models' first-turn MT-Bench answers (subset = category); target: Arena Elo (2024-03-29).",
            systems.load_mt_bench,
            systems.mt_bench_targets,
        ),
        Benchmark(
            "demo",
            "pairwise",
            "24 PandaLM test pairs (Apache-2.0) shipped in the package: src/flr/resources/demo_pairs.jsonl",
            "A small real sample for the demo and smoke tests; needs no shared data.",
            pairwise.load_demo,
            needs_data=False,
        ),
    )
}


# ---------------------------------------------------------------------------------------------------------------
# data directory


def _default_data_dirs() -> list[Path]:
    repo_root = Path(__file__).resolve().parents[4]  # src/flr/eval/benchmarks/__init__.py
    return [Path("shared/data"), Path("../shared/data"), repo_root.parent / "shared" / "data"]


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Explicit ``data_dir``, else ``$FLR_DATA_DIR``, else the first existing default location."""
    if data_dir is not None or os.environ.get("FLR_DATA_DIR"):
        origin = "data_dir" if data_dir is not None else "$FLR_DATA_DIR"
        path = Path(data_dir if data_dir is not None else os.environ["FLR_DATA_DIR"]).expanduser()
        if not path.is_dir():
            raise FLRError(f"benchmark data directory not found: {path} (from {origin})")
        return path
    candidates = _default_data_dirs()
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    looked = ", ".join(str(p.resolve()) for p in candidates)
    raise FLRError(f"benchmark data directory not found; set FLR_DATA_DIR or pass data_dir. Looked in: {looked}")


# ---------------------------------------------------------------------------------------------------------------
# public helpers


def _sample(records: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random sample of ``limit`` records (original order kept); system records sampled per prompt id."""
    if limit is None or not records or "model" not in records[0]:
        return seeded_sample(records, limit, seed)
    per_model = defaultdict(set)
    for r in records:
        per_model[r["model"]].add(r["id"])
    shared = sorted(set.intersection(*per_model.values()), key=_natural)
    keep = set(seeded_sample(shared, limit, seed))
    return [r for r in records if r["id"] in keep]


def _natural(key: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark called ``name``."""
    if name not in BENCHMARKS:
        raise FLRError(f"unknown benchmark '{name}'; available: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def load_benchmark(
    name: str, data_dir: str | Path | None = None, limit: int | None = None, seed: int = 0
) -> list[dict]:
    """Records of benchmark ``name``; ``limit`` takes a seeded random sample (per model for system benchmarks)."""
    bench = get_benchmark(name)
    return _sample(bench.load(resolve_data_dir(data_dir) if bench.needs_data else None), limit, seed)


def load_targets(name: str, data_dir: str | Path | None = None) -> dict[str, dict[str, float]]:
    """System-level targets ``{model: {metric: value}}`` of a system benchmark."""
    bench = get_benchmark(name)
    if bench.load_targets is None:
        raise FLRError(f"benchmark '{name}' is {bench.kind}-level and has no system targets")
    return bench.load_targets(resolve_data_dir(data_dir))


_KIND_FIELDS = {"pairwise": ("chosen", "rejected"), "rating": ("response", "rating")}


def detect_kind(records: list[dict], source: str) -> str:
    """``"pairwise"`` (chosen + rejected) or ``"rating"`` (response + rating); InputError otherwise."""
    if not records:
        raise InputError("no records", file=source)
    for line, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise InputError("record is not a JSON object", file=source, line=line)
    first = records[0]
    kind = next((k for k, fields in _KIND_FIELDS.items() if all(f in first for f in fields)), None)
    if kind is None:
        wanted = " or ".join(f"{'+'.join(fields)} ({k})" for k, fields in _KIND_FIELDS.items())
        found = ", ".join(sorted(first)) or "none"
        raise InputError(f"cannot tell the record kind: need fields {wanted}; found: {found}", file=source, line=1)
    for line, record in enumerate(records, 1):
        missing = [f for f in _KIND_FIELDS[kind] if f not in record]
        if missing:
            raise InputError(
                f"missing {kind} field(s): {', '.join(missing)}", file=source, line=line, field=missing[0]
            )
    return kind


def benchmark_records(
    name: str, data_dir: str | None = None, limit: int | None = None, seed: int = 0, split: str = "train"
) -> tuple[str, list[dict]]:
    """(kind, records) of a registered benchmark or a user file / dataset id (``split`` of a dataset), ``limit``
    of them drawn with ``seed``; every record of a user file checked, naming file, line and field."""
    if name in BENCHMARKS:
        return get_benchmark(name).kind, load_benchmark(name, data_dir, limit, seed)
    if not Path(name).exists() and ("/" not in name or Path(name).suffix):  # neither a file nor an HF id
        raise FLRError(
            f"unknown benchmark '{name}': registered ones are {', '.join(BENCHMARKS)}; "
            "or give an existing file or an HF dataset id (org/name)"
        )
    raw = read_records(name, split=split)
    kind = detect_kind([raw[0].data] if raw else [], name)  # fields are checked per record below, with file lines
    records = [_checked(kind, r, i) for i, r in enumerate(raw)]
    records = seeded_sample(records, limit, seed)
    for r in records:
        r.setdefault("subset", "all")
    return kind, records


def _checked(kind: str, record, index: int) -> dict:
    """A user benchmark record with every field checked as ``flr score`` checks it (file, line and field named)."""
    out = dict(record.data, id=record_id(record, index), prompt=get_prompt(record))
    if kind == "pairwise":
        out.update(chosen=get_text(record, "chosen"), rejected=get_text(record, "rejected"))
    else:
        out["response"] = get_text(record, "response")
        try:
            out["rating"] = float(record.data["rating"])
        except (TypeError, ValueError):
            raise InputError("expected a number", file=record.source, line=record.line, field="rating") from None
    return out

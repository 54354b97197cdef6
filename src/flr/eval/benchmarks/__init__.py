"""Benchmark registry: loaders that turn the local copies in shared/data into uniform records.

Record shapes (exact keys):

- pairwise: ``{"id", "prompt", "chosen", "rejected", "subset"}``
- rating: ``{"id", "prompt", "response", "rating", "subset"}``
- system: ``{"id", "model", "prompt", "response", "subset"}`` (``id`` names the prompt, shared across models)

``prompt`` is a string, or a list of ``{"role", "content"}`` messages ending with the last user turn for
conversational sources. Records with empty text, identical chosen/rejected, or tie labels are dropped.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flr.errors import FLRError, InputError

Kind = Literal["pairwise", "rating", "system"]


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: Kind
    source: str
    description: str
    load: Callable[[Path], list[dict]]
    load_targets: Callable[[Path], dict[str, dict[str, float]]] | None = None
    needs_data: bool = True  # False: ships inside the package (the demo sample)


# ---------------------------------------------------------------------------------------------------------------
# data directory


def _default_data_dirs() -> list[Path]:
    repo_root = Path(__file__).resolve().parents[4]
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
# shared readers and record builders


def _file(data_dir: Path, *parts: str) -> Path:
    path = Path(data_dir, *parts)
    if not path.exists():
        raise FLRError(f"benchmark file not found: {path}")
    return path


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _text(value: Any) -> str | None:
    """The value if it is a non-blank string, else None."""
    return value if isinstance(value, str) and value.strip() else None


_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}


def _messages(turns: Iterable[dict]) -> list[dict] | None:
    """Normalize ``[{"role", "content", ...}]`` to user/assistant/system messages; None if any turn is empty."""
    out = []
    for turn in turns:
        role, content = _ROLES.get(str(turn.get("role", "")).lower()), _text(turn.get("content"))
        if role is None or content is None:
            return None
        out.append({"role": role, "content": content})
    return out or None


def _pair(id_: str, prompt: Any, chosen: Any, rejected: Any, subset: str) -> dict | None:
    """A pairwise record, or None when a text is empty or chosen == rejected."""
    prompt = _text(prompt) if isinstance(prompt, str) else prompt
    chosen, rejected = _text(chosen), _text(rejected)
    if not prompt or chosen is None or rejected is None or chosen == rejected:
        return None
    return {"id": str(id_), "prompt": prompt, "chosen": chosen, "rejected": rejected, "subset": str(subset)}


def _system(id_: str, model: str, prompt: Any, response: Any, subset: str) -> dict | None:
    prompt, response = _text(prompt), _text(response)
    if prompt is None or response is None:
        return None
    return {"id": str(id_), "model": model, "prompt": prompt, "response": response, "subset": str(subset)}


def _ranked(first: Any, second: Any, first_wins: bool) -> tuple[Any, Any]:
    """(chosen, rejected) from two responses and which one won."""
    return (first, second) if first_wins else (second, first)


def _keep(records: Iterable[dict | None]) -> list[dict]:
    return [r for r in records if r is not None]


def _majority(votes: Iterable[Any]) -> Any | None:
    """The strictly most frequent vote, or None when the top count is shared."""
    top = Counter(votes).most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


# ---------------------------------------------------------------------------------------------------------------
# pairwise loaders

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def _parse_hh(transcript: str) -> list[dict] | None:
    """Split an HH-RLHF ``\\n\\nHuman: …\\n\\nAssistant: …`` transcript into messages."""
    parts = _HH_TURN.split(transcript)
    if parts[0].strip():
        return None
    turns = [
        {"role": role, "content": content.strip()} for role, content in zip(parts[1::2], parts[2::2], strict=True)
    ]
    return _messages(turns)


def _load_hh_rlhf(data_dir: Path) -> list[dict]:
    rows = _read_jsonl(_file(data_dir, "hh-rlhf", "harmless-base", "test.jsonl.gz"))
    out = []
    for i, row in enumerate(rows):
        chosen, rejected = _parse_hh(row["chosen"]), _parse_hh(row["rejected"])
        if not chosen or not rejected or chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
            continue
        if chosen[:-1] != rejected[:-1]:  # 5 transcripts whose histories differ: no shared prompt
            continue
        out.append(_pair(str(i), chosen[:-1], chosen[-1]["content"], rejected[-1]["content"], "harmless-base"))
    return _keep(out)


def _load_autoj(data_dir: Path) -> list[dict]:
    rows = _read_jsonl(_file(data_dir, "autoj", "testdata_pairwise.jsonl"))
    out = []
    for i, row in enumerate(rows):
        if row["label"] not in (0, 1):  # 2 = tie
            continue
        chosen, rejected = _ranked(row["response 1"], row["response 2"], row["label"] == 0)
        out.append(_pair(str(i), row["prompt"], chosen, rejected, row["scenario"]))
    return _keep(out)


_AUTOJ_DATA = re.compile(r"\[Query\]:\s*(.*?)\n\*\*\*\n\[Response\]:\s*(.*?)\n\*\*\*\n\[END DATA\]", re.S)


def autoj_critiques(data_dir: Path) -> list[dict]:
    """The 960 Auto-J critiques as ``{id, prompt, response, critique, rating, subset}`` (query and response cut out
    of Auto-J's judge prompt; the critique without its closing 'Rating: [[N]]')."""
    rows = _read_jsonl(_file(data_dir, "autoj_critiques", "single_traindata.jsonl"))
    out = []
    for i, row in enumerate(rows):
        match = _AUTOJ_DATA.search(row["usrmsg"])
        critique = re.sub(r"\s*Rating:\s*\[\[[\d.]+\]\]\W*$", "", row["target_output"]).strip()
        if not match or not _text(match[1]) or not _text(match[2]) or not critique:
            continue
        out.append(
            {
                "id": str(i),
                "prompt": match[1].strip(),
                "response": match[2].strip(),
                "critique": critique,
                "rating": float(row["pred_score"]),
                "subset": row.get("scenario") or "all",
            }
        )
    return out


def critiques_split(record: dict) -> str:
    """The fixed split of the critiques: every third record (by id) is held out for evaluation, the rest may train
    a scorer (``flr train feedback``)."""
    return "heldout" if int(record["id"]) % 3 == 0 else "train"


def _load_autoj_critiques(data_dir: Path, split: str | None = None) -> list[dict]:
    rows = [r for r in autoj_critiques(data_dir) if split is None or critiques_split(r) == split]
    return [{k: r[k] for k in ("id", "prompt", "response", "rating", "subset")} for r in rows]


def _load_pandalm(data_dir: Path) -> list[dict]:
    rows = _read_json(_file(data_dir, "pandalm", "testset-v1.json"))
    out = []
    for row in rows:
        label = _majority(row[f"annotator{k}"] for k in (1, 2, 3))
        if label not in (1, 2):  # 0 = tie, None = no majority
            continue
        # six responses are JSON booleans (a literal "True" answer lost its quotes)
        first, second = (str(v) if isinstance(v, bool) else v for v in (row["response1"], row["response2"]))
        chosen, rejected = _ranked(first, second, label == 1)
        prompt = row["instruction"] + (f"\n\n{row['input']}" if _text(row["input"]) else "")
        out.append(_pair(str(row["idx"]), prompt, chosen, rejected, row["cmp_key"]))
    return _keep(out)


def _load_vicuna80(data_dir: Path) -> list[dict]:
    root = _file(data_dir, "vicuna80_human_pairwise")
    questions = {q["question_id"]: q for q in _read_jsonl(_file(root, "prompts", "vicuna_questions.jsonl"))}
    answers: dict[str, dict[int, str]] = {}
    for name in ("bard", "claude", "gpt35", "gpt4", "vicuna-13b"):
        answers[name] = {
            a["question_id"]: a["text"] for a in _read_jsonl(_file(root, "generations", f"answer_{name}.jsonl"))
        }
    for size, name in (("7b", "guanaco-7b"), ("13b", "guanaco-13b"), ("30b", "guanaco-33b"), ("65b", "guanaco-65b")):
        rows = _read_jsonl(_file(root, "generations", f"{size}-guanaco-vicuna-generations-topp0.9-temp0.7.jsonl"))
        answers[name] = {a["question_id"]: a["generation_truncated"] for a in rows}
    votes: dict[tuple[int, str, str], list[str]] = defaultdict(list)
    for path in sorted((root / "ratings-human").glob("answer_*-vs-answer_*-human-reviewer_threeclass.jsonl")):
        first, second = (
            path.name.removesuffix("-human-reviewer_threeclass.jsonl").removeprefix("answer_").split("-vs-answer_")
        )
        for row in _read_jsonl(path):
            key = (row["question_id"], *sorted((first, second)))
            votes[key].append({1: first, 2: second}.get(row["score"], "tie"))  # 3 = tie
    out = []
    for (qid, a, b), ballot in sorted(votes.items()):
        winner = _majority(ballot)
        if winner not in (a, b):
            continue
        loser = b if winner == a else a
        chosen, rejected = answers[winner].get(qid), answers[loser].get(qid)
        out.append(_pair(f"{qid}:{a}-vs-{b}", questions[qid]["text"], chosen, rejected, questions[qid]["category"]))
    return _keep(out)


_RM_BENCH_DOMAINS = ("chat", "code", "safety-refuse", "safety-response")


def _load_rm_bench(data_dir: Path) -> list[dict]:
    out = []
    for domain in _RM_BENCH_DOMAINS:
        for row in _read_json(_file(data_dir, "rm_bench", f"{domain}_filtered.json")):
            for i, chosen in enumerate(row["chosen"]):
                for j, rejected in enumerate(row["rejected"]):
                    out.append(_pair(f"{domain}/{row['id']}/{i}-{j}", row["prompt"], chosen, rejected, domain))
    return _keep(out)


def _load_rmb(data_dir: Path) -> list[dict]:
    root = _file(data_dir, "rmb", "Pairwise_set")
    out = []
    for path in sorted(root.glob("*/*.json")):
        subset = f"{path.parent.name}/{path.stem}"
        for row in _read_json(path):
            prompt = _messages(row["conversation_input"])
            if not prompt or prompt[-1]["role"] != "user":
                continue
            out.append(_pair(row["pair_uid"], prompt, row["chosen"]["answer"], row["reject"]["answer"], subset))
    return _keep(out)


_AE_RESULTS = ("alpaca_eval", "results")
_AE_BASELINE = "gpt4_1106_preview"


def _alpaca_ids(data_dir: Path) -> dict[str, str]:
    """Instruction -> stable prompt id (its index in the AlpacaEval 2 baseline's outputs)."""
    rows = _read_json(_file(data_dir, *_AE_RESULTS, _AE_BASELINE, "model_outputs.json"))
    return {row["instruction"]: str(i) for i, row in enumerate(rows)}


def _load_alpaca_eval(data_dir: Path) -> list[dict]:
    ids = _alpaca_ids(data_dir)
    paths = sorted(_file(data_dir, *_AE_RESULTS).glob("*/weighted_alpaca_eval_gpt4_turbo/annotations.json"))
    if not paths:
        raise FLRError(
            f"benchmark file not found: {Path(data_dir, *_AE_RESULTS, '*/weighted_alpaca_eval_gpt4_turbo')}"
        )
    out = []
    for path in paths:
        for row in _read_json(path):
            pref = row.get("preference")
            if not isinstance(pref, int | float) or pref == 1.5:  # 1 = output_1, 2 = output_2, 1.5 = tie
                continue
            chosen, rejected = _ranked(row["output_1"], row["output_2"], pref < 1.5)
            model = row["generator_2"]
            prompt_id = ids.get(row["instruction"], row["instruction"])
            out.append(_pair(f"{model}/{prompt_id}", row["instruction"], chosen, rejected, model))
    return _keep(out)


def _load_lfqa(data_dir: Path) -> list[dict]:
    rows = _read_jsonl(_file(data_dir, "lfqa_expert_pairwise", "experts_pairwise_human_preferences.jsonl"))
    out = []
    for i, row in enumerate(rows):
        if row["overall_preference"] not in (-1, 1):
            continue
        chosen, rejected = _ranked(row["answer_a"], row["answer_b"], row["overall_preference"] == -1)
        out.append(_pair(str(i), row["question"], chosen, rejected, f"{row['answer_a_type']}-{row['answer_b_type']}"))
    return _keep(out)


# ---------------------------------------------------------------------------------------------------------------
# system-level loaders and targets

_ARENA = ("chatbot_arena_elo",)

# Arena keys for models the shared name maps miss, where the Arena lists the same model under another name:
# FastChat's MT-Bench model ids (its own leaderboard table pairs them) and a few AlpacaEval result names.
# vicuna-7b/13b in the Arena pool several releases, including v1.3.
_ARENA_ALIASES = {
    "claude-v1": "claude-1",
    "claude-instant-v1": "claude-instant-1",
    "gpt-4": "gpt-4-0314",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0314",
    "oasst-sft-4-pythia-12b": "oasst-pythia-12b",
    "palm-2-chat-bison-001": "palm-2",
    "vicuna-7b-v1.3": "vicuna-7b",
    "vicuna-13b-v1.3": "vicuna-13b",
    "vicuna-33b-v1.3": "vicuna-33b",
    "llama-2-13b-chat-hf": "llama-2-13b-chat",
    "claude-2": "claude-2.0",
}


def _arena_elo(data_dir: Path) -> dict[str, float]:
    rows = _read_csv(_file(data_dir, *_ARENA, "elo_results_20240329_leaderboard_table.csv"))
    return {row["model"]: float(row["rating"]) for row in rows}


def _arena_name(model: str, name_map: dict[str, str], arena: dict[str, float]) -> str | None:
    """Arena key for a model: the shared name map, else an alias, else an exact (case-insensitive) Arena name."""
    if model in name_map or model in _ARENA_ALIASES:
        return name_map.get(model, _ARENA_ALIASES.get(model))
    lower = {name.lower(): name for name in arena}
    return lower.get(model.lower())


def _with_elo(targets: dict[str, dict[str, float]], models: Iterable[str], name_map: dict[str, str], data_dir: Path):
    arena = _arena_elo(data_dir)
    for model in models:
        key = _arena_name(model, name_map, arena)
        if key in arena:
            targets.setdefault(model, {})["arena_elo"] = arena[key]
    return targets


def _alpaca_models(data_dir: Path) -> list[str]:
    root = _file(data_dir, *_AE_RESULTS)
    return sorted(p.parent.name for p in root.glob("*/model_outputs.json"))


def _load_alpaca_eval_system(data_dir: Path) -> list[dict]:
    ids = _alpaca_ids(data_dir)
    out = []
    for model in _alpaca_models(data_dir):
        for row in _read_json(_file(data_dir, *_AE_RESULTS, model, "model_outputs.json")):
            prompt_id = ids.get(row["instruction"], row["instruction"])
            out.append(_system(prompt_id, model, row["instruction"], row.get("output"), row["dataset"]))
    return _keep(out)


def _alpaca_eval_targets(data_dir: Path) -> dict[str, dict[str, float]]:
    board = _file(
        data_dir, "alpaca_eval", "leaderboards", "data_AlpacaEval_2", "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
    )
    models = _alpaca_models(data_dir)
    rows = {row[""]: row for row in _read_csv(board)}
    targets: dict[str, dict[str, float]] = {}
    for model in models:
        row = rows.get(model, {})
        for key, column in (("lc_win_rate", "length_controlled_winrate"), ("win_rate", "win_rate")):
            if _text(row.get(column)):
                targets.setdefault(model, {})[key] = float(row[column])
    name_map = _read_json(_file(data_dir, *_ARENA, "name_mappings", "alpaca_to_arena.json"))
    return _with_elo(targets, models, name_map, data_dir)


def _mt_bench_models(data_dir: Path) -> list[str]:
    return sorted(p.stem for p in _file(data_dir, "mt_bench", "model_answer").glob("*.jsonl"))


def _load_mt_bench_system(data_dir: Path) -> list[dict]:
    questions = {q["question_id"]: q for q in _read_jsonl(_file(data_dir, "mt_bench", "question.jsonl"))}
    out = []
    for model in _mt_bench_models(data_dir):
        for row in _read_jsonl(_file(data_dir, "mt_bench", "model_answer", f"{model}.jsonl")):
            question = questions[row["question_id"]]
            answer = row["choices"][0]["turns"][0] if row.get("choices") else None
            out.append(_system(str(row["question_id"]), model, question["turns"][0], answer, question["category"]))
    return _keep(out)


def _mt_bench_targets(data_dir: Path) -> dict[str, dict[str, float]]:
    arena_to_mt = _read_json(_file(data_dir, *_ARENA, "name_mappings", "arena_to_mt_bench.json"))
    name_map = {mt: arena for arena, mt in arena_to_mt.items()}
    return _with_elo({}, _mt_bench_models(data_dir), name_map, data_dir)


# ---------------------------------------------------------------------------------------------------------------
# registry

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "hh-rlhf",
            "pairwise",
            "GitHub anthropics/hh-rlhf harmless-base/test.jsonl.gz; MIT",
            "Anthropic HH-RLHF harmless-base test pairs (chosen = less harmful final assistant turn).",
            _load_hh_rlhf,
        ),
        Benchmark(
            "autoj",
            "pairwise",
            "GitHub GAIR-NLP/auto-j data/test/testdata_pairwise.jsonl; no data license stated (research use)",
            "Auto-J human pairwise preferences over 58 real-world scenarios (subset = scenario), ties dropped.",
            _load_autoj,
        ),
        Benchmark(
            "pandalm",
            "pairwise",
            "GitHub WeOpenML/PandaLM data/testset-v1.json; Apache-2.0",
            "PandaLM test set, majority label of 3 annotators (subset = model pair), ties dropped.",
            _load_pandalm,
        ),
        Benchmark(
            "vicuna80",
            "pairwise",
            "GitHub bcdnlp/PRD data/vicuna80 + artidoro/qlora Guanaco generations; MIT",
            "Human majority-vote preferences between 9 models on the Vicuna 80 questions (subset = category).",
            _load_vicuna80,
        ),
        Benchmark(
            "rm_bench",
            "pairwise",
            "GitHub THU-KEG/RM-Bench data/*_filtered.json (chat, code, safety); no license stated (research use)",
            "RM-Bench style-controlled pairs, every chosen x rejected per prompt (subset = domain).",
            _load_rm_bench,
        ),
        Benchmark(
            "rmb",
            "pairwise",
            "GitHub Zhou-Zoey/RMB-Reward-Model-Benchmark Pairwise_set/Harmlessness; no license stated",
            "RMB harmlessness pairwise set (subset = Harmlessness/S1..S10, multi); judge-model labels.",
            _load_rmb,
        ),
        Benchmark(
            "alpaca_eval",
            "pairwise",
            "GitHub tatsu-lab/alpaca_eval weighted_alpaca_eval_gpt4_turbo annotations; CC BY-NC 4.0 data",
            "GPT-4-turbo judgments of alpaca-7b / gpt-3.5-turbo-1106 vs gpt4_1106_preview (subset = model).",
            _load_alpaca_eval,
        ),
        Benchmark(
            "lfqa",
            "pairwise",
            "GitHub bcdnlp/PRD data/lfqa (Xu et al. 2023 expert annotations); MIT",
            "Expert preferences between long-form QA answers (subset = answer types, e.g. human-machine).",
            _load_lfqa,
        ),
        Benchmark(
            "autoj_critiques",
            "rating",
            "GitHub GAIR-NLP/auto-j data/training/single_traindata.jsonl; no data license stated (research use)",
            "960 Chatbot Arena responses with GPT-4 1-10 ratings (subset = scenario): reward vs rating.",
            _load_autoj_critiques,
        ),
        Benchmark(
            "autoj_critiques-heldout",
            "rating",
            "The same file; every third record (id % 3 == 0)",
            "The 320 Auto-J critique ratings that flr's feedback-tuning protocol never trains on.",
            lambda data_dir: _load_autoj_critiques(data_dir, "heldout"),
        ),
        Benchmark(
            "alpaca_eval-system",
            "system",
            "GitHub tatsu-lab/alpaca_eval results + leaderboards; CC BY-NC 4.0 data; Arena Elo (Apache-2.0)",
            "44 models' outputs on the AlpacaEval 805; targets: AE2 LC win rate, win rate (percent), Arena Elo.",
            _load_alpaca_eval_system,
            _alpaca_eval_targets,
        ),
        Benchmark(
            "mt_bench-system",
            "system",
            "GitHub lm-sys/FastChat MT-Bench questions + pre-generated answers; Apache-2.0; Arena Elo (Apache-2.0)",
            "31 models' first-turn MT-Bench answers (subset = category); target: Arena Elo (2024-03-29).",
            _load_mt_bench_system,
            _mt_bench_targets,
        ),
    )
}


# ---------------------------------------------------------------------------------------------------------------
# public helpers


def _sample(records: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random sample of ``limit`` records (original order kept); system records sampled per prompt id."""
    if limit is None:
        return records
    if limit < 0:
        raise FLRError(f"limit must be >= 0, got {limit}")
    rng = random.Random(seed)
    if records and "model" in records[0]:
        per_model = defaultdict(set)
        for r in records:
            per_model[r["model"]].add(r["id"])
        shared = sorted(set.intersection(*per_model.values()), key=_natural)
        keep = set(rng.sample(shared, min(limit, len(shared))))
        return [r for r in records if r["id"] in keep]
    picked = sorted(rng.sample(range(len(records)), min(limit, len(records))))
    return [records[i] for i in picked]


def _natural(key: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))


def _load_demo(_data_dir) -> list[dict]:
    from importlib.resources import files

    text = files("flr").joinpath("resources/demo_pairs.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [{**{k: r[k] for k in ("id", "prompt", "chosen", "rejected")}, "subset": "pandalm"} for r in rows]


BENCHMARKS["demo"] = Benchmark(
    "demo",
    "pairwise",
    "24 PandaLM test pairs (Apache-2.0) shipped in the package: src/flr/resources/demo_pairs.jsonl",
    "A small real sample for the demo and smoke tests; needs no shared data.",
    _load_demo,
    needs_data=False,
)


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

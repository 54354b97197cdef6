"""System-level benchmarks: many models' responses to the same prompts, and each model's leaderboard targets
(AlpacaEval 2 win rates, Chatbot Arena Elo) to correlate the mean reward with."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from flr.eval.benchmarks.common import AE_RESULTS, alpaca_ids, data_file, keep, system, text
from flr.records import read_csv, read_json, read_jsonl

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
    rows = read_csv(data_file(data_dir, *_ARENA, "elo_results_20240329_leaderboard_table.csv"))
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
    root = data_file(data_dir, *AE_RESULTS)
    return sorted(p.parent.name for p in root.glob("*/model_outputs.json"))


def load_alpaca_eval(data_dir: Path) -> list[dict]:
    ids = alpaca_ids(data_dir)
    out = []
    for model in _alpaca_models(data_dir):
        for row in read_json(data_file(data_dir, *AE_RESULTS, model, "model_outputs.json")):
            prompt_id = ids.get(row["instruction"], row["instruction"])
            out.append(system(prompt_id, model, row["instruction"], row.get("output"), row["dataset"]))
    return keep(out)


def alpaca_eval_targets(data_dir: Path) -> dict[str, dict[str, float]]:
    board = data_file(
        data_dir, "alpaca_eval", "leaderboards", "data_AlpacaEval_2", "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
    )
    models = _alpaca_models(data_dir)
    rows = {row[""]: row for row in read_csv(board)}
    targets: dict[str, dict[str, float]] = {}
    for model in models:
        row = rows.get(model, {})
        for key, column in (("lc_win_rate", "length_controlled_winrate"), ("win_rate", "win_rate")):
            if text(row.get(column)):
                targets.setdefault(model, {})[key] = float(row[column])
    name_map = read_json(data_file(data_dir, *_ARENA, "name_mappings", "alpaca_to_arena.json"))
    return _with_elo(targets, models, name_map, data_dir)


def _mt_bench_models(data_dir: Path) -> list[str]:
    return sorted(p.stem for p in data_file(data_dir, "mt_bench", "model_answer").glob("*.jsonl"))


def load_mt_bench(data_dir: Path) -> list[dict]:
    questions = {q["question_id"]: q for q in read_jsonl(data_file(data_dir, "mt_bench", "question.jsonl"))}
    out = []
    for model in _mt_bench_models(data_dir):
        for row in read_jsonl(data_file(data_dir, "mt_bench", "model_answer", f"{model}.jsonl")):
            question = questions[row["question_id"]]
            answer = row["choices"][0]["turns"][0] if row.get("choices") else None
            out.append(system(str(row["question_id"]), model, question["turns"][0], answer, question["category"]))
    return keep(out)


def mt_bench_targets(data_dir: Path) -> dict[str, dict[str, float]]:
    arena_to_mt = read_json(data_file(data_dir, *_ARENA, "name_mappings", "arena_to_mt_bench.json"))
    name_map = {mt: arena for arena, mt in arena_to_mt.items()}
    return _with_elo({}, _mt_bench_models(data_dir), name_map, data_dir)

"""Loaders of the human (or judge) preference pairs: ``{"id", "prompt", "chosen", "rejected", "subset"}``."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from flr.errors import FLRError
from flr.eval.benchmarks.common import (
    AE_RESULTS,
    alpaca_ids,
    data_file,
    keep,
    majority,
    messages,
    pair,
    ranked,
    text,
)
from flr.records import read_json, read_jsonl

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def _parse_hh(transcript: str) -> list[dict] | None:
    """Split an HH-RLHF ``\\n\\nHuman: …\\n\\nAssistant: …`` transcript into messages."""
    parts = _HH_TURN.split(transcript)
    if parts[0].strip():
        return None
    turns = [
        {"role": role, "content": content.strip()} for role, content in zip(parts[1::2], parts[2::2], strict=True)
    ]
    return messages(turns)


def load_hh_rlhf(data_dir: Path) -> list[dict]:
    rows = read_jsonl(data_file(data_dir, "hh-rlhf", "harmless-base", "test.jsonl.gz"))
    out = []
    for i, row in enumerate(rows):
        chosen, rejected = _parse_hh(row["chosen"]), _parse_hh(row["rejected"])
        if not chosen or not rejected or chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
            continue
        if chosen[:-1] != rejected[:-1]:  # 5 transcripts whose histories differ: no shared prompt
            continue
        out.append(pair(str(i), chosen[:-1], chosen[-1]["content"], rejected[-1]["content"], "harmless-base"))
    return keep(out)


def load_autoj(data_dir: Path) -> list[dict]:
    rows = read_jsonl(data_file(data_dir, "autoj", "testdata_pairwise.jsonl"))
    out = []
    for i, row in enumerate(rows):
        if row["label"] not in (0, 1):  # 2 = tie
            continue
        chosen, rejected = ranked(row["response 1"], row["response 2"], row["label"] == 0)
        out.append(pair(str(i), row["prompt"], chosen, rejected, row["scenario"]))
    return keep(out)


def load_pandalm(data_dir: Path) -> list[dict]:
    rows = read_json(data_file(data_dir, "pandalm", "testset-v1.json"))
    out = []
    for row in rows:
        label = majority(row[f"annotator{k}"] for k in (1, 2, 3))
        if label not in (1, 2):  # 0 = tie, None = no majority
            continue
        # six responses are JSON booleans (a literal "True" answer lost its quotes)
        first, second = (str(v) if isinstance(v, bool) else v for v in (row["response1"], row["response2"]))
        chosen, rejected = ranked(first, second, label == 1)
        prompt = row["instruction"] + (f"\n\n{row['input']}" if text(row["input"]) else "")
        out.append(pair(str(row["idx"]), prompt, chosen, rejected, row["cmp_key"]))
    return keep(out)


def load_vicuna80(data_dir: Path) -> list[dict]:
    root = data_file(data_dir, "vicuna80_human_pairwise")
    questions = {q["question_id"]: q for q in read_jsonl(data_file(root, "prompts", "vicuna_questions.jsonl"))}
    answers: dict[str, dict[int, str]] = {}
    for name in ("bard", "claude", "gpt35", "gpt4", "vicuna-13b"):
        answers[name] = {
            a["question_id"]: a["text"] for a in read_jsonl(data_file(root, "generations", f"answer_{name}.jsonl"))
        }
    for size, name in (("7b", "guanaco-7b"), ("13b", "guanaco-13b"), ("30b", "guanaco-33b"), ("65b", "guanaco-65b")):
        rows = read_jsonl(data_file(root, "generations", f"{size}-guanaco-vicuna-generations-topp0.9-temp0.7.jsonl"))
        answers[name] = {a["question_id"]: a["generation_truncated"] for a in rows}
    votes: dict[tuple[int, str, str], list[str]] = defaultdict(list)
    for path in sorted((root / "ratings-human").glob("answer_*-vs-answer_*-human-reviewer_threeclass.jsonl")):
        first, second = (
            path.name.removesuffix("-human-reviewer_threeclass.jsonl").removeprefix("answer_").split("-vs-answer_")
        )
        for row in read_jsonl(path):
            key = (row["question_id"], *sorted((first, second)))
            votes[key].append({1: first, 2: second}.get(row["score"], "tie"))  # 3 = tie
    out = []
    for (qid, a, b), ballot in sorted(votes.items()):
        winner = majority(ballot)
        if winner not in (a, b):
            continue
        loser = b if winner == a else a
        chosen, rejected = answers[winner].get(qid), answers[loser].get(qid)
        out.append(pair(f"{qid}:{a}-vs-{b}", questions[qid]["text"], chosen, rejected, questions[qid]["category"]))
    return keep(out)


_RM_BENCH_DOMAINS = ("chat", "code", "safety-refuse", "safety-response")


def load_rm_bench(data_dir: Path) -> list[dict]:
    out = []
    for domain in _RM_BENCH_DOMAINS:
        for row in read_json(data_file(data_dir, "rm_bench", f"{domain}_filtered.json")):
            for i, chosen in enumerate(row["chosen"]):
                for j, rejected in enumerate(row["rejected"]):
                    out.append(pair(f"{domain}/{row['id']}/{i}-{j}", row["prompt"], chosen, rejected, domain))
    return keep(out)


def load_rmb(data_dir: Path) -> list[dict]:
    root = data_file(data_dir, "rmb", "Pairwise_set")
    out = []
    for path in sorted(root.glob("*/*.json")):
        subset = f"{path.parent.name}/{path.stem}"
        for row in read_json(path):
            prompt = messages(row["conversation_input"])
            if not prompt or prompt[-1]["role"] != "user":
                continue
            out.append(pair(row["pair_uid"], prompt, row["chosen"]["answer"], row["reject"]["answer"], subset))
    return keep(out)


def load_alpaca_eval(data_dir: Path) -> list[dict]:
    ids = alpaca_ids(data_dir)
    paths = sorted(data_file(data_dir, *AE_RESULTS).glob("*/weighted_alpaca_eval_gpt4_turbo/annotations.json"))
    if not paths:
        raise FLRError(f"benchmark file not found: {Path(data_dir, *AE_RESULTS, '*/weighted_alpaca_eval_gpt4_turbo')}")
    out = []
    for path in paths:
        for row in read_json(path):
            pref = row.get("preference")
            if not isinstance(pref, int | float) or pref == 1.5:  # 1 = output_1, 2 = output_2, 1.5 = tie
                continue
            chosen, rejected = ranked(row["output_1"], row["output_2"], pref < 1.5)
            model = row["generator_2"]
            prompt_id = ids.get(row["instruction"], row["instruction"])
            out.append(pair(f"{model}/{prompt_id}", row["instruction"], chosen, rejected, model))
    return keep(out)


def load_lfqa(data_dir: Path) -> list[dict]:
    rows = read_jsonl(data_file(data_dir, "lfqa_expert_pairwise", "experts_pairwise_human_preferences.jsonl"))
    out = []
    for i, row in enumerate(rows):
        if row["overall_preference"] not in (-1, 1):
            continue
        chosen, rejected = ranked(row["answer_a"], row["answer_b"], row["overall_preference"] == -1)
        out.append(pair(str(i), row["question"], chosen, rejected, f"{row['answer_a_type']}-{row['answer_b_type']}"))
    return keep(out)


def load_demo(_data_dir: None) -> list[dict]:
    """The PandaLM sample shipped in the package (no data directory)."""
    from importlib.resources import files

    lines = files("flr").joinpath("resources/demo_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [{**{k: r[k] for k in ("id", "prompt", "chosen", "rejected")}, "subset": "pandalm"} for r in rows]

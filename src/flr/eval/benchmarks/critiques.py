"""The Auto-J critiques: GPT-4's 1-10 ratings (a rating benchmark) and the critiques behind them (feedback tuning)."""

from __future__ import annotations

import re
from pathlib import Path

from flr.eval.benchmarks.common import data_file, text
from flr.records import read_jsonl

_AUTOJ_DATA = re.compile(r"\[Query\]:\s*(.*?)\n\*\*\*\n\[Response\]:\s*(.*?)\n\*\*\*\n\[END DATA\]", re.S)


def autoj_critiques(data_dir: Path) -> list[dict]:
    """The 960 Auto-J critiques as ``{id, prompt, response, critique, rating, subset}`` (query and response cut out
    of Auto-J's judge prompt; the critique without its closing 'Rating: [[N]]')."""
    rows = read_jsonl(data_file(data_dir, "autoj_critiques", "single_traindata.jsonl"))
    out = []
    for i, row in enumerate(rows):
        match = _AUTOJ_DATA.search(row["usrmsg"])
        critique = re.sub(r"\s*Rating:\s*\[\[[\d.]+\]\]\W*$", "", row["target_output"]).strip()
        if not match or not text(match[1]) or not text(match[2]) or not critique:
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


def load_ratings(data_dir: Path, split: str | None = None) -> list[dict]:
    """The critiques as rating records (all of them, or one split's)."""
    rows = [r for r in autoj_critiques(data_dir) if split is None or critiques_split(r) == split]
    return [{k: r[k] for k in ("id", "prompt", "response", "rating", "subset")} for r in rows]


def load_heldout_ratings(data_dir: Path) -> list[dict]:
    return load_ratings(data_dir, "heldout")

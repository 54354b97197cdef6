"""What the loaders share: locating a benchmark file, and building records that drop empty text and ties."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flr.errors import FLRError
from flr.records import read_json

AE_RESULTS = ("alpaca_eval", "results")  # AlpacaEval's per-model results, for the pairwise and the system benchmark
AE_BASELINE = "gpt4_1106_preview"


def data_file(data_dir: Path, *parts: str) -> Path:
    path = Path(data_dir, *parts)
    if not path.exists():
        raise FLRError(f"benchmark file not found: {path}")
    return path


def text(value: Any) -> str | None:
    """The value if it is a non-blank string, else None."""
    return value if isinstance(value, str) and value.strip() else None


_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}


def messages(turns: Iterable[dict]) -> list[dict] | None:
    """Normalize ``[{"role", "content", ...}]`` to user/assistant/system messages; None if any turn is empty."""
    out = []
    for turn in turns:
        role, content = _ROLES.get(str(turn.get("role", "")).lower()), text(turn.get("content"))
        if role is None or content is None:
            return None
        out.append({"role": role, "content": content})
    return out or None


def pair(id_: str, prompt: Any, chosen: Any, rejected: Any, subset: str) -> dict | None:
    """A pairwise record, or None when a text is empty or chosen == rejected."""
    prompt = text(prompt) if isinstance(prompt, str) else prompt
    chosen, rejected = text(chosen), text(rejected)
    if not prompt or chosen is None or rejected is None or chosen == rejected:
        return None
    return {"id": str(id_), "prompt": prompt, "chosen": chosen, "rejected": rejected, "subset": str(subset)}


def system(id_: str, model: str, prompt: Any, response: Any, subset: str) -> dict | None:
    """A system-level record (one model's response to one prompt), or None when a text is empty."""
    prompt, response = text(prompt), text(response)
    if prompt is None or response is None:
        return None
    return {"id": str(id_), "model": model, "prompt": prompt, "response": response, "subset": str(subset)}


def ranked(first: Any, second: Any, first_wins: bool) -> tuple[Any, Any]:
    """(chosen, rejected) from two responses and which one won."""
    return (first, second) if first_wins else (second, first)


def keep(records: Iterable[dict | None]) -> list[dict]:
    return [r for r in records if r is not None]


def majority(votes: Iterable[Any]) -> Any | None:
    """The strictly most frequent vote, or None when the top count is shared."""
    top = Counter(votes).most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def alpaca_ids(data_dir: Path) -> dict[str, str]:
    """Instruction -> stable prompt id (its index in the AlpacaEval 2 baseline's outputs)."""
    rows = read_json(data_file(data_dir, *AE_RESULTS, AE_BASELINE, "model_outputs.json"))
    return {row["instruction"]: str(i) for i, row in enumerate(rows)}

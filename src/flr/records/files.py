"""Records in and out: JSONL, JSON, CSV, Parquet or a Hugging Face dataset; field mapping; a resumable writer."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flr.errors import FLRError, InputError

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class Record:
    """One input record and where it came from (line for JSONL/CSV, 1-based position otherwise)."""

    source: str
    line: int
    data: dict[str, Any]


def parse_field_map(spec: str | dict | None) -> dict[str, str]:
    """``"prompt=question,response=answer"`` -> ``{"prompt": "question", "response": "answer"}``."""
    if not spec:
        return {}
    if isinstance(spec, dict):
        return dict(spec)
    out = {}
    for part in spec.split(","):
        if "=" not in part:
            raise FLRError(f"field map entry '{part}' must look like standard=yours, e.g. prompt=question")
        key, value = part.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def looks_local(spec: str) -> bool:
    """A path that cannot be a Hub id (``org/name``): absolute or relative marks, more than one slash, or a first
    component that is a local folder (``runs/typo``). Such specs fail at once instead of retrying the Hub."""
    parts = Path(spec).parts
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or (len(parts) > 1 and Path(parts[0]).is_dir())


def read_records(
    source: str | os.PathLike,
    *,
    split: str = "train",
    field_map: dict[str, str] | str | None = None,
    limit: int | None = None,
) -> list[Record]:
    """Read records from a file or an HF dataset id; ``field_map`` renames the user's fields to ours."""
    source = str(source)
    path = Path(source)
    mapping = parse_field_map(field_map)
    suffix = path.suffix.lower()
    if suffix in FILE_SUFFIXES:
        if not path.exists():
            raise FLRError(f"input file not found: {source}")
        if path.is_dir():
            raise InputError("expected a file, got a directory", file=source)
        reader = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
        try:
            records = reader[suffix](path)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"not UTF-8 text (byte {exc.start}: {exc.reason}); is it a binary file?", file=source
            ) from None
    elif path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "dataset_dict.json")):
        records = _read_hf(source, split, from_disk=True)
    elif path.is_dir():
        raise InputError(
            f"expected a file, got a directory; use {', '.join(FILE_SUFFIXES)} or a saved dataset", file=source
        )
    elif path.exists() or source.startswith((".", "/", "~")):
        raise FLRError(f"{source}: unsupported input; use {', '.join(FILE_SUFFIXES)} or an HF dataset id")
    elif looks_local(source):
        raise FLRError(f"input not found: {source} (a file needs one of {', '.join(FILE_SUFFIXES)})")
    else:
        records = _read_hf(source, split)
    if limit is not None:
        records = records[:limit]
    if mapping:
        inverse = {theirs: ours for ours, theirs in mapping.items()}
        for r in records:
            r.data = {inverse.get(k, k): v for k, v in r.data.items()}
    return records


def _read_jsonl(path: Path) -> list[Record]:
    records = []
    opener = gzip.open if path.suffix == ".gz" else open  # .jsonl.gz: the benchmarks' compressed copies
    with opener(path, "rt", encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Windows editors, Excel) is skipped
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg}, column {exc.colno})", file=str(path), line=n) from None
            if not isinstance(data, dict):
                raise InputError("expected a JSON object", file=str(path), line=n)
            records.append(Record(str(path), n, data))
    return records


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's value as it is (records or not); InputError naming the line on bad JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, column {exc.colno})", file=str(path), line=exc.lineno) from None


def _read_json(path: Path) -> list[Record]:
    data = read_json(path)
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [data]
    if not isinstance(data, list):
        raise InputError(f"expected a list of records or one record object, got {type(data).__name__}", file=str(path))
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise InputError(f"record {i + 1} is not a JSON object", file=str(path), line=i + 1)
    return [Record(str(path), i + 1, row) for i, row in enumerate(data)]


def _read_csv(path: Path) -> list[Record]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        return [Record(str(path), reader.line_num, dict(row)) for row in reader]


def _read_parquet(path: Path) -> list[Record]:
    import pandas as pd

    frame = pd.read_parquet(path)
    return [Record(str(path), i + 1, _plain(row)) for i, row in enumerate(frame.to_dict("records"))]


def _read_hf(source: str, split: str, from_disk: bool = False) -> list[Record]:
    import datasets

    try:
        if from_disk:
            ds = datasets.load_from_disk(source)
            ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            ds = datasets.load_dataset(source, split=split)
    except Exception as exc:  # datasets raises many types for a missing/unreachable dataset
        raise FLRError(f"cannot load dataset '{source}' (split {split}): {str(exc).splitlines()[0]}") from None
    return [Record(source, i + 1, _plain(row)) for i, row in enumerate(ds)]


def _plain(row: dict) -> dict:
    """numpy arrays (Parquet list columns) -> lists, so records are JSON-serializable."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, list):
            value = [_plain(v) if isinstance(v, dict) else v for v in value]
        out[key] = value
    return out


class ResumableWriter:
    """Append-only JSONL output that knows which records it already holds.

    Each finished record is written and flushed at once. On reopening, a last line cut off by a crash is
    dropped, and ``done`` holds the keys of the complete records, so a re-run skips them: nothing lost, nothing
    written twice.
    """

    def __init__(self, path: str | os.PathLike, key: str | Callable[[list[dict]], list[str]] = "id"):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = self._recover()
        self.done: set[str] = set(self.keys_of(existing))
        self.resumed = len(existing)
        self._file = self.path.open("a", encoding="utf-8")

    def keys_of(self, rows: list[dict]) -> list[str]:
        return self.key(rows) if callable(self.key) else [str(r.get(self.key)) for r in rows]

    def _recover(self) -> list[dict]:
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        if len(complete) != len(raw):
            logger.warning("%s: dropping a partial last line left by an interrupted run", self.path)
            self.path.write_bytes(complete)
        rows = []
        for n, line in enumerate(complete.decode("utf-8").splitlines(), 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise InputError(
                    "existing output is not valid JSONL; delete it or choose another output",
                    file=str(self.path),
                    line=n,
                ) from None
        return rows

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResumableWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_json(path: str | os.PathLike, data: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [r.data for r in _read_jsonl(Path(path))]


def read_csv(path: str | os.PathLike) -> list[dict]:
    return [r.data for r in _read_csv(Path(path))]


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write all rows at once, atomically (a crash never leaves half a file behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return path

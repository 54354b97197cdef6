"""Benchmark registry and loaders, checked against the real data in shared/data (skipped when absent)."""

from __future__ import annotations

import functools
from collections import defaultdict

import pytest

from flr.errors import FLRError, InputError
from flr.eval import benchmarks
from flr.eval.benchmarks import BENCHMARKS, detect_kind, load_benchmark, load_targets, resolve_data_dir

PAIRWISE = ["hh-rlhf", "autoj", "pandalm", "vicuna80", "rm_bench", "rmb", "alpaca_eval", "lfqa"]
SYSTEM = ["alpaca_eval-system", "mt_bench-system"]
KEYS = {
    "pairwise": {"id", "prompt", "chosen", "rejected", "subset"},
    "rating": {"id", "prompt", "response", "rating", "subset"},
    "system": {"id", "model", "prompt", "response", "subset"},
}


@functools.lru_cache(maxsize=1)
def _data_dir():
    try:
        return resolve_data_dir()
    except FLRError:
        return None


@functools.cache
def _load(name: str, limit: int | None = None, seed: int = 0) -> tuple[dict, ...]:
    if _data_dir() is None:
        pytest.skip("shared/data not found (set FLR_DATA_DIR)")
    return tuple(load_benchmark(name, _data_dir(), limit=limit, seed=seed))


@functools.cache
def _targets(name: str) -> dict:
    _load(name, 5)  # skips without data
    return load_targets(name, _data_dir())


def _nonempty(text) -> bool:
    return isinstance(text, str) and bool(text.strip())


def _check_prompt(prompt) -> None:
    if isinstance(prompt, str):
        assert prompt.strip()
        return
    assert isinstance(prompt, list) and prompt
    for message in prompt:
        assert set(message) == {"role", "content"} and message["role"] in {"user", "assistant", "system"}
        assert _nonempty(message["content"])
    assert prompt[-1]["role"] == "user"


RATING = ["autoj_critiques", "autoj_critiques-heldout"]


def test_autoj_critiques_ratings_and_split():
    from flr.eval.benchmarks import autoj_critiques, critiques_split

    heldout = _load("autoj_critiques-heldout")  # skips without data
    rows = autoj_critiques(_data_dir())
    assert len(rows) > 950 and all(1 <= r["rating"] <= 10 for r in rows)
    assert all(_nonempty(r["prompt"]) and _nonempty(r["response"]) and "Rating: [[" not in r["critique"] for r in rows)
    assert {r["id"] for r in heldout} == {r["id"] for r in rows if critiques_split(r) == "heldout"}
    assert 300 < len(heldout) < 330 and set(heldout[0]) == {"id", "prompt", "response", "rating", "subset"}


def _id_key(record: dict):
    return (record["model"], record["id"]) if "model" in record else record["id"]


# --- registry -----------------------------------------------------------------------------------------------------


def test_registry_names_and_kinds():
    assert sorted(BENCHMARKS) == sorted(PAIRWISE + SYSTEM + RATING + ["demo"])
    for name, bench in BENCHMARKS.items():
        assert bench.name == name
        assert bench.kind == ("system" if name in SYSTEM else "rating" if name in RATING else "pairwise")

        assert (bench.load_targets is not None) == (bench.kind == "system")
        assert bench.source.strip() and "\n" not in bench.source and bench.description.strip()


def test_unknown_benchmark():
    with pytest.raises(FLRError, match="unknown benchmark 'nope'.*hh-rlhf"):
        load_benchmark("nope")


# --- real data ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAIRWISE + SYSTEM)
def test_record_shapes(name):
    records = _load(name, 5)
    kind = BENCHMARKS[name].kind
    models = {r["model"] for r in records} if kind == "system" else {None}
    assert len(records) == 5 * len(models)
    for r in records:
        assert set(r) == KEYS[kind]
        assert _nonempty(r["id"]) and _nonempty(r["subset"])
        _check_prompt(r["prompt"])
        if kind == "pairwise":
            assert _nonempty(r["chosen"]) and _nonempty(r["rejected"]) and r["chosen"] != r["rejected"]
        else:
            assert _nonempty(r["model"]) and _nonempty(r["response"])


@pytest.mark.parametrize("name", PAIRWISE + SYSTEM)
def test_ids_unique(name):
    records = _load(name)
    keys = [_id_key(r) for r in records]
    assert len(records) > 0 and len(set(keys)) == len(keys)


@pytest.mark.parametrize("name", PAIRWISE + SYSTEM)
def test_limit_is_seeded_sample(name):
    first, again, other = (
        _load(name, 5, 0),
        tuple(load_benchmark(name, _data_dir(), limit=5, seed=0)),
        _load(name, 5, 1),
    )
    assert first == again
    ids = [_id_key(r) for r in first]
    assert ids != [_id_key(r) for r in other]
    assert ids[:5] != [_id_key(r) for r in _load(name)[:5]]  # a random sample, not the head
    assert set(ids) <= {_id_key(r) for r in _load(name)}


@pytest.mark.parametrize("name", SYSTEM)
def test_system_limit_same_prompts_per_model(name):
    per_model = defaultdict(set)
    for r in _load(name, 5):
        per_model[r["model"]].add(r["id"])
    assert len(per_model) >= 10
    assert all(ids == next(iter(per_model.values())) and len(ids) == 5 for ids in per_model.values())


@pytest.mark.parametrize("name", SYSTEM)
def test_system_targets(name):
    targets = _targets(name)
    models = {r["model"] for r in _load(name, 5)}
    assert len(set(targets) & models) >= 10
    assert sum("arena_elo" in t for t in targets.values()) >= 10
    for values in targets.values():
        assert values and set(values) <= {"lc_win_rate", "win_rate", "arena_elo"}
        assert all(isinstance(v, float) for v in values.values())


def test_alpaca_targets_have_win_rates():
    targets = _targets("alpaca_eval-system")
    assert sum({"lc_win_rate", "win_rate"} <= set(t) for t in targets.values()) >= 40
    assert targets["gpt4_1106_preview"]["lc_win_rate"] == pytest.approx(50.0)


def test_subsets_kept():
    assert {r["subset"] for r in _load("rm_bench")} == {"chat", "code", "safety-refuse", "safety-response"}
    assert {r["subset"] for r in _load("rmb")} >= {"Harmlessness/S1", "Harmlessness/multi"}


def test_hh_rlhf_multi_turn_prompt():
    records = _load("hh-rlhf")
    assert any(isinstance(r["prompt"], list) and len(r["prompt"]) >= 3 for r in records)
    assert not any("\n\nHuman:" in r["chosen"] or "\n\nAssistant:" in r["rejected"] for r in records)


def test_missing_benchmark_file(tmp_path):
    with pytest.raises(FLRError, match=r"benchmark file not found: .*autoj"):
        load_benchmark("autoj", tmp_path)


# --- data directory -----------------------------------------------------------------------------------------------


def test_resolve_data_dir_explicit_missing(tmp_path):
    with pytest.raises(FLRError, match="missing"):
        resolve_data_dir(tmp_path / "missing")
    assert resolve_data_dir(tmp_path) == tmp_path


def test_resolve_data_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FLR_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    monkeypatch.setenv("FLR_DATA_DIR", str(tmp_path / "gone"))
    with pytest.raises(FLRError, match="gone.*FLR_DATA_DIR"):
        resolve_data_dir()


def test_resolve_data_dir_names_every_place(tmp_path, monkeypatch):
    monkeypatch.delenv("FLR_DATA_DIR", raising=False)
    places = [tmp_path / "a" / "shared" / "data", tmp_path / "b" / "shared" / "data"]
    monkeypatch.setattr(benchmarks, "_default_data_dirs", lambda: places)
    with pytest.raises(FLRError) as err:
        resolve_data_dir()
    assert all(str(p) in str(err.value) for p in places)


def test_default_data_dirs_cover_cwd_and_repo():
    dirs = [str(p) for p in benchmarks._default_data_dirs()]
    assert dirs[:2] == ["shared/data", "../shared/data"]
    assert dirs[2].endswith("shared/data")


# --- detect_kind --------------------------------------------------------------------------------------------------


def test_detect_kind():
    assert detect_kind([{"prompt": "p", "chosen": "a", "rejected": "b"}], "x.jsonl") == "pairwise"
    assert detect_kind([{"prompt": "p", "response": "a", "rating": 3}], "x.jsonl") == "rating"


def test_detect_kind_errors():
    with pytest.raises(InputError, match=r"x\.jsonl.*chosen\+rejected.*response\+rating.*found: prompt, text"):
        detect_kind([{"prompt": "p", "text": "a"}], "x.jsonl")
    with pytest.raises(InputError, match=r"x\.jsonl:2.*'rejected'") as err:
        detect_kind([{"chosen": "a", "rejected": "b"}, {"chosen": "a"}], "x.jsonl")
    assert err.value.line == 2 and err.value.field == "rejected"
    with pytest.raises(InputError, match="no records"):
        detect_kind([], "empty.jsonl")


def test_demo_sample_ships_with_the_package(monkeypatch):
    monkeypatch.setenv("FLR_DATA_DIR", "/nonexistent")  # the demo needs no shared data
    records = load_benchmark("demo")
    assert len(records) == 24 and len({r["id"] for r in records}) == 24
    assert all(r["chosen"] != r["rejected"] and r["prompt"].strip() for r in records)

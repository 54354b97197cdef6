"""Sampling k candidates per prompt: prompt loading, seeding, EOS handling, resume after a kill."""

from __future__ import annotations

import json

import pytest

from flr.errors import FLRError
from flr.jobs.generate import PromptConfig, SamplingConfig, TransformersSampler, generate, load_prompts
from flr.kernel.models import ModelConfig
from flr.records import read_jsonl


class Killed(Exception):
    """Stands in for a kill signal (pytest reserves KeyboardInterrupt for itself)."""


QUESTIONS = [{"question_id": 10 + i, "turns": [f"Question number {i}?"]} for i in range(5)]


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "question.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return str(path)


def _sampling(**kw):
    return SamplingConfig(**{"k": 2, "max_new_tokens": 4, "generation_batch_size": 2, "seed": 0, **kw})


def test_load_prompts_maps_fields_offsets_and_system(prompt_file):
    cfg = PromptConfig(prompts=prompt_file, field_map="prompt=turns,id=question_id", offset=1, limit=3)
    prompts = load_prompts(cfg, system_prompt="Be brief.")
    assert [p["id"] for p in prompts] == ["11", "12", "13"]
    assert prompts[0]["prompt"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Question number 1?"},
    ]


def test_load_prompts_uses_row_index_without_ids_and_rejects_duplicates(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    assert [p["id"] for p in load_prompts(PromptConfig(prompts=str(path), offset=1))] == ["1"]
    path.write_text('{"prompt": "a", "id": 1}\n{"prompt": "b", "id": 1}\n')
    with pytest.raises(FLRError, match="duplicate id"):
        load_prompts(PromptConfig(prompts=str(path)))
    path.write_text('{"text": "a"}\n')
    with pytest.raises(FLRError, match="prompt"):
        load_prompts(PromptConfig(prompts=str(path)))


def test_decode_stops_at_eos(tiny):
    model, tokenizer = tiny
    sampler = TransformersSampler(ModelConfig(), _sampling(), model=model, tokenizer=tokenizer)
    hello = tokenizer("Hello world", add_special_tokens=False)["input_ids"]
    out = sampler._decode(hello + [tokenizer.eos_token_id] + hello)
    assert out == {"candidates": "Hello world", "finished": True, "num_tokens": len(hello)}
    assert sampler._decode(hello)["finished"] is False


def test_generate_rows_and_seeding(tiny, prompt_file, tmp_path):
    model, tokenizer = tiny
    prompts = load_prompts(PromptConfig(prompts=prompt_file, field_map="prompt=turns,id=question_id", limit=3))
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path / f"{name}.jsonl"
        counts = generate(prompts, out, ModelConfig(), _sampling(seed=seed), model=model, tokenizer=tokenizer)
        assert counts == {"prompts": 3, "generated": 3, "skipped": 0}
        runs[name] = read_jsonl(out)
    rows = runs["a"]
    assert [r["id"] for r in rows] == ["10", "11", "12"]
    for r in rows:
        assert len(r["candidates"]) == len(r["finished"]) == len(r["num_tokens"]) == 2
        assert all(0 < n <= 4 for n in r["num_tokens"])
        assert r["seed"] == 0 and r["temperature"] == 0.7 and r["top_p"] == 0.9 and r["policy"] == "default"
    assert [r["candidates"] for r in runs["b"]] == [r["candidates"] for r in rows]  # same seed, same samples
    assert [r["candidates"] for r in runs["c"]] != [r["candidates"] for r in rows]


def test_generate_resumes_after_a_kill(tiny, prompt_file, tmp_path, monkeypatch):
    model, tokenizer = tiny
    prompts = load_prompts(PromptConfig(prompts=prompt_file, field_map="prompt=turns,id=question_id"))
    out = tmp_path / "candidates.jsonl"
    real_sample, calls, kill = TransformersSampler.sample, [], [True]

    def dies_on_second_batch(self, batch):
        calls.append([p["id"] for p in batch])
        if len(calls) == 2 and kill[0]:
            raise Killed
        return real_sample(self, batch)

    monkeypatch.setattr(TransformersSampler, "sample", dies_on_second_batch)
    with pytest.raises(Killed):
        generate(prompts, out, ModelConfig(), _sampling(), model=model, tokenizer=tokenizer)
    first = read_jsonl(out)
    assert [r["id"] for r in first] == ["10", "11"]
    with out.open("a") as f:  # a kill in the middle of a write leaves half a line
        f.write('{"id": "12", "prompt": [{"role": "us')

    calls.clear()
    kill[0] = False
    counts = generate(prompts, out, ModelConfig(), _sampling(), model=model, tokenizer=tokenizer)
    assert counts == {"prompts": 5, "generated": 3, "skipped": 2}
    assert calls == [["12", "13"], ["14"]]  # only the missing prompts were sampled
    rows = read_jsonl(out)
    assert sorted(r["id"] for r in rows) == ["10", "11", "12", "13", "14"]  # each prompt exactly once
    assert rows[:2] == first
    assert generate(prompts, out, ModelConfig(), _sampling(), model=model, tokenizer=tokenizer)["generated"] == 0


def test_cli_generate(tiny_model_dir, prompt_file, tmp_path):
    from flr.cli import main

    out = tmp_path / "gen"
    argv = ["generate", "--prompts", prompt_file, "--field-map", "prompt=turns,id=question_id", "--limit", "2"]
    argv += ["--k", "2", "--max-new-tokens", "3", "--model", str(tiny_model_dir), "--output-dir", str(out)]
    assert main(argv) == 0
    assert len(read_jsonl(out / "candidates.jsonl")) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["generated"] == 2 and summary["provenance"]["config"]["SamplingConfig"]["k"] == 2

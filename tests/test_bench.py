"""Smoke test of the bench scripts: a tiny random config on CPU, a few seconds. Nothing here depends on the clock:
speed-ups and MFU are checked for how they are computed, never for how fast a (possibly loaded) machine ran; the
bench scripts print their own speed checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
CONFIGS = Path(__file__).resolve().parents[1] / "bench" / "configs"

TINY = {
    "model_type": "llama",
    "vocab_size": 256,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}


@pytest.fixture(scope="module")
def bench_modules():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_generate
        import bench_scoring
        import compare_variants

        yield bench_scoring, bench_generate, compare_variants
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(autouse=True)
def _restore_threads():
    """The scripts' --threads sets torch's global thread count: put it back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def test_configs_have_real_shapes():
    """The architecture configs in bench/configs build (on the meta device) with their published parameter counts."""
    import torch

    sys.path.insert(0, str(BENCH))
    try:
        import _common
    finally:
        sys.path.remove(str(BENCH))
    expected = {"smollm2-135m": 134.5e6, "llama-3.2-1b": 1.236e9, "llama-3-8b": 8.03e9}
    for name, count in expected.items():
        model = _common.random_init_model(name, torch.device("meta"), torch.bfloat16)
        assert _common.num_params(model) == pytest.approx(count, rel=2e-3), name
    assert {p.stem for p in CONFIGS.glob("*.json")} >= set(expected)


def test_bench_scoring_grid(bench_modules, tiny_config, tmp_path):
    bench_scoring = bench_modules[0]
    out = tmp_path / "scoring.json"
    argv = ["--random-init", str(tiny_config), "--device", "cpu", "--grid", "quick", "--K", "3", "--P", "16"]
    assert bench_scoring.main(argv + ["--batch-size", "1", "2", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["mode"] == "synthetic" and result["params"] > 0
    assert result["peak"]["flops_per_s"] > 0 and result["peak"]["dtype"] == "float32"
    rows = result["rows"]
    cells = {(r["K"], r["P"], r["batch"]) for r in rows}
    assert {(3, 16, 1), (3, 16, 2), (60, 512, 2)} <= cells  # the ratio cell is always added
    for r in rows:
        assert r["fast_examples_per_s"] == pytest.approx(r["batch"] / r["fast_seconds_per_call"])
        assert r["useful_flops_per_example"] == pytest.approx(2 * result["params"] * r["tokens_per_example"])
        # MFU is the useful FLOP rate over the measured peak, whatever the machine's load
        assert r["mfu"] == pytest.approx(r["fast_tflops"] * 1e12 / result["peak"]["flops_per_s"])
    ratio = next(r for r in rows if (r["K"], r["P"]) == (60, 512))
    # the ratio cell is measured against the reference and agrees with it (its speed is bench_scoring's own check)
    assert ratio["speedup"] == pytest.approx(ratio["fast_examples_per_s"] / ratio["ref_examples_per_s"])
    assert ratio["max_abs_diff"] < 1e-4
    assert ratio["ideal_speedup"] == pytest.approx(60 * (512 + 12) / (512 + 60 * 12), rel=0.05)


def test_bench_scoring_real(bench_modules, tiny_model_dir, tmp_path):
    """--real on a few HH-RLHF-shaped conversations (a local file), with the tiny model and the default set."""
    bench_scoring = bench_modules[0]
    data = tmp_path / "hh.jsonl"
    rows = [
        {"chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in boiling water for nine minutes."},
        {"chosen": "\n\nHuman: hi\n\nAssistant: Hello!\n\nHuman: tell me a joke\n\nAssistant: Why did the cat sit?"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "real.json"
    argv = ["--real", "--model", str(tiny_model_dir), "--device", "cpu", "--data", str(data), "--threads", "1"]
    assert bench_scoring.main(argv + ["--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["conversations"] == 2 and result["followups"] == 60
    assert result["speedup"] == pytest.approx(result["fast_examples_per_s"] / result["ref_examples_per_s"])
    assert result["max_abs_diff"] < 1e-4


def test_parse_hh(bench_modules):
    bench_scoring = bench_modules[0]
    conv, response = bench_scoring._parse_hh("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d")
    assert conv == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert response == "d"


def test_bench_generate(bench_modules, tiny_config, tmp_path):
    bench_generate = bench_modules[1]
    out = tmp_path / "gen.json"
    argv = ["--random-init", str(tiny_config), "--device", "cpu", "--cell", "2", "3", "8", "5", "--threads", "1"]
    assert bench_generate.main(argv + ["--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["backend"] for r in result["rows"]] == ["transformers"]
    assert result["rows"][0]["new_tokens_per_s"] > 0
    # a random-init model on a CPU is never run through vLLM: the result says why it was skipped
    assert result["vllm"] in ("vLLM is not installed: skipped", "vLLM needs a real model spec on a GPU: skipped")


def test_compare_variants(bench_modules, tiny_config, tmp_path):
    compare_variants = bench_modules[2]
    out = tmp_path / "variants.json"
    variants = {"packed": {}, "prefix_cache": {"prefix_cache": True}, "ref": {"_reference": True, "batch_size": 4}}
    argv = ["--random-init", str(tiny_config), "--device", "cpu", "--K", "4", "--P", "12", "--batch", "2"]
    argv += ["--rounds", "1", "--threads", "1", "--variants", json.dumps(variants), "--out", str(out)]
    assert compare_variants.main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == list(variants)
    assert all(r["max_abs_diff_vs_first"] < 1e-4 for r in rows)

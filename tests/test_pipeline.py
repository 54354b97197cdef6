"""flr pipeline on the tiny model: generate -> mine -> train -> compare, outputs on disk, skipping, reruns."""

from __future__ import annotations

import json

import pytest
import yaml

from flr.cli import main
from flr.errors import FLRError
from flr.jobs.pipeline import Pipeline
from flr.records import read_jsonl

STAGES = ("generate", "mine", "train", "compare")


@pytest.fixture
def config(tmp_path, tiny_model_dir):
    prompts = tmp_path / "prompts.jsonl"
    topics = ("cats", "rain", "tea", "maps", "jazz")
    prompts.write_text(
        "".join(json.dumps({"id": f"q{i}", "text": f"Tell me about {t}."}) + "\n" for i, t in enumerate(topics))
    )
    model = str(tiny_model_dir)
    return {
        "output_dir": str(tmp_path / "run"),
        "policy": model,
        "method": "dpo",
        "device": "cpu",
        "generate": {"prompts": str(prompts), "field_map": "prompt=text", "limit": 3, "k": 3, "max_new_tokens": 6},
        "mine": {"model": model, "batch_size": 8, "unfinished": "keep"},  # 6 new tokens cut every answer off
        "train": {
            "max_steps": 1,
            "per_device_train_batch_size": 2,
            "learning_rate": "1e-3",  # YAML 1.1 reads this as a string: the pipeline converts it
            "lora_r": 4,
            "max_length": 128,
        },
        "compare": {"offset": 3, "limit": 2, "judge": "flr", "judge_model": model, "batch_size": 8},
    }


def _write(tmp_path, config):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_pipeline_end_to_end_then_skips_done_stages(tmp_path, config, capsys):
    path = _write(tmp_path, config)
    assert main(["pipeline", "--config", path]) == 0
    run = tmp_path / "run"
    assert len(read_jsonl(run / "generate" / "candidates.jsonl")) == 3
    pairs = read_jsonl(run / "mine" / "pairs.jsonl")
    mine = json.loads((run / "mine" / "summary.json").read_text())
    assert len(pairs) + sum(mine["stats"]["dropped"].values()) == 3
    assert (run / "train" / "adapter_config.json").exists() and (run / "train" / "training.png").exists()
    assert json.loads((run / "train" / "summary.json").read_text())["steps"] == 1
    rows = read_jsonl(run / "compare" / "compare.jsonl")
    assert [r["id"] for r in rows] == ["q3", "q4"]  # held-out prompts only
    assert all(r["preference"] in (0.0, 0.5, 1.0) for r in rows)
    assert (run / "compare" / "report.md").exists()
    report = json.loads((run / "pipeline.json").read_text())["stages"]
    assert [report[s]["status"] for s in STAGES] == ["ran"] * 4

    stamps = {s: (run / s / "summary.json").stat().st_mtime_ns for s in STAGES}
    capsys.readouterr()
    assert main(["pipeline", "--config", path]) == 0
    report = json.loads((run / "pipeline.json").read_text())["stages"]
    assert [report[s]["status"] for s in STAGES] == ["skipped"] * 4
    assert stamps == {s: (run / s / "summary.json").stat().st_mtime_ns for s in STAGES}
    assert "win rate" in capsys.readouterr().out

    assert main(["pipeline", "--config", path, "--stages", "compare"]) == 0  # named: rerun alone
    report = json.loads((run / "pipeline.json").read_text())["stages"]
    assert list(report) == ["compare"] and report["compare"]["status"] == "ran"
    assert all(stamps[s] == (run / s / "summary.json").stat().st_mtime_ns for s in ("generate", "mine", "train"))


def test_pipeline_refuses_overlapping_held_out_prompts(tmp_path, config):
    config["compare"]["offset"] = 2
    pipeline = Pipeline(config)
    with pytest.raises(FLRError, match="1 compare prompts are also training prompts"):
        pipeline.run()
    assert not pipeline.out.exists()  # refused before any stage ran


def test_pipeline_config_errors(config):
    with pytest.raises(FLRError, match="unknown keys"):
        Pipeline({**config, "train": {"max_stepz": 3}}).train()
    with pytest.raises(FLRError, match="top-level"):
        Pipeline({**config, "polcy": "x"})
    with pytest.raises(FLRError, match="needs the outputs of 'mine'"):
        Pipeline(config).run(["train"])
    _, args, model_args = Pipeline({**config, "train": {"learning-rate": "5e-5", "max_steps": "7"}})._train_configs()
    assert args.learning_rate == 5e-5 and args.max_steps == 7 and args.use_cpu  # top-level device: cpu
    assert model_args.model_name_or_path == config["policy"]  # the policy is train's base


@pytest.mark.parametrize("name", ["tiny-pipeline.yaml", "tiny-pipeline-long.yaml", "tiny-pipeline-band.yaml"])
def test_example_pipelines_parse(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / name
    pipeline = Pipeline(yaml.safe_load(path.read_text()))
    for stage in ("generate", "mine", "train", "compare"):
        getattr(pipeline, f"_{stage}_configs")()
    _, args, _ = pipeline._train_configs()
    assert type(args).__name__ == "DPOConfig" and args.learning_rate == 5e-5 and args.max_steps == 10

"""LoRA training through TRL on the tiny random Llama: DPO, KTO and feedback SFT steps, resume, summary, and the one
config path of ``flr train`` and the pipeline's ``train:`` section."""

from __future__ import annotations

import json

import pytest
import torch

from flr.errors import FLRError
from flr.kernel.chat import ChatRenderer
from flr.training import train
from flr.training.args import from_mapping
from flr.training.base import read_training_records
from flr.training.feedback import feedback_example

PAIRS = [
    {
        "prompt": [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
        "chosen": [{"role": "assistant", "content": f"It is {2 * i}."}],
        "rejected": [{"role": "assistant", "content": "I do not know, figure it out yourself."}],
        "chosen_score": 0.5,
        "rejected_score": -0.5,
    }
    for i in range(4)
]
UNPAIRED = [
    {"prompt": p["prompt"], "completion": p[key], "label": key == "chosen"}
    for p in PAIRS[:2]
    for key in ("chosen", "rejected")
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _lora_b(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}


def _configs(method, tmp_path, data, model, **kw):
    """``(data, trainer config, model)`` as ``flr train <method> --config`` builds them from these keys."""
    base = dict(
        data=data,
        model=str(model),
        dtype="float32",
        use_cpu=True,
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        lora_r=4,
        lora_alpha=8,
        max_length=128,
        save_steps=1,
    )
    return from_mapping(method, {**base, **kw}, "test")


def _step_changes_lora_b(method, rows, tmp_path, tiny_model_dir):
    from flr.training import feedback, policy

    data, args, model_args = _configs(method, tmp_path, _write(tmp_path / "data.jsonl", rows), tiny_model_dir)
    records = read_training_records(data, method)
    if method == "feedback":
        trainer = feedback.build_trainer(args, model_args, records)
    else:
        trainer = policy.build_trainer(method, args, model_args, records)
    before = _lora_b(trainer.model)
    assert before and all(torch.count_nonzero(b) == 0 for b in before.values())  # peft starts B at zero
    trainer.train()
    after = _lora_b(trainer.model)
    assert after.keys() == before.keys()
    assert any(not torch.equal(before[n], after[n]) for n in before)
    return trainer


def test_dpo_step_changes_lora_b(tmp_path, tiny_model_dir):
    trainer = _step_changes_lora_b("dpo", PAIRS, tmp_path, tiny_model_dir)
    assert trainer.ref_model is None  # the reference is the base with adapters off, not a copy
    logged = trainer.state.log_history[0]
    assert "rewards/margins" in logged and "rewards/accuracies" in logged


def test_kto_step_changes_lora_b(tmp_path, tiny_model_dir):
    trainer = _step_changes_lora_b("kto", UNPAIRED, tmp_path, tiny_model_dir)
    assert "kl" in trainer.state.log_history[0]


def test_kto_needs_batch_of_two(tmp_path, tiny_model_dir):
    data = _write(tmp_path / "d.jsonl", UNPAIRED)
    with pytest.raises(FLRError, match="at least 2"):  # when the configs are built, before the model loads
        _configs("kto", tmp_path, data, "/nonexistent/model", per_device_train_batch_size=1)
    configs = _configs("kto", tmp_path, data, "/nonexistent/model")
    configs[1].per_device_train_batch_size = 1  # configs built in Python: train() checks them too
    with pytest.raises(FLRError, match="at least 2"):
        train("kto", *configs)


def test_missing_columns_are_reported(tmp_path, tiny_model_dir):
    configs = _configs("dpo", tmp_path, _write(tmp_path / "d.jsonl", UNPAIRED), "/nonexistent/model")
    with pytest.raises(FLRError, match="field 'chosen': dpo needs"):
        train("dpo", *configs)


def test_feedback_labels_cover_only_the_feedback(tokenizer):
    renderer = ChatRenderer(tokenizer)
    prompt, response, feedback = "Name a prime number.", "Seven is prime.", "Great, that is exactly what I needed!"
    ex = feedback_example(renderer, prompt, response, feedback)
    ids, labels = ex["input_ids"], ex["labels"]
    assert len(ids) == len(labels)
    scored = [i for i, label in enumerate(labels) if label != -100]
    assert scored == list(range(scored[0], len(ids)))  # one contiguous span at the end
    assert [labels[i] for i in scored] == [ids[i] for i in scored]
    assert tokenizer.decode([ids[i] for i in scored]).strip() == feedback
    context = tokenizer.decode(ids[: scored[0]])
    assert context.endswith("<|im_start|>user\n") and response in context and prompt in context
    # the same tokens the FLR scorer reads for this follow-up
    item = renderer.followup_item(prompt, response, [feedback])
    start, end = item.spans[0]
    assert [ids[i] for i in scored] == item.continuations[0][start:end]


def test_feedback_sft_keeps_our_labels_and_trains(tmp_path, tiny_model_dir):
    rows = [
        {"prompt": "Name a prime.", "response": "Seven.", "feedback": "Perfect, thanks!"},
        {"prompt": "Say hi.", "response": "Goodbye.", "feedback": "That is not what I asked for."},
    ]
    trainer = _step_changes_lora_b("feedback", rows, tmp_path, tiny_model_dir)
    labels = trainer.train_dataset[0]["labels"]
    ids = trainer.train_dataset[0]["input_ids"]
    kept = [t for t, label in zip(ids, labels) if label != -100]
    assert trainer.processing_class.decode(kept).strip() in {r["feedback"] for r in rows}


def test_train_writes_adapter_summary_plot_and_resumes(tmp_path, tiny_model_dir):
    data = _write(tmp_path / "pairs.jsonl", PAIRS)
    first = train("dpo", *_configs("dpo", tmp_path, data, tiny_model_dir, max_steps=2))
    out = tmp_path / "out"
    assert first["steps"] == 2 and first["resumed_from"] is None
    assert (out / "adapter_config.json").exists() and (out / "training.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert [s for s, _ in summary["curves"]["loss"]] == [1, 2]
    assert "rewards/margins" in summary["final"]
    assert (out / "checkpoint-2" / "optimizer.pt").exists()
    second = train("dpo", *_configs("dpo", tmp_path, data, tiny_model_dir, max_steps=3))  # resumes checkpoint-2
    assert second["resumed_from"].endswith("checkpoint-2") and second["steps"] == 3
    assert [s for s, _ in second["curves"]["loss"]] == [1, 2, 3]  # the earlier log history came back too


def test_trained_adapter_loads_with_peft_alone(tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from flr.kernel.models import adapter_base

    data = _write(tmp_path / "pairs.jsonl", PAIRS)
    train("dpo", *_configs("dpo", tmp_path, data, tiny_model_dir, dtype="auto"))
    out = tmp_path / "out"
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(out))  # no flr involved
    assert model.peft_config["default"].r > 0
    assert adapter_base(out) == str(tiny_model_dir)


def test_feedback_adapter_raises_the_feedback_likelihood_flr_reads(tmp_path, tiny_model_dir):
    from flr.kernel.logprobs import continuation_logprobs
    from flr.kernel.models import load_model

    rows = [{"prompt": "Name a prime.", "response": "Seven.", "feedback": "Perfect, thanks a lot!"}] * 2
    configs = _configs("feedback", tmp_path, _write(tmp_path / "fb.jsonl", rows), tiny_model_dir, max_steps=3)
    train("feedback", *configs)
    out = configs[1].output_dir

    def feedback_logprob(spec):
        model, tokenizer = load_model(spec, device="cpu", dtype="float32")  # an adapter folder is a model spec
        item = ChatRenderer(tokenizer).followup_item(rows[0]["prompt"], rows[0]["response"], [rows[0]["feedback"]])
        return float(continuation_logprobs(model, [item])[0][0].mean())

    assert feedback_logprob(out) > feedback_logprob(str(tiny_model_dir)) + 0.1


TRL_DPO_YAML = """# the shape of TRL's documented `trl dpo --config dpo.yaml`, with a local model and file
model_name_or_path: {model}
dataset_name: {data}
dataset_train_split: train
learning_rate: 5.0e-6
num_train_epochs: 1
max_steps: 2
per_device_train_batch_size: 2
gradient_accumulation_steps: 1
gradient_checkpointing: true
logging_steps: 1
eval_strategy: "no"
output_dir: {out}
use_peft: true
lora_r: 8
lora_alpha: 16
lora_target_modules: all-linear
max_length: 128
report_to: none
env:
  FLR_TEST_FROM_YAML: "1"
"""


def test_trl_dpo_yaml_trains_unchanged_through_flr_train(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from flr.cli import main

    monkeypatch.delenv("FLR_TEST_FROM_YAML", raising=False)
    out = tmp_path / "dpo"
    config = tmp_path / "dpo.yaml"
    data = _write(tmp_path / "pairs.jsonl", PAIRS)
    config.write_text(TRL_DPO_YAML.format(model=tiny_model_dir, data=data, out=out))
    assert main(["train", "dpo", "--config", str(config), "--lora-r", "4", "--use-cpu"]) == 0  # flags win
    assert "2 steps" in capsys.readouterr().out
    import os

    assert os.environ["FLR_TEST_FROM_YAML"] == "1"
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 16
    summary = json.loads((out / "summary.json").read_text())
    assert summary["learning_rate"] == 5e-6 and summary["trainer_config"]["DPOConfig"]["gradient_checkpointing"]
    # flr's own keys still work in a YAML: aliases of TRL's fields
    flr_yaml = tmp_path / "flr.yaml"
    flr_yaml.write_text(f"data: {data}\nmodel: {tiny_model_dir}\nmax_steps: 1\noutput_dir: {tmp_path / 'b'}\n")
    assert main(["train", "dpo", "--config", str(flr_yaml), "--per-device-train-batch-size", "2"]) == 0
    assert (tmp_path / "b" / "adapter_config.json").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("not_a_field: 1\n")
    assert main(["train", "dpo", "--config", str(bad)]) == 2
    assert "not_a_field" in capsys.readouterr().err


SHARED_YAML = """# one file: `flr train dpo --config` takes it, and so does a pipeline's train: section
learning_rate: 3.0e-5
lr_scheduler_type: cosine
warmup_steps: 2
lora_target_modules: [q_proj, v_proj]
lora-r: 4                 # a flag's name works as a key too
beta: 0.2
ld_alpha: 0.5
max_steps: 7
per_device_train_batch_size: 2
seed: 0
"""


def test_one_yaml_is_a_train_config_file_and_a_pipeline_train_section(tmp_path, monkeypatch):
    import dataclasses

    import yaml

    import flr.training
    from flr.cli import main
    from flr.jobs.pipeline import Pipeline

    path = tmp_path / "train.yaml"
    path.write_text(SHARED_YAML)
    seen = {}

    def fake_train(method, data, args, model_args):
        seen[method] = (data, args, model_args)
        return {"steps": 0, "final": {}, "adapter": args.output_dir}

    monkeypatch.setattr(flr.training, "train", fake_train)
    assert main(["train", "dpo", "--config", str(path), "--output-dir", str(tmp_path / "p" / "train")]) == 0
    _, cli, cli_model = seen["dpo"]
    _, piped, piped_model = Pipeline(
        {"output_dir": str(tmp_path / "p"), "train": yaml.safe_load(SHARED_YAML)}
    )._train_configs()
    assert type(cli) is type(piped) and cli.to_dict() == piped.to_dict()  # every TRL field, flr's defaults included
    assert dataclasses.asdict(cli_model) == dataclasses.asdict(piped_model)
    assert (cli.learning_rate, cli.lr_scheduler_type, cli.warmup_steps) == (3e-5, "cosine", 2)
    assert (cli.beta, cli.ld_alpha, cli.max_steps, cli.seed, cli_model.lora_r) == (0.2, 0.5, 7, 0, 4)
    assert cli_model.lora_target_modules == ["q_proj", "v_proj"]
    # the comma form of a list, and keys neither takes: one error naming them all
    (_, _, model_args) = from_mapping("dpo", {"lora_target_modules": "q_proj,v_proj"}, "test")
    assert model_args.lora_target_modules == ["q_proj", "v_proj"]
    with pytest.raises(FLRError, match=r"unknown keys \['max_stepz', 'trainer_args'\]"):
        Pipeline({"train": {"trainer_args": "{}", "max_stepz": 1}})._train_configs()
    with pytest.raises(FLRError, match="ld-alpha must be between 0 and 1"):
        from_mapping("dpo", {"ld_alpha": 1.5}, "test")

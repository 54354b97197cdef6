"""flr train grpo on the tiny random Llama: two steps and a resume through the CLI, a reward that rises when length
is the whole reward, one config path for flags, YAML and the pipeline, bad inputs stopped before any model loads,
and the debiased reward function."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from flr.cli import main
from flr.errors import FLRError
from flr.training import train
from flr.training.args import from_mapping
from flr.training.grpo import DebiasedReward, RewardArguments

PROMPTS = [{"prompt": f"Tell me about topic {i}."} for i in range(8)]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _tiny_args(tiny_model_dir, data, out) -> list[str]:
    return [
        "train", "grpo", "--data", data, "--model", str(tiny_model_dir), "--dtype", "float32", "--use-cpu",
        "--output-dir", str(out), "--reward-scorer", "length", "--per-device-train-batch-size", "4",
        "--num-generations", "2", "--max-completion-length", "8", "--lora-r", "4", "--save-steps", "1",
    ]  # fmt: skip


def test_grpo_trains_two_steps_with_the_length_reward_and_resumes(tmp_path, tiny_model_dir, capsys):
    data, out = _write(tmp_path / "prompts.jsonl", PROMPTS), tmp_path / "grpo"
    assert main([*_tiny_args(tiny_model_dir, data, out), "--max-steps", "2"]) == 0
    assert "flr train grpo: 2 steps" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "grpo" and summary["steps"] == 2 and summary["examples"] == len(PROMPTS)
    assert [step for step, _ in summary["curves"]["reward"]] == [1, 2]
    assert "rewards/flr_length/mean" in summary["curves"] and summary["final"]["reward"] > 0
    assert summary["reward"]["reward_scorer"] == "length" and "GRPOConfig" in summary["trainer_config"]
    assert (out / "adapter_config.json").exists() and (out / "training.png").exists()
    # a longer run in the same folder resumes from checkpoint-2 and trains one more step
    assert main([*_tiny_args(tiny_model_dir, data, out), "--max-steps", "3"]) == 0
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["steps"] == 3 and resumed["resumed_from"].endswith("checkpoint-2")
    # rerunning the finished run trains nothing more (max_steps ends inside the epoch) and keeps the adapter
    from safetensors.torch import load_file

    before = load_file(str(out / "adapter_model.safetensors"))
    assert main([*_tiny_args(tiny_model_dir, data, out), "--max-steps", "3"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["steps"] == 3 and again["resumed_from"].endswith("checkpoint-3") and again["train_loss"] is None
    assert not (out / "checkpoint-4").exists()
    after = load_file(str(out / "adapter_model.safetensors"))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.fixture
def early_stopper(tmp_path, tiny_model_dir):
    """The tiny Llama with its end-of-turn logit raised along the mean direction of its last hidden states: it ends
    most answers within a few tokens, so GRPO with the length reward has one direction to learn (go on)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]["prompt"]}], add_generation_prompt=True, return_dict=True
    )["input_ids"]
    torch.manual_seed(0)
    ids = torch.tensor([prompt] * 8)
    ids = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0, max_new_tokens=8)
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states[-1][:, len(prompt) - 1 : -1]
    direction = hidden.reshape(-1, hidden.shape[-1]).mean(0)
    model.config.tie_word_embeddings = False  # the prompt's own end-of-turn tokens keep their embedding
    model.lm_head.weight = torch.nn.Parameter(model.model.embed_tokens.weight.detach().clone())
    with torch.no_grad():  # a logit about 9 against the ~11 of the log-sum of 49k near-uniform others: p ~ 0.1-0.2
        model.lm_head.weight[tokenizer.eos_token_id] = direction / direction.norm() * 8.0
    path = tmp_path / "early-stopper"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_the_reward_rises_when_length_is_the_whole_reward(tmp_path, early_stopper):
    configs = from_mapping(
        "grpo",
        dict(
            data=_write(tmp_path / "prompts.jsonl", PROMPTS), model=str(early_stopper), dtype="float32", use_cpu=True,
            output_dir=str(tmp_path / "grpo"), reward_scorer="length", max_steps=4, learning_rate=2e-2,
            lr_scheduler_type="constant", per_device_train_batch_size=8, num_generations=4, max_completion_length=8,
            lora_r=8, lora_alpha=16, save_steps=1000, seed=0,
        ),
        "test",
    )  # fmt: skip
    curves = train("grpo", *configs)["curves"]
    rewards = [value for _, value in curves["reward"]]
    lengths = [value for _, value in curves["completions/mean_length"]]
    assert len(rewards) == 4
    assert sum(rewards[-2:]) / 2 > rewards[0] and sum(lengths[-2:]) / 2 > lengths[0]


GRPO_YAML = """# TRL's GRPOConfig keys, flr's reward keys and flr score's scorer keys, in one file
learning_rate: 3.0e-5
num_generations: 4
per_device_train_batch_size: 8
max_completion_length: 96
temperature: 0.8
scale_rewards: none
loss_type: dr_grpo
beta: 0.01
lora-r: 4
reward_scorer: flr
reward_model: default
reward_length_debias: prompt
followups: selected
contrast: twin_all
statistic: sum
max_steps: 3
"""


def test_yaml_flags_and_pipeline_section_build_the_same_grpo_configs(tmp_path, monkeypatch):
    import yaml

    import flr.training
    from flr.jobs.pipeline import Pipeline

    path = tmp_path / "grpo.yaml"
    path.write_text(GRPO_YAML)
    seen = []
    monkeypatch.setattr(
        flr.training, "train", lambda *configs: seen.append(configs) or {"steps": 0, "final": {}, "adapter": out}
    )
    out = str(tmp_path / "p" / "train")
    assert main(["train", "grpo", "--config", str(path), "--output-dir", out]) == 0
    flags = [
        "--learning-rate", "3e-5", "--num-generations", "4", "--per-device-train-batch-size", "8",
        "--max-completion-length", "96", "--temperature", "0.8", "--scale-rewards", "none", "--loss-type", "dr_grpo",
        "--beta", "0.01", "--lora-r", "4", "--reward-scorer", "flr", "--reward-model", "default",
        "--reward-length-debias", "prompt", "--followups", "selected", "--contrast", "twin_all", "--statistic", "sum",
        "--max-steps", "3",
    ]  # fmt: skip
    assert main(["train", "grpo", *flags, "--output-dir", out]) == 0
    mapped = from_mapping("grpo", {**yaml.safe_load(GRPO_YAML), "output_dir": out}, "test")
    piped = Pipeline({"output_dir": str(tmp_path / "p"), "method": "grpo", "train": yaml.safe_load(GRPO_YAML)})
    from_pipeline = piped._train_configs()
    (method, *from_yaml), (_, *from_flags) = seen
    assert method == "grpo"
    for built in (from_flags, list(mapped), list(from_pipeline)):
        assert built[1].to_dict() == from_yaml[1].to_dict()  # every GRPOConfig field, flr's defaults included
        assert dataclasses.asdict(built[2]) == dataclasses.asdict(from_yaml[2])
        assert dataclasses.asdict(built[3]) == dataclasses.asdict(from_yaml[3])
    args, reward = from_yaml[1], from_yaml[3]
    assert (args.scale_rewards, args.loss_type, args.beta, args.temperature) == ("none", "dr_grpo", 0.01, 0.8)
    assert (args.generation_batch_size, args.max_completion_length, args.learning_rate) == (8, 96, 3e-5)
    assert isinstance(reward, RewardArguments) and reward.scorer_config().contrast == "twin_all"
    assert (reward.reward_length_debias, reward.followups, reward.statistic) == ("prompt", "selected", "sum")
    # flr's defaults where the YAML says nothing: a CPU-sized GRPO
    _, defaults, _, reward = from_mapping("grpo", {}, "test")
    assert (defaults.num_generations, defaults.per_device_train_batch_size, defaults.max_completion_length) == (
        4,
        8,
        128,
    )
    assert (defaults.scale_rewards, reward.reward_scorer, reward.reward_model) == ("group", "flr", "default")
    # the pipeline's train section may name the method itself
    assert Pipeline({"train": {"method": "grpo"}}).stages == ("train", "compare")


@pytest.fixture
def no_model(monkeypatch):
    """Loading any model fails the test: every check must come before."""
    import flr.kernel.models

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was reported")

    monkeypatch.setattr(flr.kernel.models, "load_model", forbidden)


@pytest.mark.parametrize(
    ("rows", "keys", "match"),
    [
        (PROMPTS, {"reward_scorer": "foo"}, "unknown --reward-scorer 'foo'"),
        (PROMPTS, {"reward_scorer": ""}, "unknown --reward-scorer ''"),
        (PROMPTS, {"per_device_train_batch_size": 6}, r"generation_batch_size \(6\) must be divisible by num_gen"),
        (PROMPTS, {"num_generations": 1}, "at least 2 generations"),
        (PROMPTS, {"followups": "no-such-set.yaml"}, "no-such-set.yaml"),
        (PROMPTS, {"reward_length_debias": "batch", "reward_style_debias": "batch"}, "--reward-length-debias"),
        ([{"question": "q"}], {}, r"prompts.jsonl:1: field 'prompt': grpo needs \{prompt\}"),
        ([PROMPTS[0], {"prompt": ""}], {}, r"prompts.jsonl:2: field 'prompt'"),
        ([PROMPTS[0], PROMPTS[1], {"prompt": None}], {}, r"prompts.jsonl:3: field 'prompt': missing"),
    ],
)
def test_bad_inputs_stop_before_any_model_loads(tmp_path, no_model, rows, keys, match):
    data = _write(tmp_path / "prompts.jsonl", rows)
    with pytest.raises(FLRError, match=match):
        configs = from_mapping("grpo", {"data": data, "use_cpu": True, **keys}, "test")
        train("grpo", *configs)


def test_pipeline_grpo_has_train_and_compare_only(tmp_path):
    from flr.jobs.pipeline import Pipeline

    config = {"method": "grpo", "output_dir": str(tmp_path), "generate": {"prompts": "p.jsonl", "k": 4}}
    with pytest.raises(FLRError, match=r"only its prompts are read, not \['k'\]"):
        Pipeline(config)._train_configs()
    with pytest.raises(FLRError, match="method grpo has no generate or mine stage"):
        Pipeline({"method": "grpo"}).run("generate,mine,train")
    with pytest.raises(FLRError, match="method 'dpo' but the train section says 'grpo'"):
        Pipeline({"method": "dpo", "train": {"method": "grpo"}})


def test_debiased_reward_centres_each_prompt_group_and_logs_the_raw_mean():
    def length(prompts, completions, **kwargs):
        return [float(len(c[0]["content"])) + (5.0 if "!" in c[0]["content"] else 0.0) for c in completions]

    length.__name__ = "flr_length"
    prompts = [[{"role": "user", "content": q}] for q in ("a", "a", "a", "a", "b", "b", "b", "b")]
    texts = ["x", "xx!", "xxxx", "xxxxxxxx", "y" * 10, "y" * 20, "y" * 40, "y" * 80 + "!"]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    logged = {}
    reward = DebiasedReward(length, length="prompt")
    values = reward(prompts, completions, log_metric=logged.__setitem__)
    assert reward.__name__ == "flr_length"
    assert abs(sum(values[:4])) < 1e-9 and abs(sum(values[4:])) < 1e-9  # each group's debiased rewards average 0
    assert logged["rewards/flr_length/raw_mean"] == pytest.approx(sum(length(prompts, completions)) / 8)
    raw = length(prompts, completions)
    assert values != raw


def test_pipeline_grpo_trains_on_the_generate_sections_prompts_then_compares(tmp_path, tiny_model_dir):
    from flr.jobs.pipeline import Pipeline, headline
    from flr.records import read_jsonl

    prompts = _write(tmp_path / "q.jsonl", [{"id": f"q{i}", "turns": [f"Tell me about topic {i}."]} for i in range(6)])
    model = str(tiny_model_dir)
    config = {
        "output_dir": str(tmp_path / "run"), "policy": model, "device": "cpu", "dtype": "float32",
        "generate": {"prompts": prompts, "field_map": "prompt=turns", "offset": 1, "limit": 2},
        "train": {
            "method": "grpo", "reward_scorer": "length", "max_steps": 1, "per_device_train_batch_size": 4,
            "num_generations": 2, "max_completion_length": 6, "lora_r": 4,
        },
        "compare": {"offset": 3, "limit": 2, "max_new_tokens": 6, "judge": "length", "batch_size": 8},
    }  # fmt: skip
    report = Pipeline(config).run()
    assert list(report) == ["train", "compare"]
    trained = read_jsonl(tmp_path / "run" / "train" / "prompts.jsonl")  # offset and limit of the generate section
    assert [row["id"] for row in trained] == ["q1", "q2"]
    assert trained[0]["prompt"] == [{"role": "user", "content": "Tell me about topic 1."}]
    assert report["train"]["summary"]["steps"] == 1 and "reward" in report["train"]["summary"]["final"]
    assert any(line.startswith("train") and "reward" in line for line in headline(report))
    with pytest.raises(FLRError, match="compare prompts are also training prompts"):
        Pipeline({**config, "compare": {"offset": 2, "limit": 2}}).run(["compare"])

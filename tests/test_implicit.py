"""The implicit reward of a tuned policy (``implicit:<policy>[@<reference>]``): zero when the policy is its
reference, up for the side DPO trained it to prefer, and bad specs refused in one line before a model loads."""

from __future__ import annotations

import json

import pytest

from flr.errors import FLRError
from flr.scorers import build_scorer, build_scorers, is_scorer_name
from flr.scorers.implicit import check_spec, parse_spec
from flr.training import train
from flr.training.args import from_mapping

CHOSEN, REJECTED = "Yes, gladly: here it is.", "No. Figure it out yourself."
PAIRS = [
    {"prompt": f"Question {i}: can you help me with task {i}?", "chosen": CHOSEN, "rejected": REJECTED}
    for i in range(8)
]


def _records(prompts=("Can you help me with something?", "Tell me a fact.")):
    return [{"prompt": p, "response": r} for p in prompts for r in (CHOSEN, REJECTED)]


def _adapter(tmp_path, tiny_model_dir, steps: int):
    """A LoRA DPO adapter of the tiny model trained ``steps`` steps on the synthetic pairs (0: peft's zero init)."""
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    configs = from_mapping(
        "dpo",
        dict(
            data=str(data), model=str(tiny_model_dir), dtype="float32", use_cpu=True,
            output_dir=str(tmp_path / f"dpo-{steps}"), max_steps=max(steps, 1), learning_rate=5e-2 if steps else 0.0,
            per_device_train_batch_size=4, lora_r=4, lora_alpha=8, max_length=128, save_steps=1000, seed=0,
        ),
        "test",
    )  # fmt: skip
    train("dpo", *configs)
    return tmp_path / f"dpo-{steps}"


def test_spec_parsing():
    assert parse_spec("implicit:runs/dpo") == ("runs/dpo", None)
    assert parse_spec("implicit:runs/dpo@default") == ("runs/dpo", "default")
    assert is_scorer_name("implicit:runs/dpo") and not is_scorer_name("implicit:")


def test_policy_equal_to_reference_scores_zero(tiny_model_dir):
    spec = f"implicit:{tiny_model_dir}@{tiny_model_dir}"
    scorer = build_scorer(spec, model_config=_cpu())
    results = scorer.score(_records())
    assert [r.reward for r in results] == [0.0] * 4
    assert all(r.details[0]["policy_logprob"] < 0 for r in results)  # real log-probs, equal on both sides


def test_untrained_adapter_scores_zero(tmp_path, tiny_model_dir):
    adapter = _adapter(tmp_path, tiny_model_dir, steps=0)  # learning rate 0: LoRA's B stays zero
    scorer = build_scorer(f"implicit:{adapter}", model_config=_cpu())
    assert scorer.reference is None  # the reference is the adapter switched off: one model loaded
    assert all(abs(r.reward) < 1e-6 for r in scorer.score(_records()))


def test_dpo_moves_the_implicit_reward_toward_the_chosen_side(tmp_path, tiny_model_dir):
    adapter = _adapter(tmp_path, tiny_model_dir, steps=6)
    scorer = build_scorer(f"implicit:{adapter}", model_config=_cpu())
    assert scorer.beta == pytest.approx(0.1)  # read from the adapter's DPO config
    held_out = scorer.score(_records(("Can you help me plan a trip?", "Please explain tides.")))
    chosen, rejected = [r.reward for r in held_out[0::2]], [r.reward for r in held_out[1::2]]
    assert all(c > 0 for c in chosen) and all(r < 0 for r in rejected)
    assert all(c > r for c, r in zip(chosen, rejected))


def test_bad_specs_fail_before_a_model_loads(tmp_path, tiny_model_dir, monkeypatch):
    import flr.kernel.models as models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FLRError, match="is not a policy"):
        build_scorers([f"implicit:{empty}"], _cpu())
    with pytest.raises(FLRError, match="full model, not an adapter"):
        check_spec(f"implicit:{tiny_model_dir}")
    with pytest.raises(FLRError, match="not found"):
        check_spec(f"implicit:{tmp_path / 'missing'}")
    other = tmp_path / "other-tokenizer"
    other.mkdir()
    (other / "config.json").write_text("{}")
    _other_tokenizer().save_pretrained(other)
    with pytest.raises(FLRError, match="different tokenizers"):
        check_spec(f"implicit:{other}@{tiny_model_dir}")


def _other_tokenizer():
    """A word-level tokenizer of three words: not the policy's."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[UNK]")


def _cpu():
    from flr.kernel.models import ModelConfig

    return ModelConfig(device="cpu", dtype="float32")


def test_arms_from_one_base_share_the_reference_through_the_cache(tmp_path, tiny_model_dir):
    from flr.scorers.cache import ScoreCache, score_with_cache, text_key

    first = build_scorer(f"implicit:{_adapter(tmp_path, tiny_model_dir, steps=0)}", model_config=_cpu())
    second = build_scorer(f"implicit:{_adapter(tmp_path, tiny_model_dir, steps=2)}", model_config=_cpu())
    assert first.reference_fingerprint() == second.reference_fingerprint()  # same base, same settings
    requests = [(text_key(r["prompt"], r["response"]), (r["prompt"], r["response"])) for r in _records()]
    cache = ScoreCache(tmp_path / "cache.sqlite")
    score_with_cache(first, requests, cache, "first")

    def no_reference():
        raise AssertionError("the reference was computed again")

    second.model.disable_adapter = no_reference
    scores = score_with_cache(second, requests, cache, "second")
    plain = build_scorer(second.name, model_config=_cpu()).score(_records())  # no cache: computed afresh
    assert [scores[k].reward for k, _ in requests] == pytest.approx([r.reward for r in plain], abs=1e-5)
    cache.close()

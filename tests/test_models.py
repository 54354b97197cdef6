"""Model specs: dtype/device resolution, PEFT adapter folders, errors, and (slow) the embedded model itself."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from flr.errors import FLRError
from flr.kernel.models import (
    EMBEDDED_NAME,
    ModelConfig,
    is_adapter_dir,
    load_model,
    model_name,
    resolve_device,
    resolve_dtype,
    resolve_spec,
)

RECORDS = [
    {"prompt": "What is the capital of France?", "response": "Paris."},
    {"prompt": "Say something nice.", "response": "You are doing great work."},
]


# -- dtype and device ------------------------------------------------------------------------------------


def test_resolve_dtype():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_dtype("auto", cpu) is torch.float32
    assert resolve_dtype("auto", cuda) is torch.bfloat16
    assert resolve_dtype("auto") is torch.float32
    assert resolve_dtype("float32") is torch.float32
    assert resolve_dtype("bfloat16", cpu) is torch.bfloat16
    assert resolve_dtype("float16") is torch.float16
    assert resolve_dtype(torch.float64) is torch.float64
    for bad in ("fp32x", "Tensor", "nn", ""):
        with pytest.raises(FLRError, match="unknown dtype"):
            resolve_dtype(bad)


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


def test_model_name():
    assert model_name("default") == EMBEDDED_NAME
    assert model_name("org/model/") == "org/model"


# -- specs and errors ------------------------------------------------------------------------------------


def test_missing_local_paths(tmp_path):
    for spec in (str(tmp_path / "nope"), "./no-such-model-dir", "~/no-such-model-dir"):
        with pytest.raises(FLRError, match="not found"):
            load_model(spec, device="cpu")
    with pytest.raises(FLRError, match="GGUF file not found"):
        load_model(str(tmp_path / "model.gguf"), device="cpu")


def test_folder_without_a_model(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FLRError, match="cannot load model"):
        load_model(str(empty), device="cpu")


def test_flash_attention_is_refused(tiny_model_dir):
    with pytest.raises(FLRError, match="flash_attention_2"):
        load_model(str(tiny_model_dir), device="cpu", attn_implementation="flash_attention_2")


def test_load_local_folder(tiny_model_dir):
    model, tokenizer = load_model(ModelConfig(model=str(tiny_model_dir), device="cpu", dtype="bfloat16"))
    assert not model.training
    assert next(model.parameters()).dtype is torch.bfloat16
    assert tokenizer.pad_token is not None and tokenizer.is_fast
    assert resolve_spec(str(tiny_model_dir)) == str(tiny_model_dir)
    assert resolve_spec("org/some-model") == "org/some-model"  # a Hub id is left alone


def test_gguf_export_folder_is_stable_across_processes(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    code = (
        "import sys, flr.kernel.models as m\n"
        "m.export_gguf = lambda src, out: (out.mkdir(parents=True), (out / 'config.json').write_text('{}'))\n"
        "print(m.resolve_spec(sys.argv[1]))\n"
    )
    folders = set()
    for seed in ("1", "2"):
        env = {**os.environ, "FLR_CACHE": str(tmp_path / "cache"), "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", code, str(gguf)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        folders.add(done.stdout.strip())
    assert len(folders) == 1, folders


# -- PEFT adapters ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    """Two LoRA adapter folders on the tiny model: as initialised (lora_B = 0) and with lora_B perturbed."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    peft_model.save_pretrained(root / "zero")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(root / "perturbed")
    return root / "zero", root / "perturbed"


def test_adapter_folder_loads_as_base_plus_adapter(tiny, tiny_model_dir, adapters):
    from peft import PeftModel

    from flr.scorers import FollowUpReward

    zero, perturbed = adapters
    assert is_adapter_dir(str(perturbed)) and not is_adapter_dir(str(tiny_model_dir))
    config = json.loads((perturbed / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)

    base_model, tokenizer = tiny
    base = [r.reward for r in FollowUpReward(base_model, tokenizer).score(RECORDS)]
    rewards = {}
    for name, folder in (("zero", zero), ("perturbed", perturbed)):
        model, tok = load_model(str(folder), device="cpu", dtype="float32")
        assert isinstance(model, PeftModel) and not model.training
        assert tok.chat_template == tokenizer.chat_template  # the base model's tokenizer
        rewards[name] = [r.reward for r in FollowUpReward(model, tok).score(RECORDS)]
    assert rewards["zero"] == pytest.approx(base, abs=1e-5)  # lora_B = 0: the adapter is a no-op
    assert all(abs(a - b) > 1e-3 for a, b in zip(rewards["perturbed"], base))


def test_adapter_packed_equals_reference(tokenizer, adapters):
    from flr.kernel.chat import ChatRenderer
    from flr.kernel.logprobs import packed_logprobs, reference_logprobs

    model, _ = load_model(str(adapters[1]), device="cpu", dtype="float32")
    renderer = ChatRenderer(tokenizer)
    items = [renderer.followup_item(r["prompt"], r["response"], ["Thanks!", "What? No.", "ok"]) for r in RECORDS]
    for fast, ref in zip(packed_logprobs(model, items), reference_logprobs(model, items, batch_size=3)):
        for a, b in zip(fast, ref):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


# -- the embedded model (slow) ---------------------------------------------------------------------------


@pytest.mark.slow
def test_embedded_default_model(request):
    """The exported default model == the GGUF it came from; FLR on it: finite, exact, and sensible."""
    if os.environ.get("FLR_SKIP_SLOW") == "1":
        pytest.skip("FLR_SKIP_SLOW=1")
    from transformers import AutoModelForCausalLM

    from flr.kernel.chat import ChatRenderer
    from flr.kernel.logprobs import packed_logprobs, reference_logprobs
    from flr.kernel.models import embedded_gguf_path
    from flr.scorers import FollowUpReward, ScorerConfig

    model, tokenizer = load_model("default", device="cpu", dtype="float32")
    gguf = embedded_gguf_path()
    from_gguf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    from_gguf.eval()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(ids + "The capital of France is Paris.", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        a = model(**ids).logits
        b = from_gguf(**ids).logits
    assert a.shape == b.shape and a.shape[1] > 20
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    del from_gguf

    conversations = [
        ("What is the capital of France?", "The capital of France is Paris."),
        (
            [
                {"role": "user", "content": "Can you help me plan a trip?"},
                {"role": "assistant", "content": "Of course! Where would you like to go, and for how long?"},
                {"role": "user", "content": "Japan, for a week in April."},
            ],
            "April is cherry blossom season. Spend three days in Tokyo, two in Kyoto, one in Nara and one in Osaka.",
        ),
    ]
    renderer = ChatRenderer(tokenizer)
    followups = ["Thanks, that's really helpful!", "That's not what I asked.", "I'm confused.", "Perfect."]
    items = [renderer.followup_item(c, r, followups) for c, r in conversations]
    items += [renderer.response_item(c, r) for c, r in conversations]
    for fast, ref in zip(packed_logprobs(model, items), reference_logprobs(model, items)):
        for x, y in zip(fast, ref):
            assert torch.isfinite(x).all()
            torch.testing.assert_close(x, y, atol=1e-4, rtol=0)

    # Checked by hand on this model: a fitting answer beats an irrelevant one (margins ~0.09-0.10).
    pairs = [
        ("What is the capital of France?", "The capital of France is Paris."),
        (
            "How do I reverse a list in Python?",
            "Use slicing: my_list[::-1] returns a reversed copy, or call my_list.reverse() to reverse it in place.",
        ),
        ("What is 12 times 11?", "12 times 11 is 132."),
    ]
    # the paper's 60 follow-ups: the 12 of `selected` rank the Python pair the other way (-0.895 vs -0.878)
    scorer = FollowUpReward(model, tokenizer, ScorerConfig(followups="paper"))
    records = [{"prompt": p, "response": r} for p, good in pairs for r in (good, "I like turtles.")]
    results = scorer.score(records)
    assert all(math.isfinite(r.reward) for r in results)
    for i in range(len(pairs)):
        assert results[2 * i].reward > results[2 * i + 1].reward + 0.03, pairs[i][0]

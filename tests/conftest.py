"""Shared fixtures: a tiny random Llama with the embedded SmolLM2 tokenizer (fast, offline)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tokenizer():
    from flr.kernel.models import default_model_dir, load_tokenizer

    return load_tokenizer(str(default_model_dir()))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """A saved tiny random Llama folder (hidden 64, 2 layers) usable as a model spec."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    # Larger-than-default init so that log-probs vary between tokens and comparisons are meaningful.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    """(model, tokenizer) of the tiny random Llama, fp32, eval mode."""
    from flr.kernel.models import load_model

    return load_model(str(tiny_model_dir), device="cpu", dtype="float32")


class CountingScorer:
    """Wraps a scorer and counts the records it actually scores (what a cached re-run must not do)."""

    def __init__(self, scorer):
        self.scorer, self.count, self.name = scorer, 0, scorer.name

    def iter_score(self, records, chunk_size=None):
        self.count += len(records)
        yield from self.scorer.iter_score(records, chunk_size=chunk_size)

    def attach_cache(self, cache):
        self.scorer.attach_cache(cache)

    def fingerprint(self):
        return self.scorer.fingerprint()

    def describe(self):
        return self.scorer.describe()


@pytest.fixture
def counting():
    """The class that wraps a scorer and counts what it scores."""
    return CountingScorer

"""Judges that are not the reward a policy was tuned on: disjoint follow-up halves, surface drift and the reference
likelihood in ``flr compare``, and the random scorer (the chance arm of the close-the-loop experiment)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flr.errors import FLRError
from flr.eval.metrics import paired_difference, surface_drift
from flr.followups import load_followups, split_followups
from flr.jobs.compare import CompareConfig, run
from flr.jobs.followups import SplitConfig, run_split
from flr.jobs.generate import PromptConfig, SamplingConfig
from flr.scorers import ScorerConfig, build_scorer


def test_split_halves_are_disjoint_cover_the_set_and_keep_every_category():
    full = load_followups("paper")
    a, b = split_followups(full, seed=0)
    texts = lambda s: {t for _, _, t in s.utterances}  # noqa: E731
    assert not texts(a) & texts(b) and texts(a) | texts(b) == texts(full)
    for half in (a, b):
        assert list(half.categories) == list(full.categories)
        assert all(c.positive and c.negative for c in half.categories.values())
    assert split_followups(full, seed=0) == (a, b)  # seeded
    assert split_followups(full, seed=1)[0] != a  # and the seed matters


def test_split_command_writes_loadable_halves(tmp_path):
    summary = run_split(SplitConfig(output_dir=str(tmp_path), seed=0), ScorerConfig(followups="paper"))
    a, b = (load_followups(summary["halves"][t]["path"]) for t in "ab")
    assert len(a.utterances) + len(b.utterances) == len(load_followups("paper").select(None).utterances) == 60
    assert a.fingerprint() == summary["halves"]["a"]["fingerprint"]
    with pytest.raises(FLRError, match="fewer than two"):
        split_followups(_tiny_set(), 0)


def _tiny_set():
    full = load_followups("paper")
    cat = next(iter(full.categories.values()))
    from dataclasses import replace

    return replace(
        full, categories={cat.name: replace(cat, negative=cat.negative[:1])}, default_categories=(cat.name,)
    )


def test_paired_difference_and_surface_drift():
    d = paired_difference([3.0, 5.0, 7.0], [1.0, 1.0, 1.0], n_resamples=200)
    assert d["difference"] == pytest.approx(4.0) and d["ci"][0] <= 4.0 <= d["ci"][1]
    assert d["candidate_higher"] == 1.0
    base = ["The answer is 4.", "Paris.", "Use a loop."]
    tuned = ["Great question! The answer is 4.", "Great question! Paris.", "Use a loop. I hope this helps!"]
    drift = surface_drift(tuned, base, seed=0)
    assert drift["opener"]["difference"] == pytest.approx(2 / 3) and drift["opener"]["base"] == 0.0
    assert drift["closer"]["candidate"] == pytest.approx(1 / 3)
    assert drift["length"]["difference"] == pytest.approx(np.mean([len(t) - len(b) for t, b in zip(tuned, base)]))


def test_random_scorer_is_stable_and_uniform():
    scorer = build_scorer("random")
    records = [{"prompt": "p", "response": f"answer {i}"} for i in range(400)]
    first = [r.reward for r in scorer.score(records)]
    assert first == [r.reward for r in scorer.score(records)]
    assert all(0 <= x < 1 for x in first) and 0.4 < np.mean(first) < 0.6


def test_compare_reports_reference_likelihood_and_drift(tmp_path, tiny_model_dir):
    prompts = tmp_path / "p.jsonl"
    rows = [
        {"prompt": f"Say something about {w}.", "reference": f"Here is a fact about {w}."} for w in ("cats", "tea")
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = CompareConfig(
        base=str(tiny_model_dir), candidate=str(tiny_model_dir), judge="length", output_dir=str(tmp_path / "c"),
        device="cpu", bootstrap=50, cache=str(tmp_path / "cache.sqlite"), reference_field="reference",
    )  # fmt: skip
    sampling = SamplingConfig(k=1, temperature=0.0, max_new_tokens=5, seed=0)
    summary = run(cfg, PromptConfig(prompts=str(prompts)), sampling, progress=False)
    ref = summary["reference_likelihood"]
    assert ref["n"] == 2 and ref["base"] < 0 and ref["difference"] == pytest.approx(0.0, abs=1e-5)  # same model
    assert summary["drift"]["length"]["difference"] == 0.0
    per_prompt = [json.loads(line) for line in (tmp_path / "c" / "reference_likelihood.jsonl").open()]
    assert [r["id"] for r in per_prompt] == ["0", "1"] and per_prompt[0]["base"] == pytest.approx(
        per_prompt[0]["candidate"]
    )
    report = (tmp_path / "c" / "report.md").read_text()
    assert "Reference likelihood" in report and "Surface drift" in report
    # a prompt without its reference: one line naming file, line and field, before any model loads
    prompts.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"prompt": "No reference here."}) + "\n")
    cfg.output_dir = str(tmp_path / "c2")
    cfg.base = cfg.candidate = str(tmp_path / "no-model")
    with pytest.raises(FLRError, match=r"p.jsonl:2: field 'reference'"):
        run(cfg, PromptConfig(prompts=str(prompts)), sampling, progress=False)

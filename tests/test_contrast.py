"""Contrastive FLR (``--contrast twin``): the twin keeps a response's surface and destroys its meaning, and the
contrastive reward is FLR of the response minus FLR of its twin."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from flr.errors import FLRError
from flr.perturbations import PERTURBATIONS, contrast_edit
from flr.scorers import ScorerConfig, build_scorer

TWIN = PERTURBATIONS["twin"]
PROMPT = "Tell me about Paris."
TEXTS = [
    "Paris is the capital of France. It has been the seat of power since 987. The city lies on the Seine.\n\n"
    "It is also the largest city of the country, with about two million people.",
    "## Steps\n\n1. Preheat the oven to 180 degrees.\n2. Mix the flour, sugar and eggs in a large bowl.\n"
    "3. Pour the batter into a tin and bake for 25 minutes.\n\nServe it warm with cream.",
    "Photosynthesis turns light into chemical energy. Plants take in carbon dioxide and water. Chlorophyll absorbs "
    "the light. Oxygen is released as a by-product of the reaction.",
    "A good night's sleep matters. Adults need seven to nine hours. Keep a fixed schedule, avoid screens late in "
    "the evening and keep the bedroom dark and cool.",
]


def _first_last(text):
    units = [u for u in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if u.strip()]
    return units[0], units[-1]


@pytest.mark.parametrize("text", TEXTS)
def test_the_twin_keeps_characters_lines_first_and_last_sentence_and_is_deterministic(text):
    twin = TWIN(PROMPT, text)
    assert twin is not None and twin != text
    assert len(twin) == len(text)
    lines, twin_lines = text.split("\n"), twin.split("\n")
    assert len(lines) == len(twin_lines)
    for a, b in zip(lines, twin_lines):
        assert Counter(a) == Counter(b)  # the same characters in the same lines
    first, last = _first_last(text)
    assert twin.lstrip().startswith(first.lstrip("#1. ")) or first in twin
    assert twin.rstrip().endswith(last)
    assert TWIN(PROMPT, text) == twin  # seeded by the text: the cache finds it again


@pytest.mark.parametrize("name", ["twin", "twin_all"])
@pytest.mark.parametrize("edit", ["opener", "closer", "bait_question", "markdown"])
def test_an_edit_the_twin_keeps_lands_in_both_terms(edit, name):
    text = TEXTS[0]
    edited = PERTURBATIONS[edit](PROMPT, text)
    twin, edited_twin = PERTURBATIONS[name](PROMPT, text), PERTURBATIONS[name](PROMPT, edited)
    # the twin of the edited response is the edit applied to the twin: the edit cancels in the contrast
    assert edited_twin == PERTURBATIONS[edit](PROMPT, twin)


def test_responses_too_short_for_a_twin_and_bad_contrast_names(tmp_path):
    assert TWIN(PROMPT, "Paris.") is None  # one word: nothing can move
    assert TWIN(PROMPT, "Great question! Paris.") is None  # surface and one word
    assert TWIN(PROMPT, "The capital is Paris.") not in (None, "The capital is Paris.")  # one sentence: its words
    with pytest.raises(FLRError, match="unknown --contrast 'nope'"):
        ScorerConfig(contrast="nope")
    with pytest.raises(FLRError, match="needs another record"):
        ScorerConfig(contrast="other_response")
    with pytest.raises(FLRError, match="--contrast-file needs --contrast"):
        ScorerConfig(contrast_file=str(tmp_path / "x.py"))
    same = tmp_path / "same.py"
    same.write_text(
        "from flr.perturbations import perturbation\n\n@perturbation('same')\ndef same(prompt, response):\n"
        "    return response\n"
    )
    with pytest.raises(FLRError, match="unchanged for every probe"):
        ScorerConfig(contrast="same", contrast_file=str(same))
    mine = tmp_path / "mine.py"
    mine.write_text(
        "from flr.perturbations import perturbation\n\n@perturbation('reverse')\ndef reverse(prompt, response):\n"
        "    return ' '.join(reversed(response.split()))\n"
    )
    assert contrast_edit("reverse", mine).name == "reverse"


def _scorers(tiny, **kw):
    model, tok = tiny
    plain = build_scorer("flr", model, tok, config=ScorerConfig(followups="compact", **kw))
    contrast = build_scorer("flr", model, tok, config=ScorerConfig(followups="compact", contrast="twin", **kw))
    return plain, contrast


def test_the_contrast_is_flr_of_the_response_minus_flr_of_its_twin(tiny):
    plain, contrast = _scorers(tiny)
    records = [{"prompt": PROMPT, "response": t} for t in [*TEXTS, "Paris."]]
    got = contrast.score(records)
    twins = [contrast.twin_record(r) for r in records]
    assert twins[-1]["response"] == ""  # no twin: contrasted with the content-free (empty) response
    alone = plain.score(records + twins)
    for i, res in enumerate(got):
        assert res.reward == pytest.approx(alone[i].reward - alone[len(records) + i].reward, abs=1e-4)
        assert set(res.categories) == set(alone[i].categories)
        assert all("contrast" in d and "twin_logprob_mean" in d for d in res.details)
    assert contrast.describe()["contrast"]["name"] == "twin"
    assert contrast.fingerprint() != plain.fingerprint()


def test_a_kept_content_free_edit_moves_the_contrast_less_than_plain_flr(tiny):
    plain, contrast = _scorers(tiny)
    moved = {"plain": 0.0, "contrast": 0.0}
    for edit in ("opener", "closer", "bait_question"):
        records = [{"prompt": PROMPT, "response": t} for t in TEXTS]
        edited = [{"prompt": PROMPT, "response": PERTURBATIONS[edit](PROMPT, t)} for t in TEXTS]
        for name, scorer in (("plain", plain), ("contrast", contrast)):
            before, after = scorer.score(records), scorer.score(edited)
            moved[name] += sum(abs(a.reward - b.reward) for a, b in zip(after, before))
    assert moved["contrast"] < moved["plain"]


def test_eval_and_audit_reports_name_the_variant_and_eval_reports_the_signal_beyond_style(tmp_path, tiny_model_dir):
    import json

    from flr.cli import main

    common = ["--scorers", "flr", "--followups", "compact", "--model", str(tiny_model_dir), "--cache",
              str(tmp_path / "c.sqlite")]  # fmt: skip
    ev, au = tmp_path / "eval", tmp_path / "audit"
    assert main(["eval", "--benchmarks", "demo", "--limit", "12", *common, "--contrast", "twin", "-o", str(ev)]) == 0
    report = (ev / "report.md").read_text()
    assert "reward variant: follow-ups `compact`; contrast `twin`" in report
    assert "Signal beyond style" in report
    summary = json.loads((ev / "summary.json").read_text())
    beyond = summary["results"]["demo"]["scorers"]["flr"]["length_control"]["beyond_style"]
    assert beyond["n"] == 12 and set(beyond) >= {"coef", "ci", "covariate_coefs", "cv_accuracy_covariates"}
    args = ["audit", "--input", "demo", "--limit", "2", "--perturbations", "opener", *common]
    assert main([*args, "--style-debias", "batch", "-o", str(au)]) == 0
    assert "style-debias `batch`" in (au / "report.md").read_text()

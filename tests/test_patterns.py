"""Perturbations (each one on a fixed text), user perturbation files, pattern detectors, and the pattern shares
flr mine and flr compare report."""

from __future__ import annotations

import json

import pytest

from flr.errors import FLRError
from flr.patterns import DETECTORS, detect_patterns, pattern_shares, preference_patterns
from flr.perturbations import BUILT_IN, PERTURBATIONS, load_perturbations_file, select_perturbations

PROMPT = "What is the capital of France?"
TEXT = "Paris is the capital of France. It has been since 987. The city lies on the Seine.\n\nIt is also the largest city."
OTHER = "Use a wok and high heat."

EXPECTED = {
    "closer": TEXT + "\n\nI hope this helps! Let me know if you have any other questions.",
    "opener": "Great question! " + TEXT,
    "bait_question": TEXT + " Does that make sense?",
    "restate_prompt": 'You asked: "What is the capital of France?"\n\n' + TEXT,
    "markdown": "## Answer\n\n- Paris is the capital of France. It has been since 987. The city lies on the Seine.\n\n"
    "- It is also the largest city.",
    "repeat_last_paragraph": TEXT + "\n\nIt is also the largest city.",
    "truncate_half": "Paris is the capital of France. It has been since 987.",
    "shuffle_sentences": "Paris is the capital of France. It has been since 987. It is also the largest city. "
    "The city lies on the Seine.",
    "other_response": OTHER,
    "refusal": "I'm sorry, but I can't help with that request.",
    "dont_know": "I don't know.",
    "twin": "Paris is the capital of France. since The 987. has been city It on Seine. lies the\n\nIt is also the "
    "largest city.",
    "twin_all": "lies capital The the has Seine. of Paris France. It 987. is the city been since on\n\ncity. is "
    "largest the also It",
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_perturbation_on_a_fixed_text(name):
    p = PERTURBATIONS[name]
    assert p(PROMPT, TEXT, OTHER) == EXPECTED[name]
    assert p(PROMPT, TEXT, OTHER) == EXPECTED[name]  # pure: the same edit every time (the cache relies on it)
    assert p.kind == ("destructive" if name in ("truncate_half", "shuffle_sentences", "other_response", "refusal",
                                                 "dont_know", "twin", "twin_all") else "content-free")  # fmt: skip
    assert p.description


def test_every_built_in_perturbation_has_a_fixed_text_test():
    assert set(BUILT_IN) == set(EXPECTED) and len(BUILT_IN) == 13


def test_perturbation_edge_cases():
    one = PERTURBATIONS["shuffle_sentences"](PROMPT, "Paris is lovely")
    assert sorted(one.split()) == sorted("Paris is lovely".split()) and one != "Paris is lovely"  # words, for one
    assert PERTURBATIONS["other_response"](PROMPT, TEXT, None) is None  # nothing else to take: not applicable
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    assert PERTURBATIONS["restate_prompt"](messages, "Hello.") == 'You asked: "Hi?"\n\nHello.'
    long = PERTURBATIONS["restate_prompt"]("word " * 400, "x")
    assert long.startswith('You asked: "word') and long.endswith(' ..."\n\nx') and len(long) < 520
    code = "Run this:\n\n```\nx = 1\n\ny = 2\n```\n\nDone."
    assert PERTURBATIONS["markdown"](PROMPT, code) == "## Answer\n\n- Run this:\n\n```\nx = 1\n\ny = 2\n```\n\n- Done."


def test_a_user_file_adds_perturbations_and_leaves_the_registry_alone(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "from flr.jobs.audit import perturbation\n\n"
        "@perturbation('emoji', kind='content-free')\n"
        "def emoji(prompt, response):\n"
        "    '''adds a smile'''\n"
        "    return response + ' :)'\n\n"
        "@perturbation\n"
        "def shout(prompt, response):\n"
        "    return response.upper()\n"
    )
    found = load_perturbations_file(path)
    assert list(found) == ["emoji", "shout"] and found["emoji"].description == "adds a smile"
    assert found["shout"].kind == "custom" and found["shout"](PROMPT, "hi") == "HI"
    assert "emoji" not in PERTURBATIONS  # loading twice (or in another test) cannot collide
    assert list(load_perturbations_file(path)) == ["emoji", "shout"]
    chosen = select_perturbations("content-free", path)
    assert "emoji" in chosen and "closer" in chosen and "shout" not in chosen and "refusal" not in chosen
    assert list(select_perturbations("emoji,refusal", path)) == ["emoji", "refusal"]
    assert len(select_perturbations(None, path)) == len(BUILT_IN) + 2


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "defines no perturbation"),
        ("raise ValueError('boom')\n", "ValueError: boom"),
        ("from flr.jobs.audit import perturbation\n@perturbation('closer')\ndef c(p, r):\n    return r\n", "twice"),
    ],
)
def test_bad_perturbation_files_are_one_error_naming_the_file(tmp_path, source, message):
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(FLRError, match=message) as info:
        load_perturbations_file(path)
    assert "bad.py" in str(info.value) and "\n" not in str(info.value)


def test_unknown_perturbation_names_the_known_ones():
    with pytest.raises(FLRError, match="unknown perturbation 'nope': known ones are closer, opener"):
        select_perturbations("closer,nope")
    with pytest.raises(FLRError, match="not found"):
        select_perturbations("all", "no/such/file.py")


def test_a_perturbation_must_return_text():
    from flr.perturbations import Perturbation

    with pytest.raises(FLRError, match="returned int"):
        Perturbation("bad", lambda p, r: 3)(PROMPT, TEXT)


# -- detectors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DETECTORS))
def test_each_detector_finds_its_perturbation_and_only_it(name):
    assert detect_patterns(TEXT) == set()
    assert detect_patterns(PERTURBATIONS[name](PROMPT, TEXT)) == {name}


def test_detectors_on_natural_texts():
    assert detect_patterns("Sure! Here is the list:\n1. eggs\n2. milk") == {"opener", "markdown"}
    assert detect_patterns("What a great question. The answer is 4.") == {"opener"}
    assert detect_patterns("The answer is 4. Feel free to ask if anything is unclear.") == {"closer"}
    assert detect_patterns("The answer is 4. Would you like me to show the steps?") == {"bait_question"}
    assert detect_patterns("The answer is 4. Why is that? Because 2+2=4.") == set()  # a question, not a bait
    assert detect_patterns("Use **bold** sparingly.") == {"markdown"}
    assert detect_patterns("- only one item") == set()
    assert detect_patterns("I'm sure it's great.") == set()


def test_pattern_shares():
    texts = [TEXT, PERTURBATIONS["closer"](PROMPT, TEXT), PERTURBATIONS["opener"](PROMPT, TEXT), "Certainly! Yes."]
    assert pattern_shares(texts) == {"closer": 0.25, "opener": 0.5, "bait_question": 0.0, "markdown": 0.0}
    assert pattern_shares([]) == dict.fromkeys(DETECTORS)


def test_preference_patterns_of_dpo_and_kto_rows():
    closer = PERTURBATIONS["closer"](PROMPT, TEXT)
    dpo = [
        {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": closer}], "rejected": "No."},
        {"prompt": PROMPT, "chosen": "Yes.", "rejected": [{"role": "assistant", "content": "No."}]},
    ]
    report = preference_patterns(dpo, [closer, "Yes.", "No.", "No."])
    assert report["n"] == {"chosen": 2, "rejected": 2, "all candidates": 4}
    assert report["shares"]["chosen"]["closer"] == 0.5 and report["shares"]["rejected"]["closer"] == 0.0
    assert report["shares"]["all candidates"]["closer"] == 0.25
    kto = [
        {"prompt": PROMPT, "completion": closer, "label": True},
        {"prompt": PROMPT, "completion": "No.", "label": False},
    ]
    assert preference_patterns(kto)["shares"]["desirable"]["closer"] == 1.0


# -- flr mine and flr compare report the shares ------------------------------------------------------------------


def test_mine_reports_pattern_shares_in_its_summary(tmp_path):
    from flr.jobs.mine import MineConfig, run
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    closer = PERTURBATIONS["closer"](PROMPT, TEXT)
    rows = [
        {"id": "1", "prompt": PROMPT, "candidates": [closer, "Paris."]},  # length: the closer one wins
        {"id": "2", "prompt": "Say hi.", "candidates": ["Great question! Hi there.", "Hi."]},
    ]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = MineConfig(candidates=str(tmp_path / "c.jsonl"), output_dir=str(tmp_path / "m"), scorer="length")
    summary = run(cfg, ScorerConfig(), ModelConfig(), progress=False)
    shares = summary["patterns"]["shares"]
    assert shares["chosen"]["closer"] == 0.5 and shares["chosen"]["opener"] == 0.5
    assert shares["rejected"] == {"closer": 0.0, "opener": 0.0, "bait_question": 0.0, "markdown": 0.0}
    assert summary["patterns"]["n"] == {"chosen": 2, "rejected": 2, "all candidates": 4}
    on_disk = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert on_disk["patterns"] == summary["patterns"]


def test_the_example_perturbations_file_loads():
    from pathlib import Path

    found = load_perturbations_file(Path(__file__).resolve().parents[1] / "examples" / "perturbations.py")
    assert list(found) == ["disclaimer", "agree"] and all(p.kind == "content-free" for p in found.values())
    assert found["disclaimer"](PROMPT, "Paris.").endswith(" Paris.")

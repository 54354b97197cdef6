"""flr.jobs.critiques and ``flr feedback rewrite``: critiques -> first-person user follow-ups."""

from __future__ import annotations

import json

import pytest

from flr.errors import FLRError, InputError
from flr.jobs.critiques import (
    NEGATIVE_OPENER,
    POSITIVE_OPENER,
    RewriteConfig,
    clean_rewrite,
    critique_to_followup,
    rewrite_critiques,
    rewrite_prompt,
)
from flr.kernel.models import ModelConfig

RECORDS = [
    {
        "prompt": "Name a prime.",
        "response": "Seven.",
        "critique": "The response is correct. It is short.",
        "rating": 8,
    },
    {
        "prompt": "Explain rain.",
        "response": "Water.",
        "critique": "the response fails to explain condensation. The user's question needs more. Extra sentence.",
        "rating": 3,
    },
    {"prompt": "Hi", "response": "Hello!", "critique": "The assistant greets the user."},
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_critique_to_followup_speaks_to_the_assistant_with_an_opener_by_rating():
    assert critique_to_followup(RECORDS[0]["critique"], 8) == f"{POSITIVE_OPENER} Your answer is correct. It is short."
    assert (
        critique_to_followup(RECORDS[1]["critique"], 3)
        == f"{NEGATIVE_OPENER} Your answer fails to explain condensation. My question needs more."
    )
    assert critique_to_followup(RECORDS[2]["critique"]) == "You greets me."  # no rating: no opener
    assert critique_to_followup("The response is fine.", 5) == "Your answer is fine."  # a middle rating: none


def test_rewrite_prompt_and_clean_rewrite():
    messages = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "R"},
    ]
    (turn,) = rewrite_prompt(messages, "resp", " The critique. ")
    assert turn["role"] == "user"
    assert "user: Q\nassistant: A\nuser: R" in turn["content"] and "The critique." in turn["content"]
    assert "x" * 2000 + "x" not in rewrite_prompt("x" * 5000, "r", "c")[0]["content"]  # cut to 2000 characters
    assert clean_rewrite('\n  User: "You missed the deadline."\nmore') == "You missed the deadline."


def test_rules_rewrite_writes_every_record_with_its_feedback(tmp_path):
    source = _write(tmp_path / "c.jsonl", RECORDS)
    out = tmp_path / "fb.jsonl"
    counts = rewrite_critiques(RewriteConfig(method="rules", input=str(source), output=str(out)), ModelConfig())
    assert counts == {"records": 3, "written": 3, "empty": 0, "output": str(out)}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["0", "1", "2"]
    for row, record in zip(rows, RECORDS):
        assert {k: row[k] for k in record} == record  # the input record, kept
        assert row["feedback"] == critique_to_followup(record["critique"], record.get("rating"))


def test_rewrite_checks_its_input_before_any_model(tmp_path):
    with pytest.raises(FLRError, match="--input"):
        rewrite_critiques(RewriteConfig(method="rules", output=str(tmp_path / "o.jsonl")), ModelConfig())
    source = _write(tmp_path / "c.jsonl", [RECORDS[0], {"prompt": "p", "response": "r"}])
    with pytest.raises(InputError, match="critique"):
        rewrite_critiques(
            RewriteConfig(method="rules", input=str(source), output=str(tmp_path / "o.jsonl")), ModelConfig()
        )


def test_flr_feedback_rewrite_rules_from_the_command_line(tmp_path, capsys):
    from flr.cli import main

    source = _write(tmp_path / "c.jsonl", [{**r, "explanation": r.pop("critique")} for r in map(dict, RECORDS)])
    out = tmp_path / "fb.jsonl"
    argv = ["feedback", "rewrite", "--method", "rules", "--input", str(source), "--output", str(out)]
    assert main(argv + ["--field-map", "critique=explanation"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["feedback"] for r in rows] == [critique_to_followup(r["critique"], r.get("rating")) for r in RECORDS]
    assert "3 of 3 records rewritten" in capsys.readouterr().out

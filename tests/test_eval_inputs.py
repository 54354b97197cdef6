"""flr eval on user files: every record checked before scoring, errors name file, line and field."""

import json

import pytest

from flr.cli import main


def _file(path, rows, blank_first=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\n" if blank_first else "") + "".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


GOOD = {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "5."}


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"prompt": "", "chosen": "4.", "rejected": "5."}, "field 'prompt': empty"),
        ({"prompt": "Q", "chosen": "", "rejected": "5."}, "field 'chosen': empty"),
        ({"prompt": 3, "chosen": "4.", "rejected": "5."}, "field 'prompt': expected a string"),
        ({"prompt": None, "chosen": "4.", "rejected": "5."}, "field 'prompt': missing"),
        ({"prompt": "Q", "chosen": "4.", "rejected": 5}, "field 'rejected': expected a string"),
        ({"prompt": [{"role": "robot", "content": "x"}], "chosen": "4.", "rejected": "5."}, "field 'prompt[0].role'"),
    ],
)
def test_bad_user_records_fail_with_file_line_and_field(tmp_path, capsys, bad, where):
    path = _file(tmp_path / "e.jsonl", [GOOD, bad], blank_first=True)  # a blank line: the bad record is on line 3
    assert main(["eval", "--benchmarks", path, "--scorers", "length", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"e.jsonl:3: {where}" in err and "Traceback" not in err


def test_two_files_with_one_name_keep_both_results(tmp_path):
    a = _file(tmp_path / "a" / "x.jsonl", [GOOD])
    b = _file(tmp_path / "b" / "x.jsonl", [GOOD, {**GOOD, "chosen": "Four, since 2+2=4."}])
    assert main(["eval", "--benchmarks", f"{a},{b}", "--scorers", "length", "-o", str(tmp_path / "r")]) == 0
    results = json.loads((tmp_path / "r" / "summary.json").read_text())["results"]
    assert sorted(r["n"] for r in results.values()) == [1, 2]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bin.jsonl", b"\xff\xfe\x00garbage\n", "not UTF-8"),
        ("bin.csv", b"prompt,response\n\xff\xff,x\n", "not UTF-8"),
        ("num.json", b"42", "expected a list of records"),
    ],
)
def test_unreadable_inputs_are_one_line_errors(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["score", str(path), "-o", str(tmp_path / "out.jsonl"), "--scorer", "length"]) == 2
    err = capsys.readouterr().err
    assert message in err and name in err and "Traceback" not in err


def test_directory_as_input_is_one_line_error(tmp_path, capsys):
    (tmp_path / "d.jsonl").mkdir()
    assert main(["score", str(tmp_path / "d.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--scorer", "length"]) == 2
    assert "directory" in capsys.readouterr().err


@pytest.mark.parametrize("damage", [b"not a database at all" * 100, b"SQLite format 3\x00" + b"\x07" * 4000])
def test_a_damaged_cache_is_moved_aside_and_replaced(tmp_path, damage, caplog):
    from flr.scorers.base import ScoreResult
    from flr.scorers.cache import ScoreCache

    path = tmp_path / "scores.sqlite"
    path.write_bytes(damage)
    cache = ScoreCache(path)
    cache.put("s", {"k": ScoreResult(1.0)})
    assert cache.get("s", ["k"])["k"].reward == 1.0
    cache.close()
    assert list(tmp_path.glob("scores.sqlite.corrupt-*")) and "damaged" in caplog.text


def test_missing_local_paths_fail_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert main(["score", "runs/pairs", "-o", "o.jsonl", "--scorer", "length"]) == 2
    assert "input not found: runs/pairs" in capsys.readouterr().err
    from flr.errors import FLRError
    from flr.kernel.models import resolve_spec

    with pytest.raises(FLRError, match="model folder not found"):
        resolve_spec("runs/no-such-adapter")
    assert resolve_spec("org/model") == "org/model"  # still a Hub id


def test_empty_input_to_score_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["score", str(empty), "-o", str(tmp_path / "o.jsonl"), "--scorer", "length"]) == 2
    assert "no records to score" in capsys.readouterr().err
    for flag in (["--limit", "-1"], ["--batch-size", "0"], ["--token-budget", "0"]):
        assert main(["score", str(empty), "-o", str(tmp_path / "o.jsonl"), *flag]) == 2
        assert "must be at least" in capsys.readouterr().err


def test_score_takes_trl_preference_and_completion_files(tmp_path):
    rows = [
        {"prompt": "What is 2+2?", "chosen": "It is 4.", "rejected": "5"},
        {
            "prompt": [{"role": "user", "content": "Name a colour."}],
            "chosen": [{"role": "assistant", "content": "Blue, like the sky."}],
            "rejected": [{"role": "assistant", "content": "No."}],
        },
    ]
    src = _file(tmp_path / "pref.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert main(["score", src, "-o", str(out), "--scorer", "length"]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["length_margin"] for r in scored] == [len("It is 4.") - 1, len("Blue, like the sky.") - 3]
    assert scored[1]["length_chosen"] == len("Blue, like the sky.") and "length_reward" not in scored[0]
    comp = _file(tmp_path / "comp.jsonl", [{"prompt": "Hi", "completion": [{"role": "assistant", "content": "Hey"}]}])
    assert main(["score", comp, "-o", str(tmp_path / "c.jsonl"), "--scorer", "length"]) == 0
    assert json.loads((tmp_path / "c.jsonl").read_text())["length_reward"] == 3.0


def test_readme_sample_files_score(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for name in ("pairs.jsonl", "responses.jsonl"):
        out = tmp_path / f"{name}.out"
        assert main(["score", str(root / "examples" / "data" / name), "-o", str(out), "--scorer", "length"]) == 0
        assert len(out.read_text().splitlines()) == 8

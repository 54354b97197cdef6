"""``flr score`` end to end with the tiny model: outputs, errors, --config, resuming, and surviving a kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from flr.cli import main

RECORDS = [
    {"id": 1, "prompt": "What is 2+2?", "response": "4."},
    {"id": 2, "prompt": "Name a color.", "response": "Blue."},
    {
        "id": 3,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Tell me a joke."},
            {"role": "assistant", "content": "Why did the chicken cross the road?"},
        ],
    },
]


def write_jsonl(path, rows, extra_lines=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(line + "\n" for line in extra_lines))
    return path


def read_out(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture()
def small_input(tmp_path):
    return write_jsonl(tmp_path / "in.jsonl", RECORDS)


def score(*args, model) -> int:
    return main(["score", *map(str, args), "--model", str(model), "--device", "cpu"])


def test_flr_output_fields(tmp_path, small_input, tiny_model_dir, capsys):
    out = tmp_path / "out.jsonl"
    assert score(small_input, "-o", out, model=tiny_model_dir) == 0
    assert "3 scored, 0 already done, 0 skipped" in capsys.readouterr().out
    rows = read_out(out)
    assert [r["id"] for r in rows] == [1, 2, 3]
    for row, record in zip(rows, RECORDS):
        assert {k: row[k] for k in record} == record  # the input fields are kept as they were
        assert isinstance(row["flr_reward"], float)
        assert list(row["flr_categories"]) == ["understanding", "engagingness", "instruction_following"]
        assert row["flr_reward"] == pytest.approx(sum(row["flr_categories"].values()) / 3, abs=1e-9)
        assert row["truncated"] is False
        assert "flr_details" not in row
    meta = json.loads((tmp_path / "out.jsonl.flr.json").read_text())
    assert meta["scorer"] == "flr" and meta["model"] == str(tiny_model_dir)


def test_details(tmp_path, small_input, tiny_model_dir):
    out = tmp_path / "out.jsonl"
    assert score(small_input, "-o", out, "--details", "--limit", "2", model=tiny_model_dir) == 0
    rows = read_out(out)
    assert len(rows) == 2
    for row in rows:
        details = row["flr_details"]
        assert len(details) == 60  # the default set: the paper's 60
        assert {"category", "polarity", "text", "logprob_mean", "logprob_sum", "tokens"} <= set(details[0])
        understanding = [d["logprob_mean"] for d in details if d["category"] == "understanding"]
        pos = [d["logprob_mean"] for d in details if d["category"] == "understanding" and d["polarity"] == "positive"]
        neg = [d["logprob_mean"] for d in details if d["category"] == "understanding" and d["polarity"] == "negative"]
        assert len(understanding) == 20
        assert row["flr_categories"]["understanding"] == pytest.approx(sum(pos) / 10 - sum(neg) / 10, abs=1e-9)


def test_direct_scorer(tmp_path, small_input, tiny_model_dir):
    out = tmp_path / "direct.jsonl"
    assert score("--input", small_input, "-o", out, "--scorer", "direct", model=tiny_model_dir) == 0
    rows = read_out(out)
    assert len(rows) == 3
    for row in rows:
        assert set(row) - set(RECORDS[0]) - {"messages"} == {"direct_reward", "truncated"}
        assert row["direct_reward"] < 0


def test_length_scorer_and_field_map(tmp_path, tiny_model_dir):
    src = write_jsonl(tmp_path / "in.jsonl", [{"question": "q", "answer": "four"}, {"question": "q", "answer": "x"}])
    out = tmp_path / "len.jsonl"
    args = [src, "-o", out, "--scorer", "length", "--field-map", "prompt=question,response=answer"]
    assert score(*args, model=tiny_model_dir) == 0
    assert [r["length_reward"] for r in read_out(out)] == [4.0, 1.0]


def test_skip_invalid(tmp_path, tiny_model_dir, capsys):
    bad = {"id": 99, "prompt": "no response here"}
    only_assistant = {"id": 98, "messages": [{"role": "assistant", "content": "Hello"}]}
    src = write_jsonl(tmp_path / "in.jsonl", [RECORDS[0], bad, RECORDS[1], only_assistant, RECORDS[2]])
    out = tmp_path / "out.jsonl"
    flags = ["--categories", "understanding"]
    capsys.readouterr()

    assert score(src, "-o", out, *flags, model=tiny_model_dir) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == [
        f"flr score: error: {src}:2: field 'response': missing"
    ]
    assert not out.exists() or out.read_text() == ""

    assert score(src, "-o", out, "--skip-invalid", *flags, model=tiny_model_dir) == 0
    assert "3 scored, 0 already done, 2 skipped" in capsys.readouterr().out
    assert [r["id"] for r in read_out(out)] == [1, 2, 3]

    # a line that is not JSON at all stops the reading, --skip-invalid or not: the file itself is broken
    torn = write_jsonl(tmp_path / "torn.jsonl", RECORDS, ['{"id": 97, "pro'])
    assert score(torn, "-o", tmp_path / "torn_out.jsonl", "--skip-invalid", *flags, model=tiny_model_dir) == 2
    err = capsys.readouterr().err
    assert f"{torn}:4: not valid JSON" in err and "Traceback" not in err


def test_config_file_with_override(tmp_path, small_input, tiny_model_dir):
    out = tmp_path / "out.jsonl"
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"input: {small_input}\noutput: {out}\nscorer: direct\nmodel: {tiny_model_dir}\ndevice: cpu\n"
        "limit: 1\nstatistic: sum\n"
    )
    assert main(["score", "--config", str(config), "--limit", "2"]) == 0  # the command line wins
    rows = read_out(out)
    assert len(rows) == 2 and "direct_reward" in rows[0]
    meta = json.loads((tmp_path / "out.jsonl.flr.json").read_text())
    assert meta["statistic"] == "sum"  # taken from the YAML
    config.write_text("scorer: direct\nno_such_flag: 1\n")
    assert main(["score", "--config", str(config), str(small_input), "-o", str(out)]) == 2


def test_resume_with_another_configuration_errors(tmp_path, small_input, tiny_model_dir, capsys):
    out = tmp_path / "out.jsonl"
    assert score(small_input, "-o", out, "--scorer", "direct", "--limit", "2", model=tiny_model_dir) == 0
    before = out.read_text()
    capsys.readouterr()
    assert score(small_input, "-o", out, "--scorer", "direct", "--statistic", "sum", model=tiny_model_dir) == 2
    err = capsys.readouterr().err
    assert "another scorer configuration" in err and "Traceback" not in err
    assert out.read_text() == before
    # the same configuration resumes; a different batch size is the same configuration
    assert score(small_input, "-o", out, "--scorer", "direct", "--batch-size", "2", model=tiny_model_dir) == 0
    assert "1 scored, 2 already done" in capsys.readouterr().out
    rows = read_out(out)
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert out.read_text().startswith(before)


def test_fully_resumed_run_does_not_load_the_model(tmp_path, small_input, tiny_model_dir, capsys, monkeypatch):
    out = tmp_path / "out.jsonl"
    assert score(small_input, "-o", out, model=tiny_model_dir) == 0
    before = out.read_text()
    import flr.kernel.models

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(flr.kernel.models, "load_model", no_loading)
    capsys.readouterr()
    assert score(small_input, "-o", out, "--batch-size", "2", model=tiny_model_dir) == 0
    assert "already scored (3" in capsys.readouterr().out and out.read_text() == before
    # another setting is not "complete": it goes on to load and then refuses the mismatched output
    with pytest.raises(AssertionError, match="was loaded"):
        score(small_input, "-o", out, "--statistic", "sum", model=tiny_model_dir)


def test_missing_arguments(tmp_path, capsys):
    assert main(["score", str(tmp_path / "in.jsonl")]) == 2
    assert "-o OUTPUT" in capsys.readouterr().err


def read_out_complete(path) -> list[dict]:
    """The complete lines of an output a crash left behind."""
    raw = path.read_text()
    return [json.loads(line) for line in raw[: raw.rfind("\n") + 1].splitlines()]


# ``flr score`` in a subprocess that SIGKILLs itself half-way through writing output row N (argv[1]): N complete
# rows and a torn one behind, at the same point on every run, however slow the machine
KILLED_AT_ROW = """
import json, os, signal, sys
from flr.cli import main
from flr.records import ResumableWriter

real, left = ResumableWriter.write, int(sys.argv[1])

def write(self, record):
    global left
    if left == 0:
        self._file.write(json.dumps(record)[:25])
        self._file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    left -= 1
    real(self, record)

ResumableWriter.write = write
sys.exit(main(sys.argv[2:]))
"""


def test_kill_and_resume(tmp_path, tiny_model_dir, capsys):
    """SIGKILL mid-write, leaving a torn last line, then a re-run: every record exactly once, in order, same values."""
    n, killed_at = 40, 5
    rows = [
        {
            "id": i,
            "prompt": f"Question {i}: what is {i} plus {i}?",
            "response": f"It is {2 * i}, since {i}+{i}={2 * i}.",
        }
        for i in range(n)
    ]
    rows[7] = dict(rows[3], id=7)  # a duplicate (same prompt and response) stays a separate record, across the kill
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    followups = tmp_path / "followups.yaml"
    followups.write_text(
        "mood:\n  positive: [Thanks!, 'Great, that helps.', Perfect.]\n"
        "  negative: [That is wrong., 'Huh?', 'No, that is not what I asked.']\n"
    )
    flags = ["--model", str(tiny_model_dir), "--device", "cpu", "--batch-size", "1", "--followups", str(followups)]
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT_ROW, str(killed_at), "score", str(src), "-o", str(out), *flags],
        capture_output=True,
        text=True,
        timeout=900,  # a bound for a hung run, not a window: the kill point is fixed by the row count
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    raw = out.read_bytes()
    assert raw.count(b"\n") == killed_at and not raw.endswith(b"\n")  # complete rows, then a torn one
    assert [r["id"] for r in read_out_complete(out)] == list(range(killed_at))

    assert main(["score", str(src), "-o", str(out), *flags]) == 0
    assert f"{n - killed_at} scored, {killed_at} already done" in capsys.readouterr().out
    resumed = read_out(out)
    full_out = tmp_path / "full.jsonl"
    assert main(["score", str(src), "-o", str(full_out), *flags]) == 0
    full = read_out(full_out)

    assert [r["id"] for r in resumed] == list(range(n)) == [r["id"] for r in full]
    for a, b, row in zip(resumed, full, rows):
        assert {k: a[k] for k in row} == row
        assert a["flr_reward"] == pytest.approx(b["flr_reward"], abs=1e-6)
        assert list(a["flr_categories"]) == ["mood"]
        assert a["flr_categories"] == pytest.approx(b["flr_categories"], abs=1e-6)
    assert resumed[7]["flr_reward"] == pytest.approx(resumed[3]["flr_reward"], abs=1e-6)
    # a third run finds everything done
    assert main(["score", str(src), "-o", str(out), *flags]) == 0
    assert read_out(out) == resumed

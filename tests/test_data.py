"""Records in and out: formats, field mapping, validation errors that point at the problem, the resumable writer."""

from __future__ import annotations

import csv
import json

import pytest

from flr.errors import FLRError, InputError
from flr.hashing import content_keys
from flr.records import Record, ResumableWriter, parse_field_map, read_jsonl, read_records, to_scoring_input

ROWS = [
    {"id": "a", "prompt": "What is 2+2?", "response": "4."},
    {"id": "b", "prompt": "Capital of France?", "response": "Paris."},
    {"id": "c", "prompt": "Say hi.", "response": "Hi!"},
]
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Tell me a joke."},
    {"role": "assistant", "content": "Why did the chicken cross the road?"},
]


def write_jsonl(path, rows, extra_lines=()):
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def scoring_inputs(path, **kwargs):
    return [to_scoring_input(r) for r in read_records(path, **kwargs)]


# -- formats ---------------------------------------------------------------------------------------------


def test_jsonl(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n" + json.dumps(ROWS[2]))  # blank line
    records = read_records(path)
    assert [r.data for r in records] == ROWS
    assert [r.line for r in records] == [1, 3, 4]
    assert all(r.source == str(path) for r in records)
    assert scoring_inputs(path) == [{"prompt": r["prompt"], "response": r["response"]} for r in ROWS]
    assert read_jsonl(path) == ROWS
    assert [r.data for r in read_records(path, limit=2)] == ROWS[:2]


def test_json_list_and_wrapped(tmp_path):
    plain = tmp_path / "list.json"
    plain.write_text(json.dumps(ROWS, indent=2))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"meta": "x", "data": ROWS}))
    single = tmp_path / "single.json"
    single.write_text(json.dumps(ROWS[0]))
    assert [r.data for r in read_records(plain)] == ROWS
    assert [r.line for r in read_records(plain)] == [1, 2, 3]
    assert [r.data for r in read_records(wrapped)] == ROWS
    assert [r.data for r in read_records(single)] == ROWS[:1]


def test_csv(tmp_path):
    path = tmp_path / "in.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "prompt", "response"])
        writer.writeheader()
        writer.writerows(ROWS)
    records = read_records(path)
    assert [r.data for r in records] == ROWS
    assert [r.line for r in records] == [2, 3, 4]  # the header is line 1


def test_parquet(tmp_path):
    import pandas as pd

    path = tmp_path / "in.parquet"
    pd.DataFrame(ROWS).to_parquet(path)
    assert [r.data for r in read_records(path)] == ROWS
    conv = tmp_path / "messages.parquet"
    pd.DataFrame([{"messages": MESSAGES}, {"messages": MESSAGES[:3]}]).to_parquet(conv)
    records = read_records(conv)
    assert records[0].data["messages"] == MESSAGES  # numpy arrays come back as plain lists of dicts
    json.dumps(records[0].data)
    inputs = [to_scoring_input(r) for r in records]
    assert inputs[0] == {"prompt": MESSAGES[:-1], "response": MESSAGES[-1]["content"]}
    assert inputs[1] == {"prompt": MESSAGES[:2], "response": MESSAGES[2]["content"]}


def test_hf_dataset_on_disk(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list(ROWS)
    ds.save_to_disk(tmp_path / "ds")
    assert [r.data for r in read_records(tmp_path / "ds")] == ROWS
    dd = datasets.DatasetDict({"train": ds, "test": datasets.Dataset.from_list(ROWS[:1])})
    dd.save_to_disk(tmp_path / "dd")
    assert [r.data for r in read_records(tmp_path / "dd")] == ROWS
    assert [r.data for r in read_records(tmp_path / "dd", split="test")] == ROWS[:1]
    mapped = read_records(tmp_path / "dd", split="test", field_map="question=prompt,key=id")
    assert [r.data for r in mapped] == [{"key": "a", "question": "What is 2+2?", "response": "4."}]
    with pytest.raises(FLRError, match="cannot load dataset"):
        read_records(tmp_path / "dd", split="validation")


def test_byte_order_mark_and_upper_case_suffix(tmp_path):
    """Files saved by Excel or Windows editors start with a BOM; suffixes may be upper case."""
    csv_path = tmp_path / "EXCEL.CSV"
    csv_path.write_bytes("prompt,response\nhi,hello\n".encode("utf-8-sig"))
    assert scoring_inputs(csv_path) == [{"prompt": "hi", "response": "hello"}]
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes((json.dumps(ROWS[0]) + "\n").encode("utf-8-sig"))
    assert [r.data for r in read_records(jsonl)] == ROWS[:1]
    js = tmp_path / "bom.Json"
    js.write_bytes(json.dumps(ROWS).encode("utf-8-sig"))
    assert [r.data for r in read_records(js)] == ROWS


def test_missing_and_unsupported_inputs(tmp_path):
    with pytest.raises(FLRError, match="not found"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "in.txt").write_text("hello")
    with pytest.raises(FLRError, match="unsupported"):
        read_records(tmp_path / "in.txt")
    with pytest.raises(FLRError, match="unsupported"):
        read_records(str(tmp_path / "some_folder"))


# -- field mapping and messages --------------------------------------------------------------------------


def test_parse_field_map():
    assert parse_field_map("prompt=question, response = answer") == {"prompt": "question", "response": "answer"}
    assert parse_field_map({"prompt": "q"}) == {"prompt": "q"}
    assert parse_field_map(None) == {}
    with pytest.raises(FLRError, match="standard=yours"):
        parse_field_map("prompt")


def test_field_mapping(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"question": r["prompt"], "answer": r["response"]} for r in ROWS])
    expected = [{"prompt": r["prompt"], "response": r["response"]} for r in ROWS]
    assert scoring_inputs(path, field_map="prompt=question,response=answer") == expected
    assert scoring_inputs(path, field_map={"prompt": "question", "response": "answer"}) == expected
    with pytest.raises(InputError, match="'prompt'"):
        scoring_inputs(path)  # without the mapping the fields are missing
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("question,answer\nhi,hello\n")
    assert scoring_inputs(csv_path, field_map="prompt=question,response=answer") == [
        {"prompt": "hi", "response": "hello"}
    ]


def test_prompt_as_messages(tmp_path):
    rows = [{"prompt": MESSAGES[:-1], "response": "Because."}, {"messages": MESSAGES}]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    a, b = scoring_inputs(path)
    assert a == {"prompt": MESSAGES[:-1], "response": "Because."}
    assert b == {"prompt": MESSAGES[:-1], "response": MESSAGES[-1]["content"]}
    # extra keys in messages are dropped, the copy is plain
    extra = [{**m, "name": "x"} for m in MESSAGES]
    path = write_jsonl(tmp_path / "extra.jsonl", [{"messages": extra}])
    assert scoring_inputs(path)[0]["prompt"] == MESSAGES[:-1]


# -- errors ----------------------------------------------------------------------------------------------

BAD = [
    # (line content, field named in the error, words in the message)
    ({"response": "x"}, "prompt", "missing"),
    ({"prompt": "q"}, "response", "missing"),
    ({"prompt": "q", "response": 5}, "response", "expected a string, got int"),
    ({"prompt": {"text": "q"}, "response": "x"}, "prompt", "expected a string, got dict"),
    ({"prompt": "q", "response": "   "}, "response", "empty"),
    ({"prompt": "", "response": "x"}, "prompt", "empty"),
    ({"prompt": [], "response": "x"}, "prompt", "non-empty list"),
    ({"prompt": [{"role": "bot", "content": "hi"}], "response": "x"}, "prompt[0].role", "'bot'"),
    ({"prompt": [{"role": "user", "content": 3}], "response": "x"}, "prompt[0]", "content"),
    (
        {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]},
        "messages[1].role",
        "robot",
    ),
    ({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "hi"}]}, "messages", "last"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]}, "messages", "empty"),
    ({"messages": [{"role": "assistant", "content": "hello"}]}, "messages", "conversation"),
    ({"messages": ["hi"]}, "messages[0]", "content"),
]


@pytest.mark.parametrize("row,field,words", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_records_name_file_line_and_field(tmp_path, row, field, words):
    path = write_jsonl(tmp_path / "in.jsonl", [ROWS[0], ROWS[1], row])
    records = read_records(path)
    to_scoring_input(records[0])
    with pytest.raises(InputError) as info:
        to_scoring_input(records[2])
    exc = info.value
    assert (exc.file, exc.line, exc.field) == (str(path), 3, field)
    assert str(exc).startswith(f"{path}:3: field '{field}': ")
    assert words in str(exc)
    assert "\n" not in str(exc)


@pytest.mark.parametrize(
    "line,words", [('{"prompt": "q", "response": ', "not valid JSON"), ('["q", "r"]', "JSON object"), ("42", "object")]
)
def test_bad_jsonl_lines(tmp_path, line, words):
    path = write_jsonl(tmp_path / "in.jsonl", ROWS[:2], [line])
    with pytest.raises(InputError) as info:
        read_records(path)
    assert (info.value.file, info.value.line) == (str(path), 3)
    assert str(info.value).startswith(f"{path}:3: ")
    assert words in str(info.value)


def test_bad_json_file(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('[\n  {"prompt": "q", "response": "r"},\n  {"prompt": \n]')
    with pytest.raises(InputError) as info:
        read_records(path)
    assert info.value.file == str(path) and info.value.line == 4
    path.write_text(json.dumps([ROWS[0], "not a record"]))
    with pytest.raises(InputError) as info:
        read_records(path)
    assert info.value.file == str(path) and info.value.line == 2
    assert str(info.value).startswith(f"{path}:2: ")


def test_csv_errors_name_the_line(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('prompt,response\nhi,hello\n"multi\nline prompt",\n')
    first, second = read_records(path)
    assert to_scoring_input(first) == {"prompt": "hi", "response": "hello"}
    with pytest.raises(InputError) as info:
        to_scoring_input(second)
    assert (info.value.line, info.value.field) == (4, "response")


# -- content keys and the resumable writer ---------------------------------------------------------------


def test_content_keys_keep_duplicates_distinct():
    pairs = [("p", "r"), ("p", "r"), ("p", "s"), ("p", "r")]
    keys = content_keys(pairs)
    assert len(set(keys)) == 4
    assert keys[0].split("#")[0] == keys[1].split("#")[0] == keys[3].split("#")[0] != keys[2].split("#")[0]
    assert [k.split("#")[1] for k in keys] == ["0", "1", "0", "2"]
    assert content_keys(pairs) == keys  # stable
    assert content_keys(pairs[:2]) == keys[:2]  # a prefix of the input has a prefix of the keys
    msgs = [({"b": 1, "a": 2}, "r")]
    assert content_keys(msgs) == content_keys([({"a": 2, "b": 1}, "r")])  # dict key order does not matter


def test_resumable_writer_fresh_and_resumed(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    with ResumableWriter(path) as writer:
        assert writer.resumed == 0 and writer.done == set()
        for row in ROWS[:2]:
            writer.write({**row, "score": 1.0})
    with ResumableWriter(path) as writer:
        assert writer.resumed == 2 and writer.done == {"a", "b"}
        writer.write({**ROWS[2], "score": 2.0})
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b", "c"]


def test_resumable_writer_drops_a_partial_last_line(tmp_path, caplog):
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2]) + '{"id": "c", "prompt": "Say')
    key = lambda rows: content_keys((r["prompt"], r["response"]) for r in rows)  # noqa: E731
    with ResumableWriter(path, key=key) as writer:
        assert writer.resumed == 2
        assert writer.done == set(content_keys((r["prompt"], r["response"]) for r in ROWS[:2]))
        writer.write(ROWS[2])
    assert "partial last line" in caplog.text
    assert path.read_text().count("\n") == 3
    assert read_jsonl(path) == ROWS


def test_resumable_writer_rejects_a_corrupt_file(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\nnot json\n" + json.dumps(ROWS[1]) + "\n")
    with pytest.raises(InputError) as info:
        ResumableWriter(path)
    assert info.value.line == 2 and info.value.file == str(path)


def test_record_dataclass():
    r = Record("f.jsonl", 3, {"prompt": "q", "response": "r"})
    assert to_scoring_input(r) == {"prompt": "q", "response": "r"}
    assert to_scoring_input(Record("f", 1, {"prompt": "q", "answer": "r"}), response_field="answer") == {
        "prompt": "q",
        "response": "r",
    }


def test_content_fingerprint_is_sorted_json_sha256():
    import hashlib

    from flr.hashing import content_fingerprint

    expected = hashlib.sha256(b'{"a": [1, "x"], "b": 2}').hexdigest()[:16]
    assert content_fingerprint({"b": 2, "a": [1, "x"]}) == expected
    unsorted = hashlib.sha256(b'{"b": 2, "a": 1}').hexdigest()[:16]
    assert content_fingerprint({"b": 2, "a": 1}, sort_keys=False) == unsorted


def test_list_flags_take_commas_spaces_and_yaml_lists(tmp_path):
    """One normaliser (flr.arguments.split_list) behind every list flag: the comma form the README uses, the
    space-separated form of TRL's list[str] fields, and a YAML list or string give the same list."""
    from flr.arguments import split_list
    from flr.cli import build_parser
    from flr.commands._common import to_configs
    from flr.jobs.audit import AuditConfig
    from flr.jobs.eval import EvalConfig

    assert split_list("a, b,,c") == split_list(["a,b", "c"]) == split_list(("a", " b ", "c")) == ["a", "b", "c"]
    assert split_list(None) == split_list("") == []

    def parse(argv, cls):  # as flr.cli.main parses
        parser = build_parser(argv)
        return to_configs(parser.apply_config(parser.parse_args(argv), argv, "flr eval"), cls)

    want = (["length", "direct", "flr"], ["autoj", "pandalm"])
    for argv in (
        ["eval", "--scorers", "length,direct,flr", "--benchmarks", "autoj,pandalm"],
        ["eval", "--scorers", "length", "direct", "flr", "--benchmarks", "autoj", "pandalm"],
        ["eval", "--scorers", "length, direct", "flr", "--benchmarks=autoj,pandalm"],
    ):
        config = parse(argv, EvalConfig)
        assert (config.scorers, config.benchmarks) == want, argv
    for text in ("scorers: [length, direct, flr]\nbenchmarks: autoj,pandalm\n", "scorers: length,direct,flr\n"):
        (tmp_path / "c.yaml").write_text(text)
        config = parse(["eval", "--config", str(tmp_path / "c.yaml"), "--benchmarks", "autoj", "pandalm"], EvalConfig)
        assert (config.scorers, config.benchmarks) == want
    assert parse(["eval"], EvalConfig).scorers == ["flr", "direct", "length"]
    audit = parse(["audit", "x.jsonl", "--perturbations", "closer", "opener,refusal"], AuditConfig)
    assert audit.perturbations == ["closer", "opener", "refusal"] and audit.scorers == ["flr", "direct", "length"]

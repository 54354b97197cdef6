"""Data-parallel scoring: two CPU processes under torchrun give the same file as one process."""

import json
import os
import subprocess
import sys

import pytest

from flr.cli import main


@pytest.fixture
def inputs(tmp_path):
    path = tmp_path / "in.jsonl"
    rows = [{"prompt": f"Question {i % 7}?", "response": f"Answer {i % 5}."} for i in range(24)]  # with duplicates
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_two_processes_match_one_and_merge_leftover_parts(tmp_path, inputs, tiny_model_dir):
    path, rows = inputs
    common = ["--model", str(tiny_model_dir), "--categories", "understanding", "--batch-size", "2"]
    assert main(["score", str(path), "-o", str(tmp_path / "single.jsonl"), *common]) == 0

    out = tmp_path / "multi.jsonl"
    # A part file left by a killed earlier run: its record must be kept, not scored again.
    single = [json.loads(line) for line in (tmp_path / "single.jsonl").read_text().splitlines()]
    from flr.hashing import content_keys

    key = content_keys([(r["prompt"], r["response"]) for r in rows])[3]
    (tmp_path / "multi.jsonl.part1").write_text(json.dumps({"key": key, "row": single[3]}) + '\n{"torn')
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "flr.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*torchrun, "score", str(path), "-o", str(out), *common], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    multi = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(multi) == len(rows)
    assert sorted(map(json.dumps, multi)) == sorted(map(json.dumps, single))
    assert not list(tmp_path.glob("multi.jsonl.part*"))

"""Settings are checked when their config is made (``__post_init__``), so a bad one fails before any model loads
or any record is scored; scripts/bad_inputs.py runs the same through the command line."""

from __future__ import annotations

import pytest

from flr.errors import FLRError
from flr.jobs.eval import EvalConfig, prepare
from flr.jobs.followups import FitConfig, SelectConfig
from flr.jobs.generate import SamplingConfig
from flr.jobs.mine import MineConfig, mine_rows


@pytest.mark.parametrize(
    ("make", "flag"),
    [
        (lambda: SelectConfig(top=0), "--top"),
        (lambda: SelectConfig(length_ratio=1.0), "--length-ratio"),
        (lambda: SelectConfig(limit=0), "--limit"),
        (lambda: FitConfig(), "--benchmarks"),
        (lambda: FitConfig(benchmarks="demo", limit=0), "--limit"),
        (lambda: MineConfig(format="kto", kto_fraction=0.9), "--kto-fraction"),
        (lambda: MineConfig(kto_fraction=0.0), "--kto-fraction"),
        (lambda: MineConfig(unfinished="sometimes"), "--unfinished"),
        (lambda: MineConfig(format="orpo"), "--format"),
        (lambda: SamplingConfig(k=0), "--k"),
        (lambda: SamplingConfig(max_new_tokens=0), "--max-new-tokens"),
        (lambda: SamplingConfig(generation_batch_size=0), "--generation-batch-size"),
        (lambda: SamplingConfig(backend="tgi"), "--backend"),
    ],
)
def test_a_bad_setting_fails_when_its_config_is_made(make, flag):
    with pytest.raises(FLRError, match=flag) as err:
        make()
    assert "\n" not in str(err.value)  # one line


def test_mine_rows_checks_through_mine_config():
    rows = [{"id": "a", "prompt": "q", "candidates": ["x", "yy"], "rewards": [1.0, 0.0]}]
    with pytest.raises(FLRError, match="--kto-fraction"):
        mine_rows(rows, fmt="kto", kto_fraction=0.9)
    with pytest.raises(FLRError, match="--unfinished"):
        mine_rows(rows, unfinished="sometimes")
    assert mine_rows(rows)[1]["rows"] == 1


def test_eval_prepare_reads_each_benchmark_once_with_unique_labels(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jsonl").write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    config = EvalConfig(benchmarks=[str(tmp_path / "a" / "x.jsonl"), str(tmp_path / "b" / "x.jsonl"), "demo"])
    prepared = prepare(config)
    assert [b.label for b in prepared] == ["x", "b_x", "demo"]
    assert [b.kind for b in prepared] == ["pairwise"] * 3 and prepared[0].records[0]["chosen"] == "a"
    with pytest.raises(FLRError, match="given twice"):
        prepare(EvalConfig(benchmarks=["demo", "demo"]))
    with pytest.raises(FLRError, match="unknown benchmark 'missing.jsonl'"):
        prepare(EvalConfig(benchmarks=["missing.jsonl"]))

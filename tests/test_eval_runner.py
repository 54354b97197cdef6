"""flr eval end to end on the tiny model: outputs, cache reuse and resume, user files, flr report."""

import json

import pytest

from flr.cli import main
from flr.jobs.eval import EvalConfig, run_eval
from flr.scorers import ScorerConfig, build_scorer


@pytest.fixture
def scorers(tiny):
    model, tokenizer = tiny
    config = ScorerConfig(categories="understanding", batch_size=4)
    return {
        n: build_scorer(n, model, tokenizer, config=config, model_name="tiny") for n in ("flr", "direct", "length")
    }


def test_eval_writes_run_folder_and_reuses_cache(tmp_path, scorers, counting):
    config = EvalConfig(benchmarks="demo", output_dir=str(tmp_path / "run"), limit=6, cache=str(tmp_path / "c.db"))
    summary = run_eval(config, scorers, model_name="tiny")
    res = summary["results"]["demo"]
    assert res["n"] == 6 and set(res["scorers"]) == {"flr", "direct", "length"}
    for metrics in res["scorers"].values():
        assert 0 <= metrics["accuracy"] <= 1 and metrics["ci"][0] <= metrics["accuracy"] <= metrics["ci"][1]
    assert set(res["scorers"]["flr"]["categories"]) == {"understanding"}  # each FLR category's own accuracy
    assert "categories" not in res["scorers"]["length"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "demo.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert rows[0]["flr"]["correct"] == (rows[0]["flr"]["chosen"] > rows[0]["flr"]["rejected"])
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| flr |" in report and (tmp_path / "run" / "accuracy.png").exists()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["provenance"]["versions"]["torch"]

    # A second run with one more benchmark record and a new scorer: known scores come from the cache.
    counted = {n: counting(s) for n, s in scorers.items()}
    config.limit = 8
    run_eval(config, counted, model_name="tiny")
    unique_new = len({(r["prompt"], t) for r in _demo(8) for t in (r["chosen"], r["rejected"])}) - len(
        {(r["prompt"], t) for r in _demo(6) for t in (r["chosen"], r["rejected"])}
    )
    assert counted["flr"].count == unique_new and counted["direct"].count == unique_new


def _demo(limit):
    from flr.eval import load_benchmark

    return load_benchmark("demo", limit=limit)


def test_user_files_pairwise_and_rating(tmp_path, scorers):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "\n".join(
            json.dumps({"prompt": f"Q{i}?", "chosen": f"A good answer {i}.", "rejected": "No."}) for i in range(4)
        )
    )
    ratings = tmp_path / "ratings.jsonl"
    ratings.write_text(
        "\n".join(json.dumps({"prompt": "Q?", "response": "x" * (i + 1), "rating": i}) for i in range(5))
    )
    config = EvalConfig(
        benchmarks=f"{pairs},{ratings}", output_dir=str(tmp_path / "run"), cache=str(tmp_path / "c.db")
    )
    summary = run_eval(config, {"length": scorers["length"]})
    assert summary["results"]["pairs"]["scorers"]["length"]["accuracy"] == 1.0
    assert summary["results"]["ratings"]["kind"] == "rating"
    assert summary["results"]["ratings"]["scorers"]["length"]["spearman"] == pytest.approx(1.0)


def test_rewardbench_result_files(tmp_path, scorers):
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": f"Q{i}?", "chosen": "A long good answer.", "rejected": "No.", "subset": f"s{i % 2}"}
        for i in range(4)
    ]
    rows[3]["chosen"] = "?"  # one pair length gets wrong
    pairs.write_text("\n".join(json.dumps(r) for r in rows))
    config = EvalConfig(
        benchmarks=str(pairs), output_dir=str(tmp_path / "run"), cache=str(tmp_path / "c.db"), rewardbench=True
    )
    run_eval(config, {"length": scorers["length"]})
    folder = tmp_path / "run" / "rewardbench" / "pairs"
    result = json.loads((folder / "length.json").read_text())
    assert result["accuracy"] == 0.75 and result["num_prompts"] == 4 and result["ref_model"] is None
    assert result["extra_results"] == {"s0": 1.0, "s1": 0.5}
    scores = [json.loads(line) for line in (folder / "length_all.jsonl").read_text().splitlines()]
    assert len(scores) == 4 and set(scores[0]) == {"chosen", "rejected"}
    assert sum(s["chosen"] > s["rejected"] for s in scores) == 3


def test_cli_eval_and_report(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "run"
    args = [
        "eval",
        "--benchmarks",
        "demo",
        "--limit",
        "3",
        "--scorers",
        "flr,length",
        "--model",
        str(tiny_model_dir),
        "--categories",
        "understanding",
        "-o",
        str(out),
        "--cache",
        str(tmp_path / "c.db"),
    ]
    assert main(args) == 0
    assert "| flr |" in capsys.readouterr().out
    assert main(["report", str(out), str(out), "-o", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "report.md").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no summary.json" in capsys.readouterr().err
    assert main(["eval", "--benchmarks", "nope", "--scorers", "length", "-o", str(out)]) == 2

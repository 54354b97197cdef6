"""report.html of flr eval, flr audit and flr compare: self-contained, and checked as rendered by headless Chromium
(tables present, a filter changes the number of pairs shown, an explanation's bars drawn)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from flr.scorers import ScorerConfig, build_scorer

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (apt-get install chromium): the rendered pages are not checked"
)


def chromium(page, tmp_path, fragment: str = "", screenshot=None) -> str:
    """The page's DOM after its script ran (``fragment``: a URL hash the page reads its filters from)."""
    args = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run"]
    args += [f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000"]
    args += [f"--screenshot={screenshot}", "--window-size=1280,1600"] if screenshot else ["--dump-dom"]
    run = subprocess.run(args + [page.as_uri() + fragment], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def count(dom: str) -> int:
    return int(re.search(r'id="pair-count"[^>]*>(\d+)<', dom).group(1))


def embedded(page) -> dict:
    text = page.read_text()
    blob = re.search(r'<script type="application/json" id="pairs-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


def self_contained(page) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page fetches something"
    assert "@import" not in text and "fetch(" not in text


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory, tiny):
    from flr.jobs.eval import EvalConfig, run_eval

    model, tokenizer = tiny
    config = ScorerConfig(categories="understanding,engagingness", batch_size=8)
    scorers = {n: build_scorer(n, model, tokenizer, config=config, model_name="tiny") for n in ("flr", "length")}
    out = tmp_path_factory.mktemp("eval")
    cfg = EvalConfig(benchmarks="demo", output_dir=str(out / "run"), limit=10, cache=str(out / "c.db"), html_pairs=8)
    summary = run_eval(cfg, scorers, model_name="tiny")
    return out / "run", summary, scorers["flr"]


def test_eval_page_is_self_contained_and_explains_each_pair(eval_run):
    run, summary, flr = eval_run
    page = run / "report.html"
    self_contained(page)
    text = page.read_text()
    assert "data:image/png;base64," in text and "Pairwise accuracy" in text
    data = embedded(page)
    assert data["total"] == 10 and data["shown"] == 8 and "This page holds 8 of 10 pairs" in text
    rows = {r["id"]: r for r in map(json.loads, (run / "demo.jsonl").read_text().splitlines())}
    table = data["followups"]["flr"]
    assert len(table) == len(flr.utterances) and data["statistic"] == "mean"
    for pair in data["pairs"]:
        row = rows[pair["id"]]
        assert pair["matched"] == row["length_matched"]
        assert pair["decisions"]["length"]["agrees"] == row["length"]["correct"]
        pushes = pair["explain"]["flr"]
        assert len(pushes) == len(table)
        # the pushes add up to FLR's margin: the explanation is the decision, not a story about it
        assert sum(p[3] for p in pushes) == pytest.approx(row["flr"]["chosen"] - row["flr"]["rejected"], abs=1e-9)


@needs_browser
def test_eval_page_in_chromium_filters_and_draws_bars(eval_run, tmp_path):
    run, _, flr = eval_run
    page = run / "report.html"
    data = embedded(page)
    dom = chromium(page, tmp_path)
    assert "<table" in dom and "Pairwise accuracy" in dom and "Length control" in dom
    assert count(dom) == 8 and dom.count('class="pair"') + dom.count('class="pair" open') >= 8
    # the first pair is open: its explanation draws one bar per follow-up
    assert len(re.findall(r'class="bar (left|right)"', dom)) == len(flr.utterances)
    assert "pushes to chosen" in dom
    disagree = sum(not p["decisions"]["length"]["agrees"] for p in data["pairs"])
    assert count(chromium(page, tmp_path, "#disagree=length")) == disagree
    matched = sum(p["matched"] for p in data["pairs"])
    assert count(chromium(page, tmp_path, "#matched=1")) == matched
    either = sum(not p["decisions"]["length"]["agrees"] or not p["decisions"]["flr"]["agrees"] for p in data["pairs"])
    assert count(chromium(page, tmp_path, "#disagree=any")) == either
    assert count(chromium(page, tmp_path, "#bench=nope")) == 0
    assert {disagree, matched, 0} != {8}  # the filters did filter
    closed = chromium(page, tmp_path, "#open=0")
    assert 'class="bar' not in closed  # explanations are built when a pair is opened
    shot = tmp_path / "eval.png"
    chromium(page, tmp_path, screenshot=shot)
    assert shot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory, tiny):
    from flr.jobs.audit import AuditConfig, run_audit

    model, tokenizer = tiny
    config = ScorerConfig(categories="understanding", batch_size=8)
    scorers = {n: build_scorer(n, model, tokenizer, config=config, model_name="tiny") for n in ("flr", "length")}
    out = tmp_path_factory.mktemp("audit")
    cfg = AuditConfig(input="demo", limit=3, output_dir=str(out / "run"), cache=str(out / "c.db"), examples=2)
    return out / "run", run_audit(cfg, scorers, model_name="tiny")


def test_audit_page_is_self_contained(audit_run):
    run, summary = audit_run
    page = run / "report.html"
    self_contained(page)
    text = page.read_text()
    assert "data:image/png;base64," in text and "Share of responses whose reward rises" in text
    for name in summary["perturbations"]:
        assert f'id="p-{name}"' in text


@needs_browser
def test_audit_page_in_chromium_shows_each_perturbation_before_and_after(audit_run, tmp_path):
    run, summary = audit_run
    dom = chromium(run / "report.html", tmp_path)
    assert "<table" in dom and "Share of responses whose reward rises" in dom
    assert dom.count('class="ex"') == 2 * len(summary["perturbations"])  # --examples 2 each
    assert "I hope this helps! Let me know if you have any other questions." in dom
    assert re.search(r"before \(\d+ chars\)", dom) and re.search(r"after \(\d+ chars\)", dom)


@pytest.fixture
def compare_run(tmp_path):
    """A compare folder from synthetic rows (the report needs no model)."""
    from flr.jobs.compare import summarize
    from flr.reports.compare import write_compare_report

    rows = [
        {"id": str(i), "prompt": [{"role": "user", "content": f"Question {i}?"}], "candidate": "A " * (i + 1),
         "base": "B " * 3, "len_candidate": 2 * (i + 1), "len_base": 6, "score_candidate": float(i),
         "score_base": 2.0, "preference": 1.0 if i > 2 else 0.0 if i < 2 else 0.5}
        for i in range(6)
    ]  # fmt: skip
    metrics = summarize(rows, n_resamples=20)
    summary = {"base": "default", "candidate": "runs/dpo", "judge": {"judge": "length"}, "metrics": metrics}
    write_compare_report(tmp_path, summary, rows)
    return tmp_path / "report.html", rows


def test_compare_page_is_self_contained(compare_run):
    page, rows = compare_run
    self_contained(page)
    text = page.read_text()
    assert "wins / ties / losses" in text and text.count("data:image/png;base64,") == 1  # compare.png
    data = embedded(page)
    assert [p["decisions"]["judge"]["pick"] for p in data["pairs"]] == [
        "right",
        "right",
        "tie",
        "left",
        "left",
        "left",
    ]
    assert [p["matched"] for p in data["pairs"]] == [False, False, True, False, False, False]


@needs_browser
def test_compare_page_in_chromium_filters_by_the_judge(compare_run, tmp_path):
    page, rows = compare_run
    dom = chromium(page, tmp_path)
    assert "<table" in dom and count(dom) == 6 and "candidate: runs/dpo" in dom
    assert count(chromium(page, tmp_path, "#pick=judge:left")) == 3
    assert count(chromium(page, tmp_path, "#pick=judge:tie")) == 1
    assert count(chromium(page, tmp_path, "#matched=1")) == 1


def test_the_browser_takes_pairs_in_turn_from_each_benchmark():
    from flr.reports.browser import select_pairs

    assert select_pairs({"a": 3, "b": 1}, 10) == {"a": [0, 1, 2], "b": [0]}
    assert select_pairs({"a": 5, "b": 5}, 5) == {"a": [0, 1, 2], "b": [0, 1]}
    assert select_pairs({"a": 5}, 0) == {"a": []}

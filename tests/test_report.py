"""Reports through the one renderer: report.md and report.html carry the same tables (eval runs, flr report's merge,
audit, compare), and the renderer writes what a Document holds."""

from __future__ import annotations

import html
import json
import re

import pytest

from flr.reports.document import Bullets, Document, Figure, Heading, Paragraph, Table, markdown


def md_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table of a markdown text, as rows of cells (the rule line left out)."""
    tables, rows = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def html_tables(text: str, section: str = "tables") -> list[list[list[str]]]:
    """Every table of one section of a page, as rows of cells (markup inside a cell dropped)."""
    body = re.search(rf'<section id="{section}"[^>]*>(.*?)</section>', text, re.S).group(1)
    out = []
    for table in re.findall(r"<table>(.*?)</table>", body, re.S):
        rows = []
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
            cells = re.findall(r"<t[hd]>(.*?)</t[hd]>", row, re.S)
            rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
        out.append(rows)
    return out


def numbers(tables) -> list[str]:
    return [n for t in tables for row in t for cell in row for n in re.findall(r"[-+]?\d+(?:\.\d+)?", cell)]


@pytest.fixture(scope="module")
def eval_runs(tmp_path_factory, tiny):
    """Two eval runs of the tiny model (one with FLR, so a per-category table too), on demo and a user file."""
    from flr.jobs.eval import EvalConfig, run_eval
    from flr.scorers import ScorerConfig, build_scorer

    model, tokenizer = tiny
    out = tmp_path_factory.mktemp("evals")
    pairs = out / "pairs.jsonl"
    rows = [{"prompt": f"Q{i}?", "chosen": "A good answer. " * (i % 3 + 1), "rejected": "No." * (i % 4 + 1)}
            for i in range(12)]  # fmt: skip
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = ScorerConfig(categories="understanding", batch_size=8)
    flr = {n: build_scorer(n, model, tokenizer, config=config, model_name="tiny") for n in ("flr", "length")}
    runs = []
    for name, scorers in (("a", flr), ("b", {"length": flr["length"]})):
        cfg = EvalConfig(
            benchmarks=f"demo,{pairs}", output_dir=str(out / name), limit=8, cache=str(out / "c.db"), html_pairs=4
        )
        run_eval(cfg, scorers, model_name="tiny")
        runs.append(out / name)
    return runs


def test_an_eval_run_writes_the_same_table_rows_to_markdown_and_page(eval_runs):
    run = eval_runs[0]
    md, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    tables = md_tables(md)
    assert tables == html_tables(page)
    # pairwise, per-category (FLR), four length-control tables
    assert len(tables) == 6 and tables[0][0] == ["scorer", "demo (n=8)", "pairs (n=8)", "average"]
    summary = json.loads((run / "summary.json").read_text())
    accuracy = summary["results"]["demo"]["scorers"]["length"]["accuracy"]
    (length_row,) = [r for r in tables[0] if r[0] == "length"]
    assert length_row[1].startswith(f"{100 * accuracy:.1f} [")  # the summary's number, in both
    assert "![pairwise accuracy](accuracy.png)" in md and page.count("data:image/png;base64,") == 1


def test_flr_report_merges_runs_into_markdown_and_page_that_agree(eval_runs, tmp_path, capsys):
    from flr.cli import main

    out = tmp_path / "merged"
    assert main(["report", *map(str, eval_runs), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    tables = md_tables(md)
    assert tables == html_tables(page) and tables == md_tables(printed)
    # one row per scorer: run b's length scorer scored what run a's did, so they share the row
    summaries = [json.loads((r / "summary.json").read_text()) for r in eval_runs]
    scorers = [r[0] for r in tables[0][1:]]
    assert "flr" in scorers and any(s.startswith("length") for s in scorers)
    for summary in summaries:
        value = summary["results"]["pairs"]["scorers"]["length"]["accuracy"]
        assert any(f"{100 * value:.1f}" in cell for row in tables[0][1:] for cell in row)
    assert numbers(tables) == numbers(html_tables(page)) and len(numbers(tables)) > 20
    assert md.count("- model: `tiny`") == 2 and "data:image/png;base64," in page


def test_the_renderer_writes_each_block():
    doc = Document(
        "t",
        [
            Bullets(["run `x`", ("nested", ["inner"])]),
            Heading("Section"),
            Paragraph("text with `code` & <b>"),
            Table(["a", "b | c"], [["1", "<x>"]], title="Title", note="Note"),
            Figure("a.png", "plot"),
        ],
    )
    md = markdown(doc)
    assert md.startswith("# t\n\n- run `x`\n- nested\n  - inner\n\n## Section\n\ntext with `code` & <b>\n")
    assert "Title\n\nNote\n\n| a | b \\| c |\n|---|---|\n| 1 | <x> |\n\n![plot](a.png)\n" in md
    assert md_tables(md) == [[["a", "b | c"], ["1", "<x>"]]]
    with pytest.raises(ValueError, match="2 columns"):
        Table(["a", "b"], [["1"]])
    assert markdown(Document("", [Paragraph("p")])) == "p\n"


def test_the_page_escapes_and_embeds(tmp_path):
    from flr.reports.html import eval_page

    (tmp_path / "a.png").write_bytes(b"\x89PNG fake")
    doc = Document(
        "t",
        [
            Paragraph("Some `code` & <b>tags</b>."),
            Table(["a", "b | c"], [["1", "<x>"]]),
            Figure("a.png", "plot"),
            Figure("missing.png", "gone"),
            Bullets([("one", ["two"])]),
        ],
    )
    page = eval_page(tmp_path, {}, doc).read_text()
    assert "<code>code</code> &amp; &lt;b&gt;tags&lt;/b&gt;." in page
    assert "<th>b | c</th>" in page and "<td>&lt;x&gt;</td>" in page
    assert page.count("data:image/png;base64,") == 1 and "<li>one<ul><li>two</li></ul></li>" in page
    assert html_tables(page) == md_tables(markdown(doc))


def test_audit_and_compare_pages_carry_their_markdown_tables(tmp_path):
    from flr.jobs.audit import AuditConfig, run_audit
    from flr.jobs.compare import summarize
    from flr.reports.compare import write_compare_report
    from flr.scorers import LengthBaseline

    pairs = tmp_path / "p.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Q{i}?", "chosen": "Yes, " * i + "ok.", "rejected": "No."}) + "\n"
                             for i in range(4)))  # fmt: skip
    audit = tmp_path / "audit"
    run_audit(
        AuditConfig(input=str(pairs), output_dir=str(audit), cache=str(tmp_path / "c.db")),
        {"length": LengthBaseline()},
    )
    md = (audit / "report.md").read_text()
    tables = md_tables(md)
    assert len(tables) == 4 and tables[-1][0][:2] == ["perturbation", "what it does"]
    assert tables[:-1] == html_tables((audit / "report.html").read_text())  # the page has its own examples

    rows = [{"id": str(i), "prompt": f"Q{i}?", "candidate": "A" * (i + 2), "base": "BBB", "len_candidate": i + 2,
             "len_base": 3, "score_candidate": float(i), "score_base": 1.0, "preference": [0.0, 0.5, 1.0, 1.0][i]}
            for i in range(4)]  # fmt: skip
    summary = {"base": "b", "candidate": "c", "judge": {"judge": "length"}, "metrics": summarize(rows, n_resamples=20)}
    compare = tmp_path / "compare"
    compare.mkdir()
    write_compare_report(compare, summary, rows)
    tables = md_tables((compare / "report.md").read_text())
    assert tables == html_tables((compare / "report.html").read_text())
    assert ["wins / ties / losses", "2 / 1 / 1"] in tables[0]
    assert f"{100 * summary['metrics']['win_rate']:.1f}%" in dict(tables[0][1:])["win rate (ties = 1/2), 95% CI"]

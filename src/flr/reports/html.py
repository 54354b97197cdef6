"""report.html: one self-contained page per run (inline CSS and JS, plots as data URIs, nothing fetched).

Pages are Jinja2 templates (``flr/resources/templates``). Their tables and prose are the run's report document
(:class:`flr.reports.document.Document`), the same blocks report.md is written from, through ``blocks.html.j2``;
the pair browser is plain JavaScript over JSON embedded in the page (:func:`browser_json` of a
:class:`flr.reports.browser.Browser`), reading its filters from the URL hash (``#bench=demo&disagree=flr&matched=1``)
so that a filtered view is a link. Every text from the data is escaped (autoescape, ``textContent`` in the script).
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

from flr.reports.browser import Browser, clip, compare_browser
from flr.reports.document import Document, render

HTML_FILE = "report.html"


def write_page(path: str | Path, template: str, **context) -> Path:
    path = Path(path)
    path.write_text(render(template, **context), encoding="utf-8")
    return path


def data_uri(path: str | Path) -> str | None:
    """A PNG as a ``data:`` URI (None if the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def figures(doc: Document, folder: str | Path) -> dict[str, str]:
    """The document's figures in ``folder`` as data URIs (a missing file is left out)."""
    uris = {p: data_uri(Path(folder) / p) for p in doc.figures()}
    return {p: u for p, u in uris.items() if u}


def browser_json(browser: Browser) -> str:
    """JSON for a ``<script type="application/json">`` block: ``</`` and ``<!--`` cannot end the block."""
    text = json.dumps(_finite(browser.data()), ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _finite(value):
    """NaN and infinities -> None (JSON has no NaN; the page shows '–')."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def provenance_line(summary: dict) -> dict:
    prov = summary.get("provenance", {})
    return {
        "command": prov.get("command", ""),
        "time": prov.get("time", ""),
        "commit": str(prov.get("git_commit") or "-")[:12],
        "version": prov.get("versions", {}).get("flr", "?"),
        "device": prov.get("device", "?"),
    }


def _browser(browser: Browser | None) -> dict:
    shown = browser is not None and browser.pairs
    return {"browser": browser_json(browser) if shown else None, "browser_info": browser}


# -- pages ------------------------------------------------------------------------------------------------------


def eval_page(out_dir: str | Path, summary: dict, doc: Document, browser: Browser | None = None) -> Path:
    """``out_dir/report.html`` for an ``flr eval`` run (or ``flr report``'s merge): the report's tables and plots,
    and the pair browser."""
    out_dir = Path(out_dir)
    return write_page(
        out_dir / HTML_FILE,
        "eval.html.j2",
        title=doc.title,
        meta=provenance_line(summary),
        doc=doc,
        figures=figures(doc, out_dir),
        **_browser(browser),
    )


def audit_page(out_dir: str | Path, summary: dict, doc: Document, examples: dict[str, list[dict]]) -> Path:
    """``out_dir/report.html`` for an ``flr audit`` run: the tables and plot, and each perturbation with examples
    before and after (``examples``: perturbation -> [{prompt, before, after, changes: {scorer: delta}}])."""
    out_dir = Path(out_dir)
    clipped = {
        name: [{**e, "before": clip(e["before"], 4000), "after": clip(e["after"], 4000)} for e in items]
        for name, items in examples.items()
    }
    return write_page(
        out_dir / HTML_FILE,
        "audit.html.j2",
        title=doc.title,
        summary=summary,
        meta=provenance_line(summary),
        doc=doc,
        figures=figures(doc, out_dir),
        examples=clipped,
    )


def compare_page(
    out_dir: str | Path, summary: dict, doc: Document, rows: list[dict], *, plot: str | None = None, limit: int = 500
) -> Path:
    """``out_dir/report.html`` for an ``flr compare`` run: the report's tables, the plot ``plot`` (a file in
    ``out_dir`` that report.md does not show), and the pairs (candidate against base) in the browser, filterable
    by the judge's decision."""
    out_dir = Path(out_dir)
    uri = data_uri(out_dir / plot) if plot else None
    return write_page(
        out_dir / HTML_FILE,
        "compare.html.j2",
        title=f"flr compare: {summary.get('candidate')} vs {summary.get('base')}",
        meta=provenance_line(summary),
        doc=doc,
        figures=figures(doc, out_dir),
        plots=[uri] if uri else [],
        **_browser(compare_browser(summary, rows, limit)),
    )

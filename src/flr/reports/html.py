"""report.html: one self-contained page per run (inline CSS and JS, plots as data URIs, nothing fetched).

Pages are Jinja2 templates (``flr/resources/templates``). The tables are those of the run's report.md, converted here,
so the page and the markdown never disagree; the pair browser is plain JavaScript over JSON embedded in the page
(:func:`browser_json`), reading its filters from the URL hash (``#bench=demo&disagree=flr&matched=1``) so that a
filtered view is a link. Every text from the data is escaped (autoescape, ``textContent`` in the script).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from functools import cache
from pathlib import Path

TEMPLATES = Path(__file__).parents[1] / "resources" / "templates"
HTML_FILE = "report.html"
MAX_TEXT = 10_000  # characters of one text kept in the page (a browser, not an archive; scorers read less)


@cache
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "html.j2", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


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


def browser_json(data) -> str:
    """JSON for a ``<script type="application/json">`` block: ``</`` and ``<!--`` cannot end the block."""
    text = json.dumps(_finite(data), ensure_ascii=False, allow_nan=False, default=str)
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


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters not shown]"


# -- the report.md subset flr writes, as HTML ------------------------------------------------------------------


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _table(lines: list[str]) -> str:
    rows = [
        [
            c.strip().replace("\\|", "|")
            for c in re.split(r"(?<!\\)\|", line.strip().removeprefix("|").removesuffix("|"))
        ]
        for line in lines
    ]
    head, body = rows[0], [r for r in rows[1:] if not all(re.fullmatch(r":?-+:?", c) for c in r)]
    parts = ['<div class="table"><table>', "<thead><tr>"]
    parts += [f"<th>{_inline(c)}</th>" for c in head]
    parts.append("</tr></thead><tbody>")
    for r in body:
        parts.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def markdown_html(text: str, folder: str | Path | None = None) -> str:
    """The markdown flr's reports use (headings, pipe tables, images, bullets, paragraphs, `code`, **bold**) as
    HTML; images in ``folder`` are embedded as data URIs, others are dropped, and so is the title (the page has
    its own)."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block))
            continue
        image = re.fullmatch(r"\s*!\[([^\]]*)\]\(([^)]+)\)\s*", line)
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        if image:
            uri = data_uri(Path(folder or ".") / image.group(2)) if folder is not None else None
            if uri:
                out.append(f'<figure><img alt="{html.escape(image.group(1))}" src="{uri}"></figure>')
        elif heading:
            level = len(heading.group(1))
            if level > 1:
                out.append(f"<h{level + 1}>{_inline(heading.group(2))}</h{level + 1}>")
        elif line.lstrip().startswith("- "):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].lstrip()[2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        else:
            para = [line]
            while i + 1 < len(lines) and lines[i + 1].strip() and not re.match(r"\s*(\||#|!\[|- )", lines[i + 1]):
                i += 1
                para.append(lines[i])
            out.append(f"<p>{_inline(' '.join(p.strip() for p in para))}</p>")
        i += 1
    return "\n".join(out)


def report_sections(folder: str | Path, stop_at: str | None = None) -> str:
    """``folder/report.md`` as HTML, its plots embedded ('' when there is no report); ``stop_at``: a line where
    the page has its own version of the rest."""
    path = Path(folder) / "report.md"
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8")
    if stop_at and f"\n{stop_at}\n" in text:
        text = text[: text.index(f"\n{stop_at}\n")]
    return markdown_html(text, folder)


def provenance_line(summary: dict) -> dict:
    prov = summary.get("provenance", {})
    return {
        "command": prov.get("command", ""),
        "time": prov.get("time", ""),
        "commit": str(prov.get("git_commit") or "-")[:12],
        "version": prov.get("versions", {}).get("flr", "?"),
        "device": prov.get("device", "?"),
    }


# -- pages ------------------------------------------------------------------------------------------------------


def eval_page(out_dir: str | Path, summary: dict, browser: dict | None) -> Path:
    """``out_dir/report.html`` for an ``flr eval`` run: report.md's tables and plots, and the pair browser."""
    out_dir = Path(out_dir)
    return write_page(
        out_dir / HTML_FILE,
        "eval.html.j2",
        title="flr evaluation report",
        summary=summary,
        meta=provenance_line(summary),
        sections=report_sections(out_dir),
        browser=browser_json(browser) if browser and browser.get("pairs") else None,
        browser_info=browser,
    )


def audit_page(out_dir: str | Path, summary: dict, examples: dict[str, list[dict]]) -> Path:
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
        title=f"flr audit: {summary.get('input')}",
        summary=summary,
        meta=provenance_line(summary),
        sections=report_sections(out_dir, stop_at="## Examples"),
        examples=clipped,
    )


def compare_page(out_dir: str | Path, summary: dict, rows: list[dict], *, limit: int = 500) -> Path:
    """``out_dir/report.html`` for an ``flr compare`` run: the report's table and plot, the pattern shares, and
    the pairs (candidate against base) in the browser, filterable by the judge's decision."""
    from flr.eval.metrics import length_matched

    out_dir = Path(out_dir)
    shown = rows[:limit]
    matched = length_matched([r.get("len_candidate", 0) for r in shown], [r.get("len_base", 0) for r in shown])
    pairs = []
    for r, is_matched in zip(shown, matched):
        pick = {1.0: "left", 0.0: "right", 0.5: "tie"}.get(r.get("preference"), "none")
        pairs.append(
            {
                "group": "compare",
                "subset": "all",
                "id": str(r.get("id")),
                "prompt": r.get("prompt"),
                "left": clip(r.get("candidate", "")),
                "right": clip(r.get("base", "")),
                "lengths": [r.get("len_candidate"), r.get("len_base")],
                "matched": bool(is_matched),
                "decisions": {"judge": {"left": r.get("score_candidate"), "right": r.get("score_base"), "pick": pick}},
            }
        )
    browser = {
        "labelled": False,
        "scorers": ["judge"],
        "left_title": f"candidate: {summary.get('candidate')}",
        "right_title": f"base: {summary.get('base')}",
        "left_name": "candidate",
        "right_name": "base",
        "total": len(rows),
        "shown": len(pairs),
        "limit": limit,
        "pairs": pairs,
        "followups": {},
    }
    plot = data_uri(out_dir / "compare.png")  # report.md does not show it: the page does
    return write_page(
        out_dir / HTML_FILE,
        "compare.html.j2",
        title=f"flr compare: {summary.get('candidate')} vs {summary.get('base')}",
        summary=summary,
        meta=provenance_line(summary),
        sections=report_sections(out_dir),
        plots=[plot] if plot else [],
        browser=browser_json(browser) if pairs else None,
        browser_info=browser,
    )

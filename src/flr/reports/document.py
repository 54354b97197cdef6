"""The one renderer of reports: a report is a :class:`Document`, a list of blocks (headings, paragraphs, bullets,
tables, figures) computed from a run's data, and one template set writes it twice: ``document.md.j2`` as report.md
and ``blocks.html.j2`` inside each report.html page. A table's numbers are formatted once, as strings in its rows,
so the markdown and the page show the same rows.

Prose may hold `code` spans (backticks), the one inline markup: the page shows them as ``<code>``. Every text is
escaped where it lands (``|`` in a markdown cell, HTML by autoescape).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import ClassVar

TEMPLATES = Path(__file__).parents[1] / "resources" / "templates"


@dataclass
class Heading:
    text: str
    level: int = 2  # report.md's ## (the page shows it one level lower: its h1 is the page's title)
    kind: ClassVar[str] = "heading"


@dataclass
class Paragraph:
    text: str
    kind: ClassVar[str] = "paragraph"


@dataclass
class Bullets:
    """A bulleted list; each item is a text or (text, [sub-items])."""

    items: list
    kind: ClassVar[str] = "bullets"

    def __post_init__(self):
        self.items = [(item, []) if isinstance(item, str) else (item[0], list(item[1])) for item in self.items]


@dataclass
class Table:
    """A table as rows of formatted cells: ``title`` and ``note`` are lines above it."""

    columns: list[str]
    rows: list[list[str]]
    title: str = ""
    note: str = ""
    kind: ClassVar[str] = "table"

    def __post_init__(self):
        bad = [r for r in self.rows if len(r) != len(self.columns)]
        if bad:
            raise ValueError(f"a row of {len(bad[0])} cells in a table of {len(self.columns)} columns")


@dataclass
class Figure:
    """A plot in the run folder (``path`` relative to it); the page embeds it as a data URI."""

    path: str
    alt: str
    kind: ClassVar[str] = "figure"


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def before(self, heading: str) -> Document:
        """The blocks before the heading ``heading`` (all of them without it)."""
        at = next((i for i, b in enumerate(self.blocks) if b.kind == "heading" and b.text == heading), None)
        return Document(self.title, self.blocks[:at])

    def figures(self) -> list[str]:
        return [b.path for b in self.blocks if b.kind == "figure"]


def _cell(text) -> str:
    """A markdown table cell: a pipe is escaped, a line break becomes a space."""
    return str(text).replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def _inline(text):
    """Escaped text with its `code` spans as <code> (HTML templates only)."""
    from markupsafe import Markup, escape

    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: no code spans
        return escape(str(text))
    return Markup("").join(escape(p) if i % 2 == 0 else Markup("<code>%s</code>") % p for i, p in enumerate(parts))


@cache
def environment():
    """The Jinja environment of every report template: HTML templates (``*.html.j2``) autoescape, the markdown one
    does not."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = _cell
    env.filters["inline"] = _inline
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def markdown(doc: Document) -> str:
    """``doc`` as report.md (without a title line when ``doc.title`` is empty)."""
    return render("document.md.j2", doc=doc).strip("\n") + "\n"


def write_markdown(path: str | Path, doc: Document) -> Path:
    path = Path(path)
    path.write_text(markdown(doc), encoding="utf-8")
    return path

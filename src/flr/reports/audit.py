"""The report of an ``flr audit`` run: its tables as rows, written as report.md and report.html (with audit.png)
by the one renderer (:mod:`flr.reports.document`)."""

from __future__ import annotations

from pathlib import Path

from flr.eval.metrics import perturbation_flagged
from flr.records.provenance import provenance_text, variant_text
from flr.reports.document import Bullets, Document, Figure, Heading, Paragraph, Table, write_markdown

PLOT_FILE = "audit.png"
EXAMPLES = "Examples"  # the heading of report.md's examples table; the page shows its own examples instead


def _pct_ci(effect: dict) -> str:
    if not effect.get("n"):
        return "–"
    ci = effect["ci"]
    return f"{100 * effect['share_rises']:.0f} [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]"


def _number(value) -> str:
    if value is None:
        return "–"
    return f"{value:+.3g}" if abs(value) < 1000 else f"{value:+.0f}"


def _with_pairs(summary: dict) -> bool:
    return any(v for v in (summary.get("median_abs_margin") or {}).values())


def rising_table(summary: dict) -> Table:
    """Per perturbation and scorer: the share of responses whose reward rises, with its CI and the flag."""
    scorers = list(summary["results"])
    rows = []
    for name, info in summary["perturbations"].items():
        cells = []
        for s in scorers:
            effect = summary["results"][s][name]
            mark = " ⚠" if perturbation_flagged(info["kind"], effect) else ""
            extra = f" (n={effect['n']})" if effect.get("n") != info["edited"] else ""
            cells.append(_pct_ci(effect) + extra + mark)
        rows.append([name, info["kind"], str(info["edited"]), *cells])
    note = (
        "A content-free edit should leave the reward unchanged; a destructive one should lower it. ⚠ marks a "
        "content-free edit that raises the reward for most responses (the CI lies above 50%) and a destructive one "
        "that does not lower it for most (the CI of the share that falls does not lie above 50%). n: edited "
        "responses (an edit that changes nothing is left out)."
    )
    return Table(["perturbation", "kind", "n", *scorers], rows, note=note)


def margin_table(summary: dict) -> Table:
    """The median change in units of each scorer's median |chosen − rejected| margin."""
    scorers, margins = list(summary["results"]), summary.get("median_abs_margin") or {}
    rows = [["(median margin)", *(_number(margins.get(s)).lstrip("+") for s in scorers)]]
    for name in summary["perturbations"]:
        rows.append([name, *(_number(summary["results"][s][name]["median_change_margins"]) for s in scorers)])
    note = "1.0 = the edit moves the reward as much as a typical labelled pair differs."
    return Table(["perturbation", *scorers], rows, note=note)


def change_table(summary: dict) -> Table:
    """The median change in the scorer's own units."""
    scorers = list(summary["results"])
    rows = [
        [name, *(_number(summary["results"][s][name]["median_change"]) for s in scorers)]
        for name in summary["perturbations"]
    ]
    return Table(["perturbation", *scorers], rows)


def around_change(before: str, after: str, context: int = 60) -> tuple[str, str]:
    """Both texts cut to where they differ (``context`` characters either side), so an edit at the end of a long
    response shows in a table cell."""
    start = 0
    while start < min(len(before), len(after)) and before[start] == after[start]:
        start += 1
    end = 0
    while end < min(len(before), len(after)) - start and before[-1 - end] == after[-1 - end]:
        end += 1

    def cut(text: str) -> str:
        lo, hi = max(0, start - context), min(len(text), len(text) - end + context)
        if hi - lo > 4 * context:  # a long middle (a rewrite): its start and its end
            middle = text[lo : lo + 2 * context] + " ... " + text[hi - context : hi]
        else:
            middle = text[lo:hi]
        words = middle.split()
        if lo and len(words) > 1:  # whole words only
            words = words[1:]
        if hi < len(text) and len(words) > 1:
            words = words[:-1]
        return ("... " if lo else "") + " ".join(words) + (" ..." if hi < len(text) else "")

    return cut(before), cut(after)


def examples_table(summary: dict, examples: dict[str, list[dict]]) -> Table:
    """The first edited response of each perturbation, around the edit, and each scorer's change."""
    rows = []
    for name, info in summary["perturbations"].items():
        items = examples.get(name) or []
        if items:
            e = items[0]
            before, after = around_change(e["before"], e["after"])
            changes = ", ".join(f"{s} {_number(v)}" for s, v in e["changes"].items())
        else:
            before = after = changes = "–"
        rows.append([name, info["description"], before, after, changes])
    return Table(["perturbation", "what it does", "before", "after", "reward change"], rows)


def audit_document(summary: dict, examples: dict[str, list[dict]], plot: str | None = PLOT_FILE) -> Document:
    """The audit's report: what ran, the share that rises, the plot, the median changes, the examples."""
    with_pairs = _with_pairs(summary)
    blocks = [
        Bullets(
            [
                f"{summary['responses']} responses from {summary['records']} records ({summary['kind']}; "
                f"{summary['pairs']} labelled pairs); model: `{summary.get('model')}`; scorers: "
                f"{', '.join(summary['scorers'])}",
                provenance_text(summary),
                variant_text(summary),
            ]
        ),
        Heading("Share of responses whose reward rises, % [95% Wilson CI]"),
        rising_table(summary),
    ]
    if plot:  # after the first table: the shares, then the same as bars
        blocks.append(Figure(plot, "audit"))
    if with_pairs:
        blocks += [
            Heading(
                "Median reward change, in units of each scorer's median |chosen − rejected| margin "
                f"({summary.get('pairs')} labelled pairs)"
            ),
            margin_table(summary),
        ]
    blocks += [
        Heading("Median reward change" + (" (the scorer's own units)" if with_pairs else "")),
        change_table(summary),
        Heading(EXAMPLES),
        Paragraph("The first edited response of each perturbation, around the edit, and each scorer's change."),
        examples_table(summary, examples),
    ]
    return Document(f"flr audit: {summary['input']}", blocks)


def write_audit_report(out_dir: str | Path, summary: dict, examples: dict[str, list[dict]]) -> Path:
    """report.md, audit.png and report.html of an audit run, from one document; returns report.md's path."""
    from flr.reports.html import audit_page
    from flr.reports.plots import plot_audit

    out_dir = Path(out_dir)
    plotted = plot_audit(summary, out_dir / PLOT_FILE)
    doc = audit_document(summary, examples, PLOT_FILE if plotted else None)
    path = write_markdown(out_dir / "report.md", doc)
    audit_page(out_dir, summary, doc.before(EXAMPLES), examples)
    return path

"""The report of an ``flr compare`` run: its tables as rows, written as report.md and report.html by the one renderer
(:mod:`flr.reports.document`), with compare.png, alpaca_eval's leaderboard.csv and examples.md. Every number is
the run's summary (``summary["metrics"]``, computed by :func:`flr.eval.metrics.win_rate` and
:func:`flr.eval.metrics.length_controlled_win_rate`); none is computed here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flr.patterns import DETECTORS
from flr.reports.document import Document, Heading, Paragraph, Table, write_markdown

PLOT_FILE = "compare.png"
LC_NOTE = (
    "Win rate > 50% means the judge prefers the candidate. The length-controlled win rate removes the part of the "
    "preference explained by the length difference: a logistic fit on tanh-scaled length differences only, without "
    "AlpacaEval 2's per-instruction and per-model terms, so it is not comparable with AlpacaEval 2's LC numbers."
)
PATTERNS_NOTE = (
    "Share of responses (%) carrying each content-free pattern flr can detect (closer: a polite closing line; "
    "opener: a flattering or eager first sentence; bait_question: ends by asking the user a yes-question; "
    "markdown: headers, bold or a list). A pattern more common on the preferred side is what training on these "
    "responses reinforces."
)


def _fmt_ci(value: float, ci: Sequence[float]) -> str:
    return f"{100 * value:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def metrics_table(m: dict) -> Table:
    """The head-to-head numbers: win rate, LC win rate, counts, lengths, the judge's consistency."""
    rows = [
        ["prompts", str(m["n"])],
        ["win rate (ties = 1/2), 95% CI", _fmt_ci(m["win_rate"], m["win_rate_ci"])],
        [
            "length-controlled win rate (flr's simplified GLM, not AlpacaEval 2's), bootstrap 95% CI",
            _fmt_ci(m["lc_win_rate"], m["lc_win_rate_ci"]),
        ],
        ["wins / ties / losses", f"{m['wins']} / {m['ties']} / {m['losses']}"],
        ["identical responses (ties by construction)", str(m["identical"])],
        ["mean length (chars), candidate / base", f"{m['mean_len_candidate']:.0f} / {m['mean_len_base']:.0f}"],
    ]
    if "mean_tokens_candidate" in m and "mean_tokens_base" in m:
        tokens = f"{m['mean_tokens_candidate']:.1f} / {m['mean_tokens_base']:.1f}"
        rows.append(["mean length (generated tokens), candidate / base", tokens])
    if "position_consistency" in m:
        rows.append(["judge agrees with itself across orders", f"{100 * m['position_consistency']:.0f}%"])
    return Table(["metric", "value"], rows)


def drift_table(drift: dict) -> Table:
    """Surface drift: mean length and pattern shares of the candidate's answers against the base's."""
    rows = []
    for name, d in drift.items():
        unit, scale = ("chars", 1) if name == "length" else ("% of answers", 100)
        rows.append(
            [
                f"{name} ({unit})",
                f"{scale * d['base']:.1f}",
                f"{scale * d['candidate']:.1f}",
                f"{scale * d['difference']:+.1f} [{scale * d['ci'][0]:+.1f}, {scale * d['ci'][1]:+.1f}]",
            ]
        )
    return Table(["measure", "base", "candidate", "difference [95% CI]"], rows)


def pattern_table(report: dict) -> Table:
    """:func:`flr.patterns.pattern_report` as a table: patterns as rows, groups as columns, shares in %."""
    groups = list(report["shares"])
    rows = [
        [
            name,
            *("–" if report["shares"][g][name] is None else f"{100 * report['shares'][g][name]:.1f}" for g in groups),
        ]
        for name in DETECTORS
    ]
    return Table(["pattern", *(f"{g} (n={report['n'][g]})" for g in groups)], rows, note=PATTERNS_NOTE)


def reference_paragraph(summary: dict) -> Paragraph:
    r = summary["reference_likelihood"]
    return Paragraph(
        f"Mean per-token log-likelihood of the reference answers (`{summary.get('reference_field')}`), "
        f"{r['n']} prompts: base {r['base']:.4f}, candidate {r['candidate']:.4f}; gain "
        f"{r['difference']:+.4f} nats/token [95% CI {r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]; the candidate finds "
        f"the reference more likely on {100 * r['candidate_higher']:.0f}% of prompts."
    )


def compare_document(summary: dict) -> Document:
    """The compare report: the judge, the head-to-head table, and where the summary has them, the surface drift,
    the reference likelihood and the content-free patterns."""
    judge = summary.get("judge") or {}
    blocks: list = [
        Paragraph(f"Judge: `{judge.get('judge')}`" + (f" ({judge['model']})" if judge.get("model") else "")),
        metrics_table(summary["metrics"]),
        Paragraph(LC_NOTE),
    ]
    if "drift" in summary:
        blocks += [
            Heading("Surface drift: candidate vs base answers to the same prompts"),
            drift_table(summary["drift"]),
        ]
    if "reference_likelihood" in summary:
        blocks += [Heading("Reference likelihood"), reference_paragraph(summary)]
    if "patterns" in summary:
        blocks += [Heading("Content-free patterns in the outputs"), pattern_table(summary["patterns"])]
    return Document(f"flr compare: {summary.get('candidate')} vs {summary.get('base')}", blocks)


def write_leaderboard(path: str | Path, metrics: dict, name: str) -> None:
    """alpaca_eval's leaderboard columns, in percent, from the run's metrics: win_rate and its standard error,
    wins, draws, losses, flr's length-controlled win rate (a simplified GLM: preference on the tanh-scaled length
    difference only, without alpaca_eval's per-instruction difficulty term; not AlpacaEval 2's number), mean
    output length."""
    import csv

    m = metrics
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["", "win_rate", "standard_error", "n_wins", "n_draws", "n_losses", "n_total",
                         "length_controlled_winrate", "avg_length"])  # fmt: skip
        writer.writerow([name, 100 * m["win_rate"], 100 * m["win_rate_se"], m["wins"], m["ties"], m["losses"], m["n"],
                         100 * m["lc_win_rate"], m["mean_len_candidate"]])  # fmt: skip


def examples_document(rows: list[dict], per_kind: int = 3) -> Document:
    """A few pairs the judge preferred each way, to read rather than trust the number."""
    blocks: list = []
    for title, want in (("Candidate preferred", 1.0), ("Base preferred", 0.0), ("Ties", 0.5)):
        picked = [r for r in rows if r["preference"] == want][:per_kind]
        blocks.append(Heading(f"{title} ({sum(r['preference'] == want for r in rows)} in all)"))
        for r in picked:
            prompt = r["prompt"] if isinstance(r["prompt"], str) else r["prompt"][-1]["content"]
            blocks += [
                Paragraph(f"**Prompt** ({r['id']}): {prompt[:500]}"),
                Paragraph(f"**Candidate**: {r['candidate'][:800]}"),
                Paragraph(f"**Base**: {r['base'][:800]}"),
                Paragraph("---"),
            ]
    return Document("Example pairs", blocks)


def write_compare_report(out_dir: str | Path, summary: dict, rows: list[dict]) -> Path:
    """report.md and report.html (from one document), compare.png, leaderboard.csv and examples.md of a compare
    run; returns report.md's path."""
    from flr.reports.html import compare_page
    from flr.reports.plots import plot_compare

    out_dir = Path(out_dir)
    doc = compare_document(summary)
    path = write_markdown(out_dir / "report.md", doc)
    write_leaderboard(out_dir / "leaderboard.csv", summary["metrics"], summary.get("candidate"))
    write_markdown(out_dir / "examples.md", examples_document(rows))
    plot_compare(out_dir / PLOT_FILE, rows, summary, summary.get("base"), summary.get("candidate"))
    compare_page(out_dir, summary, doc, rows, plot=PLOT_FILE)  # the plot: on the page, not in report.md
    return path

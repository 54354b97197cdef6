"""``flr report``: merge eval runs into one table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flr.arguments import split_list
from flr.commands._common import add_command, add_dataclasses, to_configs
from flr.errors import FLRError


@dataclass
class ReportConfig:
    runs: list[str] | None = field(
        default=None,
        metadata={"help": "Run folders, comma- or space-separated (or give them as positional arguments)."},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "Write a merged report.md, report.html and plots here.", "aliases": ["-o"]}
    )


def make_parser(subparsers):
    parser = add_command(subparsers, "report", help="Merge flr eval run folders into one table.", build=build)
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    add_dataclasses(parser, ReportConfig)
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="flr eval output folders.")
    parser.epilog = """examples:
  flr report runs/eval runs/eval-compact -o runs/report       # one table, one row per scorer and follow-up set
"""


def main(args) -> int:
    from flr.reports.markdown import load_summaries, markdown_table, merge_results, write_report

    config = to_configs(args, ReportConfig)
    dirs = list(args.run_dirs or []) + split_list(config.runs)
    if not dirs:
        raise FLRError("give one or more run folders: flr report runs/a runs/b")
    summaries = load_summaries(dirs)
    print(markdown_table(merge_results(summaries)))
    if config.output_dir:
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        path = write_report(Path(config.output_dir), summaries)  # report.md and report.html, from one document
        print(f"flr report: wrote {path} and {path.with_name('report.html')}")
    return 0

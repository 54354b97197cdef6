"""The ``flr`` command: one entry point, one module per subcommand under ``flr.commands``.

Each command module exposes ``make_parser(subparsers)`` and ``main(args)``, so it runs as a subcommand and
can be driven from Python. A command's flags are built only when it runs or its help is shown, and the modules
that do its work (torch, transformers, TRL) load inside its ``main``: ``flr --help`` and ``flr <command> --help``
load none of them. User errors (:class:`flr.errors.FLRError`) print as one line and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from flr import __version__
from flr.arguments import ConfigParser
from flr.commands import (
    audit,
    compare,
    demo,
    feedback,
    followups,
    generate,
    mine,
    pipeline,
    report,
    score,
    serve,
    train,
)
from flr.commands import eval as evaluate
from flr.commands._common import resolve_positionals
from flr.errors import FLRError

COMMANDS = (demo, score, followups, evaluate, audit, report, generate, mine, train, feedback, compare, pipeline, serve)


def build_parser(argv: list[str] | None = None) -> ConfigParser:
    """The parser of every command. Each command's parser adds its flags when it is first used (parsed, or its
    help shown), so building this costs nothing; ``argv`` is accepted for callers that pass it and not needed."""
    parser = ConfigParser(
        prog="flr",
        description="Follow-up Likelihood as Reward: score responses by how likely an LM finds positive vs "
        "negative user follow-ups, evaluate it as a reward model, mine preference data and align policies.",
        formatter_class=argparse.HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flr {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.make_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="flr: %(message)s")
    for noisy in ("httpx", "urllib3", "filelock", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        resolve_positionals(args)
        if getattr(args, "config", None):
            args = parser.apply_config(args, argv, f"flr {args.command}")  # the YAML's values, flags typed win
            resolve_positionals(args)
        return args.func(args) or 0
    except FLRError as exc:
        print(f"flr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"flr {args.command}: interrupted; finished records are saved, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

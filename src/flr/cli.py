"""The ``flr`` command: one entry point, one module per subcommand under ``flr.commands``.

Each command module exposes ``make_parser(subparsers)`` and ``main(args)``, so it runs as a subcommand and
can be driven from Python. User errors (:class:`flr.errors.FLRError`) print as one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys

from transformers import HfArgumentParser

from flr import __version__
from flr.commands._common import apply_config_file, resolve_positionals
from flr.errors import FLRError

COMMANDS = (
    "demo",
    "score",
    "followups",
    "eval",
    "audit",
    "report",
    "generate",
    "mine",
    "train",
    "feedback",
    "compare",
    "pipeline",
    "serve",
)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command. A command whose flags are costly to build (``train`` imports TRL) is built in
    full only when ``argv`` (default: the process's arguments) runs it."""
    running = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(
        prog="flr",
        description="Follow-up Likelihood as Reward: score responses by how likely an LM finds positive vs "
        "negative user follow-ups, evaluate it as a reward model, mine preference data and align policies.",
    )
    parser.add_argument("--version", action="version", version=f"flr {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=HfArgumentParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"flr.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"flr.commands.{name}":
                continue
            if exc.name and exc.name.split(".")[0] == "flr":
                raise
            _unavailable(subparsers, name, exc.name)  # an optional dependency is missing: say so when used
            continue
        if "full" in inspect.signature(module.make_parser).parameters:
            module.make_parser(subparsers, full=running == name)
        else:
            module.make_parser(subparsers)
    return parser


def _unavailable(subparsers, name: str, package: str) -> None:
    parser = subparsers.add_parser(name, help=f"(needs the package '{package}')", add_help=False)
    parser.add_argument("rest", nargs=argparse.REMAINDER)

    def fail(args):
        raise FLRError(f"'flr {name}' needs the package '{package}': pip install {package}")

    parser.set_defaults(func=fail)


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
            args._parser._root = parser
            args = apply_config_file(args, argv)
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

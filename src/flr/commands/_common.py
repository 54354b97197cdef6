"""Helpers every subcommand uses: dataclass-driven flags and ``--config x.yaml`` with command-line overrides
(:class:`flr.arguments.ConfigParser`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flr.arguments import ConfigParser, load_yaml_mapping, to_configs  # noqa: F401 - commands import these here
from flr.errors import FLRError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help, and examples (the epilog) kept as written."""


def add_command(subparsers, name: str, *, help: str, build=None, description: str | None = None):
    """A subcommand whose flags come from config dataclasses (``--batch-size`` and ``--batch_size`` both work).

    ``build(parser)`` adds them (``parser.add_dataclass(cls)``, :func:`add_positional`, its ``epilog`` and
    ``set_defaults(func=...)``) when the command is parsed or its help shown, so the modules that hold the
    dataclasses load only for the command that runs.
    """
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        formatter_class=HelpFormatter,
        build=lambda p: _build_command(p, build),
    )
    return parser


def _build_command(parser: ConfigParser, build) -> None:
    try:
        if build is not None:
            build(parser)
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] == "flr":
            raise
        _unavailable(parser, exc.name)  # an optional dependency is missing: say so when used
        return
    parser.add_config_flag()  # after the fields, as in their help


def _unavailable(parser: ConfigParser, package: str) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER)

    def fail(args):
        raise FLRError(f"'{parser.prog}' needs the package '{package}': pip install {package}")

    parser.set_defaults(func=fail)


def add_dataclasses(parser: ConfigParser, *classes) -> None:
    for cls in classes:
        parser.add_dataclass(cls)


def make_subparsers(parser: argparse.ArgumentParser, dest: str = "subcommand"):
    """Nested subcommands (``flr train dpo``), ConfigParsers as the commands are."""
    return parser.add_subparsers(dest=dest, parser_class=ConfigParser, metavar="SUBCOMMAND")


def add_positional(parser: ConfigParser, dest: str, metavar: str, help: str) -> None:
    """Let a dataclass field also be given positionally (``flr score in.jsonl`` as well as ``--input in.jsonl``)."""
    flag = parser.flag(dest)
    if flag is not None:
        flag.required = False
    parser.add_argument(f"_{dest}_positional", metavar=metavar, nargs="?", default=None, help=help)


def resolve_positionals(args) -> None:
    for key in [k for k in vars(args) if k.startswith("_") and k.endswith("_positional")]:
        dest = key[1 : -len("_positional")]
        value = getattr(args, key)
        if value is not None:
            setattr(args, dest, value)


def check_scorer_settings(scorer: str, flr_config) -> None:
    """What a scorer's settings can get wrong, checked before a model loads: the scorer name and the follow-up set
    (its file, its fields, the categories asked for)."""
    from flr.followups import load_followups
    from flr.scorers import SCORERS, is_scorer_name
    from flr.scorers.flr import check_length_term

    if not is_scorer_name(scorer):
        raise FLRError(f"unknown scorer '{scorer}': use one of {', '.join(SCORERS)}")
    if scorer.startswith("implicit:"):
        from flr.scorers.implicit import check_spec

        check_spec(scorer)
    if scorer == "flr":
        check_length_term(flr_config, load_followups(flr_config.followups).select(flr_config.categories))


def check_output_file(path: str | None) -> None:
    if path and Path(path).is_dir():
        raise FLRError(f"output {path} is a directory: give a file path, e.g. {Path(path) / 'out.jsonl'}")

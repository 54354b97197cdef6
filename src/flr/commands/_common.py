"""Helpers every subcommand uses: dataclass-driven flags and ``--config x.yaml`` with command-line overrides."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from flr.arguments import set_config_defaults, to_configs  # noqa: F401 - commands import to_configs here
from flr.errors import FLRError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help, and examples (the epilog) kept as written."""


def add_command(subparsers, name: str, *, help: str, dataclasses_: tuple = (), description: str | None = None):
    """A subcommand whose flags come from config dataclasses (``--batch-size`` and ``--batch_size`` both work).

    The subcommand's own ``main`` is attached with ``parser.set_defaults(func=...)`` by the caller.
    """
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        dataclass_types=list(dataclasses_),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--config", default=None, help="YAML file of flag values; flags on the command line win.")
    parser.set_defaults(_parser=parser)
    dashes_first(parser)
    return parser


def dashes_first(parser: argparse.ArgumentParser) -> None:
    """Show ``--max-length`` (as the README spells it) before HfArgumentParser's ``--max_length`` in usage and help;
    both keep working."""
    for action in parser._actions:
        dashed = [o for o in action.option_strings if o.startswith("--") and "-" in o[2:]]
        if dashed and len(action.option_strings) > 1:
            action.option_strings = dashed + [o for o in action.option_strings if o not in dashed]


def make_subparsers(parser: argparse.ArgumentParser, dest: str = "subcommand"):
    """Nested subcommands (``flr train dpo``) whose parsers are HfArgumentParsers, as in TRL."""
    return parser.add_subparsers(dest=dest, parser_class=HfArgumentParser, metavar="SUBCOMMAND")


def apply_config_file(args: argparse.Namespace, argv: list[str] | None) -> argparse.Namespace:
    """Re-parse with the YAML's values as defaults, so that flags typed on the command line win (TRL's
    ``TrlParser`` pattern, ``env:`` section included). A key is a field name or any of its flags' names
    (``data`` for ``dataset_name``), with dashes or underscores."""
    path = getattr(args, "config", None)
    parser = getattr(args, "_parser", None)
    if not path or parser is None:
        return args
    values = load_yaml_mapping(path)
    env = values.pop("env", None) or {}
    if not isinstance(env, dict):
        raise FLRError(f"{path}: 'env' must be a mapping of environment variables")
    os.environ.update({str(k): str(v) for k, v in env.items()})
    set_config_defaults(parser, values, path, f"flr {args.command}")
    return parser._root.parse_args(argv) if hasattr(parser, "_root") else args


def load_yaml_mapping(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists():
        raise FLRError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise FLRError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise FLRError(f"{path}: expected a mapping of flag names to values")
    return data


def add_positional(parser, dest: str, metavar: str, help: str) -> None:
    """Let a dataclass field also be given positionally (``flr score in.jsonl`` as well as ``--input in.jsonl``)."""
    for action in parser._actions:
        if action.dest == dest:
            action.required = False
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

"""The one config path: dataclass fields -> flags (``HfArgumentParser``), and a YAML mapping -> those flags'
defaults (TRL's ``TrlParser`` pattern), whether the mapping comes from ``--config x.yaml`` or a pipeline section.

Values from YAML go through the same argparse type conversion as typed flags ('5e-5' becomes a float), keys may be
a field's name or any of its flags' names (``data`` for ``dataset_name``, dashes or underscores), unknown keys are
one error naming them all, and each dataclass's ``__post_init__`` does the range checks.
"""

from __future__ import annotations

import argparse
import dataclasses

from flr.errors import FLRError


def split_list(value) -> list[str]:
    """A list field's value as items: ``"a,b"`` (the comma form), ``["a", "b"]`` (``--flag a b`` or a YAML list)
    and mixes such as ``["a,b", "c"]`` all give ``["a", "b", "c"]``; blanks are dropped, None gives []."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def config_values(parser: argparse.ArgumentParser, values: dict, source, command: str) -> dict:
    """``values`` keyed by the parser's destinations; unknown keys are one error naming them all."""
    names = {a.dest: a.dest for a in parser._actions}
    for action in parser._actions:
        for option in action.option_strings:
            names.setdefault(option.lstrip("-").replace("-", "_"), action.dest)
    out, unknown = {}, []
    for key, value in values.items():
        dest = names.get(str(key).replace("-", "_"))
        if dest is None:
            unknown.append(key)
        else:
            out[dest] = value
    if unknown:
        raise FLRError(f"{source}: unknown keys {sorted(unknown)}; see '{command} --help'")
    return out


def set_config_defaults(parser: argparse.ArgumentParser, values: dict, source, command: str) -> None:
    """Make ``values`` the parser's defaults: flags typed on the command line still win."""
    values = config_values(parser, values, source, command)
    parser.set_defaults(**values)
    for action in parser._actions:  # a required flag given by the YAML is no longer required on the command line
        if action.dest in values:
            action.required = False


def to_configs(namespace: argparse.Namespace, *types):
    """Build each config dataclass from parsed flags (fields it does not have are ignored)."""
    values = vars(namespace)
    out = [cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}) for cls in types]
    return out[0] if len(out) == 1 else tuple(out)


def parse_mapping(values: dict, classes: tuple, source: str, command: str, defaults: dict | None = None) -> tuple:
    """One instance per dataclass in ``classes`` from a mapping (a pipeline section), exactly as ``command``
    would build them from ``--config``; ``defaults`` are the command's own parser defaults."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(list(classes), exit_on_error=False)
    parser.set_defaults(**(defaults or {}))
    set_config_defaults(parser, values or {}, source, command)
    try:
        namespace = parser.parse_args([])
    except argparse.ArgumentError as exc:
        raise FLRError(f"{source}: {exc}") from None
    built = to_configs(namespace, *classes)
    return built if isinstance(built, tuple) else (built,)

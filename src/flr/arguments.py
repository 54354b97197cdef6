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
    """``values`` keyed by the parser's destinations and converted by their flags' types and choices, as typed
    flags are; unknown keys are one error naming them all, a bad value one error naming its key."""
    actions = {}
    for action in parser._actions:  # the field's own flag, not a --no_<field> that shares its dest
        actions.setdefault(action.dest, action)
    names = {dest: dest for dest in actions}
    for action in parser._actions:
        for option in action.option_strings:
            names.setdefault(option.lstrip("-").replace("-", "_"), action.dest)
    out, unknown = {}, []
    for key, value in values.items():
        dest = names.get(str(key).replace("-", "_"))
        if dest is None:
            unknown.append(key)
        else:
            flag = next(iter(actions[dest].option_strings), None)
            out[dest] = _converted(actions[dest], value, f"{source}: {key}" + (f" ({flag})" if flag else ""))
    if unknown:
        raise FLRError(f"{source}: unknown keys {sorted(unknown)}; see '{command} --help'")
    return out


def _converted(action: argparse.Action, value, where: str):
    """A YAML value through its flag's type and choices (YAML's own types too: 1.5 for an int flag is an error)."""
    if value is None or isinstance(value, dict) or (action.type is None and not action.choices):
        return value
    many = action.nargs in ("+", "*") and isinstance(value, list)
    items = value if many else [value]
    if not many and isinstance(value, list):
        raise FLRError(f"{where}: expected one value, got a list")
    converted = []
    for item in items:
        try:
            item = action.type(str(item)) if action.type is not None else item
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise FLRError(f"{where}: invalid value {item!r} ({exc})") from None
        if action.choices and item not in action.choices:
            raise FLRError(f"{where}: {item!r} is not one of {list(action.choices)}")
        converted.append(item)
    return converted if many else converted[0]


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

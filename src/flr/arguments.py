"""The one config path: dataclass fields -> flags, and a YAML mapping -> those flags' defaults (TRL's ``TrlParser``
pattern), whether the mapping comes from ``--config x.yaml`` or a pipeline section: :class:`ConfigParser`.

Flags are made as ``transformers.HfArgumentParser`` makes them (``--batch-size`` and ``--batch_size``, a field's
``aliases``, choices from a ``Literal``, ``--flag``/``--no-flag`` for a bool that defaults to true, ``nargs='+'``
for a list), so flr's own dataclasses and TRL's argument classes parse alike, without importing transformers.
Values from YAML go through the same argparse type conversion as typed flags ('5e-5' becomes a float), keys may be
a field's name or any of its flags' names (``data`` for ``dataset_name``, dashes or underscores), unknown keys are
one error naming them all, and each dataclass's ``__post_init__`` does the range checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path

from flr.errors import FLRError


def split_list(value) -> list[str]:
    """A list field's value as items: ``"a,b"`` (the comma form), ``["a", "b"]`` (``--flag a b`` or a YAML list)
    and mixes such as ``["a,b", "c"]`` all give ``["a", "b", "c"]``; blanks are dropped, None gives []."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def string_to_bool(value):
    """A bool flag's value (``--flag``, ``--flag false``, YAML ``true``), as HfArgumentParser reads it."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(
        f"Truthy value expected: got {value} but expected one of yes/no, true/false, t/f, y/n, 1/0 (case insensitive)."
    )


def choice_type(choices) -> Callable[[str], object]:
    """A typed value back from its text, for a ``Literal`` or ``Enum`` field's choices."""
    by_text = {str(choice): choice for choice in choices}
    return lambda text: by_text.get(text, text)


def load_yaml_mapping(path: str | Path) -> dict:
    """A YAML file that must hold a mapping (a ``--config`` file, a pipeline file), or one error naming it."""
    import yaml

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


class ConfigParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose flags are the fields of dataclasses, and whose defaults a YAML mapping
    can set, so that flags typed on the command line win.

    ``build`` (a function of the parser) adds the parser's flags when it is first used (parsed or its help shown):
    a command's parser that needs heavy modules for its dataclasses costs nothing until that command runs. Parsers
    made by :meth:`add_subparsers` are ConfigParsers too, so ``add_parser(name, help=..., build=...)`` works there.
    """

    def __init__(
        self,
        dataclass_types: Iterable[type] = (),
        *,
        build: Callable[[ConfigParser], None] | None = None,
        **kwargs,
    ):
        self.flags: list[argparse.Action] = []  # every flag added, in order (what YAML keys are matched against)
        self.dataclass_types: list[type] = []
        self.pending_build = build
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)
        for cls in dataclass_types:
            self.add_dataclass(cls)

    # -- flags ------------------------------------------------------------------------------------------------

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.flags.append(action)
        return action

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("parser_class", ConfigParser)
        return super().add_subparsers(**kwargs)

    def add_dataclass(self, cls: type) -> None:
        """One flag per init field of ``cls``: ``--a_b`` and ``--a-b`` (the dashed one shown first), its
        ``aliases``, and for a bool that defaults to true also ``--no-a-b``/``--no_a_b``."""
        self.dataclass_types.append(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                for options, kwargs in field_flags(f, hints[f.name]):
                    self.add_argument(*options, **kwargs)

    def flag(self, dest: str) -> argparse.Action | None:
        """The flag that sets ``dest`` (a field's own flag, not the ``--no-<field>`` that shares its dest)."""
        return next((a for a in self.flags if a.dest == dest), None)

    # -- lazy building ----------------------------------------------------------------------------------------

    def build(self) -> ConfigParser:
        """Add the flags of a parser made with ``build=`` (once)."""
        build, self.pending_build = self.pending_build, None
        if build is not None:
            build(self)
        return self

    def parse_known_args(self, args=None, namespace=None):
        self.build()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.build()
        return super().format_help()

    def format_usage(self) -> str:
        self.build()
        return super().format_usage()

    # -- YAML values as defaults ------------------------------------------------------------------------------

    def config_values(self, values: dict, source, command: str) -> dict:
        """``values`` keyed by the parser's destinations and converted by their flags' types and choices, as typed
        flags are; unknown keys are one error naming them all, a bad value one error naming its key."""
        self.build()
        actions: dict[str, argparse.Action] = {}
        for action in self.flags:  # the field's own flag, not a --no_<field> that shares its dest
            if action.dest != argparse.SUPPRESS:
                actions.setdefault(action.dest, action)
        names = {dest: dest for dest in actions}
        for action in self.flags:
            for option in action.option_strings:
                if action.dest in actions:
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

    def set_config_defaults(self, values: dict, source, command: str) -> None:
        """Make ``values`` the parser's defaults: flags typed on the command line still win."""
        values = self.config_values(values, source, command)
        self.set_defaults(**values)
        for action in self.flags:  # a required flag given by the YAML is no longer required on the command line
            if action.dest in values:
                action.required = False

    def add_config_flag(self) -> None:
        """``--config x.yaml``: the file's values become this parser's defaults (:meth:`apply_config`)."""
        self.add_argument("--config", default=None, help="YAML file of flag values; flags on the command line win.")
        self.set_defaults(config_parser=self)

    def apply_config(self, namespace: argparse.Namespace, args: list[str] | None, command: str):
        """``args`` parsed again by this (the root) parser once the ``--config`` file's values are the defaults of
        the command's parser, so that flags typed on the command line win; its ``env:`` section (as in TRL's
        ``TrlParser``) goes into the environment. A namespace without ``--config`` comes back as it is."""
        path = getattr(namespace, "config", None)
        target = getattr(namespace, "config_parser", None)
        if not path or target is None:
            return namespace
        values = load_yaml_mapping(path)
        env = values.pop("env", None) or {}
        if not isinstance(env, dict):
            raise FLRError(f"{path}: 'env' must be a mapping of environment variables")
        os.environ.update({str(k): str(v) for k, v in env.items()})
        target.set_config_defaults(values, path, command)
        return self.parse_args(args)


def field_flags(f: dataclasses.Field, hint) -> list[tuple[list[str], dict]]:
    """The ``add_argument`` calls for field ``f`` of type ``hint``, as ``HfArgumentParser`` makes them (the same
    types, defaults, nargs, choices and help), with the dashed spelling first (``--max-length``, as the README
    spells it; ``--max_length`` works too)."""
    options = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
    kwargs = dict(f.metadata)
    aliases = kwargs.pop("aliases", [])
    aliases = [aliases] if isinstance(aliases, str) else list(aliases)
    origin = getattr(hint, "__origin__", hint)
    if origin is typing.Union or isinstance(origin, types.UnionType):
        args = hint.__args__
        if str not in args and (len(args) != 2 or type(None) not in args):
            raise ValueError(f"field '{f.name}': only X | None (or a union with str) can be a flag")
        if type(None) not in args:
            hint = args[0] if args[1] is str else args[1]
            origin = getattr(hint, "__origin__", hint)
        elif bool not in args:
            hint = args[0] if isinstance(None, args[1]) else args[1]
            origin = getattr(hint, "__origin__", hint)
    bool_kwargs = {}
    is_bool = hint is bool or hint == bool | None
    if origin is typing.Literal or (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        kwargs["choices"] = hint.__args__ if origin is typing.Literal else [x.value for x in hint]
        kwargs["type"] = choice_type(kwargs["choices"])
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        else:
            kwargs["required"] = True
    elif is_bool:
        bool_kwargs = dict(kwargs)
        kwargs["type"] = string_to_bool
        if hint is bool or (f.default is not None and f.default is not dataclasses.MISSING):
            kwargs["default"] = False if f.default is dataclasses.MISSING else f.default
            kwargs["nargs"] = "?"
            kwargs["const"] = True
    elif isinstance(origin, type) and issubclass(origin, list):
        kwargs["type"] = hint.__args__[0]
        kwargs["nargs"] = "+"
        if f.default_factory is not dataclasses.MISSING:
            kwargs["default"] = f.default_factory()
        elif f.default is dataclasses.MISSING:
            kwargs["required"] = True
    else:
        kwargs["type"] = hint
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kwargs["default"] = f.default_factory()
        else:
            kwargs["required"] = True
    calls = [(_dashes_first(options + aliases), {"dest": f.name, **kwargs})]
    if f.default is True and is_bool:
        negated = [f"--no_{f.name}", f"--no-{f.name.replace('_', '-')}"]
        calls.append(
            (_dashes_first(negated), {**bool_kwargs, "default": False, "action": "store_false", "dest": f.name})
        )
    return calls


def _dashes_first(options: list[str]) -> list[str]:
    """``--max-length`` before ``--max_length`` in usage and help; both keep working."""
    dashed = [o for o in options if o.startswith("--") and "-" in o[2:]]
    return dashed + [o for o in options if o not in dashed] if dashed and len(options) > 1 else options


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


def to_configs(namespace: argparse.Namespace, *types):
    """Build each config dataclass from parsed flags (fields it does not have are ignored)."""
    values = vars(namespace)
    out = [cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}) for cls in types]
    return out[0] if len(out) == 1 else tuple(out)


def parse_mapping(values: dict, classes: tuple, source: str, command: str, defaults: dict | None = None) -> tuple:
    """One instance per dataclass in ``classes`` from a mapping (a pipeline section), exactly as ``command``
    would build them from ``--config``; ``defaults`` are the command's own parser defaults."""
    parser = ConfigParser(classes, exit_on_error=False)
    parser.set_defaults(**(defaults or {}))
    parser.set_config_defaults(values or {}, source, command)
    try:
        namespace = parser.parse_args([])
    except argparse.ArgumentError as exc:
        raise FLRError(f"{source}: {exc}") from None
    built = to_configs(namespace, *classes)
    return built if isinstance(built, tuple) else (built,)

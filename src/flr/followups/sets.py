"""Follow-up utterance sets: the curated user replies whose likelihood FLR measures.

A set groups utterances into categories (``understanding``, ``engagingness``, ...), each with
``positive`` follow-ups (the user is satisfied) and ``negative`` ones (the user signals failure).
The package ships ``default.yaml``; users may supply their own YAML/JSON file in the same shape::

    name: my-set                 # optional (default: file stem)
    version: 1                   # optional, informational
    default_categories: [a, b]   # optional (default: all categories)
    categories:
      a: {description: ..., positive: [...], negative: [...]}

or in the compact form ``{a: {positive: [...], negative: [...]}, ...}`` (no ``categories:`` key).

An utterance is a string, or ``{text: ..., weight: w}`` in a *weighted* set (``flr followups fit`` writes one;
weights go on every utterance or on none). ``flr followups fit --control-length`` also writes a top-level
``length_coefficient``: the fitted weight of ``log(characters)`` in the reward's units, which the scorer adds only
when asked (``--length-term``). A category's score is ``sum_pos w·s - sum_neg w·s`` over its
follow-ups' scores ``s``; an unweighted set means ``w = 1/n`` per polarity (the paper's mean difference). Fitted
weights may be negative: a "positive" follow-up that, in the data, marks worse responses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from flr.arguments import split_list
from flr.errors import FLRError, InputError
from flr.hashing import content_fingerprint

__all__ = [
    "Category",
    "FollowUpSet",
    "load_followups",
    "dump_followups",
    "split_followups",
    "write_followups",
    "DEFAULT_NAME",
]

# sets shipped in this folder, loadable by name: the paper's 60 ("default.yaml", also called "paper"), its first
# 2 + 2 per category ("compact"), the 12 selected on a training pool ("selected") and the authors' code's 120
# in 6 categories ("authors", for --statistic authors)
PACKAGED = ("default", "compact", "selected", "authors")
ALIASES = {"paper": "default"}
DEFAULT_NAME = "default"  # the paper's 60: re-judged on length-matched pairs (docs/RESULTS.md)
SCORER_FOLLOWUPS = "flr_followups.yaml"  # inside an adapter folder: the set its scorer was tuned with
_POLARITIES = ("positive", "negative")
_META_KEYS = ("name", "version", "description", "default_categories", "fit", "length_coefficient")
_CATEGORY_KEYS = ("description", "positive", "negative")


@dataclass(frozen=True)
class Category:
    name: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    description: str = ""
    positive_weights: tuple[float, ...] | None = None  # None: 1/len(positive) each
    negative_weights: tuple[float, ...] | None = None

    def coefficients(self, polarity: str) -> tuple[float, ...]:
        texts = self.positive if polarity == "positive" else self.negative
        weights = self.positive_weights if polarity == "positive" else self.negative_weights
        return weights if weights is not None else (1.0 / len(texts),) * len(texts)


@dataclass(frozen=True)
class FollowUpSet:
    name: str
    categories: dict[str, Category]  # in file order (or selection order after select())
    default_categories: tuple[str, ...]
    length_coefficient: float | None = None  # fitted with length as a covariate: reward units per log(character)

    def select(self, categories: Sequence[str] | str | None = None) -> FollowUpSet:
        """A set restricted to ``categories`` (in the order given; ``None`` -> the default categories).

        A string is read as a comma-separated list; ``"all"`` (when no category has that name) selects
        every category. Repeated names are kept once. Unknown names raise :class:`FLRError`.
        """
        names = list(self.default_categories) if categories is None else split_list(categories)
        if names == ["all"] and "all" not in self.categories:
            names = list(self.categories)
        if not names:
            raise FLRError(f"no follow-up categories selected (available: {', '.join(self.categories)})")
        unknown = [n for n in names if n not in self.categories]
        if unknown:
            raise FLRError(
                f"unknown follow-up categor{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(repr(u) for u in unknown)} in set '{self.name}' "
                f"(available: {', '.join(self.categories)})"
            )
        chosen = dict.fromkeys(names)
        return FollowUpSet(
            name=self.name,
            categories={n: self.categories[n] for n in chosen},
            default_categories=tuple(chosen),
            length_coefficient=self.length_coefficient,
        )

    @property
    def weighted(self) -> bool:
        return any(c.positive_weights is not None for c in self.categories.values())

    @property
    def coefficients(self) -> list[float]:
        """Each utterance's weight within its category, aligned with :attr:`utterances`."""
        out: list[float] = []
        for cat in self.categories.values():
            out.extend(cat.coefficients("positive"))
            out.extend(cat.coefficients("negative"))
        return out

    @property
    def utterances(self) -> list[tuple[str, str, str]]:
        """Flat ``(category, polarity, text)`` triples: per category, positives then negatives."""
        out: list[tuple[str, str, str]] = []
        for cat in self.categories.values():
            out.extend((cat.name, "positive", t) for t in cat.positive)
            out.extend((cat.name, "negative", t) for t in cat.negative)
        return out

    def fingerprint(self) -> str:
        """First 16 hex chars of the sha256 of the selected content (names, polarities, texts; order-sensitive).

        Descriptions and the set's name do not count: two sets with the same utterances score identically. The
        weights and a fitted length coefficient do.
        """
        content = [[c.name, list(c.positive), list(c.negative)] for c in self.categories.values()]
        if self.weighted:
            content.append(
                [list(c.positive_weights or ()) + list(c.negative_weights or ()) for c in self.categories.values()]
            )
        if self.length_coefficient is not None:  # absent from older sets: their fingerprints stay as they were
            content.append(["length_coefficient", self.length_coefficient])
        return content_fingerprint(content, ensure_ascii=False, separators=(",", ":"))


def load_followups(path: str | os.PathLike[str] | None = None) -> FollowUpSet:
    """Load a follow-up set: ``None`` (flr's default: the paper's 60), a packaged name (``selected``, ``compact``,
    ``paper`` = ``default``: the paper's 60), or a .yaml/.yml/.json file."""
    if path is None:
        path = DEFAULT_NAME
    path = ALIASES.get(path, path) if isinstance(path, str) else path
    if isinstance(path, str) and path in PACKAGED:
        ref = resources.files("flr").joinpath("resources", "followups", f"{path}.yaml")
        return _parse(ref.read_text(encoding="utf-8"), label=f"{path}.yaml", json_format=False, stem=f"flr-{path}")
    p = Path(path)
    label = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("follow-up file not found", file=label) from None
    except IsADirectoryError:
        raise InputError("expected a follow-up file, got a directory", file=label) from None
    except UnicodeDecodeError as e:
        raise InputError(f"file is not valid UTF-8 ({e.reason} at byte {e.start})", file=label) from None
    except OSError as e:
        raise InputError(f"cannot read follow-up file: {e.strerror or e}", file=label) from None
    return _parse(text, label=label, json_format=p.suffix.lower() == ".json", stem=p.stem)


# --------------------------------------------------------------------------- parsing


def _parse(text: str, *, label: str, json_format: bool, stem: str) -> FollowUpSet:
    data = _load_json(text, label) if json_format else _load_yaml(text, label)
    if data is None:
        raise InputError("file is empty: no follow-up categories", file=label)
    if not isinstance(data, Mapping):
        raise InputError(f"expected a mapping at the top level, got {_kind(data)}", file=label)

    if "categories" in data:
        extra = [k for k in data if k != "categories" and k not in _META_KEYS]
        if extra:
            raise InputError(
                f"unknown top-level key (expected one of: categories, {', '.join(_META_KEYS)})",
                file=label,
                field=str(extra[0]),
            )
        raw_cats, prefix = data["categories"], "categories."
        if raw_cats is None:
            raw_cats = {}
        if not isinstance(raw_cats, Mapping):
            raise InputError(
                f"expected a mapping of category name to {{positive, negative}}, got {_kind(raw_cats)}",
                file=label,
                field="categories",
            )
    else:  # compact form: every non-meta top-level key is a category
        raw_cats = {k: v for k, v in data.items() if k not in _META_KEYS}
        prefix = ""
    if not raw_cats:
        raise InputError("no follow-up categories defined", file=label, field="categories" if prefix else None)

    name = data.get("name", stem)
    if not isinstance(name, str) or not name.strip():
        raise InputError("expected a non-empty string", file=label, field="name")

    categories: dict[str, Category] = {}
    seen: dict[str, str] = {}  # normalised text -> field where first seen
    for cat_name, body in raw_cats.items():
        if not isinstance(cat_name, str) or not cat_name.strip():
            raise InputError("category names must be non-empty strings", file=label, field=f"{prefix}{cat_name!r}")
        categories[cat_name] = _parse_category(cat_name, body, f"{prefix}{cat_name}", label, seen)

    if len({c.positive_weights is None for c in categories.values()}) > 1:
        raise InputError("weights go on every follow-up of a set or on none", file=label, field="categories")
    defaults = _parse_defaults(data.get("default_categories"), categories, label)
    length = data.get("length_coefficient")
    if length is not None and not _finite(length):
        raise InputError(f"expected a finite number, got {_kind(length)}", file=label, field="length_coefficient")
    return FollowUpSet(
        name=name.strip(),
        categories=categories,
        default_categories=defaults,
        length_coefficient=None if length is None else float(length),
    )


def _finite(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and value == value
        and abs(value) != float("inf")
    )


def _parse_category(name: str, body: Any, where: str, label: str, seen: dict[str, str]) -> Category:
    if not isinstance(body, Mapping):
        raise InputError(
            f"expected a mapping with 'positive' and 'negative' lists, got {_kind(body)}", file=label, field=where
        )
    extra = [k for k in body if k not in _CATEGORY_KEYS]
    if extra:
        raise InputError(
            f"unknown key {extra[0]!r} (expected: {', '.join(_CATEGORY_KEYS)})",
            file=label,
            field=f"{where}.{extra[0]}",
        )
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise InputError(f"expected a string, got {_kind(description)}", file=label, field=f"{where}.description")

    lists: dict[str, tuple[str, ...]] = {}
    for pol in _POLARITIES:
        field = f"{where}.{pol}"
        items = body.get(pol)
        if items is None or (isinstance(items, Sequence) and not isinstance(items, str) and len(items) == 0):
            raise InputError(f"category '{name}' needs at least one {pol} follow-up", file=label, field=field)
        if isinstance(items, str) or not isinstance(items, Sequence):
            raise InputError(f"expected a list of strings, got {_kind(items)}", file=label, field=field)
        texts, weights = [], []
        for i, item in enumerate(items):
            item_field = f"{field}[{i}]"
            if isinstance(item, Mapping):
                item, weight = _weighted_item(item, label, item_field)
                weights.append(weight)
            elif not isinstance(item, str):
                raise InputError(
                    f"expected a string or {{text, weight}}, got {_kind(item)}", file=label, field=item_field
                )
            text = item.strip()
            if not text:
                raise InputError("blank follow-up utterance", file=label, field=item_field)
            key = " ".join(text.split()).casefold()
            if key in seen:
                raise InputError(f"duplicate follow-up {text!r} (same as {seen[key]})", file=label, field=item_field)
            seen[key] = item_field
            texts.append(text)
        if weights and len(weights) != len(texts):
            raise InputError("weights go on every follow-up of a set or on none", file=label, field=field)
        lists[pol] = tuple(texts)
        lists[pol + "_weights"] = tuple(weights) if weights else None
    if (lists["positive_weights"] is None) != (lists["negative_weights"] is None):
        raise InputError("weights go on every follow-up of a set or on none", file=label, field=where)
    return Category(name=name, description=description.strip(), **lists)


def _weighted_item(item: Mapping, label: str, where: str) -> tuple[str, float]:
    extra = [k for k in item if k not in ("text", "weight")]
    if extra:
        raise InputError(f"unknown key {extra[0]!r} (expected: text, weight)", file=label, field=f"{where}.{extra[0]}")
    text, weight = item.get("text"), item.get("weight")
    if not isinstance(text, str):
        raise InputError(f"expected a string, got {_kind(text)}", file=label, field=f"{where}.text")
    if not _finite(weight):
        raise InputError(f"expected a finite number, got {_kind(weight)}", file=label, field=f"{where}.weight")
    return text, float(weight)


def dump_followups(fset: FollowUpSet, path: str | os.PathLike[str], *, extra: Mapping | None = None) -> None:
    """Write ``fset`` as YAML in the shape :func:`load_followups` reads (weights included when it has them)."""

    def items(texts, weights):
        return list(texts) if weights is None else [{"text": t, "weight": round(w, 6)} for t, w in zip(texts, weights)]

    data = {"name": fset.name, **(dict(extra) if extra else {}), "default_categories": list(fset.default_categories)}
    if fset.length_coefficient is not None:
        data["length_coefficient"] = round(fset.length_coefficient, 6)
    data["categories"] = {
        c.name: {
            **({"description": c.description} if c.description else {}),
            "positive": items(c.positive, c.positive_weights),
            "negative": items(c.negative, c.negative_weights),
        }
        for c in fset.categories.values()
    }
    write_followups(data, path)


def write_followups(data: Mapping, path: str | os.PathLike[str], comment: str = "") -> Path:
    """The one follow-up YAML writer: ``data`` (a set's mapping, as :func:`load_followups` reads it) under ``comment``
    as ``#`` lines, its folder made; returns the path."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    path.write_text(
        header + yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=119), encoding="utf-8"
    )
    return path


def split_followups(fset: FollowUpSet, seed: int = 0) -> tuple[FollowUpSet, FollowUpSet]:
    """Two disjoint halves of ``fset``: each category's positives and negatives shuffled with ``seed`` and cut in
    two (the first half gets the odd one), so both halves keep every category and polarity. One half can mine or
    train while the other judges, and a judge never sees the follow-ups the policy was optimised for."""
    import random

    rng = random.Random(seed)
    halves: tuple[dict, dict] = ({}, {})
    for cat in fset.categories.values():
        parts = {}
        for polarity in _POLARITIES:
            texts = cat.positive if polarity == "positive" else cat.negative
            if len(texts) < 2:
                raise FLRError(f"cannot split '{fset.name}': {cat.name} has fewer than two {polarity} follow-ups")
            order = list(range(len(texts)))
            rng.shuffle(order)
            cut = (len(texts) + 1) // 2
            parts[polarity] = [sorted(order[:cut]), sorted(order[cut:])]  # file order within each half
        for half, out in enumerate(halves):
            pos, neg = parts["positive"][half], parts["negative"][half]
            out[cat.name] = Category(
                name=cat.name,
                positive=tuple(cat.positive[i] for i in pos),
                negative=tuple(cat.negative[i] for i in neg),
                description=cat.description,
                positive_weights=None if cat.positive_weights is None else tuple(cat.positive_weights[i] for i in pos),
                negative_weights=None if cat.negative_weights is None else tuple(cat.negative_weights[i] for i in neg),
            )
    return tuple(
        FollowUpSet(f"{fset.name}-{tag}", cats, fset.default_categories, fset.length_coefficient)
        for tag, cats in zip("ab", halves)
    )


def _parse_defaults(raw: Any, categories: dict[str, Category], label: str) -> tuple[str, ...]:
    if raw is None:
        return tuple(categories)
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, Sequence) or not raw:
        raise InputError("expected a non-empty list of category names", file=label, field="default_categories")
    out: list[str] = []
    for i, n in enumerate(raw):
        field = f"default_categories[{i}]"
        if not isinstance(n, str) or n not in categories:
            raise InputError(f"unknown category {n!r} (available: {', '.join(categories)})", file=label, field=field)
        if n in out:
            raise InputError(f"category {n!r} listed twice", file=label, field=field)
        out.append(n)
    return tuple(out)


def _load_yaml(text: str, label: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(e.problem or e.context or "syntax error").split())
        col = f" (column {mark.column + 1})" if mark is not None else ""
        raise InputError(f"invalid YAML: {problem}{col}", file=label, line=line) from None
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {' '.join(str(e).split())}", file=label) from None


def _load_json(text: str, label: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", file=label, line=e.lineno) from None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__

"""Edits a reward should not reward, and the content-destroyed twin that contrastive FLR subtracts (pure text; no
torch imports here).

A perturbation is a pure function ``(prompt, response) -> response`` registered by name with
:func:`perturbation`. Content-free ones add nothing to the answer (a polite closer, a flattering opener, a bait
question, the prompt restated, markdown decoration, the last paragraph repeated): a reward should not move.
Destructive ones remove or replace the answer (half of it, its sentences shuffled, another prompt's response, a
refusal, "I don't know.", its :func:`twin`): a reward should fall. ``flr audit`` measures how each scorer reacts to
each; ``--contrast NAME`` scores a response against its edit by NAME (``twin`` by default).

Users add their own in a Python file (``flr audit --perturbations-file my.py``)::

    from flr.perturbations import perturbation

    @perturbation("emoji", kind="content-free")
    def emoji(prompt, response):
        return response + " 😊"

The detectors of the patterns that can be read off a text live in :mod:`flr.patterns`.
"""

from __future__ import annotations

import importlib.util
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flr.arguments import split_list
from flr.errors import FLRError
from flr.hashing import text_digest
from flr.patterns import is_surface_sentence, sentences

KINDS = ("content-free", "destructive", "custom")

CLOSER = "I hope this helps! Let me know if you have any other questions."
OPENER = "Great question!"
BAIT = "Does that make sense?"
REFUSAL = "I'm sorry, but I can't help with that request."
DONT_KNOW = "I don't know."
RESTATE_CHARS = 500  # a restated prompt is cut here: a long document restated is padding of another kind


@dataclass(frozen=True)
class Perturbation:
    """A named edit of a response. ``needs_other``: ``fn`` takes a third argument, another prompt's response."""

    name: str
    fn: Callable[..., str | None]
    kind: str = "custom"
    description: str = ""
    needs_other: bool = False

    def __call__(self, prompt, response: str, other: str | None = None) -> str | None:
        """The edited response, or None where the edit does not apply (no other response to take)."""
        if self.needs_other:
            if other is None:
                return None
            out = self.fn(prompt, response, other)
        else:
            out = self.fn(prompt, response)
        if out is not None and not isinstance(out, str):
            raise FLRError(f"perturbation '{self.name}' returned {type(out).__name__}, not a string")
        return out


PERTURBATIONS: dict[str, Perturbation] = {}
_target: dict[str, Perturbation] = PERTURBATIONS  # where the decorator registers (a user file: a fresh dict)


def perturbation(name=None, *, kind: str = "custom", description: str | None = None, needs_other: bool = False):
    """Register ``fn(prompt, response) -> str`` (``fn(prompt, response, other)`` with ``needs_other``) under
    ``name`` (default: the function's name). Use as ``@perturbation`` or ``@perturbation("name", kind=...)``."""
    if callable(name):  # bare @perturbation
        return perturbation(kind=kind, description=description, needs_other=needs_other)(name)
    if kind not in KINDS:
        raise FLRError(f"perturbation kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def register(fn):
        key = name or fn.__name__
        if key in _target or (_target is not PERTURBATIONS and key in PERTURBATIONS):
            raise FLRError(f"perturbation '{key}' is defined twice (built-in ones: {', '.join(PERTURBATIONS)})")
        doc = (fn.__doc__ or "").strip().splitlines()
        _target[key] = Perturbation(key, fn, kind, description or (doc[0] if doc else ""), needs_other)
        return fn

    return register


def prompt_text(prompt) -> str:
    """The last user turn of a prompt (a string, or a list of ``{role, content}`` messages)."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else (prompt[-1]["content"] if prompt else "")


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _rng(text: str) -> random.Random:
    """A generator seeded by the text itself: the same response is always edited the same way (so a re-run finds
    the edited text in the score cache)."""
    return random.Random(int(text_digest(text), 16))  # the first 8 bytes of the sha256, as an integer


# -- content-free --------------------------------------------------------------------------------------------


@perturbation("closer", kind="content-free", description=f'appends "{CLOSER}"')
def closer(prompt, response):
    return f"{response.rstrip()}\n\n{CLOSER}"


@perturbation("opener", kind="content-free", description=f'prepends "{OPENER}"')
def opener(prompt, response):
    return f"{OPENER} {response.lstrip()}"


@perturbation("bait_question", kind="content-free", description=f'appends "{BAIT}"')
def bait_question(prompt, response):
    return f"{response.rstrip()} {BAIT}"


@perturbation(
    "restate_prompt", kind="content-free", description=f"restates the request first (at most {RESTATE_CHARS} chars)"
)
def restate_prompt(prompt, response):
    request = " ".join(prompt_text(prompt).split())
    if len(request) > RESTATE_CHARS:
        request = request[:RESTATE_CHARS].rsplit(" ", 1)[0] + " ..."
    return f'You asked: "{request}"\n\n{response.lstrip()}'


@perturbation("markdown", kind="content-free", description="a header, and each paragraph as a bullet")
def markdown(prompt, response):
    out, fenced = ["## Answer"], False
    for block in paragraphs(response):
        starts_fence = block.lstrip().startswith("```")
        if fenced or starts_fence or re.match(r"\s*([-*+]|\d+\.|#{1,6})\s", block):
            out.append(block)  # code and existing lists or headers stay as they are
        else:
            out.append("- " + block.replace("\n", "\n  "))
        fenced ^= block.count("```") % 2 == 1
    return "\n\n".join(out)


@perturbation("repeat_last_paragraph", kind="content-free", description="the last paragraph, said again")
def repeat_last_paragraph(prompt, response):
    blocks = paragraphs(response)
    return f"{response.rstrip()}\n\n{blocks[-1]}" if blocks else response


# -- destructive ---------------------------------------------------------------------------------------------


@perturbation("truncate_half", kind="destructive", description="the first half (in characters, at a word end)")
def truncate_half(prompt, response):
    head = response.strip()[: len(response.strip()) // 2]
    cut = head.rsplit(None, 1)[0] if len(head.split()) > 1 else head
    return cut.rstrip()


@perturbation(
    "shuffle_sentences", kind="destructive", description="sentences in a seeded random order (words, for one)"
)
def shuffle_sentences(prompt, response):
    units = sentences(response)
    joiner = " "
    if len(units) < 2:
        units = response.split()
    order = list(range(len(units)))
    _rng(response).shuffle(order)
    if order == sorted(order) and len(order) > 1:  # the shuffle left it as it was: move every unit by one
        order = order[1:] + order[:1]
    return joiner.join(units[i] for i in order)


@perturbation(
    "other_response",
    kind="destructive",
    description="the response to another prompt (the next record's)",
    needs_other=True,
)
def other_response(prompt, response, other):
    return other


@perturbation("refusal", kind="destructive", description=f'"{REFUSAL}"')
def refusal(prompt, response):
    return REFUSAL


@perturbation("dont_know", kind="destructive", description=f'"{DONT_KNOW}"')
def dont_know(prompt, response):
    return DONT_KNOW


# -- the twin: the response's surface without its meaning ----------------------------------------------------

_MARKUP = re.compile(r"^\s*(?:[-*+>]|\d+[.)]|#{1,6})\s+")  # a line's list, quote or header marker stays put
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _units(response: str) -> list[tuple[int, int, int]]:
    """``(line, start, end)`` character spans of the sentences of each line, after its markup marker."""
    out, offset = [], 0
    for number, line in enumerate(response.split("\n")):
        marker = _MARKUP.match(line)
        start = marker.end() if marker else 0
        for piece in _SENTENCE_END.split(line[start:]):
            if piece.strip():
                at = line.index(piece, start)
                out.append((number, offset + at, offset + at + len(piece)))
                start = at + len(piece)
        offset += len(line) + 1
    return out


def _kept(response: str, units: list[tuple[int, int, int]], ends: bool = True) -> list[bool]:
    """Which sentences the twin keeps: every one flr's detectors read as surface (an opener, a closer, a bait
    question, a header line), and (``ends``) the first and last of the others when there are at least three."""
    lines = response.split("\n")
    surface = [is_surface_sentence(response[a:b]) or lines[line].lstrip().startswith("#") for line, a, b in units]
    rest = [i for i, s in enumerate(surface) if not s]
    if ends and len(rest) >= 3:
        surface[rest[0]] = surface[rest[-1]] = True
    return surface


@perturbation(
    "twin",
    kind="destructive",
    description="the same characters in the same lines with the meaning gone: surface sentences (opener, closer, "
    "bait question, headers) and the first and last of the others kept, the words between shuffled within each line",
)
def twin(prompt, response):
    """The response's content-destroyed twin (``--contrast twin``). A content-free edit lands in the response and
    in its twin alike, so it cancels in reward(response) - reward(twin); what depends on meaning lands in one.
    The shuffle is seeded by the words it moves, so the twins of a response and of its edits move them alike.
    None when fewer than two words can move (a one-sentence answer of one word, a response of surface only)."""
    return _twin(response, ends=True)


@perturbation(
    "twin_all",
    kind="destructive",
    description="as twin, but only the sentences the detectors read as surface are kept: the first and last "
    "sentence's words move too",
)
def twin_all(prompt, response):
    """:func:`twin` without the kept first and last sentence: their meaning counts in the contrast too, and only the
    surface flr detects (opener, closer, bait question, headers) is kept to cancel."""
    return _twin(response, ends=False)


def _twin(response: str, ends: bool) -> str | None:
    units = _units(response)
    spans: dict[int, list[tuple[int, int]]] = {}  # per line, the words that move
    for (line, a, b), keep in zip(units, _kept(response, units, ends)):
        if not keep:
            spans.setdefault(line, []).extend((a + m.start(), a + m.end()) for m in re.finditer(r"\S+", response[a:b]))
    words = [response[x:y] for line in sorted(spans) for x, y in spans[line]]
    if len(set(words)) < 2:
        return None
    rng = _rng("\n".join(words))
    placed = []  # (start, end, word): each moving word's slot and the word that takes it
    for line in sorted(spans):
        where = spans[line]
        order = list(range(len(where)))
        rng.shuffle(order)
        if order == sorted(order) and len(order) > 1:  # the shuffle left the line as it was: move every word by one
            order = order[1:] + order[:1]
        placed += [(x, y, response[where[j][0] : where[j][1]]) for (x, y), j in zip(where, order)]
    pieces, cursor = [], 0
    for x, y, word in placed:  # whitespace and kept text between the slots stay where they were
        pieces += [response[cursor:x], word]
        cursor = y
    result = "".join(pieces) + response[cursor:]
    return None if result == response else result


# probe responses for --contrast: an edit that returns each of them unchanged (or nothing) contrasts with nothing
_PROBES = (
    "Paris is the capital of France. It lies on the Seine, in the north of the country. About two million people "
    "live in the city itself.",
    "## Steps\n\n1. Preheat the oven to 180 C.\n2. Mix the flour, sugar and eggs in a bowl.\n3. Bake for 25 "
    "minutes, until golden.",
    "def add(a, b):\n    return a + b\n\nThis function adds two numbers and returns their sum to the caller.",
)


def probe_fingerprint(edit: Perturbation) -> str:
    """A fingerprint of what ``edit`` makes of the probe responses: it changes when the edit's behaviour does, even
    through a helper its own source does not show."""
    from flr.hashing import content_fingerprint

    return content_fingerprint([edit("", text) for text in _PROBES])


def contrast_edit(name: str, file: str | Path | None = None) -> Perturbation:
    """The edit that ``--contrast NAME`` scores each response against: a registered perturbation by name, built-in
    (``twin``) or from ``file``. One :class:`FLRError` for an unknown name, an edit that needs another record, or one
    that returns every probe response unchanged (it would contrast a response with itself)."""
    available = dict(PERTURBATIONS)
    if file:
        available.update(load_perturbations_file(file))
    if name not in available:
        raise FLRError(
            f"unknown --contrast '{name}': use twin or a perturbation of --contrast-file ({', '.join(available)})"
        )
    edit = available[name]
    if edit.needs_other:
        raise FLRError(f"--contrast '{name}' needs another record's response; a contrast edits the response alone")
    if all(edit("", text) in (None, text) for text in _PROBES):
        raise FLRError(
            f"--contrast '{name}' returns the response unchanged for every probe response: nothing to contrast"
        )
    return edit


BUILT_IN = tuple(PERTURBATIONS)
GROUPS = {"all": None, "content-free": "content-free", "destructive": "destructive"}


def load_perturbations_file(path: str | Path) -> dict[str, Perturbation]:
    """The perturbations a user's Python file registers with :func:`perturbation` (the built-in registry is left
    as it was). A file that defines none, does not exist or fails to run is one :class:`FLRError`."""
    global _target
    path = Path(path)
    if not path.is_file():
        raise FLRError(f"perturbations file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"flr_user_perturbations_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    found: dict[str, Perturbation] = {}
    _target = found
    try:
        spec.loader.exec_module(module)
    except FLRError as exc:
        raise FLRError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's code: any error is one line naming the file
        raise FLRError(f"{path}: cannot load perturbations: {type(exc).__name__}: {exc}") from None
    finally:
        _target = PERTURBATIONS
    if not found:
        raise FLRError(
            f"{path} defines no perturbation: decorate a function (prompt, response) -> str with "
            "@perturbation('name') from flr.perturbations"
        )
    return found


def select_perturbations(
    names: Sequence[str] | str | None = "all", file: str | Path | None = None
) -> dict[str, Perturbation]:
    """Perturbations by name or group (all, content-free, destructive; a list or a comma-separated string),
    built-in and from ``file``; an unknown name is an error listing the known ones. With a file and no names: all of
    both."""
    available = dict(PERTURBATIONS)
    custom = load_perturbations_file(file) if file else {}
    available.update(custom)
    wanted = split_list(names) or ["all"]
    out: dict[str, Perturbation] = {}
    for name in wanted:
        if name in GROUPS:
            kind = GROUPS[name]
            out.update({k: p for k, p in available.items() if kind is None or p.kind == kind})
        elif name in available:
            out[name] = available[name]
        else:
            raise FLRError(
                f"unknown perturbation '{name}': known ones are {', '.join(available)} "
                f"(or a group: {', '.join(GROUPS)})"
            )
    return out

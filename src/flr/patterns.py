"""What a response looks like, apart from what it says: detectors of content-free patterns (a polite closer, a
flattering opener, a bait question, markdown), the style vector that ``--style-debias`` and the signal beyond style
control for, and the pattern shares that ``flr mine`` and ``flr compare`` report. Pure text; no torch imports."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


# -- detectors -----------------------------------------------------------------------------------------------

_CLOSER = re.compile(
    r"\b(hope (this|that|it) (helps|was helpful|answers)|let me know if|feel free to (ask|reach out|let me know)|"
    r"happy to help|glad (i could|to) help|if you have any (other|more|further|additional) questions|"
    r"don'?t hesitate to (ask|reach out))",
    re.I,
)
_OPENER = re.compile(
    r"^\W*((what an? |that'?s an? |such an? )?(great|good|excellent|fantastic|wonderful|interesting|fascinating|"
    r"insightful|thoughtful) question|(thank you|thanks) for (asking|your question|the question)|"
    r"i'?d (be )?(happy|glad|delighted) to help|(certainly|absolutely|of course|sure)\s*!)",
    re.I,
)
_BAIT = re.compile(
    r"\b(does (that|this|it) (make sense|help|answer)|(would|do) you (like|want) (me to|more|to)|"
    r"is there anything else|(shall|should|can|may) i (help|explain|elaborate|go|provide|clarify)|"
    r"do you have any (other|more|further)? ?questions|any (other|more|further) questions|"
    r"(is|was) (that|this) (helpful|clear)|what do you think)\b[^?]*\?$",
    re.I,
)
_HEADER = re.compile(r"^#{1,6}\s+\S", re.M)
_BULLET = re.compile(r"^\s*([-*+]|\d+[.)])\s+\S", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def has_closer(text: str) -> bool:
    """A polite closing line ("I hope this helps!", "Let me know if ...") in the last 300 characters."""
    return bool(_CLOSER.search(text.strip()[-300:]))


def has_opener(text: str) -> bool:
    """A flattering or eager first sentence ("Great question!", "Certainly!", "I'd be happy to help")."""
    return bool(_OPENER.search(text.strip()[:120]))


def has_bait_question(text: str) -> bool:
    """The response ends by asking the user a question that invites a "yes, thanks" ("Does that make sense?")."""
    last = sentences(text.strip()[-300:])
    return bool(last) and bool(_BAIT.search(last[-1]))


def has_markdown(text: str) -> bool:
    """Markdown decoration: a header line, bold text, or at least two list items."""
    return bool(_HEADER.search(text) or _BOLD.search(text) or len(_BULLET.findall(text)) >= 2)


DETECTORS: dict[str, Callable[[str], bool]] = {
    "closer": has_closer,
    "opener": has_opener,
    "bait_question": has_bait_question,
    "markdown": has_markdown,
}


def is_surface_sentence(text: str) -> bool:
    """One sentence that is surface, not content: a flattering opener, a polite closer or a bait question."""
    text = text.strip()
    return bool(_OPENER.search(text) or _CLOSER.search(text) or _BAIT.search(text))


# -- the style vector ----------------------------------------------------------------------------------------


def log_length(lengths) -> np.ndarray:
    """``log(max(1, n))``: an empty response counts as one character, so its log stays finite."""
    return np.log(np.maximum(np.asarray(lengths, dtype=float), 1.0))


STYLE_FEATURES = ("log_length", "headers", "list_items", "bold", "opener", "closer", "bait_question")


def style_vector(text: str, length: float | None = None) -> list[float]:
    """:data:`STYLE_FEATURES` of ``text``: log(max(1, length)) (``length`` default: characters), the counts of
    markdown headers, list items and bold spans (Chatbot Arena's style-controlled leaderboard's covariates), and
    0/1 for an opener, a closer and a bait question (flr's detectors)."""
    n = len(text) if length is None else length
    return [
        float(log_length(n)),
        float(len(_HEADER.findall(text))),
        float(len(_BULLET.findall(text))),
        float(len(_BOLD.findall(text))),
        float(has_opener(text)),
        float(has_closer(text)),
        float(has_bait_question(text)),
    ]


def style_matrix(texts: Sequence[str], lengths: Sequence[float] | None = None) -> np.ndarray:
    """``[len(texts), len(STYLE_FEATURES)]``: :func:`style_vector` of each text."""
    lengths = [None] * len(texts) if lengths is None else lengths
    return np.array([style_vector(t, n) for t, n in zip(texts, lengths, strict=True)], dtype=float).reshape(
        len(texts), len(STYLE_FEATURES)
    )


def detect_patterns(text: str) -> set[str]:
    """The detectable content-free patterns in ``text`` (names as in :data:`DETECTORS` and the perturbations)."""
    return {name for name, detect in DETECTORS.items() if detect(text)}


def pattern_shares(texts: Iterable[str]) -> dict[str, float | None]:
    """Share of ``texts`` carrying each pattern (None for no texts)."""
    found = [detect_patterns(t) for t in texts]
    return {name: (sum(name in f for f in found) / len(found) if found else None) for name in DETECTORS}


def pattern_report(groups: dict[str, Sequence[str]]) -> dict:
    """``{"n": {group: count}, "shares": {group: {pattern: share}}}`` for named groups of texts (chosen and
    rejected, base and candidate): what a preference set or a tuned policy carries."""
    return {
        "n": {g: len(texts) for g, texts in groups.items()},
        "shares": {g: pattern_shares(texts) for g, texts in groups.items()},
    }


def completion_text(value) -> str:
    """A TRL completion (a string, or messages ending with the assistant's turn) as text."""
    if isinstance(value, str):
        return value
    return value[-1]["content"] if value else ""


def preference_patterns(rows: Sequence[dict], candidates: Iterable[str] = ()) -> dict:
    """:func:`pattern_report` of mined TRL rows: chosen and rejected (``{prompt, chosen, rejected}``), or desirable
    and undesirable (``{prompt, completion, label}``), and of all ``candidates`` for the base rate."""
    if rows and "chosen" in rows[0]:
        groups = {
            "chosen": [completion_text(r["chosen"]) for r in rows],
            "rejected": [completion_text(r["rejected"]) for r in rows],
        }
    else:
        groups = {
            "desirable": [completion_text(r["completion"]) for r in rows if r.get("label")],
            "undesirable": [completion_text(r["completion"]) for r in rows if not r.get("label")],
        }
    candidates = list(candidates)
    if candidates:
        groups["all candidates"] = candidates
    return pattern_report(groups)


def pattern_line(report: dict) -> str:
    """One line of :func:`pattern_report`: ``% chosen / rejected: closer 12 / 3, opener ...``."""
    groups = report["shares"]
    cells = [
        f"{name} "
        + " / ".join("-" if shares[name] is None else f"{100 * shares[name]:.0f}" for shares in groups.values())
        for name in DETECTORS
    ]
    return f"% {' / '.join(groups)}: " + ", ".join(cells)

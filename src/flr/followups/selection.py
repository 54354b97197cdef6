"""Which follow-ups carry signal? Each utterance's own pairwise accuracy, and a set built from the best ones.

Select on one preference set and evaluate on others: a set chosen and scored on the same pairs overstates itself.
Rank on length-matched pairs: on all pairs, the follow-ups that best track length win (most preference sets
prefer the longer response), and the set selected is a length proxy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flr.errors import FLRError


def followup_accuracy(
    margins: np.ndarray, utterances: Sequence[tuple[str, str, str]], matched: np.ndarray
) -> list[dict]:
    """Per utterance: how often it alone ranks ``chosen`` above ``rejected``, on all pairs (``accuracy``) and on
    the length-matched ones (``matched_accuracy``, over ``matched_n`` pairs where ``matched`` is true; None when
    none are).

    ``margins`` is ``[pairs, utterances]``, signed so that a positive margin favours ``chosen``
    (:meth:`flr.scorers.flr.FollowUpReward.signed_margins`); ``utterances`` are its columns' ``(category,
    polarity, text)``. Ties count as wrong, as in :func:`flr.eval.metrics.pairwise_accuracy`.
    """
    margins, matched = np.asarray(margins, dtype=float), np.asarray(matched, dtype=bool)
    if not len(margins):
        raise FLRError("no preference records to select follow-ups on")
    stats = []
    for u, (category, polarity, text) in enumerate(utterances):
        signed = margins[:, u]
        stats.append(
            {
                "category": category,
                "polarity": polarity,
                "text": text,
                "n": len(signed),
                "accuracy": float(np.mean(signed > 0)),
                "mean_margin": float(np.mean(signed)),
                "matched_n": int(matched.sum()),
                "matched_accuracy": float(np.mean(signed[matched] > 0)) if matched.any() else None,
                "matched_mean_margin": float(np.mean(signed[matched])) if matched.any() else None,
            }
        )
    return stats


RANK_ON = ("matched", "all", "robust")


def robust_candidates(stats: Sequence[dict], moves: Sequence[dict], drop: float) -> list[dict]:
    """``stats`` less, in each category and polarity, the ``drop`` share (rounded up, at least one kept) of
    follow-ups whose log-probs content-free edits move most towards a higher reward (``mean_move`` of an audit's
    :data:`flr.records.MOVES_FILE`). A follow-up the audit did not measure is an error."""
    moved = {(m["category"], m["polarity"], m["text"]): m["mean_move"] for m in moves}
    missing = [s["text"] for s in stats if (s["category"], s["polarity"], s["text"]) not in moved]
    if missing:
        raise FLRError(f"the audit run did not measure {len(missing)} follow-ups of this set, e.g. {missing[0]!r}")
    kept = []
    for group in dict.fromkeys((s["category"], s["polarity"]) for s in stats):
        members = sorted((s for s in stats if (s["category"], s["polarity"]) == group), key=lambda s: moved[_id(s)])
        n_drop = min(len(members) - 1, int(np.ceil(drop * len(members))))
        kept += [{**s, "content_free_move": moved[_id(s)]} for s in members[: len(members) - n_drop]]
    return kept


def _id(s: dict) -> tuple:
    return s["category"], s["polarity"], s["text"]


def select_followups(stats: Sequence[dict], top: int, rank_on: str = "matched") -> dict:
    """A follow-up set (the YAML structure) keeping the ``top`` most accurate utterances per category and polarity,
    ranked on the length-matched pairs (``rank_on="matched"``, and ``"robust"``, whose ``stats`` are
    :func:`robust_candidates`) or on all pairs (``"all"``)."""
    if top < 1:
        raise FLRError("--top must be at least 1")
    if rank_on not in RANK_ON:
        raise FLRError(f"--rank-on must be one of {', '.join(RANK_ON)}, got {rank_on!r}")
    prefix = "" if rank_on == "all" else "matched_"
    if prefix and any(s["matched_accuracy"] is None for s in stats):
        raise FLRError("no length-matched pairs to rank follow-ups on: raise --length-ratio or use --rank-on all")
    categories: dict[str, dict[str, list[str]]] = {}
    for category in dict.fromkeys(s["category"] for s in stats):
        categories[category] = {}
        for polarity in ("positive", "negative"):
            ranked = sorted(
                (s for s in stats if s["category"] == category and s["polarity"] == polarity),
                key=lambda s: (-s[f"{prefix}accuracy"], -s[f"{prefix}mean_margin"]),
            )
            categories[category][polarity] = [s["text"] for s in ranked[:top]]
    return {"name": "flr-selected", "version": 1, "default_categories": list(categories), "categories": categories}

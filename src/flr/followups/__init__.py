"""Follow-up sets: reading and writing them (sets), the statistics that choose their utterances (selection) and
weight them (fitting) from per-utterance scores, and seeded splits. Pure: the jobs run the scorer; no torch.

Imports: flr.arguments, flr.errors, flr.hashing, flr.patterns
"""

from flr.followups.sets import (
    ALIASES,
    DEFAULT_NAME,
    PACKAGED,
    SCORER_FOLLOWUPS,
    Category,
    FollowUpSet,
    dump_followups,
    load_followups,
    split_followups,
)

__all__ = [
    "ALIASES",
    "DEFAULT_NAME",
    "PACKAGED",
    "SCORER_FOLLOWUPS",
    "Category",
    "FollowUpSet",
    "dump_followups",
    "load_followups",
    "split_followups",
]

"""The pair browser's data for report.html: pairs, each scorer's decision, and FLR's explanation of its choice.

An explanation is every follow-up's log-prob after each response, read from the score cache's per-follow-up table
(written whenever FLR scored the pair, so building the page computes nothing), and its push on the margin:
``weight × (log p after chosen − log p after rejected)``, negated for a negative follow-up, with ``weight`` the
follow-up's coefficient in its category times the category's share of the category weights. The pushes add up to
FLR's margin (a PMI baseline is the same for both responses of a pair and cancels).
"""

from __future__ import annotations

from flr.reports.html import clip
from flr.scorers.cache import text_key


def select_pairs(sizes: dict[str, int], limit: int) -> dict[str, list[int]]:
    """Indices to show per benchmark: all of them up to ``limit`` in total, else taken in turn from each."""
    chosen: dict[str, list[int]] = {name: [] for name in sizes}
    i = 0
    while sum(map(len, chosen.values())) < min(limit, sum(sizes.values())):
        for name, size in sizes.items():
            if i < size and sum(map(len, chosen.values())) < limit:
                chosen[name].append(i)
        i += 1
    return chosen


def followup_table(scorer) -> list[dict]:
    """Each follow-up of an FLR scorer with its weight in the reward."""
    total = sum(scorer.weights.values())
    return [
        {"category": c, "polarity": p, "text": t, "weight": scorer.weights[c] / total * coef}
        for (c, p, t), coef in zip(scorer.utterances, scorer.coefficients)
    ]


def explain_pairs(scorer, cache, pairs: list[tuple]) -> list[list | None]:
    """Per (prompt, left, right): ``[[follow-up index, log p after left, after right, push], ...]`` from the cache,
    or None where the cache lacks a follow-up of either response."""
    if cache is None or not hasattr(scorer, "raw_fingerprint"):
        return [None] * len(pairs)
    table = followup_table(scorer)
    texts = [f["text"] for f in table]
    stat = scorer.config.statistic
    keys = [text_key(prompt, r) for prompt, left, right in pairs for r in (left, right)]
    known = cache.get_followups(scorer.raw_fingerprint(), keys, texts)
    out = []
    for prompt, left, right in pairs:
        kl, kr = text_key(prompt, left), text_key(prompt, right)
        if any((k, t) not in known for k in (kl, kr) for t in texts):
            out.append(None)
            continue
        rows = []
        for i, f in enumerate(table):
            a, b = known[(kl, f["text"])][stat], known[(kr, f["text"])][stat]
            sign = 1.0 if f["polarity"] == "positive" else -1.0
            rows.append([i, a, b, sign * f["weight"] * (a - b)])
        out.append(rows)
    return out


def pair_browser(
    benchmarks: dict[str, tuple[list[dict], list[dict]]],
    scorers: dict,
    cache=None,
    *,
    limit: int = 500,
    length_ratio: float = 1.25,
    length_unit: str = "chars",
) -> dict:
    """The browser's data for pairwise benchmarks (``label -> (records, rows)`` as ``flr eval`` builds them):
    at most ``limit`` pairs, each with both texts, each scorer's rewards and decision, whether it is
    length-matched, and FLR's explanation (``explain``) for every scorer with follow-ups."""
    sizes = {name: len(records) for name, (records, _) in benchmarks.items()}
    picked = select_pairs(sizes, limit)
    explaining = {n: s for n, s in scorers.items() if hasattr(s, "utterances") and hasattr(s, "weights")}
    pairs = []
    for name, indices in picked.items():
        records, rows = benchmarks[name]
        texts = [(records[i]["prompt"], records[i]["chosen"], records[i]["rejected"]) for i in indices]
        explained = {s: explain_pairs(scorer, cache, texts) for s, scorer in explaining.items()}
        for j, i in enumerate(indices):
            record, row = records[i], rows[i]
            lengths = {"chosen": len(record["chosen"]), "rejected": len(record["rejected"])}  # shown in chars
            matched = row["length_matched"]  # the runner's, in its --length-unit
            decisions = {}
            for s in scorers:
                if s in row:
                    c, r = row[s]["chosen"], row[s]["rejected"]
                    pick = "left" if c > r else "right" if c < r else "tie"
                    decisions[s] = {"left": c, "right": r, "pick": pick, "agrees": bool(row[s]["correct"])}
            pairs.append(
                {
                    "group": name,
                    "subset": str(record.get("subset", "all")),
                    "id": str(record.get("id", i)),
                    "prompt": record["prompt"],
                    "left": clip(record["chosen"]),
                    "right": clip(record["rejected"]),
                    "lengths": [lengths["chosen"], lengths["rejected"]],
                    "matched": bool(matched),
                    "decisions": decisions,
                    "explain": {s: e[j] for s, e in explained.items() if e[j] is not None},
                }
            )
    missing = sum(1 for p in pairs for s in explaining if s not in p["explain"])
    first = next(iter(explaining.values()), None)
    return {
        "labelled": True,
        "scorers": list(scorers),
        "left_title": "chosen (preferred by the human label)",
        "right_title": "rejected",
        "left_name": "chosen",
        "right_name": "rejected",
        "total": sum(sizes.values()),
        "shown": len(pairs),
        "limit": limit,
        "length_ratio": length_ratio,
        "length_unit": length_unit,
        "statistic": first.config.statistic if first is not None else None,
        "followups": {s: followup_table(scorer) for s, scorer in explaining.items()},
        "explain_note": f"{missing} explanations are missing: the cache has no per-follow-up log-probs for them."
        if missing
        else "",
        "pairs": pairs,
    }

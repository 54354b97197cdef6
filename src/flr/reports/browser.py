"""The pair browser's data for report.html: pairs, each scorer's decision, and FLR's explanation of its choice.

An explanation is every follow-up's log-prob after each response, read from the score cache's per-follow-up table
(written whenever FLR scored the pair, so building the page computes nothing), and its push on the margin:
``weight × (log p after chosen − log p after rejected)``, negated for a negative follow-up, with ``weight`` the
follow-up's coefficient in its category times the category's share of the category weights. The pushes add up to
FLR's margin (a PMI baseline is the same for both responses of a pair and cancels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flr.scorers.cache import text_key

MAX_TEXT = 10_000  # characters of one text kept in the page (a browser, not an archive; scorers read less)


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters not shown]"


@dataclass
class Decision:
    """One scorer's (or judge's) rewards of a pair's two sides, which it prefers, and whether that is the label's."""

    left: float | None
    right: float | None
    pick: str  # left, right, tie or none
    agrees: bool | None = None  # None without a label


@dataclass
class BrowserPair:
    """One pair of the browser: the two texts (left: the labelled-chosen or the candidate), their lengths in
    characters, whether they are length-matched, each scorer's decision and FLR's explanation (per scorer: rows
    ``[follow-up index, log p after left, after right, push]``)."""

    group: str  # the benchmark
    subset: str
    id: str
    prompt: object  # a string or a list of messages
    left: str
    right: str
    lengths: list[int | None]
    matched: bool
    decisions: dict[str, Decision]
    explain: dict[str, list] = field(default_factory=dict)


@dataclass
class Browser:
    """The pair browser's data, embedded in report.html as JSON (:func:`flr.reports.html.browser_json`)."""

    labelled: bool
    scorers: list[str]
    left_title: str
    right_title: str
    left_name: str
    right_name: str
    total: int
    limit: int
    pairs: list[BrowserPair]
    followups: dict[str, list[dict]] = field(default_factory=dict)
    length_ratio: float = 1.25
    length_unit: str = "chars"
    statistic: str | None = None
    explain_note: str = ""

    @property
    def shown(self) -> int:
        return len(self.pairs)

    def data(self) -> dict:
        """The JSON the page's script reads."""
        from dataclasses import asdict

        return {**asdict(self), "shown": self.shown}


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


def _labelled_pair(group: str, index: int, record: dict, row: dict, scorers, explain: dict) -> BrowserPair:
    """One pair of a pairwise benchmark: chosen left, rejected right, each scorer's decision against the label."""
    decisions = {}
    for s in scorers:
        if s in row:
            c, r = row[s]["chosen"], row[s]["rejected"]
            pick = "left" if c > r else "right" if c < r else "tie"
            decisions[s] = Decision(c, r, pick, bool(row[s]["correct"]))
    return BrowserPair(
        group=group,
        subset=str(record.get("subset", "all")),
        id=str(record.get("id", index)),
        prompt=record["prompt"],
        left=clip(record["chosen"]),
        right=clip(record["rejected"]),
        lengths=[len(record["chosen"]), len(record["rejected"])],  # shown in chars
        matched=bool(row["length_matched"]),  # the runner's, in its --length-unit
        decisions=decisions,
        explain=explain,
    )


def pair_browser(
    benchmarks: dict[str, tuple[list[dict], list[dict]]],
    scorers: dict,
    cache=None,
    *,
    limit: int = 500,
    length_ratio: float = 1.25,
    length_unit: str = "chars",
) -> Browser:
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
            explain = {s: e[j] for s, e in explained.items() if e[j] is not None}
            pairs.append(_labelled_pair(name, i, records[i], rows[i], scorers, explain))
    missing = sum(1 for p in pairs for s in explaining if s not in p.explain)
    first = next(iter(explaining.values()), None)
    return Browser(
        labelled=True,
        scorers=list(scorers),
        left_title="chosen (preferred by the human label)",
        right_title="rejected",
        left_name="chosen",
        right_name="rejected",
        total=sum(sizes.values()),
        limit=limit,
        pairs=pairs,
        followups={s: followup_table(scorer) for s, scorer in explaining.items()},
        length_ratio=length_ratio,
        length_unit=length_unit,
        statistic=first.config.statistic if first is not None else None,
        explain_note=f"{missing} explanations are missing: the cache has no per-follow-up log-probs for them."
        if missing
        else "",
    )


def compare_browser(summary: dict, rows: list[dict], limit: int = 500) -> Browser:
    """The browser's data for an ``flr compare`` run: the candidate's answer left, the base's right, the judge's
    decision (no label)."""
    from flr.eval.metrics import length_matched

    shown = rows[:limit]
    matched = length_matched([r.get("len_candidate", 0) for r in shown], [r.get("len_base", 0) for r in shown])
    pairs = []
    for r, is_matched in zip(shown, matched):
        pick = {1.0: "left", 0.0: "right", 0.5: "tie"}.get(r.get("preference"), "none")
        pairs.append(
            BrowserPair(
                group="compare",
                subset="all",
                id=str(r.get("id")),
                prompt=r.get("prompt"),
                left=clip(r.get("candidate", "")),
                right=clip(r.get("base", "")),
                lengths=[r.get("len_candidate"), r.get("len_base")],
                matched=bool(is_matched),
                decisions={"judge": Decision(r.get("score_candidate"), r.get("score_base"), pick)},
            )
        )
    return Browser(
        labelled=False,
        scorers=["judge"],
        left_title=f"candidate: {summary.get('candidate')}",
        right_title=f"base: {summary.get('base')}",
        left_name="candidate",
        right_name="base",
        total=len(rows),
        limit=limit,
        pairs=pairs,
    )

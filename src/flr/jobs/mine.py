"""k scored candidates per prompt -> preference pairs (DPO) or unpaired rows (KTO), in TRL's formats.

Selection is a pure function of the candidate texts and their rewards (:func:`select_pair`,
:func:`select_unpaired`): identical texts count once, chosen = highest reward, rejected = lowest; a prompt is
dropped, with the reason counted, when it has fewer than two candidates, only one distinct text, a tie between best
and worst, or a best-worst margin below ``min_margin``.

Length control (reward models, FLR included, tend to prefer the longer response): ``length_band=R`` picks, among
the pairs whose character lengths are within ``max/min <= R``, the one with the largest reward margin (dropped as
``no_pair_in_length_band`` when there is none), and ``length_debias`` (``batch``, ``prompt``) selects by the reward
minus its least-squares line on log length (:mod:`flr.scorers.debias`). The summary reports the mined pairs' length ratios.

Scoring writes ``scored.jsonl`` row by row (each distinct candidate scored once), so a killed run resumes and
re-mining with another margin or format costs no scoring.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flr.errors import FLRError, InputError
from flr.eval.metrics import ratio_of_lengths
from flr.patterns import pattern_line, preference_patterns
from flr.records import (
    CANDIDATES_FILE,
    MINED_FILES,
    SCORED_FILE,
    ResumableWriter,
    prompt_messages,
    read_records,
    record_id,
    write_jsonl,
)
from flr.scorers.base import BaseScorer, scorer_identity
from flr.scorers.debias import DEBIAS_HELP, STYLE_HELP, check_mode, debias

logger = logging.getLogger(__name__)

DROP_REASONS = ("too_few_candidates", "all_identical", "tie", "below_min_margin", "no_pair_in_length_band")
MATCHED_RATIO = 1.25  # the summary's share of pairs "within 1.25x", flr eval's length-matched ratio
PROMPT_CHUNK_CANDIDATES = 64


@dataclass
class MineConfig:
    """Inputs, scorer choice and selection rule of ``flr mine``."""

    candidates: str | None = field(
        default=None,
        metadata={
            "help": f"Candidates: a '{CANDIDATES_FILE}' from flr generate (or its folder), or any file/dataset with a "
            "prompt and a list of candidate responses per row."
        },
    )
    output_dir: str = field(default="runs/mine", metadata={"help": "Folder for scored.jsonl, the pairs and summary."})
    field_map: str | None = field(
        default=None,
        metadata={"help": "Rename your fields to ours (prompt, candidates, id), e.g. candidates=outputs."},
    )
    split: str = field(default="train", metadata={"help": "Split, when --candidates is an HF dataset id."})
    scorer: str = field(default="flr", metadata={"help": "flr, direct, length, or rm:<model> (a classifier RM)."})
    min_margin: float = field(
        default=0.0,
        metadata={"help": "Drop prompts whose best-worst reward margin is below this (ties are always dropped)."},
    )
    format: str = field(
        default="dpo",
        metadata={
            "help": "dpo: {prompt, chosen, rejected} pairs; kto: unpaired {prompt, completion, label} rows.",
            "choices": ["dpo", "kto"],
        },
    )
    unfinished: str = field(
        default="drop",
        metadata={
            "help": "Candidates cut off at --max-new-tokens (flr generate's 'finished' is false): drop them from the "
            "selection, or keep them (mined rows then carry chosen_finished / rejected_finished).",
            "choices": ["drop", "keep"],
        },
    )
    kto_fraction: float = field(
        default=0.25,
        metadata={
            "help": "KTO: per prompt, the top fraction of distinct candidates is desirable and the bottom fraction "
            "undesirable (at least one each, never overlapping, strictly separated by reward)."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N prompts."})
    length_band: float | None = field(
        default=None,
        metadata={
            "help": "dpo: choose among the pairs of distinct candidates whose character lengths are within this ratio "
            "(longer / shorter <= R, an empty text counting as 1 character) the one with the largest reward margin "
            "(higher reward = chosen); a prompt without such a pair is dropped as no_pair_in_length_band. "
            "Must be > 1 (e.g. 1.25). Default: no band."
        },
    )
    length_debias: str = field(
        default="none",
        metadata={
            "help": DEBIAS_HELP + " Mining selects by it: 'all responses scored together' = every distinct "
            "candidate kept for selection in this run; a prompt = one row's candidates. --min-margin then applies "
            "to the debiased margin; mined rows keep the raw scores and add the debiased ones.",
            "choices": ["none", "batch", "prompt", "lowess"],
        },
    )
    style_debias: str = field(
        default="none",
        metadata={
            "help": STYLE_HELP + " Mining selects by it, as by --length-debias (same fit population).",
            "choices": ["none", "batch", "prompt"],
        },
    )

    def __post_init__(self):
        check_mode(self.length_debias, style=self.style_debias)
        check_kto_fraction(self.kto_fraction)  # here, not after scoring every candidate
        if self.format not in ("dpo", "kto"):
            raise FLRError(f"--format must be dpo or kto, got {self.format!r}")
        if self.unfinished not in ("drop", "keep"):
            raise FLRError(f"--unfinished must be drop or keep, got {self.unfinished!r}")
        if self.length_band is not None and not self.length_band > 1:
            raise FLRError(f"--length-band must be greater than 1 (a ratio of lengths), got {self.length_band}")
        if self.length_band is not None and self.format != "dpo":
            raise FLRError("--length-band picks a pair: it applies to --format dpo only")


def check_kto_fraction(fraction: float) -> None:
    """KTO's desirable and undesirable shares must lie in (0, 0.5]: one error naming --kto-fraction."""
    if not 0 < fraction <= 0.5:
        raise FLRError(f"--kto-fraction must lie in (0, 0.5], got {fraction}")


# -- pure selection --------------------------------------------------------------------------------------


@dataclass
class Selection:
    """Indices into the candidate list; ``reason`` is set (and the lists empty) when the prompt is dropped."""

    positive: list[int]
    negative: list[int]
    margin: float
    duplicates: int
    reason: str | None = None


def distinct_indices(candidates: Sequence[str]) -> list[int]:
    """First occurrence of each text (compared after stripping whitespace)."""
    seen, keep = set(), []
    for i, text in enumerate(candidates):
        key = text.strip()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep


def _ranked(candidates: Sequence[str], scores: Sequence[float], min_margin: float):
    """Distinct, finite-scored candidates sorted best first (stable), the margin, duplicates, drop reason."""
    if len(candidates) != len(scores):
        raise ValueError(f"{len(candidates)} candidates but {len(scores)} scores")
    keep = distinct_indices(candidates)
    duplicates = len(candidates) - len(keep)
    keep = [i for i in keep if math.isfinite(scores[i])]
    ranked = sorted(keep, key=lambda i: -scores[i])
    margin = scores[ranked[0]] - scores[ranked[-1]] if ranked else float("nan")
    if len(candidates) < 2:
        reason = "too_few_candidates"
    elif len(ranked) < 2:
        reason = "all_identical"
    elif margin == 0:
        reason = "tie"
    elif margin < min_margin:
        reason = "below_min_margin"
    else:
        reason = None
    return ranked, margin, duplicates, reason


def length_ratio(a: str, b: str) -> float:
    """Longer over shorter, in characters (an empty text counts as one character)."""
    return ratio_of_lengths(len(a), len(b))


def select_pair(
    candidates: Sequence[str], scores: Sequence[float], min_margin: float = 0.0, length_band: float | None = None
) -> Selection:
    """chosen = highest reward, rejected = lowest, among distinct texts; first occurrence wins equal rewards.

    With ``length_band``: the pair of largest margin among those whose :func:`length_ratio` is at most the band
    (on equal margins, the one with the better chosen, then the worse rejected, in ranking order).
    """
    ranked, margin, duplicates, reason = _ranked(candidates, scores, min_margin)
    if reason:
        return Selection([], [], margin, duplicates, reason)
    if length_band is None:
        return Selection([ranked[0]], [ranked[-1]], margin, duplicates)
    best = None
    for n, c in enumerate(ranked):
        for r in reversed(ranked[n + 1 :]):  # worst first: of equal margins the first found is kept
            if length_ratio(candidates[c], candidates[r]) <= length_band:
                gap = scores[c] - scores[r]
                if best is None or gap > best[0]:
                    best = (gap, c, r)
    if best is None:
        return Selection([], [], float("nan"), duplicates, "no_pair_in_length_band")
    gap, c, r = best
    if gap == 0 or gap < min_margin:
        return Selection([], [], gap, duplicates, "tie" if gap == 0 else "below_min_margin")
    return Selection([c], [r], gap, duplicates)


def select_unpaired(
    candidates: Sequence[str], scores: Sequence[float], min_margin: float = 0.0, fraction: float = 0.25
) -> Selection:
    """Top ``fraction`` desirable, bottom ``fraction`` undesirable; shrinks both until every desirable candidate
    scores strictly above every undesirable one."""
    check_kto_fraction(fraction)
    ranked, margin, duplicates, reason = _ranked(candidates, scores, min_margin)
    if reason:
        return Selection([], [], margin, duplicates, reason)
    m = max(1, math.floor(len(ranked) * fraction))
    while m > 1 and scores[ranked[m - 1]] <= scores[ranked[-m]]:
        m -= 1
    return Selection(ranked[:m], ranked[-m:], margin, duplicates)


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def mine_rows(
    rows: Sequence[dict],
    *,
    fmt: str = "dpo",
    min_margin: float = 0.0,
    kto_fraction: float = 0.25,
    unfinished: str = "drop",
    length_band: float | None = None,
    length_debias: str = "none",
    style_debias: str = "none",
):
    """Scored rows (``candidates`` + ``rewards``) -> (TRL rows, stats with drop counts by reason).

    Candidates cut off at the generation limit (``finished`` false, as flr generate records) are left out of
    the selection with ``unfinished="drop"``; with ``"keep"`` they compete, and every mined row says whether its
    responses were finished. ``length_band``, ``length_debias`` and ``style_debias``: see :class:`MineConfig`
    (which checks them all); the stats report the mined pairs' lengths (:func:`length_summary`) and the share of
    prompts that yield a pair.
    """
    cfg = MineConfig(
        format=fmt,
        min_margin=min_margin,
        kto_fraction=kto_fraction,
        unfinished=unfinished,
        length_band=length_band,
        length_debias=length_debias,
        style_debias=style_debias,
    )
    return mine(rows, cfg)


def mine(rows: Sequence[dict], cfg: MineConfig):
    """:func:`mine_rows` with the selection settings of ``cfg`` (checked when it was made)."""
    usable, cut_off = _selectable(rows, cfg.unfinished)
    # the debiased rewards are fitted over every candidate that can be selected, so all rows are read first
    selecting, debias_info = debiased_scores(
        [u[0] for u in usable], [u[1] for u in usable], cfg.length_debias, style=cfg.style_debias
    )
    out, dropped, duplicates, margins = [], Counter(), 0, []
    for row, (cands, scores, finished), by in zip(rows, usable, selecting):
        if cfg.format == "dpo":
            sel = select_pair(cands, by, cfg.min_margin, cfg.length_band)
        else:
            sel = select_unpaired(cands, by, cfg.min_margin, cfg.kto_fraction)
        duplicates += sel.duplicates
        if sel.reason:
            dropped[sel.reason] += 1
            continue
        margins.append(sel.margin)
        out += _mined(row, cands, scores, finished, by, sel, cfg.format, debiased=debias_info["mode"] != "none")
    stats = {
        "prompts": len(rows),
        "kept_prompts": len(margins),
        "rows": len(out),
        "dropped": {r: dropped[r] for r in DROP_REASONS},
        "duplicate_candidates": duplicates,
        "unfinished_candidates": cut_off,
        "unfinished": cfg.unfinished,
        "mean_margin": sum(margins) / len(margins) if margins else float("nan"),
        "yield": len(margins) / len(rows) if rows else None,  # share of prompts that still yield a pair
        "length_band": cfg.length_band,
        "length_debias": debias_info,
        "length": _mined_lengths(out, cfg.format),
    }
    return out, stats


def _selectable(rows: Sequence[dict], unfinished: str) -> tuple[list[tuple], int]:
    """Per row, the (candidates, rewards, finished flags) that may be selected, and the count of cut-off ones."""
    usable, cut_off = [], 0
    for row in rows:
        cands, scores = row["candidates"], row["rewards"]
        finished = row.get("finished") or [True] * len(cands)
        cut_off += finished.count(False)
        if unfinished == "drop" and not all(finished):
            keep = [i for i, f in enumerate(finished) if f]
            cands, scores, finished = [cands[i] for i in keep], [scores[i] for i in keep], [True] * len(keep)
        usable.append((cands, scores, finished))
    return usable, cut_off


def _mined(row: dict, cands, scores, finished, by, sel: Selection, fmt: str, *, debiased: bool) -> list[dict]:
    """The TRL rows of one prompt's selection: one DPO pair, or KTO's desirable and undesirable rows."""
    meta = {"k": len(cands), "policy": row.get("policy"), "seed": row.get("seed")}
    if fmt == "dpo":
        c, r = sel.positive[0], sel.negative[0]
        pair = {
            "id": row["id"],
            "prompt": row["prompt"],
            "chosen": _assistant(cands[c]),
            "rejected": _assistant(cands[r]),
            "chosen_score": scores[c],
            "rejected_score": scores[r],
            **({"chosen_debiased": by[c], "rejected_debiased": by[r]} if debiased else {}),
            "margin": sel.margin,
            **({} if all(finished) else {"chosen_finished": finished[c], "rejected_finished": finished[r]}),
            **meta,
        }
        return [pair]
    return [
        {
            "id": f"{row['id']}:{i}",
            "prompt": row["prompt"],
            "completion": _assistant(cands[i]),
            "label": label,
            "score": scores[i],
            **({"debiased": by[i]} if debiased else {}),
            "margin": sel.margin,
            **({} if all(finished) else {"finished": finished[i]}),
            **meta,
        }
        for label, idx in ((True, sel.positive), (False, sel.negative))
        for i in idx
    ]


def _mined_lengths(out: list[dict], fmt: str) -> dict:
    """The mined rows' lengths: :func:`length_summary` of the pairs, or KTO's mean characters per label."""
    if fmt == "dpo":
        return length_summary([(len(r["chosen"][0]["content"]), len(r["rejected"][0]["content"])) for r in out])
    return {
        f"mean_chars_{kind}": _mean([len(r["completion"][0]["content"]) for r in out if r["label"] == label])
        for kind, label in (("desirable", True), ("undesirable", False))
    }


def _mean(values) -> float | None:
    return sum(values) / len(values) if values else None


def length_summary(pairs: Sequence[tuple[int, int]]) -> dict:
    """Of mined (chosen, rejected) character lengths: the length ratio (longer / shorter, as :func:`length_ratio`)
    median and mean, the share within :data:`MATCHED_RATIO`, the share where the chosen is strictly longer, and
    the mean lengths. None where there are no pairs."""
    import statistics

    ratios = [ratio_of_lengths(c, r) for c, r in pairs]
    return {
        "pairs": len(pairs),
        "median_ratio": statistics.median(ratios) if ratios else None,
        "mean_ratio": _mean(ratios),
        f"within_{MATCHED_RATIO}": _mean([x <= MATCHED_RATIO for x in ratios]),
        "chosen_longer": _mean([c > r for c, r in pairs]),
        "mean_chars_chosen": _mean([c for c, _ in pairs]),
        "mean_chars_rejected": _mean([r for _, r in pairs]),
    }


def length_line(stats: dict) -> str:
    """The share of prompts kept and, for pairs, their length ratios: one phrase for printed summaries."""
    length = stats.get("length") or {}
    what = "yield a pair" if "pairs" in length else "kept"
    share = f"{100 * stats['yield']:.0f}% of prompts {what}" if stats.get("yield") is not None else ""
    if not length.get("pairs"):
        return share
    return (
        f"{share}; length ratio median {length['median_ratio']:.2f}, mean {length['mean_ratio']:.2f}, "
        f"{100 * length[f'within_{MATCHED_RATIO}']:.0f}% within {MATCHED_RATIO}x, "
        f"chosen longer in {100 * length['chosen_longer']:.0f}%"
    )


def debiased_scores(
    candidates: Sequence[Sequence[str]], scores: Sequence[Sequence[float]], mode: str, *, style: str = "none"
):
    """Per row, every candidate's length- or style-debiased reward (:func:`flr.scorers.debias.debias`), fitted over the
    distinct candidates with finite rewards: all rows together (``batch``, ``lowess``) or each row alone (``prompt``).
    A repeated text takes its first occurrence's value. ``none``: the rewards as they are. Returns (per-row lists,
    fit info)."""
    check_mode(mode, style=style)
    if mode == style == "none":
        return [list(s) for s in scores], {"mode": "none"}
    where, rewards, lengths = [], [], []
    for n, (cands, row_scores) in enumerate(zip(candidates, scores)):
        for i in distinct_indices(cands):
            if math.isfinite(row_scores[i]):
                where.append((n, i))
                rewards.append(row_scores[i])
                lengths.append(len(cands[i]))
    texts = [candidates[n][i] for n, i in where]
    values, info = debias(rewards, lengths, mode, [n for n, _ in where], style=style, texts=texts)
    out = [[math.nan] * len(c) for c in candidates]
    for (n, i), value in zip(where, values):
        out[n][i] = float(value)
    for n, cands in enumerate(candidates):
        first = {cands[i].strip(): out[n][i] for i in distinct_indices(cands)}
        out[n] = [first[c.strip()] for c in cands]
    return out, info


# -- scoring -----------------------------------------------------------------------------------------------


def load_candidates(source: str, *, split: str = "train", field_map=None, limit=None) -> list[dict]:
    """``[{"id", "prompt": messages, "candidates": [str], "policy"?, "seed"?}]`` from generate's output or any file."""
    path = Path(source)
    if path.is_dir() and (path / CANDIDATES_FILE).exists():
        source = str(path / CANDIDATES_FILE)
    rows = []
    for index, rec in enumerate(read_records(source, split=split, field_map=field_map, limit=limit)):
        where = {"file": rec.source, "line": rec.line}
        for name in ("prompt", "candidates"):
            if name not in rec.data:
                raise InputError("missing (map yours with --field-map)", field=name, **where)
        cands = rec.data["candidates"]
        if not isinstance(cands, list) or not all(isinstance(c, str) for c in cands):
            raise InputError("expected a list of strings", field="candidates", **where)
        finished = rec.data.get("finished")
        if finished is not None and (
            not isinstance(finished, list)
            or len(finished) != len(cands)
            or not all(isinstance(f, bool) for f in finished)
        ):
            raise InputError("expected one true/false per candidate", field="finished", **where)
        row = dict(rec.data)
        row["prompt"] = prompt_messages(rec.data["prompt"], {**where, "field": "prompt"})
        row["id"] = record_id(rec, index)
        rows.append(row)
    return rows


def score_candidates(rows: list[dict], scorer: BaseScorer, output: str | Path, *, progress: bool = True) -> list[dict]:
    """Add ``rewards``, ``categories``, ``truncated`` (one per candidate) to each row, saved row by row to ``output``.

    Rows already in ``output`` are reused when they were scored by the same scorer (same fingerprint).
    """
    from tqdm.auto import tqdm

    fingerprint = scorer.fingerprint()
    with ResumableWriter(output, key="id") as writer:
        done = {}
        if writer.resumed:
            for r in read_records(output):
                if r.data.get("scorer") != fingerprint:
                    raise FLRError(f"{output} was scored by another scorer configuration; use a new --output-dir")
                done[str(r.data["id"])] = r.data
        todo = [r for r in rows if r["id"] not in done]
        k = max((len(r["candidates"]) for r in rows), default=1)
        chunk = max(1, PROMPT_CHUNK_CANDIDATES // max(k, 1))  # prompts per scoring call: saved after each
        with tqdm(
            total=len(todo), unit="prompt", desc=f"score ({scorer.name})", disable=not progress or not todo
        ) as bar:
            for start in range(0, len(todo), chunk):
                group = todo[start : start + chunk]
                unique = [(row, distinct_indices(row["candidates"])) for row in group]
                records = [
                    {"prompt": row["prompt"], "response": row["candidates"][i]} for row, idx in unique for i in idx
                ]
                results = iter(scorer.score(records))
                for row, idx in unique:
                    by_text = {row["candidates"][i].strip(): next(results) for i in idx}
                    res = [by_text[c.strip()] for c in row["candidates"]]
                    scored = {
                        **row,
                        "rewards": [r.reward for r in res],
                        "categories": [r.categories for r in res],
                        "truncated": [r.truncated for r in res],
                        "scorer": fingerprint,
                    }
                    writer.write(scored)
                    done[row["id"]] = scored
                bar.update(len(group))
    return [done[r["id"]] for r in rows]


def run(cfg: MineConfig, flr_config, model_config, *, scorer: BaseScorer | None = None, progress: bool = True) -> dict:
    """``flr mine``: candidates -> ``scored.jsonl`` -> ``pairs.jsonl`` (dpo) or ``unpaired.jsonl`` (kto) + summary."""
    from flr.kernel.models import model_name
    from flr.records.provenance import write_summary
    from flr.scorers import build_scorer

    if not cfg.candidates:
        raise FLRError("no candidates: pass --candidates FILE (the output of flr generate)")
    rows = load_candidates(cfg.candidates, split=cfg.split, field_map=cfg.field_map, limit=cfg.limit)
    if scorer is None:
        scorer = build_scorer(
            cfg.scorer, model_config=model_config, config=flr_config, model_name=model_name(model_config.model)
        )
    out = Path(cfg.output_dir)
    scored = score_candidates(rows, scorer, out / SCORED_FILE, progress=progress)
    mined, stats = mine(scored, cfg)
    output = out / MINED_FILES[cfg.format]
    write_jsonl(output, mined)
    # what DPO/KTO on these rows reinforces: content-free patterns on each side, and among all candidates
    patterns = preference_patterns(mined, (c for row in scored for c in row["candidates"]))
    logger.info("content-free patterns, %s", pattern_line(patterns))
    summary = {
        "stats": stats,
        "patterns": patterns,
        "output": str(output),
        "scorer": scorer_identity(scorer),
    }
    return write_summary(out, summary, cfg, flr_config, model_config)

"""Building follow-up sets from labelled pairs: ``flr followups select`` (keep the follow-ups that alone rank the
pairs best) and ``flr followups fit`` (weigh every follow-up by a logistic regression); and ``flr followups split``
(two disjoint halves of a set: one to optimise against, one to judge with).

Each job reads and checks its pairs before any model loads, scores both responses of every pair with every
follow-up through the score cache (a rerun or a refit recomputes nothing) and writes the set; it returns what it
wrote. The statistics are :mod:`flr.followups.selection` and :mod:`flr.followups.fitting`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from flr.arguments import split_list
from flr.errors import FLRError
from flr.eval.benchmarks import benchmark_records
from flr.eval.metrics import length_matched
from flr.followups import dump_followups, load_followups, split_followups
from flr.followups.fitting import fit_weights, length_feature, weighted_set
from flr.followups.selection import followup_accuracy, robust_candidates, select_followups
from flr.followups.sets import write_followups
from flr.kernel.models import ModelConfig, model_name
from flr.records import MOVES_FILE
from flr.scorers import ScorerConfig, build_scorer
from flr.scorers.base import BaseScorer
from flr.scorers.cache import open_cache


@dataclass
class SelectConfig:
    benchmark: str = field(default="autoj", metadata={"help": "Pairwise benchmark name or file to select on."})
    limit: int | None = field(default=200, metadata={"help": "Seeded sample of N pairs (None: all)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    data_dir: str | None = field(default=None, metadata={"help": "Where the public benchmark files live."})
    top: int = field(default=5, metadata={"help": "Utterances kept per category and polarity."})
    rank_on: str = field(
        default="matched",
        metadata={
            "help": "Rank follow-ups by their accuracy on the length-matched pairs (matched: on all pairs, the "
            "follow-ups that track length win), on all pairs (all: the rule before flr 0.2), or robust: on the "
            "length-matched pairs after dropping, per category and polarity, the --robust-drop share whose "
            "log-probs content-free edits move most towards a higher reward (from --audit-run).",
            "choices": ["matched", "all", "robust"],
        },
    )
    audit_run: str | None = field(
        default=None,
        metadata={
            "help": "--rank-on robust: an flr audit run folder (content-free perturbations, scorer flr, this set "
            "or a superset) whose followup_moves.jsonl says how edits move each follow-up. Audit other data than "
            "you evaluate on."
        },
    )
    robust_drop: float = field(
        default=0.5,
        metadata={"help": "--rank-on robust: share of each category and polarity dropped as most moved (0-1)."},
    )
    length_ratio: float = field(
        default=1.25, metadata={"help": "Pairs whose longer response is at most this many times the shorter match."}
    )
    cache: str | None = field(default=None, metadata={"help": "Score cache file (default: $FLR_CACHE/scores.sqlite)."})
    output: str = field(
        default="runs/followups/selected.yaml",
        metadata={
            "help": "Selected set (YAML); the per-utterance statistics go next to it as .jsonl.",
            "aliases": ["-o"],
        },
    )

    def __post_init__(self):
        from flr.followups.selection import RANK_ON

        if self.top < 1:
            raise FLRError(f"--top must be at least 1, got {self.top}")
        if self.limit is not None and self.limit < 1:
            raise FLRError(f"--limit must be at least 1, got {self.limit}")
        if not self.length_ratio > 1:
            raise FLRError(f"--length-ratio must be greater than 1, got {self.length_ratio}")
        if self.rank_on not in RANK_ON:
            raise FLRError(f"--rank-on must be one of {', '.join(RANK_ON)}, got {self.rank_on!r}")
        if not 0 <= self.robust_drop < 1:
            raise FLRError(f"--robust-drop must be in [0, 1), got {self.robust_drop}")
        if (self.rank_on == "robust") != bool(self.audit_run):
            raise FLRError("--rank-on robust and --audit-run DIR go together")

    def moves(self) -> list[dict]:
        """The audit run's per-follow-up moves (:data:`flr.records.MOVES_FILE`); one error if it has none."""
        path = Path(self.audit_run, MOVES_FILE)
        if not path.is_file():
            raise FLRError(f"{self.audit_run}: no {MOVES_FILE} (run flr audit with --scorers flr first)")
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class FitConfig:
    benchmarks: str = field(
        default="",
        metadata={
            "help": "Comma-separated pairwise benchmarks (names or {prompt, chosen, rejected} files) to fit on."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Seeded sample of N pairs per benchmark (None: all)."})
    seed: int = field(
        default=0,
        metadata={"help": "Sampling seed, and the seed that shuffles the pairs into cross-validation folds."},
    )
    data_dir: str | None = field(default=None, metadata={"help": "Where the public benchmark files live."})
    cache: str | None = field(default=None, metadata={"help": "Score cache file (default: $FLR_CACHE/scores.sqlite)."})
    control_length: bool = field(
        default=False,
        metadata={
            "help": "Length as a covariate: the pair's log(chars(chosen) / chars(rejected)) is one more feature of the "
            "regression (mirrored with the pair, in effect unpenalised: a covariate controlled for), so the "
            "follow-up weights learn what length does not. The set records the fitted coefficient as "
            "length_coefficient (reward units per log character); scorers add length_coefficient * log(chars) only "
            "with --length-term."
        },
    )
    output: str = field(
        default="runs/followups/weighted.yaml",
        metadata={"help": "The weighted follow-up set (YAML).", "aliases": ["-o"]},
    )

    def __post_init__(self):
        if not split_list(self.benchmarks):
            raise FLRError("give --benchmarks: pairwise benchmark names or {prompt, chosen, rejected} files")
        if self.limit is not None and self.limit < 1:
            raise FLRError(f"--limit must be at least 1, got {self.limit}")


def labelled_pairs(name: str, data_dir: str | None, limit: int | None, seed: int, needs: str) -> list[dict]:
    """The ``{prompt, chosen, rejected}`` records of a benchmark or file; FLRError (saying it ``needs`` them)
    for data of another kind."""
    kind, records = benchmark_records(name, data_dir, limit, seed)
    if kind != "pairwise":
        raise FLRError(f"{name} is {kind}: {needs}")
    return records


def run_select(
    config: SelectConfig, flr_config: ScorerConfig, model_config: ModelConfig, *, scorer: BaseScorer | None = None
) -> dict:
    """Rank every follow-up of the set by its own accuracy on the pairs, write the ``top`` per category and polarity
    to ``config.output`` and every follow-up's statistics, best first, next to it (.jsonl).

    Returns ``{"output", "statistics", "rank_key", "ranked"}``: the two paths, the statistic ranked on and the
    statistics as written."""
    moves = config.moves() if config.rank_on == "robust" else None  # a file read: before the pairs
    records = labelled_pairs(
        config.benchmark,
        config.data_dir,
        config.limit,
        config.seed,
        "selection needs pairwise {prompt, chosen, rejected} data",
    )
    lengths = [len(r["chosen"]) for r in records], [len(r["rejected"]) for r in records]
    if config.rank_on != "all" and not length_matched(*lengths, config.length_ratio).any():
        raise FLRError(
            f"none of the {len(records)} pairs of {config.benchmark} is length-matched (within "
            f"{config.length_ratio}x): raise --limit or --length-ratio, or use --rank-on all"
        )
    fset = load_followups(flr_config.followups).select(flr_config.categories)  # a bad set fails before the model loads
    if moves is not None:  # every follow-up measured by the audit, checked before the model loads
        robust_candidates([{"category": c, "polarity": p, "text": t} for c, p, t in fset.utterances], moves, 0)
    scorer = scorer or build_scorer("flr", model_config=model_config, config=flr_config)
    with open_cache(config.cache, [scorer]) as cache:  # per-follow-up log-probs are reused; a killed run resumes
        scorer.attach_cache(cache)
        margins = scorer.signed_margins(records)
    stats = followup_accuracy(margins, scorer.utterances, length_matched(*lengths, config.length_ratio))
    if moves is not None:
        stats = robust_candidates(stats, moves, config.robust_drop)
    selected = select_followups(stats, config.top, rank_on=config.rank_on)
    on = f"the {stats[0]['matched_n']} length-matched ones of " if config.rank_on != "all" else ""
    if moves is not None:
        on = f"the follow-ups content-free edits move least (audit {config.audit_run}, {config.robust_drop:.0%} dropped), on {on}"
    comment = (
        f"Selected by flr followups select: the {config.top} most accurate follow-ups per category and "
        f"polarity on {on}{len(records)} pairs of {config.benchmark} (seed {config.seed}), scorer "
        f"{model_name(model_config.model)}.\nEvaluate it on other benchmarks than the one it was selected on."
    )
    path = write_followups(selected, config.output, comment)
    key = "accuracy" if config.rank_on == "all" else "matched_accuracy"
    ranked = sorted(stats, key=lambda s: -s[key])
    statistics = Path(config.output).with_suffix(".jsonl")
    statistics.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in ranked), encoding="utf-8")
    return {"output": str(path), "statistics": str(statistics), "rank_key": key, "ranked": ranked}


def run_fit(
    config: FitConfig, flr_config: ScorerConfig, model_config: ModelConfig, *, scorer: BaseScorer | None = None
) -> dict:
    """Fit per-follow-up weights on the pairs of ``config.benchmarks`` and write the weighted set to
    ``config.output``, with its ``fit`` record (data, model, base set, fit statistics rounded).

    Returns ``{"output", "fit", "stats"}``: the path, the ``fit`` record as written and the unrounded statistics of
    :func:`flr.followups.fitting.fit_weights`."""
    names = split_list(config.benchmarks)
    fset = load_followups(flr_config.followups).select(flr_config.categories)
    if fset.weighted:
        raise FLRError(f"{flr_config.followups}: already weighted; fit on an unweighted follow-up set")
    needs = "fitting needs labelled pairs {prompt, chosen, rejected}"
    records = [  # every input is read and checked before the model loads
        r for name in names for r in labelled_pairs(name, config.data_dir, config.limit, config.seed, needs)
    ]
    scorer = scorer or build_scorer("flr", model_config=model_config, config=flr_config)
    with open_cache(config.cache, [scorer]) as cache:
        scorer.attach_cache(cache)
        features = scorer.signed_margins(records)
    length = length_feature(records) if config.control_length else None
    coef, stats = fit_weights(features, seed=config.seed, length=length)
    fitted = weighted_set(fset, coef, length_coefficient=stats.get("length_coefficient"))
    fit = {
        "on": names,
        "limit": config.limit,
        "seed": config.seed,
        "model": model_name(model_config.model),
        "statistic": flr_config.statistic,
        "max_length": flr_config.max_length,
        "base_set": fset.name,
        "base_fingerprint": fset.fingerprint(),
        **({"length_feature": "log(chars(chosen) / chars(rejected))"} if config.control_length else {}),
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()},
    }
    dump_followups(fitted, config.output, extra={"fit": fit})
    return {"output": config.output, "fit": fit, "stats": stats}


@dataclass
class SplitConfig:
    output_dir: str = field(
        default="runs/followups-split",
        metadata={"help": "Folder for a.yaml (the half to mine or train with) and b.yaml (the half that judges).",
                  "aliases": ["-o"]},
    )  # fmt: skip
    seed: int = field(default=0, metadata={"help": "Seed of the shuffle within each category and polarity."})


def run_split(config: SplitConfig, flr_config: ScorerConfig) -> dict:
    """Write the two halves of ``flr_config``'s follow-up set (its selected categories); returns what it wrote."""
    fset = load_followups(flr_config.followups).select(flr_config.categories)
    out = Path(config.output_dir)
    written = {}
    for tag, half in zip("ab", split_followups(fset, config.seed)):
        path = out / f"{tag}.yaml"
        extra = {"description": f"half {tag} of '{fset.name}' ({fset.fingerprint()}), flr followups split --seed "
                 f"{config.seed}; the other half is disjoint"}  # fmt: skip
        dump_followups(half, path, extra=extra)
        written[tag] = {"path": str(path), "utterances": len(half.utterances), "fingerprint": half.fingerprint()}
    return {"source": fset.name, "seed": config.seed, "halves": written}

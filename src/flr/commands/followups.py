"""``flr followups``: inspect follow-up sets and select the ones that carry signal."""

from __future__ import annotations

import argparse
import dataclasses
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from flr.commands._common import add_command, make_subparsers, to_configs
from flr.errors import FLRError
from flr.followups import load_followups
from flr.kernel.models import ModelConfig, load_model, model_name
from flr.scorers import ScorerConfig, build_scorer


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
            "follow-ups that track length win) or on all pairs (all: the rule before flr 0.2).",
            "choices": ["matched", "all"],
        },
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


@dataclass
class FitConfig:
    benchmarks: str = field(
        default="",
        metadata={
            "help": "Comma-separated pairwise benchmarks (names or {prompt, chosen, rejected} files) to fit on."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Seeded sample of N pairs per benchmark (None: all)."})
    seed: int = field(default=0, metadata={"help": "Sampling and cross-validation seed."})
    data_dir: str | None = field(default=None, metadata={"help": "Where the public benchmark files live."})
    cache: str | None = field(default=None, metadata={"help": "Score cache file (default: $FLR_CACHE/scores.sqlite)."})
    control_length: bool = field(
        default=False,
        metadata={
            "help": "Length as a covariate: the pair's log(chars(chosen) / chars(rejected)) is one more feature of the "
            "regression (mirrored with the pair, in effect unpenalised: a covariate controlled for), so the "
            "follow-up weights learn what length does not. The set records the fitted coefficient as length_coefficient (reward units per log character); "
            "scorers add length_coefficient * log(chars) only with --length-term."
        },
    )
    output: str = field(
        default="runs/followups/weighted.yaml",
        metadata={"help": "The weighted follow-up set (YAML).", "aliases": ["-o"]},
    )


FIT_EXAMPLES = """examples:
  flr followups fit --benchmarks rmb,rm_bench,hh-rlhf,alpaca_eval --limit 64 -o runs/followups/weighted.yaml
  flr followups fit --benchmarks my_pairs.jsonl --followups compact -o weighted.yaml
  flr followups fit --benchmarks my_pairs.jsonl --followups compact --control-length -o weighted-lc.yaml
  flr eval --benchmarks autoj --followups weighted-lc.yaml --length-term      # + the fitted length term
  flr eval --benchmarks autoj,pandalm --followups runs/followups/weighted.yaml     # the scorer uses the weights
"""


def make_parser(subparsers):
    parser = subparsers.add_parser(
        "followups",
        help="Show follow-up sets; select the ones that carry signal.",
        description="Show a follow-up set, or rank every follow-up by its own pairwise "
        "accuracy on preference data and write a set of the best ones.",
        epilog="examples:\n  flr followups show\n  flr followups select --benchmark hh-rlhf --top 2\n"
        "  flr followups fit --benchmarks hh-rlhf,rmb --limit 64 --followups compact\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subs = make_subparsers(parser)
    show = add_command(subs, "show", help="Print a follow-up set (default: flr's own).", dataclasses_=(ScorerConfig,))
    show.epilog = """examples:
  flr followups show                          # the paper's 60 follow-ups
  flr followups show --followups compact      # the 12 of the compact set
"""
    show.set_defaults(func=show_main)
    select = add_command(
        subs,
        "select",
        help="Rank follow-ups by their own pairwise accuracy; keep the best per category.",
        description="Scores the pairs of --benchmark with every follow-up of the set (default: the paper's 60), ranks each follow-up by how "
        "often it alone prefers the human-chosen response, and writes the --top best per category and polarity. "
        "Select on one benchmark and evaluate (flr eval --followups OUT.yaml) on others.",
        dataclasses_=(SelectConfig, ScorerConfig, ModelConfig),
    )
    select.epilog = """examples:
  flr followups select --benchmark hh-rlhf --limit 64 --top 2 -o runs/followups/top2.yaml
  flr eval --benchmarks autoj,pandalm --followups runs/followups/top2.yaml   # test on other benchmarks
"""
    select.set_defaults(func=select_main)
    fit = add_command(
        subs,
        "fit",
        help="Fit per-follow-up weights on labelled pairs (L2 logistic regression); write a weighted set.",
        description="Scores the pairs of --benchmarks with every follow-up of the set (per-follow-up log-probs are "
        "cached and reused), fits an L2-regularised logistic regression of the human label on the per-follow-up "
        "margins (scikit-learn, strength by 5-fold cross-validation) and writes a follow-up set whose utterances "
        "carry the weights. Fit on one pool of benchmarks and evaluate on others.",
        dataclasses_=(FitConfig, ScorerConfig, ModelConfig),
    )
    fit.epilog = FIT_EXAMPLES
    fit.set_defaults(func=fit_main)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    return parser


def show_main(args) -> int:
    config = to_configs(args, ScorerConfig)
    followups = load_followups(config.followups).select(config.categories)
    print(f"{followups.name} (fingerprint {followups.fingerprint()})")
    for category, polarity, text in followups.utterances:
        print(f"{category:24s} {polarity:9s} {text}")
    return 0


def select_main(args) -> int:
    from flr.eval.metrics import length_matched
    from flr.eval.runner import EvalConfig, benchmark_records
    from flr.eval.selection import followup_accuracy, select_followups, write_followups

    config, flr_config, model_config = to_configs(args, SelectConfig, ScorerConfig, ModelConfig)
    if flr_config.followups is None:  # select from the paper's 60, not from the 12 already selected
        flr_config = dataclasses.replace(flr_config, followups="paper")
    kind, records = benchmark_records(
        config.benchmark, EvalConfig(data_dir=config.data_dir, limit=config.limit, seed=config.seed)
    )
    if kind != "pairwise":
        raise FLRError(f"{config.benchmark} is {kind}: selection needs pairwise {{prompt, chosen, rejected}} data")
    if not config.length_ratio > 1:
        raise FLRError(f"--length-ratio must be greater than 1, got {config.length_ratio}")
    if (
        config.rank_on == "matched"
        and not length_matched(
            [len(r["chosen"]) for r in records], [len(r["rejected"]) for r in records], config.length_ratio
        ).any()
    ):
        raise FLRError(
            f"none of the {len(records)} pairs of {config.benchmark} is length-matched (within "
            f"{config.length_ratio}x): raise --limit or --length-ratio, or use --rank-on all"
        )
    load_followups(flr_config.followups).select(flr_config.categories)  # a bad set fails before the model loads
    model, tokenizer = load_model(model_config)
    scorer = build_scorer("flr", model, tokenizer, config=flr_config, model_name=model_name(model_config.model))
    with _cached(scorer, config.cache):  # per-follow-up log-probs are reused and a killed run resumes
        stats = followup_accuracy(scorer, records, length_ratio=config.length_ratio)
    selected = select_followups(stats, config.top, rank_on=config.rank_on)
    on = f"the {stats[0]['matched_n']} length-matched ones of " if config.rank_on == "matched" else ""
    comment = (
        f"Selected by flr followups select: the {config.top} most accurate follow-ups per category and "
        f"polarity on {on}{len(records)} pairs of {config.benchmark} (seed {config.seed}), scorer "
        f"{model_name(model_config.model)}.\nEvaluate it on other benchmarks than the one it was selected on."
    )
    path = write_followups(selected, config.output, comment)
    key = "matched_accuracy" if config.rank_on == "matched" else "accuracy"

    def rank(s):
        return -s[key]

    with Path(config.output).with_suffix(".jsonl").open("w") as f:
        for s in sorted(stats, key=rank):
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    for s in sorted(stats, key=rank)[:10]:
        print(f"{100 * s[key]:5.1f}%  {s['category']:22s} {s['polarity']:9s} {s['text']}")
    print(f"flr followups: wrote {path} (and per-utterance statistics in {Path(config.output).with_suffix('.jsonl')})")
    return 0


@contextmanager
def _cached(scorer, path: str | None):
    """The scorer reads and writes per-follow-up log-probs in the score cache while the block runs."""
    from flr.scorers.cache import ScoreCache

    cache = ScoreCache(path)
    scorer.attach_cache(cache)
    try:
        yield scorer
    finally:
        scorer.attach_cache(None)
        cache.close()


def fit_main(args) -> int:
    from flr.eval.fitting import fit_weights, length_feature, pair_features, weighted_set
    from flr.eval.runner import EvalConfig, benchmark_records
    from flr.followups import dump_followups

    config, flr_config, model_config = to_configs(args, FitConfig, ScorerConfig, ModelConfig)
    names = [b.strip() for b in config.benchmarks.split(",") if b.strip()]
    if not names:
        raise FLRError("give --benchmarks: pairwise benchmark names or {prompt, chosen, rejected} files")
    fset = load_followups(flr_config.followups).select(flr_config.categories)
    if fset.weighted:
        raise FLRError(f"{flr_config.followups}: already weighted; fit on an unweighted follow-up set")
    records = []
    for name in names:  # every input is read and checked before the model loads
        kind, rows = benchmark_records(
            name, EvalConfig(data_dir=config.data_dir, limit=config.limit, seed=config.seed)
        )
        if kind != "pairwise":
            raise FLRError(f"{name} is {kind}: fitting needs labelled pairs {{prompt, chosen, rejected}}")
        records += rows
    model, tokenizer = load_model(model_config)
    scorer = build_scorer("flr", model, tokenizer, config=flr_config, model_name=model_name(model_config.model))
    with _cached(scorer, config.cache):
        features = pair_features(scorer, records)
    length = length_feature(records) if config.control_length else None
    coef, stats = fit_weights(features, seed=config.seed, length=length)
    fitted = weighted_set(fset, coef, length_coefficient=stats.get("length_coefficient"))
    meta = {
        "fit": {
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
    }
    dump_followups(fitted, config.output, extra=meta)
    print(
        f"flr followups fit: {stats['pairs']} pairs, C={stats['C']:.3g}, cross-validated accuracy "
        f"{100 * stats['cv_accuracy']:.1f}% (unweighted on the same pairs: {100 * stats['unweighted_train_accuracy']:.1f}%)"
        + (
            f"; length coefficient {stats['length_coefficient']:.3g} (follow-ups alone, same pairs: "
            f"{100 * stats['followups_only_train_accuracy']:.1f}%)"
            if config.control_length
            else ""
        )
        + f" -> {config.output}"
    )
    return 0

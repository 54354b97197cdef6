"""``flr followups``: inspect follow-up sets and select the ones that carry signal."""

from __future__ import annotations

import argparse

from flr.commands._common import add_command, add_dataclasses, make_subparsers, to_configs

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
    show = add_command(subs, "show", help="Print a follow-up set (default: the paper's 60).", build=build_show)
    show.set_defaults(func=show_main)
    select = add_command(
        subs,
        "select",
        help="Rank follow-ups by their own pairwise accuracy; keep the best per category.",
        description="Scores the pairs of --benchmark with every follow-up of the set (default: the paper's 60), "
        "ranks each follow-up by how often it alone prefers the human-chosen response, and writes the --top best per category and polarity. "
        "Select on one benchmark and evaluate (flr eval --followups OUT.yaml) on others.",
        build=build_select,
    )
    select.set_defaults(func=select_main)
    fit = add_command(
        subs,
        "fit",
        help="Fit per-follow-up weights on labelled pairs (L2 logistic regression); write a weighted set.",
        description="Scores the pairs of --benchmarks with every follow-up of the set (per-follow-up log-probs are "
        "cached and reused), fits an L2-regularised logistic regression of the human label on the per-follow-up "
        "margins (scikit-learn, strength by 5-fold cross-validation, pairs shuffled into folds by --seed) and writes a follow-up set whose utterances "
        "carry the weights. Fit on one pool of benchmarks and evaluate on others.",
        build=build_fit,
    )
    fit.set_defaults(func=fit_main)
    split = add_command(
        subs,
        "split",
        help="Cut a follow-up set into two disjoint halves (seeded, per category and polarity).",
        description="Writes a.yaml and b.yaml: each category's positive and negative follow-ups shuffled with --seed "
        "and cut in two. Mine or train with one half and judge with the other, so the judge's follow-ups are not "
        "the ones the policy was optimised for. No model is loaded.",
        build=build_split,
    )
    split.set_defaults(func=split_main)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    return parser


def build_show(parser) -> None:
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, ScorerConfig)
    parser.epilog = """examples:
  flr followups show                          # the paper's 60 follow-ups
  flr followups show --followups compact      # the 12 of the compact set
"""


def build_select(parser) -> None:
    from flr.jobs.followups import SelectConfig
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, SelectConfig, ScorerConfig, ModelConfig)
    parser.epilog = """examples:
  flr followups select --benchmark hh-rlhf --limit 64 --top 2 -o runs/followups/top2.yaml
  flr eval --benchmarks autoj,pandalm --followups runs/followups/top2.yaml   # test on other benchmarks
"""


def build_fit(parser) -> None:
    from flr.jobs.followups import FitConfig
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, FitConfig, ScorerConfig, ModelConfig)
    parser.epilog = FIT_EXAMPLES


def build_split(parser) -> None:
    from flr.jobs.followups import SplitConfig
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, SplitConfig, ScorerConfig)
    parser.epilog = """examples:
  flr followups split --followups paper --seed 0 -o runs/split        # the paper's 60 -> 30 + 30
  flr mine --candidates runs/gen/candidates.jsonl --followups runs/split/a.yaml -o runs/mine
  flr compare --candidate runs/dpo --judge flr --followups runs/split/b.yaml   # judged by the held-out half
"""


def show_main(args) -> int:
    from flr.followups import load_followups
    from flr.scorers import ScorerConfig

    config = to_configs(args, ScorerConfig)
    followups = load_followups(config.followups).select(config.categories)
    print(f"{followups.name} (fingerprint {followups.fingerprint()})")
    for category, polarity, text in followups.utterances:
        print(f"{category:24s} {polarity:9s} {text}")
    return 0


def select_main(args) -> int:
    from flr.jobs.followups import SelectConfig, run_select
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    config, flr_config, model_config = to_configs(args, SelectConfig, ScorerConfig, ModelConfig)
    summary = run_select(config, flr_config, model_config)
    key = summary["rank_key"]
    for s in summary["ranked"][:10]:
        print(f"{100 * s[key]:5.1f}%  {s['category']:22s} {s['polarity']:9s} {s['text']}")
    print(f"flr followups: wrote {summary['output']} (and per-utterance statistics in {summary['statistics']})")
    return 0


def split_main(args) -> int:
    from flr.jobs.followups import SplitConfig, run_split
    from flr.scorers import ScorerConfig

    config, flr_config = to_configs(args, SplitConfig, ScorerConfig)
    summary = run_split(config, flr_config)
    for tag, half in summary["halves"].items():
        print(f"half {tag}: {half['utterances']} follow-ups of {summary['source']} -> {half['path']}")
    return 0


def fit_main(args) -> int:
    from flr.jobs.followups import FitConfig, run_fit
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    config, flr_config, model_config = to_configs(args, FitConfig, ScorerConfig, ModelConfig)
    stats = run_fit(config, flr_config, model_config)["stats"]
    length = (
        f"; length coefficient {stats['length_coefficient']:.3g} (follow-ups alone, same pairs: "
        f"{100 * stats['followups_only_train_accuracy']:.1f}%)"
        if config.control_length
        else ""
    )
    print(
        f"flr followups fit: {stats['pairs']} pairs, C={stats['C']:.3g}, cross-validated accuracy "
        f"{100 * stats['cv_accuracy']:.1f}% (unweighted on the same pairs: "
        f"{100 * stats['unweighted_train_accuracy']:.1f}%){length} -> {config.output}"
    )
    return 0

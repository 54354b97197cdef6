"""``flr eval``: FLR and baselines as reward models on real benchmarks."""

from __future__ import annotations

from flr.commands._common import add_command, add_dataclasses, check_scorer_settings, to_configs

EXAMPLES = """examples:
  flr eval --list
  flr eval --benchmarks demo                                    # bundled sample, no data needed
  flr eval --benchmarks hh-rlhf,autoj,pandalm --limit 200 -o runs/quick
  flr eval --benchmarks alpaca_eval-system --scorers flr,length --limit 50 -o runs/system
  flr eval --benchmarks autoj --length-ratio 1.1 --length-unit tokens     # stricter length matching, in tokens
  flr eval --benchmarks my_pairs.jsonl --scorers flr,rm:OpenAssistant/reward-model-deberta-v3-large-v2
  flr eval --benchmarks hh-rlhf --model meta-llama/Meta-Llama-3-8B-Instruct --batch-size 32 -o runs/llama3
"""


def make_parser(subparsers):
    parser = add_command(
        subparsers,
        "eval",
        help="Evaluate FLR and baselines as reward models on benchmarks.",
        description="Score benchmarks with each scorer; write per-example JSONL, summary.json, report.md, "
        "plots and report.html (tables, plots and a pair browser with FLR's per-follow-up explanation; open it in "
        "a browser, nothing is fetched) to --output-dir. Every report is length-controlled: accuracy on length-matched pairs, agreement "
        "with the length baseline, the signal beyond length, and correlations controlling for length. Scores are cached: a killed run resumes, and adding a scorer or benchmark "
        "recomputes nothing already known.",
        build=build,
    )
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    from flr.jobs.eval import EvalConfig
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, EvalConfig, ScorerConfig, ModelConfig)
    parser.epilog = EXAMPLES


def _list(data_dir: str | None = None) -> None:
    from flr.errors import FLRError
    from flr.eval.benchmarks import BENCHMARKS, resolve_data_dir

    try:
        root = resolve_data_dir(data_dir)
    except FLRError:
        root = None
    print(f"data folder: {root or 'not found (set FLR_DATA_DIR or --data-dir; see README, Data)'}\n")
    for b in BENCHMARKS.values():
        present = "bundled" if not b.needs_data else "present" if root and _present(b, root) else "missing"
        print(f"{b.name:24s} {b.kind:9s} {present:8s} {b.source}")


def _present(bench, root) -> bool:
    try:
        return bool(bench.load(root))
    except Exception:  # a missing or unreadable file: reported as missing, not raised
        return False


def check_before_loading(config, flr_config, names: list[str]):
    """Unknown scorers and benchmarks, bad follow-up sets, a missing data folder and every bad record of a user
    file fail before any model loads; returns the benchmarks read (:func:`flr.jobs.eval.prepare`), each read once."""
    from flr.jobs.eval import prepare

    for name in names:
        check_scorer_settings(name, flr_config)
    return prepare(config)


def main(args) -> int:
    from flr.jobs.eval import EvalConfig, run_eval
    from flr.kernel.models import ModelConfig, model_name
    from flr.scorers import ScorerConfig, build_scorers

    config, flr_config, model_config = to_configs(args, EvalConfig, ScorerConfig, ModelConfig)
    if config.list:
        _list(config.data_dir)
        return 0
    names = config.scorers
    benchmarks = check_before_loading(config, flr_config, names)
    scorers = build_scorers(names, model_config, flr_config)
    length_of = None
    if config.length_unit == "tokens":  # the scorer model's tokens; loading a tokenizer alone costs little
        from flr.kernel.models import load_tokenizer

        counter = load_tokenizer(model_config.tokenizer or model_config.model)

        def length_of(text: str) -> int:
            return len(counter(text, add_special_tokens=False)["input_ids"])

    summary = run_eval(
        config,
        scorers,
        model_name=model_name(model_config.model),
        configs=(flr_config, model_config),
        length_of=length_of,
        benchmarks=benchmarks,
    )
    from flr.reports.markdown import markdown_table, merge_results

    print(markdown_table(merge_results([summary])))
    print(f"flr eval: wrote {config.output_dir}/report.md, report.html, summary.json and per-example JSONL")
    return 0

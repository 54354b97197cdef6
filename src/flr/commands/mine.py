"""``flr mine``: score k candidates per prompt and keep the best and worst as preference data."""

from __future__ import annotations

from flr.commands._common import add_command, add_dataclasses, check_scorer_settings, to_configs

EXAMPLES = """examples:
  flr mine --candidates runs/gen --output-dir runs/mine                   # FLR with the embedded model, DPO pairs
  flr mine --candidates runs/gen --output-dir runs/mine --min-margin 0.05 --categories all
  flr mine --candidates runs/gen --output-dir runs/mine-kto --format kto --kto-fraction 0.25
  flr mine --candidates runs/gen --output-dir runs/mine-band --length-band 1.25    # pairs of similar length
  flr mine --candidates runs/gen --output-dir runs/mine-lc --length-debias prompt  # by the length-debiased reward
  flr mine --candidates outputs.jsonl --field-map candidates=responses --scorer rm:OpenAssistant/reward-model-deberta-v3-large-v2
"""


def make_parser(subparsers):
    parser = add_command(
        subparsers,
        "mine",
        help="Score candidates (FLR or a baseline) and mine DPO pairs or KTO rows.",
        description="Score each prompt's candidates (saved to <output-dir>/scored.jsonl; re-running resumes and "
        "re-mining reuses the scores), then write TRL preference rows {prompt, chosen, rejected} + chosen_score, "
        "rejected_score, margin, k, policy, seed to pairs.jsonl, or unpaired {prompt, completion, label} rows "
        "to unpaired.jsonl (--format kto). Identical texts count once; prompts with a tie or a margin below "
        "--min-margin are dropped and counted by reason. Rewards favour longer responses: --length-band and "
        "--length-debias control for length, and the summary reports the mined pairs' length ratios and the share "
        "of prompts that yield a pair.",
        build=build,
    )
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    from flr.jobs.mine import MineConfig
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, MineConfig, ScorerConfig, ModelConfig)
    parser.epilog = EXAMPLES


def main(args) -> int:
    from flr.jobs.mine import MineConfig, length_line, run
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    cfg, flr_config, model_config = to_configs(args, MineConfig, ScorerConfig, ModelConfig)
    check_scorer_settings(cfg.scorer, flr_config)
    summary = run(cfg, flr_config, model_config)
    s = summary["stats"]
    dropped = ", ".join(f"{n} {reason}" for reason, n in s["dropped"].items() if n) or "none"
    print(
        f"flr mine: {s['prompts']} prompts -> {s['rows']} rows ({cfg.format}); dropped: {dropped}; "
        f"{s['duplicate_candidates']} duplicate candidates; {s['unfinished_candidates']} cut-off candidates "
        f"{'left out' if s['unfinished'] == 'drop' else 'kept'}; {length_line(s)} -> {summary['output']}"
    )
    return 0

"""``flr compare``: candidate policy vs base on held-out prompts, judged by FLR, a reward model or an LLM."""

from __future__ import annotations

from flr.commands._common import add_command, add_dataclasses, to_configs

EXAMPLES = """examples:
  flr compare --base default --candidate runs/dpo --prompts question.jsonl \\
      --field-map prompt=turns,id=question_id --offset 40 --limit 40          # held out: not the training prompts
  flr compare --base default --candidate runs/dpo --prompts p.jsonl --judge llm:Qwen/Qwen2.5-7B-Instruct
  flr compare --base default --candidate runs/dpo --prompts p.jsonl --judge rm:Skywork/Skywork-Reward-V2-Llama-3.1-8B
  flr compare --base default --candidate runs/dpo --prompts p.jsonl --temperature 0.7 --seed 1   # seeded sampling
"""


def make_parser(subparsers):
    parser = add_command(
        subparsers,
        "compare",
        help="Win rate of a candidate policy (e.g. a DPO adapter) against its base, with a judge.",
        description="Generate with both policies on the same prompts (greedy by default; resumable), judge each "
        "pair (flr, rm:<model>, or llm:<model> with position swapping), and write compare.jsonl, summary.json "
        "and report.md: win rate (ties count 1/2) and length-controlled win rate with 95% CIs, and the share of "
        "each policy's outputs with a content-free pattern (closer, opener, bait question, markdown); report.html "
        "holds the same and the pairs to browse.",
        build=build,
    )
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    from flr.jobs.compare import SAMPLING_DEFAULTS, CompareConfig
    from flr.jobs.generate import PromptConfig, SamplingConfig
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, CompareConfig, PromptConfig, SamplingConfig, ScorerConfig)
    parser.set_defaults(**SAMPLING_DEFAULTS)
    parser.epilog = EXAMPLES


def main(args) -> int:
    from flr.jobs.compare import CompareConfig, run
    from flr.jobs.generate import PromptConfig, SamplingConfig
    from flr.scorers import ScorerConfig

    cfg, prompts, sampling, flr_config = to_configs(args, CompareConfig, PromptConfig, SamplingConfig, ScorerConfig)
    summary = run(cfg, prompts, sampling, flr_config)
    m = summary["metrics"]
    print(
        f"flr compare: win rate {100 * m['win_rate']:.1f}% (95% CI {100 * m['win_rate_ci'][0]:.1f}-"
        f"{100 * m['win_rate_ci'][1]:.1f}), LC {100 * m['lc_win_rate']:.1f}%, {m['wins']}/{m['ties']}/{m['losses']} "
        f"W/T/L over {m['n']} prompts; mean length {m['mean_len_candidate']:.0f} chars (candidate) vs "
        f"{m['mean_len_base']:.0f} (base) -> {cfg.output_dir}/report.md"
    )
    return 0

"""``flr feedback rewrite``: third-person critiques -> first-person user follow-ups, for ``flr train feedback``."""

from __future__ import annotations

import argparse

from flr.commands._common import add_command, add_dataclasses, make_subparsers, to_configs

EXAMPLES = """examples:
  flr feedback rewrite --input autoj_critiques --method rules --output runs/feedback/autoj.jsonl   # no model
  flr feedback rewrite --input critiques.jsonl --output feedback.jsonl --model Qwen/Qwen2.5-7B-Instruct
  flr feedback rewrite --input data.jsonl --output fb.jsonl --field-map critique=explanation,response=output
  flr train feedback --data feedback.jsonl --output-dir runs/scorer-ft
"""


def make_parser(subparsers):
    parser = subparsers.add_parser(
        "feedback",
        help="Prepare natural-language feedback for 'flr train feedback'.",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = make_subparsers(parser, dest="action")
    sub = add_command(
        commands,
        "rewrite",
        help="Rewrite third-person critiques ('The response fails to...') as first-person user follow-ups.",
        build=build_rewrite,
    )
    sub.set_defaults(func=main)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    return parser


def build_rewrite(parser) -> None:
    from flr.jobs.critiques import REWRITE_PROMPT, RewriteConfig
    from flr.kernel.models import ModelConfig

    parser.description = (
        "Rewrite each record's critique as the follow-up a user would type (greedy generation with "
        "--model; a larger instruct model than the default does this much better). The prompt used:\n\n"
        + REWRITE_PROMPT
    )
    add_dataclasses(parser, RewriteConfig, ModelConfig)
    parser.epilog = EXAMPLES


def main(args) -> int:
    from flr.jobs.critiques import RewriteConfig, rewrite_critiques
    from flr.kernel.models import ModelConfig

    cfg, model_config = to_configs(args, RewriteConfig, ModelConfig)
    counts = rewrite_critiques(cfg, model_config)
    print(
        f"flr feedback rewrite: {counts['written']} of {counts['records']} records rewritten "
        f"({counts['empty']} empty, dropped) -> {counts['output']}"
    )
    return 0

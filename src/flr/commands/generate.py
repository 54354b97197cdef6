"""``flr generate``: sample k responses per prompt from a policy."""

from __future__ import annotations

from flr.commands._common import add_command, add_dataclasses, to_configs
from flr.records import CANDIDATES_FILE

EXAMPLES = """examples:
  flr generate --prompts prompts.jsonl --output-dir runs/gen                  # k=8, T=0.7, top-p 0.9 (the paper's)
  flr generate --prompts question.jsonl --field-map prompt=turns,id=question_id --limit 40 --k 4
  flr generate --prompts tatsu-lab/alpaca_eval --split eval --field-map prompt=instruction \\
      --model meta-llama/Meta-Llama-3-8B-Instruct --backend vllm
"""


def make_parser(subparsers):
    parser = add_command(
        subparsers,
        "generate",
        help="Sample k responses per prompt from a policy (transformers, or vLLM when installed).",
        description=f"Sample k responses per prompt into <output-dir>/{CANDIDATES_FILE}, one row per prompt "
        "with its candidates. Rows are saved as they finish: re-running the same command resumes.",
        build=build,
    )
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    from flr.jobs.generate import GenerateConfig, PromptConfig, SamplingConfig
    from flr.kernel.models import ModelConfig

    add_dataclasses(parser, PromptConfig, SamplingConfig, GenerateConfig, ModelConfig)
    parser.epilog = EXAMPLES


def main(args) -> int:
    from flr.jobs.generate import GenerateConfig, PromptConfig, SamplingConfig, run
    from flr.kernel.models import ModelConfig

    prompts, sampling, cfg, model = to_configs(args, PromptConfig, SamplingConfig, GenerateConfig, ModelConfig)
    summary = run(prompts, sampling, cfg, model)
    c = summary["counts"]
    print(f"flr generate: {c['generated']} prompts sampled, {c['skipped']} already done -> {summary['output']}")
    return 0

"""``flr score``: rewards for (prompt, response) records."""

from __future__ import annotations

from flr.commands._common import (
    add_command,
    add_dataclasses,
    add_positional,
    check_output_file,
    check_scorer_settings,
    to_configs,
)
from flr.errors import FLRError

EXAMPLES = """examples:
  flr score examples/data/responses.jsonl -o scored.jsonl     # {prompt, response}: adds flr_reward
  flr score examples/data/pairs.jsonl -o pairs.scored.jsonl   # TRL {prompt, chosen, rejected}: + flr_margin
  flr score examples/data/responses.jsonl -o scored.jsonl --details      # + every follow-up's log-prob
  flr score data.csv -o out.jsonl --field-map prompt=question,response=answer
  flr score examples/data/responses.jsonl -o direct.jsonl --scorer direct  # the response-likelihood baseline
  flr score examples/data/responses.jsonl -o scored.jsonl --length-debias batch   # + flr_reward_debiased
  flr score big.jsonl -o out.jsonl --model meta-llama/Meta-Llama-3-8B-Instruct --batch-size 32
"""


def make_parser(subparsers):
    parser = add_command(
        subparsers,
        "score",
        help="Score (prompt, response) records with FLR or a baseline.",
        description="Score records: {prompt, response}, {messages}, TRL prompt-completion {prompt, completion}, or "
        "TRL preference {prompt, chosen, rejected} (standard or conversational). Adds flr_reward, flr_categories "
        "and truncated to each record (direct_reward for --scorer direct); to a preference record flr_chosen, "
        "flr_rejected and flr_margin. Re-running with the same -o resumes.",
        build=build,
    )
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    from flr.jobs.score import ScoreJobConfig
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, ScoreJobConfig, ScorerConfig, ModelConfig)
    parser.epilog = EXAMPLES
    add_positional(parser, "input", "INPUT", "Records to score (same as --input).")


def main(args) -> int:
    from flr.jobs.score import (
        ScoreJobConfig,
        already_complete,
        debias_output,
        load_inputs,
        output_prefix,
        run_key,
        score_file,
    )
    from flr.kernel.models import ModelConfig, model_name
    from flr.scorers import ScorerConfig, build_scorer

    job, flr_config, model_config = to_configs(args, ScoreJobConfig, ScorerConfig, ModelConfig)
    if not job.input or not job.output:
        raise FLRError("give an INPUT file and -o OUTPUT.jsonl")
    check_output_file(job.output)
    check_scorer_settings(job.scorer, flr_config)
    data = load_inputs(job)  # validate before loading a model
    key = run_key(job, flr_config, model_config)
    complete = already_complete(job, data, key)
    if complete is not None:
        note = ""
        if job.debiased:  # the debiased rewards need no model either
            note = "; " + _debias_note(debias_output(job, data, output_prefix(job.scorer)))
        print(f"flr score: every record is already scored ({complete} in {job.output}){note or '; nothing to do'}")
        return 0
    scorer = build_scorer(
        job.scorer, model_config=model_config, config=flr_config, model_name=model_name(model_config.model)
    )
    counts = score_file(scorer, job, data=data, key=key)
    note = f"; {_debias_note(counts['length_debias'])}" if "length_debias" in counts else ""
    print(
        f"flr score: {counts['scored']} scored, {counts['resumed']} already done, {counts['skipped']} skipped"
        f"{note} -> {counts['output']}"
    )
    return 0


def _debias_note(info: dict) -> str:
    if info.get("style"):
        where = "over all responses" if info["mode"] == "batch" else "within prompts"
        return f"style-debiased {where} ({info['n']} responses)"
    if info["mode"] == "lowess":
        return f"length-calibrated by LOWESS over {info['n']} responses"
    if info["mode"] == "batch":
        return f"length-debiased over {info['n']} responses (slope {info['slope']:.3g} per log character)"
    return (
        f"length-debiased per prompt ({info['own_line']} of {info['groups']} prompts with their own line, the rest "
        f"with the pooled slope {info['pooled_slope']:.3g})"
    )

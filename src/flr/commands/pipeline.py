"""``flr pipeline``: generate -> mine -> train -> compare (grpo: train -> compare) from one YAML file."""

from __future__ import annotations

import argparse

from flr.commands._common import load_yaml_mapping

EXAMPLES = """examples:
  flr pipeline --config examples/tiny-pipeline.yaml                  # all stages; finished ones are skipped
  flr pipeline --config examples/tiny-pipeline.yaml --stages mine,train   # rerun just these two
  flr pipeline --config examples/tiny-grpo.yaml                      # grpo: train (online) -> compare
"""


def make_parser(subparsers):
    parser = subparsers.add_parser(
        "pipeline",
        help="Run generate -> mine -> train (dpo|kto) -> compare, or train (grpo) -> compare, from one YAML file.",
        description="Chain the alignment stages, each writing to <output_dir>/<stage>/. A stage whose "
        "summary.json exists is skipped; unfinished stages resume. Each YAML section takes that command's flags "
        "(see flr generate/mine/train/compare --help). With method grpo the train stage samples online: no generate "
        "or mine stage, and the generate section only names the training prompts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
        build=build,
    )
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    from flr.jobs.pipeline import STAGES

    # dest differs from 'config': the pipeline YAML is nested, not a flat mapping of this command's flags
    parser.add_argument("--config", dest="pipeline_config", required=True, help="Pipeline YAML file.")
    parser.add_argument(
        "--stages",
        nargs="+",
        default=None,
        help=f"Stages to run ({','.join(STAGES)}), comma- or space-separated; named stages rerun even if done.",
    )
    parser.add_argument("--output-dir", "--output_dir", dest="output_dir", default=None, help="Overrides the YAML's.")


def main(args) -> int:
    from flr.jobs.pipeline import Pipeline, headline

    pipeline = Pipeline(load_yaml_mapping(args.pipeline_config), output_dir=args.output_dir)
    report = pipeline.run(args.stages)
    print(f"flr pipeline -> {pipeline.out}")
    for line in headline(report):
        print("  " + line)
    return 0

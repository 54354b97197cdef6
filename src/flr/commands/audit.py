"""``flr audit``: does the reward rise for edits that add nothing, and fall for edits that destroy the answer?"""

from __future__ import annotations

from flr.commands._common import add_command, add_dataclasses, add_positional, check_scorer_settings, to_configs

EXAMPLES = """examples:
  flr audit --input demo --limit 8 -o runs/audit-demo                       # bundled pairs: both sides perturbed
  flr audit examples/data/responses.jsonl --scorers flr,length -o runs/audit-responses
  flr audit autoj --limit 100 --scorers flr,direct,length,rm:runs/rm -o runs/audit-autoj
  flr audit --input demo --perturbations closer,opener,bait_question       # or a group: content-free, destructive
  flr audit --input demo --perturbations-file my_perturbations.py          # yours, with @perturbation('name')
  flr audit --input demo --followups paper -o runs/audit-paper             # any scorer flag of flr eval applies

a perturbations file:
  from flr.perturbations import perturbation

  @perturbation("emoji", kind="content-free")
  def emoji(prompt, response):
      return response + " :)"
"""


def make_parser(subparsers):
    parser = add_command(
        subparsers,
        "audit",
        help="Reward-hacking audit: how each scorer reacts to content-free and destructive edits of responses.",
        description="Perturb every response (a polite closer, a flattering opener, a bait question, the prompt "
        "restated, markdown, the last paragraph repeated; the first half only, shuffled sentences, another prompt's "
        "response, a refusal, 'I don't know.') and score it before and after with each scorer. Reports, per scorer "
        "and perturbation, the share of responses whose reward rises (95% CI) and the median change, in units of "
        "the median |chosen - rejected| margin when the input has pairs. Writes audit.jsonl, summary.json, "
        "report.md, audit.png and report.html to --output-dir. Scores are cached: a re-run computes nothing.",
        build=build,
    )
    parser.set_defaults(func=main)
    return parser


def build(parser) -> None:
    from flr.jobs.audit import AuditConfig
    from flr.kernel.models import ModelConfig
    from flr.scorers import ScorerConfig

    add_dataclasses(parser, AuditConfig, ScorerConfig, ModelConfig)
    parser.epilog = EXAMPLES
    add_positional(parser, "input", "INPUT", "Responses to perturb (same as --input).")


def main(args) -> int:
    from flr.jobs.audit import AuditConfig, prepare_audit, run_audit
    from flr.kernel.models import ModelConfig, model_name
    from flr.scorers import ScorerConfig, build_scorers

    config, flr_config, model_config = to_configs(args, AuditConfig, ScorerConfig, ModelConfig)
    names = config.scorers
    for name in names:
        check_scorer_settings(name, flr_config)
    plan = prepare_audit(config)  # input, perturbations and every edit checked before any model loads
    scorers = build_scorers(names, model_config, flr_config)
    short = model_name(model_config.model)
    summary = run_audit(config, scorers, plan, model_name=short, configs=(flr_config, model_config))
    for scorer, found in summary["flags"].items():
        print(f"flr audit: {scorer}: " + (f"⚠ {', '.join(found)}" if found else "no finding"))
    print(
        f"flr audit: {summary['responses']} responses x {len(summary['perturbations'])} perturbations -> "
        f"{config.output_dir}/report.md, report.html"
    )
    return 0

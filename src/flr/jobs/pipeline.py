"""generate -> mine -> train (dpo|kto) -> compare, or train (grpo) -> compare, driven by one YAML file, each stage in
its own folder.

The YAML has top-level keys (``output_dir``, ``policy``, ``method``, ``device``, ``dtype``, ``stages``) and one
section per stage whose keys are that command's flags (``flr generate --help`` etc.); the pipeline fills in the
paths that connect the stages. A stage is done when ``<output_dir>/<stage>/summary.json`` exists; done stages are
skipped, unfinished ones resume (generation and scoring row by row, training from its last checkpoint). Naming
stages with ``--stages`` runs only those, and reruns them from scratch if they were done; later stages are not
invalidated: name them too.

The method (top-level ``method:``, or ``method:`` in the train section) picks the stages. dpo and kto learn offline
from pairs: generate samples k answers, mine turns FLR scores into pairs, train learns from them. grpo learns online:
its train stage samples from the policy as it learns and scores with its reward (``reward_scorer``, ``followups``,
... in the train section), so there is no generate or mine stage; the generate section only says which prompts to
train on (``prompts``, ``split``, ``field_map``, ``offset``, ``limit``, ``system_prompt``; written to
``train/prompts.jsonl``) and what compare inherits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

from flr.arguments import parse_mapping, split_list
from flr.errors import FLRError
from flr.kernel.models import ModelConfig
from flr.records import MINED_FILES, SUMMARY_FILE, read_jsonl, write_json, write_jsonl
from flr.records.provenance import provenance

logger = logging.getLogger(__name__)

STAGES = ("generate", "mine", "train", "compare")
METHODS = ("dpo", "kto", "grpo")
ONLINE = ("grpo",)  # sample while training: no generate or mine stage
TOP_LEVEL = {"output_dir", "policy", "method", "device", "dtype", "stages", *STAGES}
INHERITED_BY_COMPARE = ("prompts", "split", "field_map", "max_new_tokens", "system_prompt", "generation_batch_size")


def build_configs(section: dict, classes: tuple, stage: str) -> tuple:
    """One instance per dataclass from a YAML section, through the same path as ``flr <stage> --config``."""
    return parse_mapping(section or {}, classes, f"pipeline section '{stage}'", f"flr {stage}")


def _field_names(*classes) -> set[str]:
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


def _prompt_keys(prompts: list[dict]) -> set[str]:
    return {json.dumps(p["prompt"], sort_keys=True) for p in prompts}


class Pipeline:
    """Runs the stages of one YAML config; each stage method returns that stage's summary."""

    def __init__(self, config: dict, output_dir: str | None = None):
        unknown = sorted(set(config) - TOP_LEVEL)
        if unknown:
            raise FLRError(f"pipeline config: unknown top-level keys {unknown}; expected {sorted(TOP_LEVEL)}")
        self.config = config
        self.out = Path(output_dir or config.get("output_dir") or "runs/pipeline")
        self.policy = str(config.get("policy", "default"))
        named = (config.get("train") or {}).get("method")
        if named is not None and config.get("method", named) != named:
            raise FLRError(f"pipeline config: method '{config['method']}' but the train section says '{named}'")
        self.method = named or config.get("method", "dpo")
        if self.method not in METHODS:
            raise FLRError(f"pipeline method must be one of {', '.join(METHODS)}, not '{self.method}'")
        # the stages this method has, in order: each needs the one before it
        self.stages = ("train", "compare") if self.method in ONLINE else STAGES
        self.device = {k: config[k] for k in ("device", "dtype") if k in config}

    def section(self, stage: str) -> dict:
        section = dict(self.config.get(stage) or {})
        if stage == "train":
            section.pop("method", None)  # read in __init__: the method, not one of its trainer's keys
        return section

    def dir(self, stage: str) -> Path:
        return self.out / stage

    def done(self, stage: str) -> bool:
        return (self.dir(stage) / "summary.json").exists()

    def _model(self, spec: str, section: dict) -> dict:
        return {"model": spec, **self.device, **section}

    # -- stages -------------------------------------------------------------------------------------------

    def _generate_configs(self) -> tuple:
        from flr.jobs.generate import GenerateConfig, PromptConfig, SamplingConfig

        section = self._model(self.policy, self.section("generate"))
        section["output_dir"] = str(self.dir("generate"))
        return build_configs(section, (PromptConfig, SamplingConfig, GenerateConfig, ModelConfig), "generate")

    def generate(self) -> dict:
        from flr.jobs.generate import run

        return run(*self._generate_configs())

    def _mine_configs(self) -> tuple:
        from flr.jobs.mine import MineConfig
        from flr.scorers import ScorerConfig

        section = {"model": "default", **self.device, **self.section("mine")}
        section.update(candidates=str(self.dir("generate")), output_dir=str(self.dir("mine")), format=self.method)
        return build_configs(section, (MineConfig, ScorerConfig, ModelConfig), "mine")

    def mine(self) -> dict:
        from flr.jobs.mine import run

        return run(*self._mine_configs())

    def _train_configs(self) -> tuple:
        """The section is a ``flr train <method> --config`` file: the same classes, keys, defaults and checks."""
        from flr.training.args import from_mapping

        top = {"model": self.policy, **{k: self.config[k] for k in ("dtype",) if k in self.config}}
        if "device" in self.config:  # TRL's configs say where to train with use_cpu
            top["use_cpu"] = str(self.config["device"]) == "cpu"
        section = {**top, **self.section("train")}
        if self.method in ONLINE:
            self._prompt_configs()  # the generate section's prompt keys, checked now
            data = self.dir("train") / "prompts.jsonl"
        else:
            data = self.dir("mine") / MINED_FILES[self.method]
        section.update(data=str(data), output_dir=str(self.dir("train")))
        return from_mapping(self.method, section, "pipeline section 'train'")

    def _prompt_configs(self) -> tuple:
        """grpo: the generate section's prompt keys (and those compare inherits); sampling keys belong to train."""
        from flr.jobs.generate import PromptConfig, SamplingConfig

        section = self.section("generate")
        allowed = _field_names(PromptConfig) | {"system_prompt", *INHERITED_BY_COMPARE}
        stray = sorted(set(section) - allowed)
        if stray:
            raise FLRError(
                f"pipeline section 'generate': with method {self.method} only its prompts are read, not {stray} "
                "(the train section samples: num_generations, temperature, max_completion_length)"
            )
        prompts = {k: v for k, v in section.items() if k in _field_names(PromptConfig, SamplingConfig)}
        return build_configs(prompts, (PromptConfig, SamplingConfig), "generate")

    def train(self) -> dict:
        from flr.training import train

        configs = self._train_configs()
        data = configs[0]
        if self.method in ONLINE:  # the training prompts: the generate section's, after offset and limit
            from flr.jobs.generate import load_prompts

            prompt_cfg, sampling = self._prompt_configs()
            rows = [{"id": p["id"], "prompt": p["prompt"]} for p in load_prompts(prompt_cfg, sampling.system_prompt)]
            write_jsonl(data.dataset_name, rows)
            return train(self.method, *configs)
        if not read_jsonl(data.dataset_name):
            stats = json.loads((self.dir("mine") / SUMMARY_FILE).read_text()).get("stats", {})
            hint = ""
            if stats.get("unfinished_candidates") and stats.get("unfinished") == "drop":
                hint = (
                    f"; {stats['unfinished_candidates']} candidates were cut off at max_new_tokens and left out: "
                    "raise max_new_tokens, or set 'unfinished: keep' in the mine section"
                )
            raise FLRError(
                f"{data.dataset_name} is empty: every prompt was dropped when mining (see mine/summary.json){hint}"
            )
        return train(self.method, *configs)

    def _compare_configs(self) -> tuple:
        from flr.jobs.compare import SAMPLING_DEFAULTS, CompareConfig
        from flr.jobs.generate import PromptConfig, SamplingConfig
        from flr.scorers import ScorerConfig

        generate = self.section("generate")
        section = {
            **SAMPLING_DEFAULTS,
            **{k: generate[k] for k in INHERITED_BY_COMPARE if k in generate},
            **self.device,
            **self.section("compare"),
        }
        section.update(base=self.policy, candidate=str(self.dir("train")), output_dir=str(self.dir("compare")))
        return build_configs(section, (CompareConfig, PromptConfig, SamplingConfig, ScorerConfig), "compare")

    def check_held_out(self) -> None:
        """Compare prompts must not be training prompts (checked on the prompt texts, before anything runs)."""
        from flr.jobs.generate import PromptConfig, SamplingConfig, load_prompts

        candidates = self.dir("generate") / "candidates.jsonl"
        if "generate" in self.stages and self.done("generate"):
            trained = read_jsonl(candidates)
        else:
            section = {
                k: v for k, v in self.section("generate").items() if k in _field_names(PromptConfig, SamplingConfig)
            }
            prompt_cfg, sampling = build_configs(section, (PromptConfig, SamplingConfig), "generate")
            trained = load_prompts(prompt_cfg, sampling.system_prompt)
        _, prompt_cfg, sampling, _ = self._compare_configs()
        overlap = _prompt_keys(load_prompts(prompt_cfg, sampling.system_prompt)) & _prompt_keys(trained)
        if overlap:
            raise FLRError(
                f"{len(overlap)} compare prompts are also training prompts: give the compare section other prompts "
                "or an offset past the generate section's prompts"
            )

    def compare(self) -> dict:
        from flr.jobs.compare import run

        return run(*self._compare_configs())

    # -- driver -------------------------------------------------------------------------------------------

    def run(self, stages: list[str] | str | None = None) -> dict:
        """Run the configured (or named) stages in order; returns ``{stage: {"status", "seconds", "summary"}}``."""
        forced = stages is not None
        selected = split_list(stages) or split_list(self.config.get("stages")) or list(self.stages)
        bad = [s for s in selected if s not in STAGES]
        if bad:
            raise FLRError(f"unknown stages {bad}: choose from {', '.join(self.stages)}")
        absent = [s for s in selected if s not in self.stages]
        if absent:
            raise FLRError(
                f"method {self.method} has no {' or '.join(absent)} stage (it samples from the policy as it trains): "
                f"choose from {', '.join(self.stages)}"
            )
        order = [s for s in self.stages if s in selected]
        for stage in order:  # every section's settings, before any stage runs
            getattr(self, f"_{stage}_configs")()
        if "compare" in selected:
            self.check_held_out()
        report = {}
        for stage in order:
            if self.done(stage) and not forced:
                logger.info("%s: done earlier (%s), skipped", stage, self.dir(stage) / "summary.json")
                summary = json.loads((self.dir(stage) / "summary.json").read_text())
                report[stage] = {"status": "skipped", "seconds": 0.0, "summary": summary}
                continue
            before = self.stages[self.stages.index(stage) - 1] if stage != self.stages[0] else None
            if before and not self.done(before):
                raise FLRError(
                    f"stage '{stage}' needs the outputs of '{before}', which has not finished in {self.out}"
                )
            if self.done(stage):
                logger.info("%s: rerunning from scratch (named in --stages)", stage)
                shutil.rmtree(self.dir(stage))
            logger.info("%s: running -> %s", stage, self.dir(stage))
            start = time.perf_counter()
            summary = getattr(self, stage)()
            report[stage] = {"status": "ran", "seconds": round(time.perf_counter() - start, 1), "summary": summary}
        write_json(self.out / "pipeline.json", {"stages": report, "config": self.config, **provenance()})
        return report


def headline(report: dict) -> list[str]:
    """One line per stage with its key numbers."""
    lines = []
    for stage, info in report.items():
        s, note = info["summary"], ""
        if stage == "generate":
            note = f"{s['counts']['prompts']} prompts"
        elif stage == "mine":
            st = s["stats"]
            dropped = ", ".join(f"{n} {r}" for r, n in st["dropped"].items() if n) or "none"
            note = f"{st['rows']} rows from {st['prompts']} prompts, dropped: {dropped}"
            if "yield" in st:  # summaries written before length control have none
                from flr.jobs.mine import length_line

                note += f"; {length_line(st)}"
        elif stage == "train":
            note = f"{s['steps']} steps, " + ", ".join(f"{k} {v:.4g}" for k, v in s["final"].items())
        elif stage == "compare":
            m = s["metrics"]
            note = (
                f"win rate {100 * m['win_rate']:.1f}% [{100 * m['win_rate_ci'][0]:.1f}, {100 * m['win_rate_ci'][1]:.1f}]"
                f", LC {100 * m['lc_win_rate']:.1f}%, W/T/L {m['wins']}/{m['ties']}/{m['losses']}"
                f", mean length (chars) tuned {m['mean_len_candidate']:.0f} / base {m['mean_len_base']:.0f}"
            )
        lines.append(f"{stage:<8} {info['status']:<7} {info['seconds']:>7.1f}s  {note}")
    return lines

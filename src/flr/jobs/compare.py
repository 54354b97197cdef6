"""Head-to-head evaluation of a candidate policy (e.g. a DPO adapter) against its base on held-out prompts.

Both policies answer every prompt (greedy by default, or seeded sampling), then a judge decides each pair:

- ``flr`` (or ``direct``, ``length``): a scorer from :mod:`flr.scorers` with ``--judge-model``; the higher
  reward wins;
- ``rm:<model>``: a classifier reward model, the higher reward wins;
- ``llm:<model>``: an instruction model asked which response is better (:data:`JUDGE_PROMPT`), once with the
  candidate as "A" and once as "B"; in each order the log-probs of the answers "A" and "B" are compared, and the two
  orders' log-prob differences are averaged, which cancels the judge's position bias to first order.

Preferences are 1 (candidate wins), 0.5 (tie) or 0 (base wins). The report gives the win rate with a normal 95% CI,
the length-controlled win rate (AlpacaEval-2 style) with a bootstrap CI, and the tie rate.

Two judges need no judge model at all and so cannot be the reward the policy was tuned on: the surface drift (mean
length and content-free pattern shares of the candidate's answers against the base's, with CIs) and, with
``--reference-field``, the reference likelihood (the candidate's mean per-token log-likelihood gain over the base on
a strong reference answer to each prompt, e.g. GPT-4's).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flr.errors import FLRError, InputError
from flr.eval.metrics import bootstrap_ci, length_controlled_win_rate, paired_difference, surface_drift, win_rate
from flr.jobs.generate import PromptConfig, SamplingConfig, generate, load_prompts
from flr.kernel.models import ModelConfig, load_model, model_name
from flr.patterns import pattern_report
from flr.records import COMPARE_FILE, read_jsonl, read_records, write_jsonl
from flr.records.provenance import write_summary
from flr.reports.compare import write_compare_report
from flr.scorers import ScorerConfig, build_scorer
from flr.scorers.cache import cached_scores

logger = logging.getLogger(__name__)

SAMPLING_DEFAULTS = {"k": 1, "temperature": 0.0}  # greedy unless asked otherwise
REFERENCE_FILE = "reference_likelihood.jsonl"  # per prompt: each policy's per-token log-likelihood of the reference
JUDGE_PROMPT = """Which of the two responses below answers the user's request better? Judge helpfulness, correctness \
and how well it follows the request; ignore the order and the length.

[User's request]
{prompt}

[Response A]
{a}

[Response B]
{b}

Reply with one letter: A or B."""


@dataclass
class CompareConfig:
    """The two policies, the judge and where results go."""

    base: str = field(default="default", metadata={"help": "Base policy: model spec (default, Hub id, folder)."})
    candidate: str | None = field(
        default=None, metadata={"help": "Candidate policy: model spec, typically a PEFT adapter folder (flr train)."}
    )
    judge: str = field(
        default="flr",
        metadata={
            "help": "flr (FLR reward with --judge-model), direct, length, rm:<model> (classifier RM), or "
            "llm:<model> (LLM-as-judge on the log-probs of 'A'/'B', both orders averaged)."
        },
    )
    judge_model: str = field(default="default", metadata={"help": "Model spec of the flr/direct judge."})
    output_dir: str = field(default="runs/compare", metadata={"help": "Generations, compare.jsonl, summary, report."})
    device: str = field(default="auto", metadata={"help": "Device for all models: auto, cpu, cuda, mps."})
    dtype: str = field(default="auto", metadata={"help": "dtype for all models: auto, float32, bfloat16, float16."})
    bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples for the length-controlled CI."})
    cache: str | None = field(
        default=None,
        metadata={"help": "Score cache for the judge's scores (default: $FLR_CACHE/scores.sqlite): judging resumes."},
    )
    reference_field: str | None = field(
        default=None,
        metadata={
            "help": "Field of the prompt file holding a strong reference answer (e.g. GPT-4's): also report the "
            "candidate's mean per-token log-likelihood gain over the base on it, a judge that no reward model "
            "or FLR enters."
        },
    )


# -- judges -------------------------------------------------------------------------------------------------


def _preference(candidate: float, base: float) -> float:
    if math.isnan(candidate) or math.isnan(base):
        return float("nan")
    return 1.0 if candidate > base else 0.0 if candidate < base else 0.5


def _prompt_text(messages: Sequence[dict]) -> str:
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


class LLMJudge:
    """Pairwise LLM-as-judge on answer-token log-probs, both positions; ``judge`` returns per-pair records."""

    def __init__(self, spec: str, model_config: ModelConfig, flr_config: ScorerConfig, cache: str | None = None):
        model, tokenizer = load_model(spec, device=model_config.device, dtype=model_config.dtype)
        self.cache = cache
        config = ScorerConfig(statistic="sum", batch_size=flr_config.batch_size, max_length=flr_config.max_length)
        self.scorer = build_scorer("direct", model, tokenizer, config=config, model_name=model_name(spec))
        self.spec = spec

    def describe(self) -> dict:
        return {"judge": f"llm:{self.spec}", "prompt": JUDGE_PROMPT}

    def judge(self, prompts, candidates: Sequence[str], bases: Sequence[str]) -> list[dict]:
        records = []
        for prompt, cand, base in zip(prompts, candidates, bases):
            text = _prompt_text(prompt)
            for a, b in ((cand, base), (base, cand)):
                question = [{"role": "user", "content": JUDGE_PROMPT.format(prompt=text, a=a, b=b)}]
                records += [{"prompt": question, "response": "A"}, {"prompt": question, "response": "B"}]
        lp = [r.reward for r in cached_scores(self.scorer, records, self.cache, "judge")]
        out = []
        for i in range(len(candidates)):
            a1, b1, a2, b2 = lp[4 * i : 4 * i + 4]
            first, second = a1 - b1, b2 - a2  # log-prob margin for the candidate, shown as A then as B
            margin = (first + second) / 2
            out.append(
                {
                    "score_candidate": margin,
                    "score_base": 0.0,
                    "preference": _preference(margin, 0.0),
                    "margin_candidate_first": first,
                    "margin_candidate_second": second,
                    # does the judge pick the same response in both orders? (undefined for identical responses)
                    "consistent": None if candidates[i] == bases[i] else (first > 0) == (second > 0),
                }
            )
        return out


class ScorerJudge:
    """Any flr scorer as a judge: the response with the higher reward wins."""

    def __init__(self, name: str, spec: str, model_config: ModelConfig, flr_config: ScorerConfig, cache=None):
        judge_config = ModelConfig(model=spec, device=model_config.device, dtype=model_config.dtype)
        self.cache = cache
        self.scorer = build_scorer(name, model_config=judge_config, config=flr_config, model_name=model_name(spec))

    def describe(self) -> dict:
        return {"judge": self.scorer.name, **self.scorer.describe(), "fingerprint": self.scorer.fingerprint()}

    def judge(self, prompts, candidates: Sequence[str], bases: Sequence[str]) -> list[dict]:
        records = [{"prompt": p, "response": r} for p, c, b in zip(prompts, candidates, bases) for r in (c, b)]
        rewards = [r.reward for r in cached_scores(self.scorer, records, self.cache, f"judge ({self.scorer.name})")]
        return [
            {"score_candidate": c, "score_base": b, "preference": _preference(c, b)}
            for c, b in zip(rewards[0::2], rewards[1::2])
        ]


def make_judge(cfg: CompareConfig, flr_config: ScorerConfig):
    model_config = ModelConfig(device=cfg.device, dtype=cfg.dtype)
    if cfg.judge.startswith("llm:"):
        return LLMJudge(cfg.judge[4:], model_config, flr_config, cfg.cache)
    if cfg.judge.startswith("rm:"):
        return ScorerJudge(cfg.judge, cfg.judge, model_config, flr_config, cfg.cache)
    if cfg.judge in ("flr", "direct", "length"):
        return ScorerJudge(cfg.judge, cfg.judge_model, model_config, flr_config, cfg.cache)
    raise FLRError(f"unknown judge '{cfg.judge}': use flr, direct, length, rm:<model> or llm:<model>")


def load_references(prompt_cfg: PromptConfig, prompts: Sequence[dict], field_name: str) -> list[str]:
    """The reference answer of each prompt (same file, offset and limit as :func:`load_prompts`), checked before
    any model loads: a missing or empty one names its file, line and field."""
    limit = None if prompt_cfg.limit is None else prompt_cfg.offset + prompt_cfg.limit
    records = read_records(prompt_cfg.prompts, split=prompt_cfg.split, field_map=prompt_cfg.field_map, limit=limit)
    references = []
    for rec in records[prompt_cfg.offset :]:
        value = rec.data.get(field_name)
        if not isinstance(value, str) or not value.strip():
            raise InputError("missing or empty reference answer", file=rec.source, line=rec.line, field=field_name)
        references.append(value)
    assert len(references) == len(prompts)
    return references


def reference_likelihood(cfg: CompareConfig, prompts: Sequence[dict], references: Sequence[str], config) -> dict:
    """Each policy's mean per-token log-likelihood of the reference answers, and the candidate's gain over the
    base (:func:`flr.eval.metrics.paired_difference`: mean over prompts, bootstrap CI; ``per_prompt`` values)."""
    import dataclasses

    records = [{"prompt": p["prompt"], "response": r} for p, r in zip(prompts, references)]
    config = dataclasses.replace(config, statistic="mean", calibration="none", contrast="none", contrast_file=None)
    values = {}
    for role, spec in (("base", cfg.base), ("candidate", cfg.candidate)):
        model_config = ModelConfig(model=spec, device=cfg.device, dtype=cfg.dtype)
        scorer = build_scorer("direct", model_config=model_config, config=config, model_name=model_name(spec))
        values[role] = [r.reward for r in cached_scores(scorer, records, cfg.cache, f"reference likelihood ({role})")]
        del scorer  # one policy in memory at a time
    out = paired_difference(values["candidate"], values["base"], n_resamples=cfg.bootstrap)
    out["per_prompt"] = [{"base": b, "candidate": c} for b, c in zip(values["base"], values["candidate"])]
    return out


# -- metrics ---------------------------------------------------------------------------------------------


def summarize(rows: Sequence[dict], *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Win rate (ties = half) with a normal CI, LC win rate with a bootstrap CI over prompts, counts."""
    prefs = np.array([r["preference"] for r in rows], dtype=float)
    len_c = np.array([r["len_candidate"] for r in rows], dtype=float)
    len_b = np.array([r["len_base"] for r in rows], dtype=float)
    wr = win_rate(prefs)
    lc = length_controlled_win_rate(prefs, len_c, len_b)

    def lc_of(index):
        idx = np.asarray(index, dtype=int)
        return length_controlled_win_rate(prefs[idx], len_c[idx], len_b[idx])

    lc_ci = bootstrap_ci(np.arange(len(rows)), statistic=lc_of, n_resamples=n_resamples, seed=seed)
    out = {
        "n": len(rows),
        "win_rate": wr["win_rate"],
        "win_rate_se": wr["se"],
        "win_rate_ci": list(wr["ci"]),
        "lc_win_rate": lc,
        "lc_win_rate_ci": list(lc_ci),
        "wins": int(np.sum(prefs == 1)),
        "ties": int(np.sum(prefs == 0.5)),
        "losses": int(np.sum(prefs == 0)),
        "mean_len_candidate": float(len_c.mean()) if len(rows) else float("nan"),
        "mean_len_base": float(len_b.mean()) if len(rows) else float("nan"),
    }
    for role in ("candidate", "base"):  # generated tokens, as flr generate counts them (absent in older rows)
        counts = [r.get(f"tokens_{role}") for r in rows]
        if rows and all(isinstance(n, int) for n in counts):
            out[f"mean_tokens_{role}"] = float(np.mean(counts))
    out["identical"] = sum(r["candidate"] == r["base"] for r in rows if "candidate" in r)
    consistent = [r["consistent"] for r in rows if r.get("consistent") is not None]
    if consistent:
        out["position_consistency"] = float(np.mean(consistent))
    return out


# -- the command's work -------------------------------------------------------------------------------------


def generate_both(cfg: CompareConfig, prompts: list[dict], sampling: SamplingConfig, *, progress: bool = True):
    """Each policy's answer (resumable, ``generations_<role>.jsonl``) and its generated token count, per prompt id:
    ``({role: {id: text}}, {role: {id: tokens}})``."""
    responses, tokens = {}, {}
    for role, spec in (("base", cfg.base), ("candidate", cfg.candidate)):
        path = Path(cfg.output_dir) / f"generations_{role}.jsonl"
        generate(
            prompts, path, ModelConfig(model=spec, device=cfg.device, dtype=cfg.dtype), sampling, progress=progress
        )
        generated = read_jsonl(path)
        responses[role] = {r["id"]: r["candidates"][0] for r in generated}
        tokens[role] = {r["id"]: (r.get("num_tokens") or [None])[0] for r in generated}  # generate counts them
    return responses, tokens


def run(
    cfg: CompareConfig,
    prompt_cfg: PromptConfig,
    sampling: SamplingConfig,
    flr_config: ScorerConfig | None = None,
    *,
    judge=None,
    progress: bool = True,
) -> dict:
    """Generate with both policies (resumable), judge every pair, write compare.jsonl, summary.json, report.md."""
    if not cfg.candidate:
        raise FLRError("no candidate: pass --candidate MODEL_OR_ADAPTER")
    if sampling.k != 1:
        raise FLRError("compare takes one response per prompt and policy: use --k 1")
    flr_config = flr_config or ScorerConfig()
    out = Path(cfg.output_dir)
    prompts = load_prompts(prompt_cfg, sampling.system_prompt)
    references = load_references(prompt_cfg, prompts, cfg.reference_field) if cfg.reference_field else None
    responses, tokens = generate_both(cfg, prompts, sampling, progress=progress)
    judge = judge or make_judge(cfg, flr_config)
    cands = [responses["candidate"][p["id"]] for p in prompts]
    bases = [responses["base"][p["id"]] for p in prompts]
    verdicts = judge.judge([p["prompt"] for p in prompts], cands, bases)
    rows = [
        {
            "id": p["id"],
            "prompt": p["prompt"],
            "candidate": c,
            "base": b,
            "len_candidate": len(c),
            "len_base": len(b),
            "tokens_candidate": tokens["candidate"][p["id"]],
            "tokens_base": tokens["base"][p["id"]],
            **v,
        }
        for p, c, b, v in zip(prompts, cands, bases, verdicts)
    ]
    write_jsonl(out / COMPARE_FILE, rows)
    summary = {
        "base": cfg.base,
        "candidate": cfg.candidate,
        "judge": judge.describe(),
        "metrics": summarize(rows, n_resamples=cfg.bootstrap, seed=sampling.seed),
        # content-free patterns (closer, opener, bait question, markdown) in each policy's outputs: what tuning taught
        "patterns": pattern_report({"base": bases, "candidate": cands}),
        "drift": surface_drift(cands, bases, seed=sampling.seed),
    }
    if references is not None:
        summary["reference_field"] = cfg.reference_field
        gains = reference_likelihood(cfg, prompts, references, flr_config)
        write_jsonl(out / REFERENCE_FILE, [{"id": p["id"], **v} for p, v in zip(prompts, gains.pop("per_prompt"))])
        summary["reference_likelihood"] = gains
    summary = write_summary(out, summary, cfg, prompt_cfg, sampling, flr_config)
    write_compare_report(out, summary, rows)  # report.md, report.html, compare.png, leaderboard.csv, examples.md
    return summary

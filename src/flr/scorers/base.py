"""The scorer protocol every reward source implements, and the result it returns."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from flr.hashing import content_fingerprint


@dataclass
class ScoreResult:
    """The reward of one (conversation, response), with whatever breakdown the scorer has."""

    reward: float
    categories: dict[str, float] = field(default_factory=dict)
    truncated: bool = False
    details: list[dict[str, Any]] | None = None

    def to_fields(self, prefix: str = "flr", details: bool = False) -> dict[str, Any]:
        """Output columns: ``{prefix}_reward``, ``{prefix}_categories``, ``truncated`` (+ ``{prefix}_details``)."""
        out: dict[str, Any] = {f"{prefix}_reward": self.reward}
        if self.categories:
            out[f"{prefix}_categories"] = self.categories
        out["truncated"] = self.truncated
        if details and self.details is not None:
            out[f"{prefix}_details"] = self.details
        return out


@runtime_checkable
class Scorer(Protocol):
    """Anything that turns ``{"prompt": str | messages, "response": str}`` records into rewards."""

    name: str

    def iter_score(self, records: Sequence[dict], *, chunk_size: int | None = None) -> Iterator[list[ScoreResult]]:
        """Results in input order, one list per finished chunk (so callers can save as they go)."""
        ...

    def score(self, records: Sequence[dict], *, progress: bool = False) -> list[ScoreResult]: ...

    def compare(self, prompt, a: str, b: str) -> float: ...

    def describe(self) -> dict[str, Any]:
        """What determines the scores (for summaries; :meth:`fingerprint` hashes it for the cache key)."""
        ...

    def fingerprint(self) -> str: ...

    def attach_cache(self, cache) -> None:
        """Keep intermediate results in ``cache`` (a :class:`flr.scorers.cache.ScoreCache`; None detaches it)."""
        ...


class BaseScorer:
    """Shared plumbing: chunked scoring, a progress bar, pairwise comparison, a cache fingerprint and hooks."""

    name = "base"
    chunk_size = 64

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What determines the scores (for summaries and the cache key)."""
        return {"scorer": self.name}

    def iter_score(self, records: Sequence[dict], *, chunk_size: int | None = None) -> Iterator[list[ScoreResult]]:
        size = chunk_size or self.chunk_size
        for start in range(0, len(records), size):
            yield self._score_chunk(records[start : start + size])

    def score(self, records: Sequence[dict], *, progress: bool = False) -> list[ScoreResult]:
        from tqdm.auto import tqdm

        results: list[ScoreResult] = []
        with tqdm(total=len(records), disable=not progress or not records, unit="ex", desc=self.name) as bar:
            for chunk in self.iter_score(records):
                results.extend(chunk)
                bar.update(len(chunk))
        return results

    def compare(self, prompt, a: str, b: str) -> float:
        """reward(a) - reward(b): positive means ``a`` is preferred."""
        ra, rb = self.score([{"prompt": prompt, "response": a}, {"prompt": prompt, "response": b}])
        return ra.reward - rb.reward

    def fingerprint(self) -> str:
        return content_fingerprint(self.describe())

    def attach_cache(self, cache) -> None:
        """Nothing to keep: only scorers with reusable intermediate results (FLR's follow-up log-probs) use it."""


STATISTICS = ("mean", "sum", "authors")


@dataclass
class ScorerConfig:
    """Settings of the LM scorers (FLR and the direct likelihood; rm: reads batch size and max length): the
    follow-up set and how FLR turns follow-up likelihoods into a reward, rendering and batching."""

    followups: str | None = field(
        default=None,
        metadata={
            "help": "Follow-up set: a YAML/JSON file, or a packaged one: paper (flr's default: the paper's 60 in 3 "
            "categories), selected (12 of the 60 chosen on a training pool by raw accuracy with the embedded model; "
            "about 2x faster end to end, as accurate on length-matched pairs but closer to a length proxy), compact "
            "(the first 2 + 2 per category), authors (the 120 follow-ups in 6 categories of the authors' code, "
            "utils.py of github.com/e0397123/FLR, verbatim; for --statistic authors)."
        },
    )
    categories: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated categories to use ('all' for every category in the set). Default: the set's "
            "default_categories: the paper's three (understanding, engagingness, instruction_following) in paper, "
            "selected and compact; all six in authors."
        },
    )
    weights: str | None = field(
        default=None, metadata={"help": "Comma-separated category weights, in --categories order. Default: equal."}
    )
    statistic: str = field(
        default="mean",
        metadata={
            "help": "Per follow-up statistic: mean (token-averaged log-prob, the paper's: reward = mean over "
            "categories of mean_pos (1/|f|) sum_t log p(f_t | conversation, response, f_<t) - mean_neg of the same), "
            "sum, or authors (what the authors' code computes, run_llama3.py of github.com/e0397123/FLR: with "
            "L the rendered conversation + response + follow-up turn in tokens and ids = tokenizer(follow-up) "
            "with its special tokens, the mean of the raw logits at position L - len(ids) over ids; Llama 3 "
            "reads there the first follow-up token, SmolLM2 and Qwen the third. Positives minus negatives and "
            "categories as for mean. The logits come from the model's dtype, averaged in fp32: their run was "
            "fp16 on a GPU (--dtype float16), on a CPU flr runs fp32. FLR only; use --followups authors for "
            "their follow-ups).",
            "choices": STATISTICS,
        },
    )
    include_eot: bool = field(
        default=False,
        metadata={"help": "Also score the end-of-turn token after each follow-up (off: the follow-up text only)."},
    )
    max_length: int = field(
        default=2048,
        metadata={
            "help": "Cap on prefix + follow-up tokens: older turns go first, then the prompt's start, then "
            "the response's start; the follow-up is never cut and the record is marked truncated."
        },
    )
    batch_size: int = field(default=16, metadata={"help": "Examples per forward pass (at most)."})
    token_budget: int | None = field(
        default=None,
        metadata={
            "help": "Padded tokens per forward pass (default: 16384 on a GPU, 4096 on a CPU, where big batches only "
            "add padding); halves itself on out-of-memory."
        },
    )
    max_padding: float | None = field(
        default=None,
        metadata={
            "help": "A row joins a batch only if at least (1 - this) x as long as the batch's longest (default: 0.1 "
            "on a CPU, where padding costs in full; 1, no cap, on a GPU)."
        },
    )
    share_prefix: int = field(
        default=64,
        metadata={
            "help": "Examples whose prefixes share at least this many leading tokens (responses to one prompt) share a "
            "forward row, so the shared tokens are computed once; 0: never. Scores do not change."
        },
    )
    calibration: str = field(
        default="none",
        metadata={
            "help": "none, or pmi: subtract each follow-up's score after a content-free response to the same prompt "
            "(--content-free), which removes how likely the follow-up is anyway. Pairwise rankings of two responses "
            "to one prompt do not change (the baseline cancels); rewards compared across prompts do.",
            "choices": ["none", "pmi"],
        },
    )
    content_free: str = field(
        default="",
        metadata={"help": "The content-free response for --calibration pmi (default: the empty response)."},
    )
    length_term: bool = field(
        default=False,
        metadata={
            "help": "FLR with a set fitted by flr followups fit --control-length: add the fitted length term, reward += "
            "length_coefficient * log(max(1, response characters)). With the set's categories at equal weights the "
            "reward is then the fitted logistic model's logit (its margin between two responses is the fit's log-odds); "
            "off: the follow-up weights alone, which learned what length does not."
        },
    )
    contrast: str = field(
        default="none",
        metadata={
            "help": "Contrastive FLR: none, or twin: reward(response) - reward(its content-destroyed twin: the same "
            "characters in the same lines, opener, closer, bait question, headers and the first and last other "
            "sentence kept, the words between shuffled within each line), so a content-free edit present in both "
            "cancels; twin_all: the same, keeping only the detected surface (the first and last sentence move too). "
            "Or the name of a perturbation registered in --contrast-file. A response with no twin (fewer "
            "than two words that can move) is contrasted with --content-free. FLR only; about 2x the cost."
        },
    )
    contrast_file: str | None = field(
        default=None,
        metadata={"help": "A Python file registering the --contrast edit with @perturbation (see flr audit)."},
    )
    method: str = field(
        default="packed",
        metadata={
            "help": "packed: shared prefix computed once (fast); reference: one forward per follow-up.",
            "choices": ["packed", "reference"],
        },
    )

    def __post_init__(self):
        from flr.errors import FLRError, check_at_least

        check_at_least(self, {"batch_size": 1, "token_budget": 64, "max_length": 16, "share_prefix": 0})
        if self.max_padding is not None and not 0 <= self.max_padding <= 1:
            raise FLRError(f"--max-padding must be between 0 and 1, got {self.max_padding}")
        if self.statistic not in STATISTICS:
            raise FLRError(f"--statistic must be one of {', '.join(STATISTICS)}, got {self.statistic!r}")
        if self.calibration not in ("none", "pmi"):
            raise FLRError(f"--calibration must be none or pmi, got {self.calibration!r}")
        if self.contrast != "none" or self.contrast_file:
            from flr.perturbations import contrast_edit

            if self.contrast == "none":
                raise FLRError("--contrast-file needs --contrast NAME, the perturbation to contrast with")
            contrast_edit(self.contrast, self.contrast_file)  # one line now, before any model loads


def scorer_identity(scorer: Scorer) -> dict[str, Any]:
    """What a scorer is, as outputs record it: its :meth:`~Scorer.describe` and its ``fingerprint`` (the key of its
    cached scores and of the outputs it may resume)."""
    return {**scorer.describe(), "fingerprint": scorer.fingerprint()}


def kernel_kwargs(config) -> dict:
    if config.method == "packed":
        return {
            "token_budget": config.token_budget,
            "max_batch": config.batch_size,
            "share_stem": config.share_prefix or None,
            "max_padding": "auto" if config.max_padding is None else config.max_padding,
        }
    return {"batch_size": config.batch_size}


def check_log_prob_statistic(statistic: str) -> None:
    """A one-line error for a statistic that needs follow-ups (authors: logits at a follow-up position)."""
    if statistic not in ("mean", "sum"):
        from flr.errors import FLRError

        raise FLRError(f"--statistic {statistic} applies to flr only (it reads follow-ups): use mean or sum")


def reduce_logprobs(logprobs, statistic: str) -> float:
    check_log_prob_statistic(statistic)
    return float(logprobs.mean() if statistic == "mean" else logprobs.sum())


def config_dict(config) -> dict[str, Any]:
    return asdict(config) if config is not None else {}


class LMScorer(BaseScorer):
    """A scorer that reads log-probs from a causal LM (FLR and the direct baseline)."""

    statistics = ("mean", "sum")  # the --statistic values it computes (flr adds authors)

    def __init__(self, model, tokenizer, config, *, model_name: str | None = None):
        from flr.kernel.chat import ChatRenderer

        if config.statistic not in self.statistics:  # before any forward pass (direct: no follow-ups)
            check_log_prob_statistic(config.statistic)
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.model_name = model_name or getattr(model, "name_or_path", "model")
        self.renderer = ChatRenderer(tokenizer, include_eot=config.include_eot, max_length=config.max_length)
        self.chunk_size = config.batch_size  # each batch is written (and cached) as soon as it is scored

    def describe(self) -> dict:
        keep = ("statistic", "include_eot", "max_length")
        return {
            "scorer": self.name,
            "model": self.model_name,
            # the weights, not the name: an adapter retrained into the same folder must not hit old scores
            "weights_id": getattr(self.model, "flr_fingerprint", None),
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            **{k: v for k, v in config_dict(self.config).items() if k in keep},
        }

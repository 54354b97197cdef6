"""FLR: the reward is how much more likely positive user follow-ups are than negative ones."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from flr.errors import FLRError
from flr.followups import load_followups
from flr.hashing import content_fingerprint
from flr.kernel.logprobs import continuation_logprobs, mean_logits
from flr.scorers.base import LMScorer, ScorerConfig, ScoreResult, kernel_kwargs

# follow-ups are rendered against this many tokens at least when a conversation is cut to --max-length, so that
# where a conversation is cut does not depend on the follow-up set (cached per-follow-up scores stay exact)
FOLLOWUP_RESERVE = 64
# the version of --statistic authors' computation, in its cache key: a change to the rule must not hit old values
AUTHORS_RULE = "authors-v1"


def _tuned_set(model) -> str | None:
    """The follow-up set saved with a tuned adapter (``flr train flr``), when ``model`` carries one."""
    from pathlib import Path

    from flr.followups import SCORER_FOLLOWUPS

    folder = getattr(model, "flr_adapter_dir", None)
    path = Path(folder, SCORER_FOLLOWUPS) if folder else None
    return str(path) if path is not None and path.exists() else None


def check_length_term(config: ScorerConfig, followups) -> float | None:
    """The length coefficient ``--length-term`` adds (None when off); a set fitted without one is an error."""

    if not config.length_term:
        return None
    if followups.length_coefficient is None:
        raise FLRError(
            f"--length-term needs a follow-up set fitted with flr followups fit --control-length; "
            f"'{followups.name}' has no length_coefficient"
        )
    return followups.length_coefficient


def category_weights(weights: str | Sequence | None, names: list[str]) -> dict[str, float]:
    """``--weights`` (comma-separated or a list, in category order; None: equal) as ``{category: weight}``."""
    from flr.arguments import split_list

    try:
        values = [float(w) for w in split_list(weights)] if weights else [1.0] * len(names)
    except ValueError:
        raise FLRError(f"--weights must be comma-separated numbers, got {weights!r}") from None
    if len(values) != len(names):
        raise FLRError(f"--weights has {len(values)} values for {len(names)} categories {names}")
    if sum(values) == 0:
        raise FLRError(f"--weights must not sum to zero, got {weights!r}")
    return dict(zip(names, values))


def followup_reward(values: Sequence, utterances: Sequence[tuple[str, str, str]], coefficients, weights: dict):
    """FLR's aggregation, the one place it is written: per category ``sum_pos c*v - sum_neg c*v``, then the
    ``weights``-weighted mean over categories. Returns ``(reward, {category: score})``.

    ``values[j]`` is follow-up ``j``'s statistic, aligned with ``utterances`` (``(category, polarity, text)``) and
    ``coefficients`` (:attr:`FollowUpSet.coefficients`: 1/len of its list in an unweighted set). A value may be a
    float (the scorer) or a tensor, e.g. one entry per item (the trainer, with gradients): only + and * are used.
    """
    categories = dict.fromkeys(weights, 0.0)
    for (category, polarity, _), coef, value in zip(utterances, coefficients, values, strict=True):
        categories[category] = categories[category] + (coef if polarity == "positive" else -coef) * value
    total = sum(weights.values())
    reward = sum(weights[c] * s for c, s in categories.items()) / total
    return reward, categories


def sample_followups(followups, per_list: int, rng) -> tuple[list[int], list[float]]:
    """A random subset of ``followups`` (a :class:`FollowUpSet`) for :func:`followup_reward`: ``per_list`` follow-ups
    of each category's positive and of its negative list (the whole list when shorter), as ``(indices into
    followups.utterances, their coefficients)``.

    Each coefficient is scaled by ``n / k`` (``n`` follow-ups in its list, ``k`` drawn). Every follow-up of a list is
    drawn with probability ``k / n``, so the expectation of the subset's reward equals the full set's reward (and it
    is that reward when ``k == n``); in an unweighted set the scaled coefficient is ``1 / k``, the subset's mean.
    """
    coefficients = followups.coefficients
    indices, scaled = [], []
    start = 0
    for cat in followups.categories.values():
        for texts in (cat.positive, cat.negative):
            n = len(texts)
            k = min(per_list, n)
            for j in rng.sample(range(n), k):
                indices.append(start + j)
                scaled.append(coefficients[start + j] * n / k)
            start += n
    return indices, scaled


class FollowUpReward(LMScorer):
    """Reward = weighted mean over categories of (weighted positive follow-up scores - weighted negative ones).

    With an unweighted follow-up set each weight is 1/n, the paper's difference of means. With a score cache
    attached (:meth:`attach_cache`), per-follow-up log-probs are stored and reused across follow-up sets, weights,
    categories and calibration: only missing (record, follow-up) pairs are computed.
    """

    name = "flr"
    statistics = ("mean", "sum", "authors")

    def __init__(self, model, tokenizer, config: ScorerConfig | None = None, *, model_name: str | None = None):
        super().__init__(model, tokenizer, config or ScorerConfig(), model_name=model_name)
        if self.config.statistic == "authors" and self.config.include_eot:  # their position counts from the end
            from flr.kernel.chat import ChatRenderer

            self.renderer = ChatRenderer(tokenizer, include_eot=False, max_length=self.config.max_length)
        self._feedback_ids: dict[str, list[int]] = {}  # --statistic authors: text -> tokenizer(text).input_ids
        self._turn_suffix: dict[str, list[int]] = {}  # text -> the template's tokens after it as the last turn
        self.followups = load_followups(self.config.followups or _tuned_set(model)).select(self.config.categories)
        self.utterances = self.followups.utterances
        self.coefficients = self.followups.coefficients
        self.weights = category_weights(self.config.weights, list(self.followups.categories))
        self.length_coefficient = check_length_term(self.config, self.followups)
        self.reserve = min(FOLLOWUP_RESERVE, (self.config.max_length or 0) // 8)
        self.logprob_cache = None
        self.contrast = None
        if self.config.contrast != "none":
            from flr.perturbations import contrast_edit

            self.contrast = contrast_edit(self.config.contrast, self.config.contrast_file)

    def signed_margins(self, pairs: Sequence[dict], *, progress: bool = True) -> np.ndarray:
        """[pairs, follow-ups]: each follow-up's statistic on ``chosen`` minus on ``rejected``, negated for a
        negative follow-up (so a positive margin always favours ``chosen``). What selection and fitting rank and
        weigh; ``pairs`` are ``{prompt, chosen, rejected}``."""
        if self.config.statistic == "authors":
            raise FLRError("--statistic authors: its logit means cannot be selected or fitted; use mean or sum")
        if not pairs:
            raise FLRError("no labelled pairs {prompt, chosen, rejected} to score follow-ups on")
        key = "logprob_mean" if self.config.statistic == "mean" else "logprob_sum"
        sides = [{"prompt": r["prompt"], "response": r[side]} for r in pairs for side in ("chosen", "rejected")]
        results = self.score(sides, progress=progress)
        sign = np.array([1.0 if p == "positive" else -1.0 for _, p, _ in self.utterances])
        values = np.array([[d[key] for d in res.details] for res in results]) * sign
        return values[0::2] - values[1::2]

    def describe(self) -> dict:
        out = {
            **super().describe(),
            "followups": self.followups.fingerprint(),
            "weights": self.weights,
        }
        if self.config.calibration != "none":
            out.update(calibration=self.config.calibration, content_free=self.config.content_free)
        if self.length_coefficient:  # absent when off: older fingerprints stay valid
            out["length_term"] = self.length_coefficient
        if self.contrast is not None:  # what the edit does, not its name: a changed twin must not hit old scores
            from flr.perturbations import probe_fingerprint

            out["contrast"] = {
                "name": self.contrast.name,
                "code": _code_id(self.contrast.fn),
                "probes": probe_fingerprint(self.contrast),
            }
            out["content_free"] = self.config.content_free
        return out

    def raw_fingerprint(self) -> str:
        """What one follow-up's log-prob depends on: the model's weights, dtype and the rendering settings."""
        keep = {k: v for k, v in super().describe().items() if k != "scorer"}
        if self.config.statistic == "authors":  # logit means, not log-probs: never shared with mean or sum
            return content_fingerprint([keep, FOLLOWUP_RESERVE, AUTHORS_RULE])
        return content_fingerprint([keep, FOLLOWUP_RESERVE])

    def attach_cache(self, cache) -> None:
        """Store and reuse per-follow-up log-probs in ``cache`` (a :class:`flr.scorers.cache.ScoreCache`)."""
        self.logprob_cache = cache

    # -- scoring ---------------------------------------------------------------------------------------

    def followup_values(self, records: Sequence[dict]) -> list[tuple[bool, list[dict]]]:
        """Per record: (truncated, per follow-up ``{mean, sum, tokens}``), from the cache where it has them.
        With ``--statistic authors`` each value is ``{authors, tokens}`` (``mean`` and ``sum`` hold the same
        number: the cache's columns), ``tokens`` the ids averaged over."""
        from flr.scorers.cache import text_key

        texts = [text for _, _, text in self.utterances]
        keys = [text_key(r["prompt"], r["response"]) for r in records]
        raw = self.raw_fingerprint()
        known = self.logprob_cache.get_followups(raw, keys, texts) if self.logprob_cache is not None else {}
        todo = [i for i, k in enumerate(keys) if any((k, t) not in known for t in texts)]
        if todo and self.config.statistic == "authors":
            fresh = self._authors_values([records[i] for i in todo], [keys[i] for i in todo], known, texts)
            if self.logprob_cache is not None:
                self.logprob_cache.put_followups(raw, fresh)
            known.update(fresh)
        elif todo:
            items, missing = [], []
            for i in todo:
                wanted = [t for t in texts if (keys[i], t) not in known]
                r = records[i]
                items.append(self.renderer.followup_item(r["prompt"], r["response"], wanted, reserve=self.reserve))
                missing.append(wanted)
            logprobs = continuation_logprobs(
                self.model, items, method=self.config.method, **kernel_kwargs(self.config)
            )
            fresh = {}
            for i, item, wanted, lps in zip(todo, items, missing, logprobs):
                for text, lp in zip(wanted, lps):
                    fresh[(keys[i], text)] = {
                        "mean": float(lp.mean()),
                        "sum": float(lp.sum()),
                        "tokens": len(lp),
                        "truncated": item.truncated,
                    }
            if self.logprob_cache is not None:
                self.logprob_cache.put_followups(raw, fresh)
            known.update(fresh)
        out = []
        for k in keys:
            values = [known[(k, t)] for t in texts]
            out.append((any(v["truncated"] for v in values), values))
        return out

    def _authors_values(self, records, keys, known, texts) -> dict:
        """``--statistic authors`` for the (record, follow-up) pairs ``known`` lacks, as run_llama3.py computes it:
        the mean over ``ids = tokenizer(follow-up).input_ids`` of the raw logits at position ``len(rendered) -
        len(ids)`` of the conversation, the response and the follow-up as the next user turn, rendered with the chat
        template. One kernel item per record: all its follow-ups share the conversation, and those that agree up to
        the position share one logits vector."""
        from flr.kernel.chat import ScoringItem

        items, ids, missing = [], [], []
        for key, r in zip(keys, records):
            wanted = [t for t in dict.fromkeys(texts) if (key, t) not in known]
            item = self.renderer.followup_item(r["prompt"], r["response"], wanted, reserve=self.reserve)
            # the full rendering: through each follow-up's last token (the renderer's cut), then the turn's end
            full = [item.prefix + cont + self._suffix(t) for cont, t in zip(item.continuations, wanted)]
            feedback = [self._ids(t) for t in wanted]
            at = [len(f) - len(i) for f, i in zip(full, feedback)]
            p = min(len(item.prefix), min(at) + 1)  # a prefix shared by every position read
            if p < 1:
                raise FLRError("--statistic authors: the position falls before the conversation's first token")
            conts = [f[p : x + 1] + [f[x + 1] if x + 1 < len(f) else 0] for f, x in zip(full, at)]
            spans = [(x + 1 - p, x + 2 - p) for x in at]  # the token after the position: the kernel reads its logits
            items.append(ScoringItem(item.prefix[:p], conts, spans, truncated=item.truncated))
            ids.append(feedback)
            missing.append(wanted)
        means = mean_logits(self.model, items, ids, method=self.config.method, **kernel_kwargs(self.config))
        fresh = {}
        for key, item, wanted, feedback, values in zip(keys, items, missing, ids, means):
            for text, fid, value in zip(wanted, feedback, values):
                fresh[(key, text)] = {
                    "mean": value,
                    "sum": value,
                    "authors": value,
                    "tokens": len(fid),
                    "truncated": item.truncated,
                }
        return fresh

    def _ids(self, text: str) -> list[int]:
        """``tokenizer(text).input_ids`` as their code takes it: special tokens included (Llama 3: its BOS)."""
        if text not in self._feedback_ids:
            self._feedback_ids[text] = list(self.tokenizer(text)["input_ids"])
        return self._feedback_ids[text]

    def _suffix(self, text: str) -> list[int]:
        """The tokens the chat template puts after ``text`` as the last user turn (``<|im_end|>`` and a newline
        in ChatML, ``<|eot_id|>`` in Llama 3): the same in every conversation, read once from a short one."""
        if text not in self._turn_suffix:
            probe = [
                {"role": "user", "content": "Hi."},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": text},
            ]
            rendered = self.renderer.render(probe)
            enc = self.tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
            target = text if rendered.rfind(text) >= 0 else text.strip()  # templates that trim (Llama 3)
            start = rendered.rfind(target)
            if start < 0 or not target:
                raise FLRError(f"the chat template changed the follow-up {text[:40]!r}; cannot locate it")
            end = start + len(target)
            inside = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start and b > a]
            self._turn_suffix[text] = list(enc["input_ids"][inside[-1] + 1 :])
        return self._turn_suffix[text]

    def twin_record(self, record: dict) -> dict:
        """The record ``--contrast`` scores ``record`` against: its response edited (the twin), or the content-free
        response where the edit gives none or leaves it as it was."""
        edited = self.contrast(record["prompt"], record["response"])
        if edited is None or edited == record["response"]:
            edited = self.config.content_free
        return {"prompt": record["prompt"], "response": edited}

    def _score_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        if self.contrast is None:
            return self._plain_chunk(records)
        # responses and twins in one call: a twin shares its prompt's stem with its response in the packed kernel
        both = self._plain_chunk([*records, *(self.twin_record(r) for r in records)])
        return [contrasted(a, b) for a, b in zip(both[: len(records)], both[len(records) :])]

    def _plain_chunk(self, records: Sequence[dict]) -> list[ScoreResult]:
        values = self.followup_values(records)
        baselines = [None] * len(records)
        if self.config.calibration == "pmi":
            from flr.scorers.cache import text_key

            prompts = {text_key(r["prompt"], ""): r["prompt"] for r in records}
            neutral = [{"prompt": p, "response": self.config.content_free} for p in prompts.values()]
            by_prompt = dict(zip(prompts, self.followup_values(neutral)))
            baselines = [by_prompt[text_key(r["prompt"], "")][1] for r in records]
        results = [self._aggregate(truncated, v, b) for (truncated, v), b in zip(values, baselines)]
        if self.length_coefficient:  # --length-term: the fitted length covariate, outside the categories
            for r, res in zip(records, results):
                res.reward += self.length_coefficient * math.log(max(1, len(r["response"])))
        return results

    def _aggregate(self, truncated: bool, values: list[dict], baseline: list[dict] | None = None) -> ScoreResult:
        stat = self.config.statistic
        scores = [v[stat] - (baseline[i][stat] if baseline is not None else 0.0) for i, v in enumerate(values)]
        reward, categories = followup_reward(scores, self.utterances, self.coefficients, self.weights)
        details = []
        for (category, polarity, text), v, value in zip(self.utterances, values, scores):
            detail = {"category": category, "polarity": polarity, "text": text}
            if stat == "authors":  # a mean of raw logits, not a log-prob
                detail.update(logit_mean=v["authors"], tokens=v["tokens"])
            else:
                detail.update(logprob_mean=v["mean"], logprob_sum=v["sum"], tokens=v["tokens"])
            if baseline is not None:
                detail["calibrated"] = value
            details.append(detail)
        return ScoreResult(reward=reward, categories=categories, truncated=truncated, details=details)


def _code_id(fn) -> str:
    """A fingerprint of ``fn``'s source (its qualified name where the source cannot be read)."""
    import inspect

    try:
        return content_fingerprint(inspect.getsource(fn))
    except (OSError, TypeError):
        return f"{fn.__module__}.{fn.__qualname__}"


def contrasted(response: ScoreResult, twin: ScoreResult) -> ScoreResult:
    """``response - twin`` for the reward and each category; each follow-up's detail gets the twin's log-prob and
    ``contrast``, its mean log-prob (calibrated where --calibration is on) in the response minus in the twin."""
    details = None
    if response.details is not None and twin.details is not None:
        details = []
        for d, t in zip(response.details, twin.details):
            raw = "logit_mean" if "logit_mean" in d else "logprob_mean"  # --statistic authors: logit means
            value = d.get("calibrated", d[raw])
            twin_value = t.get("calibrated", t[raw])
            details.append({**d, f"twin_{raw}": t[raw], "contrast": value - twin_value})
    return ScoreResult(
        reward=response.reward - twin.reward,
        categories={c: v - twin.categories.get(c, 0.0) for c, v in response.categories.items()},
        truncated=response.truncated or twin.truncated,
        details=details,
    )

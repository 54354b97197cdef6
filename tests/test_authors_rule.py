"""--statistic authors: the scoring rule of the FLR authors' code (run_llama3.py of github.com/e0397123/FLR), checked
against their computation written out by hand on the tiny model, its invariance to batching and padding, the
packaged ``authors`` follow-up set, and its one-line errors."""

from __future__ import annotations

import pytest
import torch

from flr.errors import FLRError
from flr.followups import load_followups
from flr.kernel.chat import ScoringItem
from flr.kernel.logprobs import mean_logits
from flr.scorers import DirectLikelihood, FollowUpReward, ScorerConfig

RECORDS = [
    {"prompt": "What is the capital of France?", "response": "The capital of France is Paris."},
    {"prompt": "What is the capital of France?", "response": "I like turtles."},
    {
        "prompt": [
            {"role": "user", "content": "Name a prime number."},
            {"role": "assistant", "content": "7."},
            {"role": "user", "content": "Another one?"},
        ],
        "response": "11, and then 13.",
    },
]
SIX = ("understanding", "relevance", "correctness", "engagingness", "informativeness", "following")


def their_lists(fset) -> dict[str, tuple[list[str], list[str]]]:
    """utils.py's lists back from the set: a text of weight 0.2 is listed twice there (10 entries a list)."""
    out = {}
    for cat in fset.categories.values():
        pos = [t for t, w in zip(cat.positive, cat.positive_weights) for _ in range(round(w * 10))]
        neg = [t for t, w in zip(cat.negative, cat.negative_weights) for _ in range(round(w * 10))]
        out[cat.name] = (pos, neg)
    return out


def their_value(model, tokenizer, record, followup: str) -> float:
    """The authors' number for one follow-up, written out: render conversation + response + the follow-up as the
    next user turn with the chat template (no generation prompt), run the whole sequence, and average the logits of
    position ``len(sequence) - len(tokenizer(followup))`` over the follow-up's ids (special tokens included)."""
    prompt = record["prompt"]
    turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    turns += [{"role": "assistant", "content": record["response"]}, {"role": "user", "content": followup}]
    rendered = tokenizer.apply_chat_template(turns, tokenize=False)
    sequence = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    ids = tokenizer(followup)["input_ids"]
    with torch.no_grad():
        all_logits = model(input_ids=torch.tensor([sequence])).logits[0].float()
    return all_logits[len(sequence) - len(ids), ids].mean().item()


@pytest.fixture(scope="module")
def authors_scorer(tiny):
    model, tokenizer = tiny
    return FollowUpReward(model, tokenizer, ScorerConfig(followups="authors", statistic="authors"))


def test_authors_set_has_their_six_categories():
    fset = load_followups("authors")
    assert tuple(fset.categories) == SIX and fset.default_categories == SIX
    lists = their_lists(fset)
    assert all(len(pos) == 10 and len(neg) == 10 for pos, neg in lists.values())
    assert lists["understanding"][0].count("That makes perfect sense!") == 2
    assert lists["correctness"][0].count("You gave me the correct details.") == 2
    assert lists["informativeness"][1].count("This doesn't give me the information I was looking for.") == 2
    assert lists["understanding"][0][0] == "You\u2019re very clear and easy to understand."  # their apostrophe
    assert tuple(fset.select("relevance,following").categories) == ("relevance", "following")


def test_matches_their_code_by_hand(tiny, authors_scorer):
    model, tokenizer = tiny
    lists = their_lists(authors_scorer.followups)
    results = authors_scorer.score(RECORDS)
    for record, result in zip(RECORDS, results):
        values = {}
        categories = {}
        for cat, (pos, neg) in lists.items():
            for text in dict.fromkeys(pos + neg):
                values[text] = their_value(model, tokenizer, record, text)
            categories[cat] = sum(values[t] for t in pos) / len(pos) - sum(values[t] for t in neg) / len(neg)
        for detail in result.details:
            assert detail["logit_mean"] == pytest.approx(values[detail["text"]], abs=1e-4)
            assert "logprob_mean" not in detail
        for cat, score in categories.items():
            assert result.categories[cat] == pytest.approx(score, abs=1e-4)
        assert result.reward == pytest.approx(sum(categories.values()) / len(categories), abs=1e-4)


def test_paper_categories_and_weights_apply(tiny, authors_scorer):
    model, tokenizer = tiny
    config = ScorerConfig(followups="authors", statistic="authors", categories="relevance,following", weights="1,3")
    result = FollowUpReward(model, tokenizer, config).score(RECORDS[:1])[0]
    full = authors_scorer.score(RECORDS[:1])[0]
    expected = (full.categories["relevance"] + 3 * full.categories["following"]) / 4
    assert result.reward == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "settings",
    [
        {"batch_size": 1},
        {"batch_size": 16, "share_prefix": 0},
        {"batch_size": 2, "token_budget": 64},
        {"method": "reference", "batch_size": 5},
    ],
)
def test_batching_does_not_change_it(tiny, authors_scorer, settings):
    model, tokenizer = tiny
    expected = authors_scorer.score(RECORDS)
    config = ScorerConfig(followups="authors", statistic="authors", **settings)
    got = FollowUpReward(model, tokenizer, config).score(RECORDS)
    for a, b in zip(got, expected):
        assert a.reward == pytest.approx(b.reward, abs=1e-5)
        assert [d["logit_mean"] for d in a.details] == pytest.approx([d["logit_mean"] for d in b.details], abs=1e-4)


def test_kernel_batch_size_and_padding_side(tiny, tokenizer):
    """mean_logits on varied items (several continuations reading one position): packed, and the reference path
    at every batch size and padding side, equal a plain forward of each sequence."""
    model, _ = tiny
    gen = torch.Generator().manual_seed(0)

    def ids(n):
        return torch.randint(5, len(tokenizer), (n,), generator=gen).tolist()

    items, token_ids = [], []
    for p in (3, 11, 7, 20):
        shared = ids(2)
        conts = [shared + ids(2), shared + ids(3), ids(4), shared + ids(2)]
        spans = [(2, 3), (2, 3), (1, 2), (0, 1)]  # the first two read the same position
        items.append(ScoringItem(ids(p), conts, spans))
        token_ids.append([ids(3), ids(5) + ids(1) * 2, ids(1), ids(2)])
    expected = []
    for item, id_lists in zip(items, token_ids):
        row = []
        for cont, (start, _), wanted in zip(item.continuations, item.spans, id_lists):
            seq = torch.tensor([item.prefix + cont[:start]])
            with torch.no_grad():
                logits = model(input_ids=seq).logits[0, -1].float()
            row.append(logits[wanted].mean().item())
        expected.append(row)
    runs = [mean_logits(model, items, token_ids), mean_logits(model, items, token_ids, max_batch=1)]
    for batch_size in (1, 3, 16):
        for side in ("left", "right"):
            runs.append(
                mean_logits(model, items, token_ids, method="reference", batch_size=batch_size, padding_side=side)
            )
    for got in runs:
        for g, e in zip(got, expected):
            assert g == pytest.approx(e, abs=1e-4)


def test_cache_keeps_it_apart_from_mean(tiny, tmp_path):
    from flr.scorers.cache import open_cache, score_with_cache, text_key

    model, tokenizer = tiny
    mean = FollowUpReward(model, tokenizer, ScorerConfig(followups="authors"))
    authors = FollowUpReward(model, tokenizer, ScorerConfig(followups="authors", statistic="authors"))
    assert mean.fingerprint() != authors.fingerprint()
    assert mean.raw_fingerprint() != authors.raw_fingerprint()
    assert authors.describe()["statistic"] == "authors"
    requests = [(text_key(r["prompt"], r["response"]), (r["prompt"], r["response"])) for r in RECORDS]
    with open_cache(tmp_path / "scores.sqlite", [mean, authors]) as cache:
        score_with_cache(mean, requests, cache, "mean")
        got = score_with_cache(authors, requests, cache, "authors")
        rows = cache.get_followups(authors.raw_fingerprint(), [k for k, _ in requests], [authors.utterances[0][2]])
    fresh = authors.score(RECORDS)
    assert [got[k].reward for k, _ in requests] == pytest.approx([r.reward for r in fresh], abs=1e-6)
    assert all(v["authors"] == v["mean"] for v in rows.values()) and len(rows) == len(RECORDS)


def test_direct_refuses_it_in_one_line(tiny):
    model, tokenizer = tiny
    with pytest.raises(FLRError) as err:
        DirectLikelihood(model, tokenizer, ScorerConfig(statistic="authors"))
    assert "\n" not in str(err.value) and "flr only" in str(err.value)


def test_bad_statistic_fails_before_the_model_loads(tmp_path, tiny_model_dir, monkeypatch, capsys):
    import flr.kernel.models
    from flr.cli import main

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(flr.kernel.models, "load_model", no_loading)
    with pytest.raises(FLRError, match="--statistic must be one of mean, sum, authors"):
        ScorerConfig(statistic="authorz")
    data = tmp_path / "in.jsonl"
    data.write_text('{"prompt": "Hi", "response": "Hello."}\n')
    args = ["score", str(data), "-o", str(tmp_path / "out.jsonl"), "--model", str(tiny_model_dir)]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--statistic", "authorz"])
    assert exit_.value.code == 2 and "invalid choice: 'authorz'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["score", "eval", "mine"])
def test_every_scoring_command_offers_it(command, capsys):
    from flr.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--statistic {mean,sum,authors}" in capsys.readouterr().out


def test_reports_name_the_authors_rule_and_keep_the_papers_for_the_default():
    from flr.records.provenance import variant_text

    def line(**scorer):
        return variant_text({"provenance": {"config": {"ScorerConfig": scorer}}})

    assert line(followups="paper").endswith("(the paper's rule)")
    authors = line(followups="authors", statistic="authors")
    assert "statistic `authors`" in authors and "mean raw logits" in authors and "paper's rule" not in authors
    assert "statistic `sum`" in line(statistic="sum")

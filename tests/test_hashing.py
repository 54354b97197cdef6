"""Every stored key (score cache, resume keys, fingerprints, report labels, generation seeds) keeps its exact value:
users' caches and resumable outputs written by earlier versions must still match."""

from flr.hashing import content_fingerprint, content_keys
from flr.jobs.generate import _seed_of
from flr.reports.markdown import merge_results
from flr.scorers.cache import text_key


def test_cache_text_key_is_unchanged():
    assert text_key("Hi", "Hello there") == "56d363bb99cac57a9b20df19a9c95f159d77e33cb08ce2f8f213e116c50f6e54"
    assert (
        text_key([{"role": "user", "content": "Grüße"}], "café ☕")
        == "27104b40e208689919b3885cc77abdb060aad413d60ed96e9021f791cbd237af"
    )


def test_resume_content_keys_are_unchanged():
    pairs = [("a", "b"), ("a", "b"), ([{"role": "user", "content": "é"}], "x")]
    assert content_keys(pairs) == ["14683f87f0aaf263#0", "14683f87f0aaf263#1", "2e1546ffc854c76a#0"]


def test_content_fingerprint_is_unchanged():
    assert content_fingerprint({"b": 1, "a": "é"}) == "d73913efb309b598"
    assert content_fingerprint([1, 2], ensure_ascii=False, separators=(",", ":")) == "49a64717d5d4cb19"


def test_generation_seeds_are_unchanged():
    assert _seed_of(0, "p1") == 4235788865
    assert _seed_of(7, "é") == 576211999


def test_merge_results_relabels_differing_runs_with_a_stable_short_hash():
    def summary(model, accuracy):
        return {
            "model": model,
            "scorers": {"flr": {"model": model, "statistic": "mean"}},
            "results": {"b": {"kind": "pairwise", "n": 2, "scorers": {"flr": {"accuracy": accuracy}}}},
        }

    merged = merge_results([summary("m1", 0.5), summary("m2", 1.0)])
    assert merged["b"]["scorers"] == {"flr (m1, 809ce4)": {"accuracy": 0.5}, "flr (m2, 4908b4)": {"accuracy": 1.0}}
    # the same scorer in every run keeps its plain name
    assert list(merge_results([summary("m1", 0.5), summary("m1", 0.5)])["b"]["scorers"]) == ["flr"]

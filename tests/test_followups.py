import json
import re
from pathlib import Path

import pytest

from flr.errors import FLRError, InputError
from flr.followups import Category, FollowUpSet, load_followups

PAPER_THREE = ("understanding", "engagingness", "instruction_following")
ALL_SIX = PAPER_THREE + ("relevance", "correctness", "informativeness")
DEFAULT_YAML = Path(__file__).resolve().parents[1] / "src" / "flr" / "resources" / "followups" / "default.yaml"


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


# --------------------------------------------------------------------------- default set


def test_default_set_loads_six_categories_ten_each():
    fs = load_followups("paper")
    assert isinstance(fs, FollowUpSet)
    assert fs.name == "flr-default"
    assert tuple(fs.categories) == ALL_SIX
    for name, cat in fs.categories.items():
        assert isinstance(cat, Category) and cat.name == name
        assert len(cat.positive) == 10 and len(cat.negative) == 10, name
        assert cat.description and "\n" not in cat.description
        assert isinstance(cat.positive, tuple) and isinstance(cat.negative, tuple)


def test_packaged_names_and_aliases():
    assert load_followups("default") == load_followups("paper") == load_followups(DEFAULT_YAML)
    assert load_followups(None) == load_followups("paper")  # flr's default: the paper's 60 (docs/RESULTS.md)
    paper = {t for _, _, t in load_followups("paper").utterances}
    assert {t for _, _, t in load_followups("selected").utterances} < paper  # selected: a subset of the 60


def test_default_selection_is_paper_three():
    for fs, n in ((load_followups(), 60), (load_followups("selected"), 12)):
        assert fs.default_categories == PAPER_THREE
        sel = fs.select()
        assert tuple(sel.categories) == PAPER_THREE
        assert sel.default_categories == PAPER_THREE
        assert len(sel.utterances) == n


def test_default_utterances_are_clean_and_unique():
    fs = load_followups("paper")
    texts = [t for _, _, t in fs.utterances]
    assert len(texts) == 120
    assert len({_norm(t) for t in texts}) == 120
    for t in texts:
        assert t == t.strip() and "\n" not in t and len(t) < 120
    # varied: some short reactions, some full sentences
    lengths = sorted(len(t.split()) for t in texts)
    assert lengths[0] <= 2 and lengths[-1] >= 9


def test_default_yaml_has_no_trailing_whitespace():
    for i, line in enumerate(DEFAULT_YAML.read_text(encoding="utf-8").splitlines(), 1):
        assert line == line.rstrip(), f"trailing whitespace on line {i}"


def test_utterances_order():
    fs = load_followups("paper").select(["engagingness", "understanding"])
    u = fs.utterances
    assert [c for c, _, _ in u] == ["engagingness"] * 20 + ["understanding"] * 20
    assert [p for _, p, _ in u[:20]] == ["positive"] * 10 + ["negative"] * 10
    assert u[0] == ("engagingness", "positive", fs.categories["engagingness"].positive[0])
    assert u[10] == ("engagingness", "negative", fs.categories["engagingness"].negative[0])


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_stable_and_selection_sensitive():
    a, b = load_followups("paper"), load_followups("paper")
    fp = a.select().fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", fp)
    assert fp == b.select().fingerprint() == a.select(list(PAPER_THREE)).fingerprint()
    assert a.fingerprint() != fp  # all six vs the paper's three
    assert a.select(["understanding"]).fingerprint() != fp
    assert a.select(["relevance", "correctness"]).fingerprint() != a.select(["correctness", "relevance"]).fingerprint()


def test_fingerprint_ignores_name_and_description(tmp_path):
    base = {"a": {"positive": ["Nice."], "negative": ["Bad."]}}
    p1 = tmp_path / "one.json"
    p1.write_text(json.dumps(base))
    p2 = tmp_path / "two.json"
    p2.write_text(json.dumps({"a": {**base["a"], "description": "whatever"}}))
    p3 = tmp_path / "three.json"
    p3.write_text(json.dumps({"a": {"positive": ["Nice!"], "negative": ["Bad."]}}))
    f1, f2, f3 = (load_followups(p) for p in (p1, p2, p3))
    assert f1.name == "one" and f2.name == "two"
    assert f1.fingerprint() == f2.fingerprint() != f3.fingerprint()


# --------------------------------------------------------------------------- select


def test_select_unknown_lists_available():
    fs = load_followups("paper")
    with pytest.raises(FLRError) as ei:
        fs.select(["understanding", "humor"])
    msg = str(ei.value)
    assert "'humor'" in msg
    for name in ALL_SIX:
        assert name in msg


def test_select_empty_raises():
    with pytest.raises(FLRError, match="no follow-up categories selected"):
        load_followups("paper").select([])


def test_select_string_forms_and_dedupe():
    fs = load_followups("paper")
    assert tuple(fs.select("relevance, correctness").categories) == ("relevance", "correctness")
    assert tuple(fs.select("all").categories) == ALL_SIX
    assert tuple(fs.select(["correctness", "correctness"]).categories) == ("correctness",)
    sub = fs.select(["relevance"])
    assert sub.select() == sub  # a selection's defaults are itself
    with pytest.raises(FLRError, match="understanding"):
        sub.select(["understanding"])  # no longer available
    assert tuple(fs.categories) == ALL_SIX  # original untouched


# --------------------------------------------------------------------------- user files


def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return p


FULL_YAML = """\
name: mine
version: 2
default_categories: [b]
categories:
  a:
    description: first
    positive: ["  Thanks!  ", "Great."]
    negative: [Nope.]
  b:
    positive: [Cool.]
    negative: ["Huh?", "Not helpful."]
"""


def test_user_yaml_full_format(tmp_path):
    fs = load_followups(_write(tmp_path, "mine.yml", FULL_YAML))
    assert fs.name == "mine"
    assert tuple(fs.categories) == ("a", "b")
    assert fs.default_categories == ("b",)
    assert fs.categories["a"] == Category("a", ("Thanks!", "Great."), ("Nope.",), "first")  # stripped
    assert fs.categories["b"].description == ""
    assert fs.select().utterances == [
        ("b", "positive", "Cool."),
        ("b", "negative", "Huh?"),
        ("b", "negative", "Not helpful."),
    ]


def test_user_json_full_format_defaults_to_all(tmp_path):
    data = {
        "categories": {
            "x": {"positive": ["Yes."], "negative": ["No."]},
            "y": {"positive": ["Ok."], "negative": ["Meh."]},
        }
    }
    fs = load_followups(str(_write(tmp_path, "set.json", data)))
    assert fs.name == "set"
    assert fs.default_categories == ("x", "y")


def test_compact_format_yaml_and_json(tmp_path):
    y = _write(
        tmp_path,
        "c.yaml",
        "understanding:\n  positive: [Got it.]\n  negative: [Lost.]\nfun:\n  positive: [Ha!]\n  negative: [Dull.]\n",
    )
    j = _write(
        tmp_path,
        "c.json",
        {
            "understanding": {"positive": ["Got it."], "negative": ["Lost."]},
            "fun": {"positive": ["Ha!"], "negative": ["Dull."]},
        },
    )
    fy, fj = load_followups(y), load_followups(j)
    assert tuple(fy.categories) == ("understanding", "fun")
    assert fy.default_categories == ("understanding", "fun")
    assert fy.categories == fj.categories
    assert fy.fingerprint() == fj.fingerprint()


def test_compact_format_with_meta_keys(tmp_path):
    p = _write(
        tmp_path,
        "c.yaml",
        "name: tiny\ndefault_categories: [b]\na: {positive: [A1], negative: [A2]}\nb: {positive: [B1], negative: [B2]}\n",
    )
    fs = load_followups(p)
    assert fs.name == "tiny" and tuple(fs.categories) == ("a", "b") and fs.default_categories == ("b",)


# --------------------------------------------------------------------------- validation errors


def _err(path) -> InputError:
    with pytest.raises(InputError) as ei:
        load_followups(path)
    msg = str(ei.value)
    assert "\n" not in msg
    assert ei.value.file == str(path) and str(path) in msg
    return ei.value


def test_missing_file(tmp_path):
    e = _err(tmp_path / "nope.yaml")
    assert "not found" in str(e)


def test_directory_instead_of_file(tmp_path):
    assert "directory" in str(_err(tmp_path))


def test_invalid_yaml_reports_line(tmp_path):
    p = _write(tmp_path, "bad.yaml", "categories:\n  a:\n    positive: [ok\n    negative: [no]\n  b: : :\n")
    e = _err(p)
    assert "invalid YAML" in str(e)
    assert isinstance(e.line, int) and e.line >= 2
    assert f"{p}:{e.line}:" in str(e)


def test_invalid_json_reports_line(tmp_path):
    p = _write(tmp_path, "bad.json", '{\n  "a": {\n    "positive": ["x",]\n  }\n}\n')
    e = _err(p)
    assert "invalid JSON" in str(e) and e.line == 3
    assert f"{p}:3:" in str(e)


@pytest.mark.parametrize("content", ["", "# nothing\n"])
def test_empty_yaml(tmp_path, content):
    assert "no follow-up categories" in str(_err(_write(tmp_path, "empty.yaml", content)))


def test_empty_json(tmp_path):
    assert "no follow-up categories" in str(_err(_write(tmp_path, "empty.json", "  \n")))


def test_top_level_not_mapping(tmp_path):
    assert "mapping at the top level" in str(_err(_write(tmp_path, "list.yaml", "- a\n- b\n")))


@pytest.mark.parametrize("cats", ["categories: {}\n", "categories:\n", "name: only-meta\n"])
def test_no_categories(tmp_path, cats):
    assert "no follow-up categories" in str(_err(_write(tmp_path, "none.yaml", cats)))


def test_categories_not_mapping(tmp_path):
    e = _err(_write(tmp_path, "c.yaml", "categories: [a, b]\n"))
    assert e.field == "categories" and "field 'categories'" in str(e)


def test_unknown_top_level_key_in_full_format(tmp_path):
    e = _err(_write(tmp_path, "c.yaml", "default_category: [a]\ncategories:\n  a: {positive: [x], negative: [y]}\n"))
    assert e.field == "default_category"


def test_unknown_category_key(tmp_path):
    e = _err(_write(tmp_path, "c.yaml", "categories:\n  a: {positives: [x], positive: [x], negative: [y]}\n"))
    assert e.field == "categories.a.positives"


@pytest.mark.parametrize("pol", ["positive", "negative"])
@pytest.mark.parametrize("value", [[], None])
def test_empty_polarity_list(tmp_path, pol, value):
    body = {"positive": ["Yes."], "negative": ["No."]}
    if value is None:
        del body[pol]
    else:
        body[pol] = value
    p = _write(tmp_path, "c.json", {"categories": {"understanding": body}})
    e = _err(p)
    assert e.field == f"categories.understanding.{pol}"
    assert f"field 'categories.understanding.{pol}'" in str(e)
    assert f"at least one {pol}" in str(e)


def test_polarity_not_a_list(tmp_path):
    e = _err(_write(tmp_path, "c.yaml", "a:\n  positive: Just one string\n  negative: [No.]\n"))
    assert e.field == "a.positive" and "list of strings" in str(e)


def test_category_body_not_mapping(tmp_path):
    e = _err(_write(tmp_path, "c.yaml", "categories:\n  a: [x, y]\n"))
    assert e.field == "categories.a" and "'positive' and 'negative'" in str(e)


def test_non_string_utterance(tmp_path):
    p = _write(tmp_path, "c.yaml", "categories:\n  understanding:\n    positive: [a, b, c, 42]\n    negative: [d]\n")
    e = _err(p)
    assert e.field == "categories.understanding.positive[3]"
    assert "field 'categories.understanding.positive[3]'" in str(e) and "expected a string" in str(e)


def test_null_utterance_json(tmp_path):
    e = _err(_write(tmp_path, "c.json", {"a": {"positive": ["x"], "negative": ["y", None]}}))
    assert e.field == "a.negative[1]"


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_blank_utterance(tmp_path, blank):
    e = _err(_write(tmp_path, "c.json", {"categories": {"a": {"positive": ["x", blank], "negative": ["y"]}}}))
    assert e.field == "categories.a.positive[1]" and "blank" in str(e)


def test_duplicate_within_category(tmp_path):
    e = _err(
        _write(
            tmp_path, "c.yaml", "categories:\n  a:\n    positive: [Thanks!, Great., 'thanks!']\n    negative: [No.]\n"
        )
    )
    assert e.field == "categories.a.positive[2]"
    assert "duplicate" in str(e) and "categories.a.positive[0]" in str(e)


def test_duplicate_across_categories_whitespace_insensitive(tmp_path):
    data = {
        "categories": {
            "a": {"positive": ["Makes  sense."], "negative": ["No."]},
            "b": {"positive": ["Ok."], "negative": [" MAKES sense. "]},
        }
    }
    e = _err(_write(tmp_path, "c.json", data))
    assert e.field == "categories.b.negative[0]" and "categories.a.positive[0]" in str(e)


def test_default_categories_unknown(tmp_path):
    p = _write(
        tmp_path,
        "c.yaml",
        "default_categories: [a, zzz]\ncategories:\n  a: {positive: [x], negative: [y]}\n  b: {positive: [z], negative: [w]}\n",
    )
    e = _err(p)
    assert e.field == "default_categories[1]"
    assert "'zzz'" in str(e) and "a, b" in str(e)


def test_default_categories_empty_or_repeated(tmp_path):
    body = "categories:\n  a: {positive: [x], negative: [y]}\n"
    assert _err(_write(tmp_path, "e.yaml", "default_categories: []\n" + body)).field == "default_categories"
    assert _err(_write(tmp_path, "r.yaml", "default_categories: [a, a]\n" + body)).field == "default_categories[1]"


def test_bad_name(tmp_path):
    assert _err(_write(tmp_path, "n.yaml", "name: ''\na: {positive: [x], negative: [y]}\n")).field == "name"

"""Length-debiased rewards and length-controlled mining and training: the residualisation (batch, per prompt and
its fallback), flr score's final pass, fitting with length as a covariate and the scorer's --length-term, mining
within a length band or by the debiased reward, TRL's ld_alpha, and the lengths compare and the pipeline report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from flr.errors import FLRError
from flr.followups import dump_followups, load_followups
from flr.followups.fitting import fit_weights, length_feature, weighted_set
from flr.jobs.mine import MineConfig, length_ratio, length_summary, mine_rows, select_pair
from flr.scorers import FollowUpReward, ScorerConfig
from flr.scorers.debias import MIN_DISTINCT_LENGTHS, debias, residualize

# -- the residualisation ------------------------------------------------------------------------------------


def test_batch_residuals_are_the_reward_minus_its_least_squares_line_on_log_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 2000, size=300)
    rewards = 0.7 * np.log(lengths) + rng.normal(scale=0.3, size=300)
    out, info = residualize(rewards, lengths)
    slope, intercept = np.polyfit(np.log(lengths), rewards, 1)
    assert info["mode"] == "batch" and info["n"] == 300
    assert info["slope"] == pytest.approx(slope) and info["intercept"] == pytest.approx(intercept)
    assert out == pytest.approx(rewards - intercept - slope * np.log(lengths))
    assert abs(np.corrcoef(out, np.log(lengths))[0, 1]) < 1e-9  # nothing linear in log length is left


def test_prompt_mode_fits_each_prompt_and_falls_back_to_the_pooled_slope():
    # prompt a: 4 distinct lengths on an exact line (own fit leaves zeros); b: 2 distinct lengths (pooled slope)
    la = [10, 20, 40, 80]
    ra = [1.0 + 2.0 * math.log(n) for n in la]
    lb, rb = [30, 30, 90], [0.5, 0.7, 3.0]
    rewards, lengths = ra + rb + [math.nan], la + lb + [50]
    groups = ["a"] * 4 + ["b"] * 3 + ["a"]
    out, info = residualize(rewards, lengths, groups)
    assert out[:4] == pytest.approx([0, 0, 0, 0], abs=1e-9)
    # the pooled within-prompt slope, by hand: centre reward and log length within each prompt, then regress
    xa, xb = np.log(la), np.log(lb)
    dx = np.concatenate([xa - xa.mean(), xb - xb.mean()])
    dr = np.concatenate([np.array(ra) - np.mean(ra), np.array(rb) - np.mean(rb)])
    pooled = float(dx @ dr / (dx @ dx))
    assert info["pooled_slope"] == pytest.approx(pooled)
    assert out[4:7] == pytest.approx(np.array(rb) - np.mean(rb) - pooled * (xb - xb.mean()))
    assert math.isnan(out[7])  # a non-finite reward stays out of the fit and comes back NaN
    assert (info["groups"], info["own_line"], info["pooled_slope_groups"]) == (2, 1, 1)
    assert info["median_slope"] == pytest.approx(2.0)
    json.dumps(info, allow_nan=False)  # summaries get plain numbers


def test_too_few_distinct_lengths_give_slope_zero_and_modes_are_checked():
    out, info = residualize([1.0, 2.0, 6.0], [7, 7, 9])
    assert MIN_DISTINCT_LENGTHS == 3 and info["slope"] == 0 and out == pytest.approx([-2.0, -1.0, 3.0])
    same, info = debias([1.0, 2.0], [3, 4], "none")
    assert list(same) == [1.0, 2.0] and info == {"mode": "none"}
    with pytest.raises(FLRError, match="--length-debias"):
        debias([1.0], [3], "sideways")
    with pytest.raises(FLRError, match="prompt"):
        debias([1.0], [3], "prompt")
    with pytest.raises(FLRError):
        residualize([1.0, 2.0], [3])


# -- flr score: the final pass ------------------------------------------------------------------------------


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


RESPONSES = [{"prompt": "Q1", "response": "a" * n} for n in (3, 10, 40, 90)] + [
    {"prompt": "Q2", "response": "b" * n} for n in (5, 50)
]


def test_flr_score_adds_debiased_rewards_after_scoring_and_again_on_a_finished_output(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    from flr.cli import main

    src, out = _write(tmp_path / "in.jsonl", RESPONSES), tmp_path / "out.jsonl"
    args = ["score", str(src), "-o", str(out), "--scorer", "length", "--model", str(tiny_model_dir)]
    assert main([*args, "--limit", "3"]) == 0  # a first, partial run without debiasing
    assert all("length_reward_debiased" not in r for r in _read(out))
    assert main([*args, "--length-debias", "prompt"]) == 0  # resumes, then the final pass over all six
    assert "3 scored, 3 already done" in capsys.readouterr().out
    rows = _read(out)
    rewards = [r["length_reward"] for r in rows]
    expected, _ = residualize(rewards, [len(r["response"]) for r in rows], [r["prompt"] for r in rows])
    assert [r["length_reward_debiased"] for r in rows] == pytest.approx(expected)
    # a finished output needs no model for another mode: the pass alone runs again
    import flr.kernel.models

    monkeypatch.setattr(flr.kernel.models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main([*args, "--length-debias", "batch"]) == 0
    assert "length-debiased over 6 responses" in capsys.readouterr().out
    batch, _ = residualize(rewards, [len(r["response"]) for r in rows])
    assert [r["length_reward_debiased"] for r in _read(out)] == pytest.approx(batch)
    # rows outside this input (an earlier, larger run) neither enter the fit nor keep stale values
    assert main([*args, "--limit", "4", "--length-debias", "batch"]) == 0
    rows = _read(out)
    assert len(rows) == 6 and all("length_reward_debiased" not in r for r in rows[4:])
    first4, _ = residualize(rewards[:4], [len(r["response"]) for r in rows[:4]])
    assert [r["length_reward_debiased"] for r in rows[:4]] == pytest.approx(first4)


def test_flr_score_debiases_both_sides_of_preference_records(tmp_path, tiny_model_dir):
    from flr.cli import main

    pairs = [{"prompt": f"Q{i}", "chosen": "x" * (5 + 7 * i), "rejected": "y" * (40 - 3 * i)} for i in range(4)]
    src, out = _write(tmp_path / "p.jsonl", pairs), tmp_path / "out.jsonl"
    argv = ["score", str(src), "-o", str(out), "--scorer", "length", "--model", str(tiny_model_dir)]
    assert main([*argv, "--length-debias", "batch"]) == 0
    rows = _read(out)
    rewards = [r[f"length_{side}"] for r in rows for side in ("chosen", "rejected")]
    lengths = [len(r[side]) for r in rows for side in ("chosen", "rejected")]
    expected, _ = residualize(rewards, lengths)
    got = [r[f"length_{side}_debiased"] for r in rows for side in ("chosen", "rejected")]
    assert got == pytest.approx(expected)
    for r in rows:
        assert r["length_margin_debiased"] == pytest.approx(
            r["length_chosen_debiased"] - r["length_rejected_debiased"]
        )


# -- fitting with length as a covariate, and --length-term -------------------------------------------------


def test_control_length_takes_the_length_signal_off_a_length_proxy_followup():
    rng = np.random.default_rng(1)
    n = 400
    length = rng.normal(scale=1.0, size=n)  # log length ratio of each pair
    signal = rng.normal(size=n)
    proxy = length + rng.normal(scale=0.3, size=n)  # a follow-up that mostly measures length
    chosen_wins = 1.5 * length + 1.5 * signal + rng.logistic(size=n) > 0
    sign = np.where(chosen_wins, 1.0, -1.0)  # orient each pair so that the chosen side comes first
    features = np.column_stack([proxy, signal]) * sign[:, None]
    plain, _ = fit_weights(features)
    controlled, stats = fit_weights(features, length=length * sign)
    assert len(controlled) == 2 and stats["control_length"] is True
    assert stats["length_coefficient"] > 0.5
    assert controlled[0] < 0.5 * plain[0]  # the proxy's weight was mostly length
    assert controlled[1] > 0.5  # the signal beyond length stays
    assert 0 <= stats["followups_only_train_accuracy"] <= 1 and stats["length_only_train_accuracy"] > 0.5
    same, _ = fit_weights(features, length=length * sign)
    assert same == pytest.approx(controlled)  # the seed fixes the folds
    with pytest.raises(FLRError):
        fit_weights(features, length=length[:10])
    records = [{"chosen": "aaaa", "rejected": "aa"}, {"chosen": "", "rejected": "abc"}]
    assert length_feature(records) == pytest.approx([math.log(2), -math.log(3)])


def test_length_coefficient_round_trips_and_enters_the_fingerprint(tmp_path):
    fset = load_followups("compact").select("understanding")
    coef = np.array([-1.0, -0.5, 0.25, 1.0])  # values the YAML keeps exactly (it rounds to 6 decimals)
    assert len(coef) == len(fset.utterances)
    plain, with_length = weighted_set(fset, coef), weighted_set(fset, coef, length_coefficient=0.25)
    assert plain.length_coefficient is None and with_length.length_coefficient == 0.25
    assert plain.fingerprint() != with_length.fingerprint()
    dump_followups(with_length, tmp_path / "w.yaml", extra={"fit": {"control_length": True}})
    again = load_followups(str(tmp_path / "w.yaml"))
    assert again.length_coefficient == 0.25 and again.select(["understanding"]).length_coefficient == 0.25
    assert again.fingerprint() == with_length.fingerprint()
    bad = tmp_path / "bad.yaml"
    bad.write_text((tmp_path / "w.yaml").read_text().replace("length_coefficient: 0.25", "length_coefficient: big"))
    with pytest.raises(FLRError, match="length_coefficient"):
        load_followups(str(bad))


def test_length_term_adds_the_fitted_coefficient_times_log_characters(tiny, tmp_path):
    model, tokenizer = tiny
    path = tmp_path / "w.yaml"
    path.write_text(
        "length_coefficient: 0.5\na:\n  positive: [{text: 'Thanks!', weight: 2.0}]\n"
        "  negative: [{text: 'Wrong.', weight: 1.0}]\n"
    )
    records = [{"prompt": "Hi", "response": "Hello there!"}, {"prompt": "Hi", "response": ""}]
    weights_only = FollowUpReward(model, tokenizer, ScorerConfig(followups=str(path)))
    with_term = FollowUpReward(model, tokenizer, ScorerConfig(followups=str(path), length_term=True))
    for rec, a, b in zip(records, weights_only.score(records), with_term.score(records)):
        d = [x["logprob_mean"] for x in a.details]
        assert a.reward == pytest.approx(2.0 * d[0] - 1.0 * d[1], abs=1e-6)  # the follow-up weights alone
        assert b.reward == pytest.approx(a.reward + 0.5 * math.log(max(1, len(rec["response"]))), abs=1e-6)
    assert with_term.describe()["length_term"] == 0.5 and "length_term" not in weights_only.describe()
    assert with_term.fingerprint() != weights_only.fingerprint()
    with pytest.raises(FLRError, match="--control-length"):
        FollowUpReward(model, tokenizer, ScorerConfig(followups="compact", length_term=True))


# -- mining -------------------------------------------------------------------------------------------------

PROMPT = [{"role": "user", "content": "Hi?"}]


def _row(i, cands, rewards):
    return {"id": str(i), "prompt": PROMPT, "candidates": cands, "rewards": rewards}


def test_length_band_picks_the_largest_margin_among_pairs_within_the_ratio():
    cands = ["x" * 100, "x" * 10, "x" * 12, "x" * 118, "x" * 11]
    rewards = [5.0, -5.0, 1.0, 0.0, 0.5]
    assert (select_pair(cands, rewards).positive, select_pair(cands, rewards).negative) == ([0], [1])
    sel = select_pair(cands, rewards, length_band=1.25)
    # in-band pairs: (100, 118) margin 5, (12, 10) margin 6, (11, 10) 5.5, (12, 11) 0.5: the best is 12 vs 10
    assert (sel.positive, sel.negative, sel.margin) == ([2], [1], pytest.approx(6.0))
    assert length_ratio(cands[2], cands[1]) <= 1.25
    narrow = select_pair(cands, rewards, length_band=1.19)  # 12 vs 10 (1.2) is out: 11 vs 10 (5.5) beats 100-118
    assert (narrow.positive, narrow.negative, narrow.margin) == ([4], [1], pytest.approx(5.5))
    assert select_pair(["x" * 10, "x" * 30], [1.0, 0.0], length_band=1.5).reason == "no_pair_in_length_band"
    assert select_pair(["a" * 10, "b" * 11, "c" * 40], [1.0, 1.0, 0.0], length_band=1.2).reason == "tie"
    assert select_pair(["a" * 10, "b" * 11], [1.0, 0.9], 0.5, length_band=1.2).reason == "below_min_margin"
    assert select_pair(["", "a"], [1.0, 0.0], length_band=1.01).positive == [0]  # empty counts as 1 character


def test_mine_rows_respects_the_band_counts_drops_and_reports_lengths():
    rows = [
        _row(0, ["x" * 100, "x" * 10, "x" * 12], [5.0, -5.0, 1.0]),
        _row(1, ["y" * 10, "y" * 50], [1.0, 0.0]),  # no pair within 1.25
        _row(2, ["z" * 20, "w" * 24, "v" * 200], [0.0, 2.0, 9.0]),
    ]
    out, stats = mine_rows(rows, length_band=1.25)
    assert [(len(r["chosen"][0]["content"]), len(r["rejected"][0]["content"])) for r in out] == [(12, 10), (24, 20)]
    assert all(length_ratio(r["chosen"][0]["content"], r["rejected"][0]["content"]) <= 1.25 for r in out)
    assert stats["dropped"]["no_pair_in_length_band"] == 1 and stats["yield"] == pytest.approx(2 / 3)
    assert stats["length"] == {
        "pairs": 2,
        "median_ratio": pytest.approx(1.2),
        "mean_ratio": pytest.approx(1.2),
        "within_1.25": 1.0,
        "chosen_longer": 1.0,
        "mean_chars_chosen": 18.0,
        "mean_chars_rejected": 15.0,
    }
    plain, plain_stats = mine_rows(rows)
    assert plain_stats["length"]["median_ratio"] == pytest.approx(10.0) and plain_stats["yield"] == 1.0
    assert length_summary([])["median_ratio"] is None
    with pytest.raises(FLRError, match="dpo"):
        mine_rows(rows, fmt="kto", length_band=1.25)


def test_mining_by_the_debiased_reward_takes_length_out_of_the_choice():
    # across prompts, reward = log(length) + quality: the longest candidate always has the highest raw reward
    rng = np.random.default_rng(3)
    rows = []
    for i in range(30):
        lengths = rng.choice(np.arange(10, 400), size=4, replace=False)
        quality = rng.normal(scale=0.1, size=4)
        rows.append(_row(i, ["q" * int(n) for n in lengths], list(np.log(lengths) + quality)))
    raw, _ = mine_rows(rows)
    assert all(r["chosen_score"] == max(rows[int(r["id"])]["rewards"]) for r in raw)
    for mode in ("batch", "prompt"):
        out, stats = mine_rows(rows, length_debias=mode)
        assert stats["length_debias"]["mode"] == mode and stats["kept_prompts"] == 30
        picked_quality = []
        for r in out:
            row = rows[int(r["id"])]
            c = row["candidates"].index(r["chosen"][0]["content"])
            q = row["rewards"][c] - math.log(len(row["candidates"][c]))
            picked_quality.append(q >= max(x - math.log(len(t)) for x, t in zip(row["rewards"], row["candidates"])))
            assert r["margin"] == pytest.approx(r["chosen_debiased"] - r["rejected_debiased"])
        if mode == "batch":  # one slope near 1 over all prompts: the best quality wins nearly always
            assert stats["length_debias"]["slope"] == pytest.approx(1.0, abs=0.1)
            assert np.mean(picked_quality) > 0.8
    kto, _ = mine_rows(rows, fmt="kto", length_debias="batch")
    assert all("debiased" in r for r in kto)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"length_band": 1.0}, "greater than 1"),
        ({"length_band": 0.8}, "greater than 1"),
        ({"length_band": 1.25, "format": "kto"}, "dpo"),
        ({"length_debias": "sideways"}, "--length-debias"),
    ],
)
def test_mine_config_rejects_bad_length_settings(kwargs, message):
    with pytest.raises(FLRError, match=message):
        MineConfig(**kwargs)


# -- training, compare, pipeline ----------------------------------------------------------------------------


def test_ld_alpha_reaches_trl_dpo_config_from_the_command_line_and_flr_configs(tmp_path):
    from trl import DPOConfig

    from flr.cli import build_parser
    from flr.training.args import from_mapping, from_namespace

    argv = ["train", "dpo", "--data", "pairs.jsonl", "--output-dir", str(tmp_path), "--ld-alpha", "0.5"]
    _, dpo, _ = from_namespace("dpo", build_parser(argv).parse_args(argv))
    assert isinstance(dpo, DPOConfig) and dpo.ld_alpha == 0.5
    assert from_mapping("dpo", {"output_dir": str(tmp_path), "ld_alpha": 0.5}, "test")[1].ld_alpha == 0.5
    assert from_mapping("dpo", {"output_dir": str(tmp_path)}, "test")[1].ld_alpha is None
    with pytest.raises(FLRError, match="ld_alpha"):  # DPO's alone: KTO's config has no such key
        from_mapping("kto", {"ld_alpha": 0.5}, "test")
    with pytest.raises(FLRError, match="between 0 and 1"):
        from_mapping("dpo", {"ld_alpha": 1.5}, "test")


def test_compare_reports_mean_lengths_in_characters_and_tokens(tmp_path):
    from flr.jobs.compare import summarize
    from flr.reports.compare import compare_document
    from flr.reports.document import write_markdown

    rows = [
        {"preference": 1.0, "len_candidate": 10, "len_base": 30, "tokens_candidate": 3, "tokens_base": 8},
        {"preference": 0.0, "len_candidate": 20, "len_base": 50, "tokens_candidate": 5, "tokens_base": 12},
    ]
    m = summarize(rows, n_resamples=10)
    assert (m["mean_len_candidate"], m["mean_len_base"]) == (15.0, 40.0)
    assert (m["mean_tokens_candidate"], m["mean_tokens_base"]) == (4.0, 10.0)
    write_markdown(tmp_path / "report.md", compare_document({"metrics": m, "judge": {"judge": "length"}}))
    text = (tmp_path / "report.md").read_text()
    assert "| mean length (chars), candidate / base | 15 / 40 |" in text
    assert "| mean length (generated tokens), candidate / base | 4.0 / 10.0 |" in text
    older = summarize([{k: v for k, v in r.items() if not k.startswith("tokens")} for r in rows], n_resamples=10)
    assert "mean_tokens_candidate" not in older


def test_pipeline_sections_take_length_controls_and_check_them_before_any_stage(tmp_path):
    from flr.jobs.pipeline import Pipeline

    config = {"output_dir": str(tmp_path / "run"), "mine": {"length_band": 1.25, "length_debias": "prompt"}}
    mine, _, _ = Pipeline(config)._mine_configs()
    assert (mine.length_band, mine.length_debias) == (1.25, "prompt")
    _, train, _ = Pipeline({**config, "train": {"ld_alpha": 0.5}})._train_configs()
    assert train.ld_alpha == 0.5
    with pytest.raises(FLRError, match="--length-band"):
        Pipeline({**config, "mine": {"length_band": 1}}).run()
    with pytest.raises(FLRError, match="ld_alpha"):
        Pipeline({**config, "method": "kto", "mine": {}, "train": {"ld_alpha": 0.5}}).run()
    assert not (tmp_path / "run").exists()  # refused before any stage ran


def test_followups_fit_control_length_writes_the_coefficient_the_scorer_can_add(tmp_path, tiny_model_dir, capsys):
    import yaml

    from flr.cli import main

    pairs = [
        {
            "prompt": f"What is {i} + {i}?",
            "chosen": f"It is {2 * i}, because {i} and {i} make {2 * i}.",
            "rejected": "No.",
        }
        for i in range(6)
    ] + [
        {"prompt": f"Name color {i}.", "chosen": "Blue.", "rejected": f"I cannot name color number {i}, sorry."}
        for i in range(6)
    ]
    data = _write(tmp_path / "pairs.jsonl", pairs)
    common = ["--followups", "compact", "--model", str(tiny_model_dir), "--cache", str(tmp_path / "c.sqlite")]
    out = tmp_path / "w.yaml"
    assert main(["followups", "fit", "--benchmarks", str(data), "--control-length", "-o", str(out), *common]) == 0
    assert "length coefficient" in capsys.readouterr().out
    written = yaml.safe_load(out.read_text())
    assert isinstance(written["length_coefficient"], float) and written["fit"]["control_length"] is True
    assert written["fit"]["length_coefficient"] == pytest.approx(written["length_coefficient"], abs=1e-4)
    assert written["fit"]["length_feature"] == "log(chars(chosen) / chars(rejected))"
    scored = tmp_path / "scored.jsonl"
    argv = ["score", str(data), "-o", str(scored), "--followups", str(out), "--model", str(tiny_model_dir)]
    assert main([*argv, "--length-term"]) == 0
    plain = tmp_path / "plain.jsonl"
    assert main([*argv[:3], str(plain), *argv[4:]]) == 0
    beta = written["length_coefficient"]
    for a, b, p in zip(_read(scored), _read(plain), pairs):
        expected = b["flr_margin"] + beta * (math.log(len(p["chosen"])) - math.log(len(p["rejected"])))
        assert a["flr_margin"] == pytest.approx(expected, abs=1e-5)


def test_a_dpo_step_with_ld_alpha(tmp_path, tiny_model_dir):
    from flr.training.args import from_mapping
    from flr.training.policy import build_trainer

    pairs = [
        {
            "prompt": f"Question {i}?",
            "chosen": f"Answer {i}.",
            "rejected": f"A much longer answer, number {i}, that goes on.",
        }
        for i in range(2)
    ]
    keys = dict(
        data=str(_write(tmp_path / "p.jsonl", pairs)),
        model=str(tiny_model_dir),
        use_cpu=True,
        dtype="float32",
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=2,
        lora_r=4,
        max_length=64,
        save_steps=10,
        ld_alpha=0.5,
    )
    _, args, model_args = from_mapping("dpo", keys, "test")
    trainer = build_trainer("dpo", args, model_args, pairs)
    assert trainer.args.ld_alpha == 0.5 and trainer.ld_alpha == 0.5
    trainer.train()
    assert math.isfinite(trainer.state.log_history[0]["loss"])

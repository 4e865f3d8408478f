"""The reward API: scale, registry, spec strings, composites, off-policy handling, bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st

from speechgrpo.metrics import BLEU, CHRF, TER, WER
from speechgrpo.rewards import (
    FunctionReward,
    Gate,
    GroupNormalizedSum,
    MetricReward,
    Minimum,
    OverlongPenalty,
    Product,
    SpecError,
    WeightedSum,
    available_rewards,
    get_reward,
    overlong_penalty,
    parse_reward,
)

REFS = ["the cat sat on the mat"] * 4 + ["Der Zug hat heute Verspätung."] * 4
COMPLETIONS = ["the cat sat on the mat", "a cat sat", "", "the dog sat on a mat",
               "Der Zug hat heute Verspätung.", "Der Zug hat Verspätung", "The train is late", "Zug"]


def test_bleu_reward_is_sacrebleu_over_100() -> None:
    result = get_reward("bleu")(COMPLETIONS, REFS)
    bleu = sacrebleu.metrics.BLEU(effective_order=True)
    expected = [bleu.sentence_score(c, [r]).score / 100 for c, r in zip(COMPLETIONS, REFS, strict=True)]
    np.testing.assert_allclose(result.scores, expected, rtol=0, atol=1e-15)
    assert result.components.keys() == {"bleu"}
    assert result.scores.dtype == np.float64 and len(result) == len(COMPLETIONS)


@pytest.mark.parametrize("name,metric", [("wer", WER()), ("ter", TER())])
def test_error_rates_map_to_one_minus_clipped_rate(name: str, metric: WER | TER) -> None:
    hyps = ["a b c", "a x c", "x y z w v u", ""]
    refs = ["a b c"] * 4
    raw = metric.score(hyps, refs) / metric.scale
    scores = get_reward(name)(hyps, refs).scores
    np.testing.assert_allclose(scores, 1 - np.minimum(raw, 1))
    assert scores[0] == 1.0 and scores[2] == 0.0  # 6 words vs 3: rate 2 -> clipped to 0


@pytest.mark.parametrize("name", sorted(set(available_rewards()) - {"bertscore", "meteor"}))
def test_every_builtin_stays_in_its_bounds(name: str) -> None:
    reward = get_reward(name, pattern="cat") if name == "regex" else get_reward(name)
    result = reward(COMPLETIONS, REFS)
    lo, hi = reward.bounds
    assert np.all(result.scores >= lo) and np.all(result.scores <= hi)


def test_registry_passes_metric_options_and_rejects_unknown() -> None:
    reward = get_reward("bleu", tokenize="intl", lowercase=True)
    assert isinstance(reward, MetricReward) and isinstance(reward.metric, BLEU)
    assert reward.metric.tokenize == "intl" and reward.metric.lowercase
    assert reward.spec == "bleu(lowercase=True, tokenize='intl')"
    with pytest.raises(KeyError, match="unknown reward 'blue'"):
        get_reward("blue")
    with pytest.raises(TypeError, match="bad options for reward 'bleu'"):
        get_reward("bleu", smoothing="exp")
    chrfpp = get_reward("chrfpp")
    assert isinstance(chrfpp, MetricReward) and isinstance(chrfpp.metric, CHRF)
    assert chrfpp.metric.word_order == 2


@pytest.mark.parametrize("spec,cls", [
    ("0.7*bleu + 0.3*chrf", WeightedSum),
    ("bleu*0.5 + chrf*0.5", WeightedSum),
    ("min(bleu, rougeL)", Minimum),
    ("product(bleu, nonempty)", Product),
    ("gdpo(0.5*bleu + 0.5*wer)", GroupNormalizedSum),
    ("gate(script(scripts='LATIN'), bleu)", Gate),
    ("overlong(bleu, max_length=5, cache_length=2)", OverlongPenalty),
    ("min(0.5*bleu + 0.5*chrf, rouge1)", Minimum),
])
def test_spec_strings_parse_and_round_trip(spec: str, cls: type) -> None:
    reward = parse_reward(spec)
    assert isinstance(reward, cls)
    again = parse_reward(reward.spec)
    np.testing.assert_array_equal(again(COMPLETIONS, REFS).scores, reward(COMPLETIONS, REFS).scores)


def test_weighted_sum_equals_manual_combination_and_reports_components() -> None:
    result = parse_reward("0.7*bleu + 0.3*chrf")(COMPLETIONS, REFS)
    bleu = get_reward("bleu")(COMPLETIONS, REFS).scores
    chrf = get_reward("chrf")(COMPLETIONS, REFS).scores
    np.testing.assert_allclose(result.scores, 0.7 * bleu + 0.3 * chrf)
    np.testing.assert_array_equal(result.components["bleu"], bleu)
    np.testing.assert_array_equal(result.components["chrf"], chrf)


def test_repeated_component_names_are_kept_apart() -> None:
    result = parse_reward("0.5*bleu + 0.5*bleu(lowercase=True)")(["The cat"], ["the cat"])
    assert set(result.components) == {"bleu", "bleu#2"}
    assert result.components["bleu"][0] < result.components["bleu#2"][0] == 1.0


@pytest.mark.parametrize("spec,message", [
    ("", "non-empty"),
    ("bleu +", "cannot parse"),
    ("-0.5*bleu", "negative"),
    ("0.5*bleu - chrf", "not supported"),
    ("nan*bleu", "write weight"),
    ("bleu(tokenize=open('x'))", "not a literal"),
    ("blue", "unknown reward 'blue'"),
    ("gdpo(bleu, chrf)", "one weighted sum"),
    ("bleu(1)", "keyword arguments only"),
    ("bleu**2", "not supported"),
    ("0.5*0.5", "write weight"),
])
def test_bad_specs_raise_spec_error_naming_the_problem(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_reward(spec)


@pytest.mark.parametrize("weight", [float("nan"), -1.0, float("inf"), "1"])
def test_weights_must_be_finite_non_negative_numbers(weight: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        WeightedSum([(weight, get_reward("bleu"))])  # type: ignore[list-item]


def test_gdpo_normalises_each_component_within_its_group() -> None:
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    result = parse_reward("gdpo(0.5*bleu + 0.5*wer)")(COMPLETIONS, REFS, group_ids=groups)
    expected = np.zeros(len(COMPLETIONS))
    for name in ("bleu", "wer"):
        scores = get_reward(name)(COMPLETIONS, REFS).scores
        for g in (0, 1):
            part = scores[groups == g]
            expected[groups == g] += 0.5 * (part - part.mean()) / part.std()
    np.testing.assert_allclose(result.scores, expected, atol=1e-12)


def test_gdpo_gives_zero_for_groups_without_spread() -> None:
    result = parse_reward("gdpo(1*bleu)")(["same", "same", "a", "b"], ["same"] * 2 + ["a"] * 2)
    assert result.scores[0] == result.scores[1] == 0.0
    assert result.scores[2] > 0 > result.scores[3]


def test_groups_are_inferred_from_shared_references() -> None:
    explicit = parse_reward("gdpo(1*bleu)")(COMPLETIONS, REFS, group_ids=[0] * 4 + [1] * 4)
    inferred = parse_reward("gdpo(1*bleu)")(COMPLETIONS, REFS)
    np.testing.assert_array_equal(explicit.scores, inferred.scores)


def test_min_product_gate_and_overlong() -> None:
    bleu = get_reward("bleu")(COMPLETIONS, REFS).scores
    rouge = get_reward("rougeL")(COMPLETIONS, REFS).scores
    np.testing.assert_array_equal(parse_reward("min(bleu, rougeL)")(COMPLETIONS, REFS).scores,
                                  np.minimum(bleu, rouge))
    np.testing.assert_allclose(parse_reward("product(bleu, rougeL)")(COMPLETIONS, REFS).scores, bleu * rouge)
    gated = parse_reward("gate(word_count(min_words=3), bleu)")(COMPLETIONS, REFS)
    words = np.array([len(c.split()) for c in COMPLETIONS])
    np.testing.assert_array_equal(gated.scores, np.where(words >= 3, bleu, 0.0))
    assert np.isnan(gated.components["bleu"][words < 3]).all()
    shaped = parse_reward("overlong(bleu, max_length=5, cache_length=2)")(COMPLETIONS, REFS)
    np.testing.assert_allclose(shaped.scores, bleu + overlong_penalty(words, 5, 2))


def test_overlong_penalty_follows_dapo() -> None:
    np.testing.assert_allclose(overlong_penalty(np.array([0, 10, 11, 15, 20, 21, 100]), 20, 10),
                               [0, 0, -0.1, -0.5, -1.0, -1, -1])


def test_overlong_counts_tokens_from_completion_ids() -> None:
    reward = parse_reward("overlong(bleu, max_length=4, cache_length=2, unit='tokens')")
    result = reward(["a b", "a b"], ["a b"] * 2, completion_ids=[[1, 2], [1, 2, 3, 4, 5]])
    np.testing.assert_allclose(result.scores, [1.0, 0.0])
    with pytest.raises(ValueError, match="completion_ids or completion_lengths"):
        reward(["a b"], ["a b"])


def test_gate_does_not_compute_the_guarded_reward_for_failures() -> None:
    calls: list[list[str]] = []

    def spy(completions: list[str], references: list[tuple[str, ...]]) -> list[float]:
        calls.append(list(completions))
        return [1.0] * len(completions)

    Gate(get_reward("nonempty"), FunctionReward(spy))(["x", "", " ", "y"], ["r"] * 4)
    assert calls == [["x", "y"]]


def test_script_gate_rejects_other_scripts() -> None:
    reward = get_reward("script", scripts="LATIN")
    np.testing.assert_array_equal(reward(["Straße", "кот", "北京", "123", "ok кот"], ["x"] * 5).scores,
                                  [1, 0, 0, 1, 0])


# -- off-policy samples (MP-GRPO) ----------------------------------------------------------------------
def test_off_policy_reference_scored_normally_by_default() -> None:
    refs = ["the cat sat on the mat"] * 3
    result = get_reward("bleu")(["a cat", "the cat sat", refs[0]], refs, off_policy=[False, False, True])
    assert result.scores[2] == 1.0
    assert result.in_group_stats.all()


def test_off_policy_fixed_value_skips_the_metric_and_can_leave_group_stats() -> None:
    calls: list[int] = []

    def count(completions: list[str], references: list[tuple[str, ...]]) -> list[float]:
        calls.append(len(completions))
        return [0.25] * len(completions)

    reward = FunctionReward(count, off_policy_value=1.0, off_policy_in_group_stats=False)
    result = reward(["a", "b", "ref"], ["ref"] * 3, off_policy=np.array([False, False, True]))
    np.testing.assert_array_equal(result.scores, [0.25, 0.25, 1.0])
    np.testing.assert_array_equal(result.in_group_stats, [True, True, False])
    assert calls == [2]


def test_gdpo_excludes_off_policy_samples_from_a_childs_stats_when_asked() -> None:
    reward = parse_reward("gdpo(1*bleu(off_policy_in_group_stats=False))")
    completions = ["a b c d", "a b", "x y z w"]
    result = reward(completions, ["a b c d"] * 3, off_policy=[False, False, True])
    on = get_reward("bleu")(completions[:2], ["a b c d"] * 2).scores
    mean, std = on.mean(), on.std()
    np.testing.assert_allclose(result.scores[:2], (on - mean) / std)


def test_off_policy_mask_is_validated() -> None:
    with pytest.raises(ValueError, match="off_policy has 1 entries but there are 2"):
        get_reward("bleu")(["a", "b"], ["a", "b"], off_policy=[True])
    with pytest.raises(TypeError, match="boolean mask"):
        get_reward("bleu")(["a", "b"], ["a", "b"], off_policy=[0, 1])


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_completions_raise_naming_the_index() -> None:
    reward = get_reward("bleu")
    with pytest.raises(TypeError, match=r"completions\[1\] must be str, got NoneType"):
        reward(["a", None], ["a", "b"])
    with pytest.raises(TypeError, match="single str"):
        reward("a b", ["a b"])
    with pytest.raises(ValueError, match="references has 1 entries but there are 2"):
        reward(["a", "b"], ["a"])
    with pytest.raises(TypeError, match=r"references\[0\]\[1\] must be str"):
        reward(["a"], [["a", 3]])
    with pytest.raises(ValueError, match=r"references\[0\] is an empty sequence"):
        reward(["a"], [[]])


def test_invalid_value_policy_replaces_non_strings_and_flags_them() -> None:
    reward = get_reward("bleu", invalid_value=0.0)
    result = reward(["a b c d", None, 7, "a b c d"], ["a b c d"] * 4)
    np.testing.assert_array_equal(result.scores, [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(result.invalid, [False, True, True, False])


def test_empty_and_whitespace_completions_get_the_metric_value() -> None:
    result = get_reward("chrf")(["", "   ", "\t\n"], ["abc"] * 3)
    np.testing.assert_array_equal(result.scores, [0.0, 0.0, 0.0])


def test_long_cjk_and_german_text() -> None:
    long = "wort " * 200_000  # 1 MB
    result = parse_reward("0.5*bleu + 0.5*wer")([long, "北京欢迎你", "Straße in Köln"],
                                                [long, "北京欢迎你", "Strasse in Köln"])
    assert result.scores[0] == 1.0 and result.scores[1] == 1.0 and 0 < result.scores[2] < 1


def test_function_reward_checks_what_the_function_returns() -> None:
    with pytest.raises(ValueError, match="returned 1 scores for 2 samples"):
        FunctionReward(lambda c, r: [1.0])(["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match=r"bad\[1\] is not finite"):
        FunctionReward(lambda c, r: [0.5, math.nan], name="bad")(["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match=r"outside the declared bounds"):
        FunctionReward(lambda c, r: [0.5, 2.0])(["a", "b"], ["a", "b"])
    with pytest.raises(TypeError, match=r"\[0\] must be a number"):
        FunctionReward(lambda c, r: ["x", 1.0])(["a", "b"], ["a", "b"])
    per_sample = FunctionReward(lambda c, refs: float(c in refs), batched=False, name="contains")
    np.testing.assert_array_equal(per_sample(["a", "b"], [["a", "z"], "a"]).scores, [1.0, 0.0])


def test_function_reward_receives_extra_fields() -> None:
    def by_length(completions: list[str], references: list[tuple[str, ...]],
                  lengths: list[int]) -> list[float]:
        return [min(n / 10, 1.0) for n in lengths]

    result = FunctionReward(by_length)(["a", "b"], ["a", "b"], lengths=[5, 50])
    np.testing.assert_array_equal(result.scores, [0.5, 1.0])
    with pytest.raises(ValueError, match="lengths has 1 entries but there are 2"):
        FunctionReward(by_length)(["a", "b"], ["a", "b"], lengths=[5])


@pytest.mark.parametrize("option", ["off_policy_value", "invalid_value"])
def test_reward_options_reject_nan(option: str) -> None:
    with pytest.raises(ValueError, match=option):
        get_reward("bleu", **{option: float("nan")})


# -- signatures ----------------------------------------------------------------------------------------
def test_signatures_record_options_versions_and_policies() -> None:
    signature = parse_reward("0.7*bleu(tokenize='intl') + 0.3*chrf").signature
    for part in ("0.7*bleu(tokenize='intl') + 0.3*chrf", "tok:intl", "nc:6",
                 f"sacrebleu:{sacrebleu.__version__}", "range:0..1", "offpolicy:compute,in-stats",
                 "invalid:raise", "speechgrpo:"):
        assert part in signature
    assert "offpolicy:1,excluded" in get_reward("bleu", off_policy_value=1.0,
                                                off_policy_in_group_stats=False).signature


@pytest.mark.parametrize("spellings", [
    ["0.5*bleu", "0.5 * bleu", "0.50*bleu", "bleu*0.5", " 0.5*bleu\t"],
    ["bleu", "1*bleu", "1.0 * bleu", "bleu()"],
    ["0.7*bleu + 0.3*chrf", "0.7 * bleu+0.3*chrf", "0.70*bleu + 0.30*chrf"],
    ["gate(nonempty, bleu, threshold=0.8)", "gate( nonempty , bleu , threshold = 0.80 )"],
    ["bleu(tokenize='intl')", 'bleu(tokenize="intl")', "1*bleu( tokenize = 'intl' )"],
])
def test_equivalent_spellings_share_spec_signature_and_log_name(spellings: list[str]) -> None:
    from speechgrpo.grpo_adapters.trl import trl_reward

    rewards = [parse_reward(spec) for spec in spellings]
    assert len({r.spec for r in rewards}) == len({r.signature for r in rewards}) == 1
    assert len({trl_reward(spec).__name__ for spec in spellings}) == 1
    assert parse_reward(rewards[0].spec).signature == rewards[0].signature


def test_a_combinators_options_are_in_its_spec() -> None:
    for spec in ("gate(nonempty, bleu, threshold=0.8, value=-1.0)", "gdpo(0.5*bleu + 0.5*chrf, off_policy_value=1.0)",
                 "min(bleu, chrf, invalid_value=0.0)", "0.123456789*bleu + 0.876543211*chrf", "1e+300*bleu"):
        assert parse_reward(spec).spec == spec


def test_nrefs_is_the_runs_in_the_reward_and_the_batchs_in_a_result() -> None:
    reward = parse_reward("0.5*bleu + 0.5*chrf")
    assert "nrefs" not in reward.signature
    assert "|nrefs:1|" in reward(["a b"], ["a b"]).signature and "|nrefs:1|" in reward.signature
    assert "|nrefs:2|" in reward(["a b"], [("a b", "a c")]).signature and "|nrefs:var|" in reward.signature
    assert "|nrefs:1|" in reward(["a b"], ["a b"]).signature and "|nrefs:var|" in reward.signature


@pytest.mark.parametrize("references", [["the cat sat"], [("the cat sat", "a cat sat")],
                                        [("the cat sat", "a cat sat"), ("x",)]])
def test_each_sacrebleu_component_gives_sacrebleus_own_signature(references: list[Any]) -> None:
    reward = parse_reward("0.3*bleu(tokenize='intl', lowercase=True) + 0.3*chrfpp + 0.3*ter(no_punct=True) + 0.1*wer")
    hyps = ["the cat sat on"] * len(references)
    reward(hyps, references)
    refsets = [r if isinstance(r, tuple) else (r,) for r in references]
    streams = [[refs[k] if k < len(refs) else None for refs in refsets] for k in range(max(map(len, refsets)))]
    expected = {}
    for name, metric in (("bleu", sacrebleu.metrics.BLEU(tokenize="intl", lowercase=True, effective_order=True)),
                         ("chrfpp", sacrebleu.metrics.CHRF(word_order=2)),
                         ("1-ter", sacrebleu.metrics.TER(no_punct=True))):
        metric.corpus_score(hyps, streams)
        expected[name] = str(metric.get_signature())
    assert reward.sacrebleu_signatures() == expected


def test_signatures_are_stable_across_processes() -> None:
    code = "from speechgrpo.rewards import parse_reward; print(parse_reward('0.5*bleu + 0.5*rougeL').signature)"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1
    assert runs.pop().strip() == parse_reward("0.5*bleu + 0.5*rougeL").signature


@settings(max_examples=60, deadline=None)
@given(weights=st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=3),
       texts=st.lists(st.text(alphabet="abc .,", max_size=12), min_size=1, max_size=6))
def test_weighted_sum_property(weights: list[float], texts: list[str]) -> None:
    names = ["bleu", "chrf", "rougeL"][: len(weights)]
    spec = " + ".join(f"{w!r}*{n}" for w, n in zip(weights, names, strict=False))
    result = parse_reward(spec)(texts, ["abc a b."] * len(texts))
    expected = sum(w * get_reward(n)(texts, ["abc a b."] * len(texts)).scores
                   for w, n in zip(weights, names, strict=False))
    np.testing.assert_allclose(result.scores, expected, atol=1e-12)
    assert np.all(result.scores <= sum(weights) + 1e-12) and np.all(result.scores >= 0)


def test_directly_built_checks_and_gates_round_trip_through_their_spec() -> None:
    from speechgrpo.rewards import RegexMatch, Script, WordCount

    for check in (WordCount(min_words=3, max_words=9), RegexMatch("^D", mode="match"), Script("LATIN,GREEK", 0.8)):
        gate = Gate(check, get_reward("bleu"))
        again = parse_reward(gate.spec)
        np.testing.assert_array_equal(again(COMPLETIONS, REFS).scores, gate(COMPLETIONS, REFS).scores)
        assert again.spec == gate.spec

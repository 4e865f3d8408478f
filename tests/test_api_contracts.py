"""The API's edge: what users of sacrebleu, jiwer, rouge-score and TRL pass every day gives the right
number or a clear error, never a silently different score."""

from __future__ import annotations

import logging
import warnings

import jiwer
import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from speechgrpo.grpo_adapters.trl import trl_reward
from speechgrpo.metrics import BLEU, ROUGE, WER, corpus_bleu, corpus_chrf, corpus_ter, sentence_bleu, wer
from speechgrpo.rewards import WeightedSum, available_rewards, get_reward, parse_reward

HYPS = ["the cat sat on the mat", "a dog barked"]
SET1 = ["the cat sat on the mat", "a dog barked"]
SET2 = ["a cat was on the mat", "the dog was barking"]


# -- reference layout: sacrebleu's streams against our per-sample lists --------------------------------------
def test_sacrebleu_streams_as_many_as_hypotheses_are_refused_positionally_and_exact_by_keyword() -> None:
    expected = sacrebleu.corpus_bleu(HYPS, [SET1, SET2]).score
    assert expected == pytest.approx(100.0)
    for function in (corpus_bleu, corpus_chrf, corpus_ter):  # the ambiguous case: 2 reference sets, 2 hypotheses
        with pytest.raises(TypeError, match=r"refs=\[\[refs of sample 0\].*ref_streams=\[\[ref 1 of every sample\]"):
            function(HYPS, [SET1, SET2])
    with pytest.raises(TypeError, match="ref_streams="):
        BLEU().corpus_score(HYPS, [SET1, SET2])
    assert corpus_bleu(HYPS, ref_streams=[SET1, SET2]) == expected
    assert corpus_chrf(HYPS, ref_streams=[SET1, SET2]) == sacrebleu.corpus_chrf(HYPS, [SET1, SET2]).score
    assert corpus_ter(HYPS, ref_streams=[SET1, SET2]) == sacrebleu.corpus_ter(HYPS, [SET1, SET2]).score
    per_sample = [list(pair) for pair in zip(SET1, SET2, strict=True)]
    assert corpus_bleu(HYPS, refs=per_sample) == expected  # the same references, per sample
    with pytest.raises(TypeError, match="exactly one of refs= and ref_streams="):
        corpus_bleu(HYPS, refs=per_sample, ref_streams=[SET1, SET2])


def test_streams_with_missing_references_and_count_errors_explain_the_layout() -> None:
    streams = [["the cat", "a dog"], ["a cat", None]]
    assert corpus_bleu(["the cat", "a dog"], ref_streams=streams) == sacrebleu.corpus_bleu(
        ["the cat", "a dog"], streams).score
    with pytest.raises(ValueError, match=r"ref_streams\[1\] has 1 references but there are 2 hypotheses"):
        corpus_bleu(HYPS, ref_streams=[SET1, ["x"]])
    with pytest.raises(ValueError, match="not sacrebleu's reference streams"):
        sentence_bleu(["a", "b", "c"], [["a", "b", "c"]])


# -- dict references ------------------------------------------------------------------------------------------
def test_squad_style_dict_references_are_read_by_key_not_iterated() -> None:
    bleu = parse_reward("bleu")
    squad = {"text": ["Paris"], "answer_start": [0]}
    assert bleu(["Paris"], [squad]).tolist() == [1.0]
    assert bleu(["answer_start"], [squad]).tolist() == bleu(["answer_start"], ["Paris"]).tolist() == [0.0]
    assert sentence_bleu(["Paris"], [{"answers": "Paris"}]).tolist() == sentence_bleu(["Paris"], ["Paris"]).tolist()
    assert sentence_bleu(["Paris"], ["Paris"]).tolist() == [pytest.approx(100.0)]
    with pytest.raises(ValueError, match=r"references\[1\] is a dict without any of the reference keys"):
        bleu(["a", "b"], ["a", {"id": 3}])


# -- argument order: keywords everywhere ----------------------------------------------------------------------
def test_keywords_avoid_argument_order_mistakes() -> None:
    hyp, ref = "a b", "a b c d"
    assert jiwer.wer(reference=ref, hypothesis=hyp) == 0.5
    assert wer(hyps=[hyp], refs=[ref]).tolist() == [0.5] == WER().score(hyps=[hyp], refs=[ref]).tolist()
    assert wer([ref], [hyp]).tolist() == [1.0]  # the swap the keywords prevent
    reward = get_reward("wer")
    assert reward(completions=[hyp], references=[ref]).tolist() == [0.5]
    assert corpus_bleu(hyps=HYPS, refs=SET1) == sacrebleu.corpus_bleu(HYPS, [SET1]).score


# -- groups inferred ------------------------------------------------------------------------------------------
def test_group_aware_reward_warns_once_when_it_infers_groups() -> None:
    completions = ["yes", "no", "yes", "yes", "no", "no"]
    references = ["yes"] * 6  # two prompts that share the answer "yes"
    reward = parse_reward("gdpo(1*exact_match)")
    with pytest.warns(UserWarning, match="groups were inferred from identical references"):
        merged = reward(completions, references).scores
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per reward object
        reward(completions, references)
        right = reward(completions, references, group_ids=[0, 0, 0, 1, 1, 1]).scores
    np.testing.assert_allclose(merged, [1, -1, 1, 1, -1, -1])
    np.testing.assert_allclose(right, [0.7071068, -1.4142136, 0.7071068, 1.4142136, -0.7071068, -0.7071068])


# -- corpus BLEU defaults and signatures ----------------------------------------------------------------------
def test_corpus_bleu_defaults_are_sacrebleus_and_the_signature_says_so() -> None:
    hyps = ["Paris", "the cat"]
    assert sacrebleu.corpus_bleu(hyps, [hyps]).score == 0.0
    assert corpus_bleu(hyps, refs=hyps) == 0.0
    assert corpus_bleu(hyps, refs=hyps, effective_order=True) == pytest.approx(100.0)
    assert "eff:no" in BLEU(effective_order=False).signature and "eff:yes" in BLEU().signature
    assert "|nrefs:2|" in BLEU().signature_for([["a", "b"], ["c", "d"]])
    assert "|nrefs:var|" in BLEU().signature_for([["a", "b"], "c"])
    assert "|nrefs:1|" in get_reward("bleu")(["a"], ["a"]).signature


# -- names and scales -----------------------------------------------------------------------------------------
def test_error_rate_rewards_name_their_component_as_one_minus_the_rate() -> None:
    result = parse_reward("0.5*wer + 0.5*bleu")(["a b"], ["a b c d"])
    assert set(result.components) == {"1-wer", "bleu"}
    assert result.components["1-wer"].tolist() == [0.5] and wer(["a b"], ["a b c d"]).tolist() == [0.5]
    assert set(get_reward("ter")(["a"], ["a b"]).components) == {"1-ter"}


# -- smaller gaps ---------------------------------------------------------------------------------------------
def test_unknown_keyword_is_named() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        get_reward("bleu")(["a"], ["a"], foo=1)


@pytest.mark.parametrize("name", sorted(available_rewards()))
def test_lone_surrogates_get_an_index_naming_error_in_every_reward(name: str) -> None:
    options = {"pattern": "a"} if name == "regex" else {"scripts": "LATIN"} if name == "script" else {}
    reward = get_reward(name, **options)
    with pytest.raises(ValueError, match=r"completions\[1\] is not valid Unicode: '\\ud800' at position 2"):
        reward(["a b", "a \ud800"], ["a b", "a b"])
    with pytest.raises(ValueError, match=r"references\[0\]\[1\] is not valid Unicode"):
        reward(["a b"], [["a b", "x\udcff"]])
    lenient = get_reward(name, invalid_value=0.0, **options)
    result = lenient(["a b", "a \ud800"], ["a b", "a b"])
    assert result.invalid.tolist() == [False, True] and result.scores[1] == 0.0


def test_a_lone_surrogate_past_the_first_chunk_of_checked_strings_is_found_and_named() -> None:
    """Strings are checked a few thousand at a time: a bad one in a later chunk, or a surrogate pair split
    across two strings of a chunk, is still found, with its index."""
    hyps = ["gut"] * 10_000
    hyps[9_001] = "x\udc80"
    with pytest.raises(ValueError, match=r"completions\[9001\] is not valid Unicode"):
        get_reward("bleu")(hyps, ["gut"] * 10_000)
    refs: list[object] = [["gut"]] * 10_000
    refs[5_000] = ["gut", "\ud83d"]
    with pytest.raises(ValueError, match=r"references\[5000\]\[1\] is not valid Unicode"):
        get_reward("wer")(["gut"] * 10_000, refs)
    with pytest.raises(ValueError, match=r"completions\[1\] is not valid Unicode"):  # "\ud83d" + "\ude00"
        get_reward("chrf")(["a", "\ud83d", "\ude00"], ["a", "b", "c"])


def test_adapter_takes_any_sequence_of_strings() -> None:
    """Completions and labels need not be lists: a deque (no slicing) is checked and scored like a list."""
    from collections import deque

    from speechgrpo.grpo_adapters import AdapterReward

    adapter = AdapterReward("bleu")
    expected = adapter.score(["the cat sat", "a dog"], ["the cat sat", "a cat"])
    for safe in (False, True):
        got = adapter.score(deque(["the cat sat", "a dog"]), deque(["the cat sat", "a cat"]), safe=safe)
        assert got.scores == expected.scores and not got.errors


def test_adapters_give_only_the_unencodable_sample_no_score_and_say_none(caplog: pytest.LogCaptureFixture) -> None:
    reward = trl_reward("bleu", on_error="none")
    with caplog.at_level(logging.ERROR, logger="speechgrpo.adapters"):
        scores = reward(prompts=["p", "p"], completions=["the cat", "the \ud800"], reference=["the cat", "the cat"])
    assert scores == [1.0, None]
    message = next(r.getMessage() for r in caplog.records if "sample 1" in r.getMessage())
    assert "sample 1 gets None" in message and "lone surrogate" in message


def test_rouge_takes_a_list_of_types_like_rouge_score() -> None:
    hyps = ["the cat sat on the mat", "a dog"]
    refs = [["the cat is on the mat", "a cat sat"], "the dog barked"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"])
    metric = ROUGE(["rouge1", "rougeL"])
    components = metric.score_components(hyps, refs)
    for i, (hyp, ref) in enumerate(zip(hyps, refs, strict=True)):
        expected = scorer.score_multi([ref] if isinstance(ref, str) else ref, hyp)
        for rouge_type in ("rouge1", "rougeL"):
            for measure in ("precision", "recall", "fmeasure"):
                assert components[f"{rouge_type}_{measure}"][i] == getattr(expected[rouge_type], measure)
    np.testing.assert_array_equal(metric.score(hyps, refs), components["rouge1_fmeasure"])
    assert "type:rouge1+rougeL" in metric.signature
    with pytest.raises(ValueError, match="unknown rouge_type='rougeX'"):
        ROUGE(["rouge1", "rougeX"])


def test_reward_names_suggest_the_close_one() -> None:
    with pytest.raises(KeyError, match="did you mean 'bleu'"):
        get_reward("BLEU")
    with pytest.raises(ValueError, match="did you mean 'rougeL'"):
        parse_reward("0.5*rougel + 0.5*bleu")


def test_arithmetic_on_rewards_matches_the_spec_grammar() -> None:
    combined = 0.7 * get_reward("bleu") + get_reward("chrf") * 0.3
    spec = parse_reward("0.7*bleu + 0.3*chrf")
    assert isinstance(combined, WeightedSum) and combined.weights == [0.7, 0.3] and combined.spec == spec.spec
    args = (["the cat sat", "a dog"], ["the cat sat down", "the dog"])
    np.testing.assert_array_equal(combined(*args).scores, spec(*args).scores)
    assert (get_reward("bleu") + get_reward("chrf") + get_reward("wer")).weights == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="negative weights are not allowed"):
        _ = -0.5 * get_reward("bleu")
    with pytest.raises(TypeError):
        _ = "0.5" * get_reward("bleu")  # type: ignore[operator]

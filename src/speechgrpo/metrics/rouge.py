"""ROUGE-N, ROUGE-L and ROUGE-Lsum with rouge-score's semantics.

With the default tokenizer the numbers equal ``rouge_score.rouge_scorer.RougeScorer`` exactly: the
same tokens, the same n-gram clipping, an exact LCS length, the same F-measure arithmetic and, with
several references, the reference of highest F. Without a stemmer and with numba, the whole batch's
tokens become word ids in one compiled pass and ROUGE-N/L are counted in numba (BLEU's clipped-count
kernel, an LCS kernel); otherwise rouge-score's tokenizer is called (the Porter stemmer memoised per
word) with rapidfuzz's bit-parallel LCS.

rouge-score deletes every non-ASCII character (``'Straße'`` becomes ``['stra', 'e']``, Chinese text
becomes nothing). ``tokenizer="unicode"`` is the opt-in alternative for other languages: NFKC,
lower-casing, runs of letters/digits as words, and every CJK character as its own token.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from rapidfuzz.distance import LCSseq
from rouge_score import tokenize as rouge_tokenize

from speechgrpo._validation import References
from speechgrpo.metrics.base import Metric, PairIndex, Pairs, cached_metric, index_pairs, package_version
from speechgrpo.metrics.jit import compiled_available
from speechgrpo.metrics.word_ids import WordIds, rouge_word_ids

Tokens = list[str]
TOKENIZERS = ("default", "unicode")
_MEASURES = ("precision", "recall", "fmeasure")
# CJK ideographs, kana and Hangul syllables become one token per character.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_UNICODE_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


def unicode_tokenize(text: str) -> Tokens:
    """Unicode-aware ROUGE tokenizer: NFKC, casefold, words of letters/digits, CJK per character."""
    return _UNICODE_TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


class _StemmingTokenizer:
    """rouge-score's tokenizer, with the Porter stemmer memoised per word (same output, fewer calls)."""

    def __init__(self, use_stemmer: bool) -> None:
        self._stems: dict[str, str] = {}
        self._stemmer = None
        if use_stemmer:
            from nltk.stem import porter  # rouge-score's dependency; importing nltk takes ~2 s

            self._porter = porter.PorterStemmer()
            self._stemmer = self

    def stem(self, word: str) -> str:
        stem = self._stems.get(word)
        if stem is None:
            stem = self._stems[word] = self._porter.stem(word)
        return stem

    def __call__(self, text: str) -> Tokens:
        if self._stemmer is None:
            # rouge-score's tokenize without a stemmer: after the substitution only [a-z0-9] and spaces
            # remain, so its final validity filter only drops empty strings, which split() never makes.
            cleaned: str = rouge_tokenize.NON_ALPHANUM_RE.sub(" ", text.lower())
            return cleaned.split()
        tokens: Tokens = rouge_tokenize.tokenize(text, self._stemmer)
        return tokens


def _prf_from_counts(overlap: np.ndarray, prediction_total: np.ndarray, target_total: np.ndarray) -> np.ndarray:
    """rouge-score's precision, recall and ``scoring.fmeasure`` elementwise (same IEEE operations)."""
    precision = overlap / prediction_total
    recall = overlap / target_total
    total = precision + recall
    f = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return np.stack([precision, recall, f], axis=1)


def _ngram_prf(target_ngrams: list[Counter[tuple[str, ...]]],
               prediction_ngrams: list[Counter[tuple[str, ...]]]) -> np.ndarray:
    # rouge_score.rouge_scorer._score_ngrams
    overlap = np.array([sum(min(count, prediction[g]) for g, count in target.items())
                        for target, prediction in zip(target_ngrams, prediction_ngrams, strict=True)], dtype=np.float64)
    prediction_total = np.array([max(sum(c.values()), 1) for c in prediction_ngrams], dtype=np.float64)
    target_total = np.array([max(sum(c.values()), 1) for c in target_ngrams], dtype=np.float64)
    return _prf_from_counts(overlap, prediction_total, target_total)


def _compiled_ngram_statistics(words: WordIds, max_n: int, hyp_ids: np.ndarray, ref_ids: np.ndarray) -> np.ndarray:
    """Each (hypothesis, reference) combination's BLEU statistics up to order ``max_n`` against that one reference
    (each text its own reference set): ``[hyp_len, ref_len, correct_1..max_n, total_1..max_n]``, every ROUGE-N
    up to ``max_n`` in one pass."""
    from speechgrpo.metrics.ngram_kernels import clipped_statistics, ngram_keys

    keys = ngram_keys(words.ids, words.starts, words.ends, words.vocab_size, max_n)
    texts = np.arange(words.starts.size + 1, dtype=np.int64)
    by_ref = np.argsort(ref_ids, kind="stable")
    stats = np.empty((hyp_ids.size, 2 + 2 * max_n), dtype=np.int64)
    stats[by_ref] = clipped_statistics(keys, words.starts, words.ends, hyp_ids[by_ref], ref_ids[by_ref], texts,
                                       texts[:-1], max_n)
    return stats


def _ngram_prf_from_statistics(stats: np.ndarray, n: int) -> np.ndarray:
    """:func:`_ngram_prf` of order ``n`` from :func:`_compiled_ngram_statistics`: the clipped overlap is BLEU's
    clipped count of that order, the totals the n-gram counts of each side."""
    max_n = (stats.shape[1] - 2) // 2
    prediction_total = stats[:, 1 + max_n + n]
    target_total = np.maximum(stats[:, 1] - n + 1, 0)
    return _prf_from_counts(stats[:, 1 + n].astype(np.float64), np.maximum(prediction_total, 1).astype(np.float64),
                            np.maximum(target_total, 1).astype(np.float64))


@dataclass
class _Combinations:
    """Every (pair, reference) combination of a batch as text ids, and the batch's words (rouge-score's
    default tokens), tokenized on first use and shared by every ROUGE type."""

    index: PairIndex
    rows: np.ndarray  # the pair of each combination
    ref_ids: np.ndarray
    hyp_ids: np.ndarray
    #: the highest ROUGE-N order asked for: every order up to it is counted in one pass
    max_n: int = 0
    _words: WordIds | None = None
    _ngram_statistics: np.ndarray | None = None

    def words(self) -> WordIds:
        if self._words is None:
            self._words = rouge_word_ids(self.index.texts)
        return self._words

    def ngram_statistics(self) -> np.ndarray:
        if self._ngram_statistics is None:
            self._ngram_statistics = _compiled_ngram_statistics(self.words(), self.max_n, self.hyp_ids, self.ref_ids)
        return self._ngram_statistics


def _lcs_prf(lcs: np.ndarray, prediction_len: np.ndarray, target_len: np.ndarray) -> np.ndarray:
    # rouge_score.rouge_scorer._score_lcs from the LCS and token lengths; empty sides score 0
    lcs, prediction_len, target_len = (np.asarray(x, dtype=np.float64) for x in (lcs, prediction_len, target_len))
    empty = (prediction_len == 0) | (target_len == 0)
    prf = _prf_from_counts(lcs, np.maximum(prediction_len, 1), np.maximum(target_len, 1))
    prf[empty] = 0.0
    return prf


def _few_prf(rouge_type: str, target: Tokens, prediction: Tokens) -> tuple[float, float, float]:
    """rouge-score's precision, recall and F-measure of one (target, prediction) pair, for ROUGE-N and ROUGE-L."""
    if rouge_type == "rougeL":
        if not target or not prediction:
            return (0.0, 0.0, 0.0)
        overlap = float(LCSseq.similarity(target, prediction))
        prediction_total, target_total = float(len(prediction)), float(len(target))
    else:
        n = int(rouge_type[5:])
        target_counts = Counter(zip(*(target[i:] for i in range(n)), strict=False))
        prediction_counts = Counter(zip(*(prediction[i:] for i in range(n)), strict=False))
        common = target_counts.keys() & prediction_counts.keys()
        overlap = float(sum(min(target_counts[g], prediction_counts[g]) for g in common))
        prediction_total = float(max(len(prediction) - n + 1, 1))
        target_total = float(max(len(target) - n + 1, 1))
    precision = overlap / prediction_total
    recall = overlap / target_total
    total = precision + recall
    return (precision, recall, 2 * precision * recall / total if total > 0 else 0.0)


class ROUGE(Metric):
    """ROUGE precision / recall / F-measure (0-1).

    Args:
        rouge_type: ``rouge1`` .. ``rouge9``, ``rougeL`` or ``rougeLsum`` (newline-separated sentences), or
            a list of them as rouge-score's ``RougeScorer(["rouge1", "rougeL"])``: then the components are
            ``<type>_<measure>`` for every type and :meth:`score` returns the first type's ``measure``.
        measure: component returned by :meth:`score`: ``fmeasure`` (default), ``precision``, ``recall``.
        use_stemmer: Porter-stem words longer than 3 characters (rouge-score's option).
        tokenizer: ``default`` (rouge-score's ASCII tokenizer) or ``unicode``.
    """

    backends = ("rouge-score",)
    few_pairs = 8

    def __init__(self, rouge_type: str | Sequence[str] = "rougeL", measure: str = "fmeasure",
                 use_stemmer: bool = False, tokenizer: str = "default") -> None:
        types = (rouge_type,) if isinstance(rouge_type, str) else tuple(rouge_type)
        if not types:
            raise ValueError("rouge_type is an empty list; give at least one ROUGE type")
        for value in types:
            if not isinstance(value, str) or not re.fullmatch(r"rouge[1-9]|rougeL|rougeLsum", value):
                raise ValueError(f"unknown rouge_type={value!r}; use rouge1..rouge9, rougeL or rougeLsum "
                                 "(or a list of them)")
        if len(set(types)) != len(types):
            raise ValueError(f"rouge_type lists a type twice: {list(types)}")
        if measure not in ("fmeasure", "precision", "recall"):
            raise ValueError(f"unknown measure={measure!r}; use fmeasure, precision or recall")
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer={tokenizer!r}; use one of {TOKENIZERS}")
        self.rouge_types = types
        self.rouge_type = types[0]
        self.measure = measure
        self.use_stemmer = use_stemmer
        self.tokenizer = tokenizer
        self._tokenize: Callable[[str], Tokens] = (
            _StemmingTokenizer(use_stemmer) if tokenizer == "default" else unicode_tokenize)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.rouge_type if len(self.rouge_types) == 1 else "rouge"

    @property
    def primary(self) -> str:
        return self.measure if len(self.rouge_types) == 1 else f"{self.rouge_type}_{self.measure}"

    def options(self) -> dict[str, Any]:
        stem = f"porter(nltk-{package_version('nltk')})" if self.use_stemmer else False
        return {"type": "+".join(self.rouge_types), "measure": self.measure, "stem": stem, "tok": self.tokenizer}

    def _compiled(self, rouge_type: str) -> bool:
        """Whether ``rouge_type`` is counted in numba (rouge-score's default tokens, no stemmer)."""
        return (compiled_available() and self.tokenizer == "default" and not self.use_stemmer
                and rouge_type != "rougeLsum")

    def _dedupes_pairs(self) -> bool:
        # the compiled kernels score a pair of short texts faster than its repeats are found
        return not all(map(self._compiled, self.rouge_types))

    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        if len(pairs) <= self.few_pairs and "rougeLsum" not in self.rouge_types:
            return self._score_few(pairs)
        # Each distinct text is indexed and tokenized once for all the types (a group's shared reference once
        # per batch), and every (pair, reference) combination is scored; rouge-score's score_multi then keeps,
        # per pair, the first reference with the highest F-measure.
        index = index_pairs(pairs)
        per_pair = np.diff(index.refset_ptr)[index.pair_refset]
        rows = np.repeat(np.arange(len(pairs)), per_pair)
        first = np.repeat(index.refset_ptr[index.pair_refset] - (np.cumsum(per_pair) - per_pair), per_pair)
        max_n = max((int(t[5:]) for t in self.rouge_types if t[5:].isdigit()), default=0)
        combos = _Combinations(index, rows, index.refset_texts[first + np.arange(rows.size)], index.pair_hyp[rows],
                               max_n)
        if len(self.rouge_types) == 1:
            return self._score_type(combos, len(pairs), self.rouge_type)
        return {f"{rouge_type}_{key}": values for rouge_type in self.rouge_types
                for key, values in self._score_type(combos, len(pairs), rouge_type).items()}

    def _score_few(self, pairs: Pairs) -> dict[str, np.ndarray]:
        """:meth:`_score_pairs` one pair at a time in Python floats (the same IEEE operations): for a few pairs,
        indexing the batch and dispatching the kernels cost more than the pairs."""
        single = len(self.rouge_types) == 1
        out: dict[str, list[float]] = {("" if single else f"{rouge_type}_") + measure: []
                                       for rouge_type in self.rouge_types for measure in _MEASURES}
        for hyp, refs in pairs:
            prediction = self._tokenize(hyp)
            targets = [self._tokenize(ref) for ref in refs]
            for rouge_type in self.rouge_types:
                best = max((_few_prf(rouge_type, target, prediction) for target in targets), key=itemgetter(2))
                for measure, value in zip(_MEASURES, best, strict=True):
                    out[("" if single else f"{rouge_type}_") + measure].append(value)
        return {key: np.array(values, dtype=np.float64) for key, values in out.items()}

    def _score_type(self, combos: _Combinations, n_pairs: int, rouge_type: str) -> dict[str, np.ndarray]:
        index, rows, ref_ids, hyp_ids = combos.index, combos.rows, combos.ref_ids, combos.hyp_ids
        if self._compiled(rouge_type):  # rouge-score's tokens as word ids, counted in numba
            words = combos.words()
            lengths = words.ends - words.starts
            if rouge_type == "rougeL":
                from speechgrpo.metrics.lcs_kernels import lcs_lengths

                prf = _lcs_prf(lcs_lengths(words.ids, words.starts, words.ends, ref_ids, hyp_ids),
                               lengths[hyp_ids], lengths[ref_ids])
            else:
                prf = _ngram_prf_from_statistics(combos.ngram_statistics(), int(rouge_type[5:]))
        elif rouge_type == "rougeLsum":
            from rouge_score import rouge_scorer  # imports all of nltk (~2 s): only when needed

            sentences = [[self._tokenize(s) for s in text.split("\n") if s] for text in index.texts]
            scores = [rouge_scorer._summary_level_lcs(sentences[r], sentences[h]) for r, h in zip(ref_ids, hyp_ids,
                                                                                                    strict=True)]
            prf = np.array([(x.precision, x.recall, x.fmeasure) for x in scores], dtype=np.float64).reshape(-1, 3)
        else:
            tokens = [self._tokenize(text) for text in index.texts]
            if rouge_type == "rougeL":  # rapidfuzz's bit-parallel LCS
                lcs = [LCSseq.similarity(tokens[r], tokens[h]) for r, h in zip(ref_ids, hyp_ids, strict=True)]
                lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
                prf = _lcs_prf(np.array(lcs), lengths[hyp_ids], lengths[ref_ids])
            else:
                n = int(rouge_type[5:])
                counts = [Counter(zip(*(toks[i:] for i in range(n)), strict=False)) for toks in tokens]
                prf = _ngram_prf([counts[r] for r in ref_ids], [counts[h] for h in hyp_ids])
        out = np.zeros((n_pairs, 3), dtype=np.float64)
        if len(rows) == n_pairs:  # one reference per pair
            out[rows] = prf
        else:
            best = np.full(n_pairs, -1.0)
            for combo, row in enumerate(rows.tolist()):
                if prf[combo, 2] > best[row]:
                    best[row] = prf[combo, 2]
                    out[row] = prf[combo]
        return {"precision": out[:, 0], "recall": out[:, 1], "fmeasure": out[:, 2]}


def rouge(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample ROUGE (0-1); ``options`` are those of :class:`ROUGE` (default ROUGE-L F)."""
    return cached_metric(ROUGE, **options).score(hyps, refs)

"""Word and character error rate, identical to jiwer, computed with rapidfuzz directly.

jiwer's default transforms are reproduced exactly: for WER, runs of two or more whitespace
characters become one space, the text is stripped and split on ``" "`` (so a lone tab stays inside
a word, as in jiwer); for CER, the text is stripped and every character (spaces included) is a unit.
The edit distance is rapidfuzz's Levenshtein distance on those units, which is what jiwer computes
through ``Levenshtein.opcodes`` and alignment objects, without that overhead.

Edge cases follow jiwer: an empty reference gives the number of inserted units (0 for an empty
hypothesis), so the rate is unbounded above 1. With several references a sample takes the
reference with the lowest rate (jiwer has no multi-reference mode).

Text normalization, off by default (so that the scores equal jiwer's defaults), mirrors jiwer's
common transforms, applied to hypotheses and references in this order before the default ones:
``lowercase`` (``ToLowerCase``), ``remove_punctuation`` (``RemovePunctuation``: every Unicode
character of category P), ``normalize_whitespace`` (``RemoveWhiteSpace(replace_by_space=True)``,
``RemoveMultipleSpaces``, ``Strip``: each ASCII whitespace character, jiwer's ``string.whitespace``, becomes
a space, then every run of two or more whitespace characters one space; a lone U+001F or no-break space stays).
"""

from __future__ import annotations

import functools
import re
import string
import sys
import unicodedata
from abc import abstractmethod
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cpdist

from speechgrpo._validation import References
from speechgrpo.metrics.base import Metric, Pairs, cached_metric, index_pairs
from speechgrpo.metrics.jit import compiled_available
from speechgrpo.metrics.word_ids import jiwer_word_ids

_MULTIPLE_SPACES = re.compile(r"\s\s+")
_WHITESPACE_OTHER_THAN_SPACE = re.compile(r"[^\S ]")
#: jiwer's RemoveWhiteSpace(replace_by_space=True): the characters of ``string.whitespace`` (ASCII only) to a space
_ASCII_WHITESPACE_TO_SPACE = str.maketrans(dict.fromkeys(string.whitespace, " "))


@functools.cache
def _punctuation_table() -> dict[int, None]:
    """jiwer's RemovePunctuation: every code point whose Unicode category starts with P, deleted."""
    return dict.fromkeys(c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)).startswith("P"))


def jiwer_words(text: str) -> list[str]:
    """jiwer ``wer_default``: RemoveMultipleSpaces, Strip, ReduceToListOfListOfWords."""
    if not _WHITESPACE_OTHER_THAN_SPACE.search(text):
        return text.split()  # only plain spaces: the three transforms reduce to str.split()
    return [w for w in _MULTIPLE_SPACES.sub(" ", text).strip().split(" ") if w]


def jiwer_chars(text: str) -> str:
    """jiwer ``cer_default``: Strip, ReduceToListOfListOfChars."""
    return text.strip()


class _ErrorRate(Metric):
    """Args (all off by default, as jiwer's defaults): ``lowercase``, ``remove_punctuation`` and
    ``normalize_whitespace``, jiwer's transforms of the same names (see the module docstring)."""

    higher_is_better = False
    backends = ("jiwer", "rapidfuzz")
    few_pairs = 8

    def __init__(self, lowercase: bool = False, remove_punctuation: bool = False,
                 normalize_whitespace: bool = False) -> None:
        for option, value in (("lowercase", lowercase), ("remove_punctuation", remove_punctuation),
                              ("normalize_whitespace", normalize_whitespace)):
            if not isinstance(value, bool):
                raise TypeError(f"{option} must be True or False, got {value!r}")
        self.lowercase = lowercase
        self.remove_punctuation = remove_punctuation
        self.normalize_whitespace = normalize_whitespace

    def options(self) -> dict[str, Any]:
        return {"case": "lc" if self.lowercase else "mixed", "punct": "removed" if self.remove_punctuation else "kept",
                "space": "normalized" if self.normalize_whitespace else "jiwer"}

    def _normalize(self, text: str) -> str:
        if self.lowercase:
            text = text.lower()
        if self.remove_punctuation:
            text = text.translate(_punctuation_table())
        if self.normalize_whitespace:
            text = _MULTIPLE_SPACES.sub(" ", text.translate(_ASCII_WHITESPACE_TO_SPACE)).strip()
        return text

    @abstractmethod
    def _units(self, text: str) -> Sequence[str]:
        """Split a text into the units the edit distance runs over."""

    def _best_reference(self, hyp: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[int, int]:
        """``(edits, reference length)`` against the reference of lowest rate (the first on ties)."""
        best = (0, 0)
        best_rate = float("inf")
        for ref in references:
            edits = Levenshtein.distance(ref, hyp)
            rate = self._rate(edits, len(ref))
            if rate < best_rate:
                best, best_rate = (edits, len(ref)), rate
        return best

    def statistics(self, pairs: Pairs) -> np.ndarray:
        """Per pair ``[edits, reference length]`` for the best-matching reference (lowest rate, first on ties)."""
        if len(pairs) <= self.few_pairs:
            return np.array(self._few_statistics(pairs), dtype=np.int64).reshape(len(pairs), 2)
        index = None
        if self._compiled_words and compiled_available():  # WER: jiwer's words as ids, edits in numba
            index = index_pairs(pairs)
            words = jiwer_word_ids(self._normalized(index.texts))  # None where a text holds a line break
            if words is not None:
                from speechgrpo.metrics.levenshtein_kernels import best_reference_edits

                return best_reference_edits(words.ids, words.starts, words.ends, index.pair_hyp, index.pair_refset,
                                            index.refset_ptr, index.refset_texts)
        if max(map(len, map(itemgetter(1), pairs))) == 1:  # one reference a pair (the usual batch): no index
            hyp_seqs = self._all_units(self._normalized(list(map(itemgetter(0), pairs))))
            return self._pairwise(self._all_units(self._normalized([refs[0] for _, refs in pairs])), hyp_seqs)
        if index is None:
            index = index_pairs(pairs)
        sequences = self._all_units(self._normalized(index.texts))
        ptr, ref_texts = index.refset_ptr.tolist(), index.refset_texts.tolist()
        rows = [self._best_reference(sequences[hyp], [sequences[r] for r in ref_texts[ptr[refset]:ptr[refset + 1]]])
                for hyp, refset in zip(index.pair_hyp.tolist(), index.pair_refset.tolist(), strict=True)]
        return np.array(rows, dtype=np.int64).reshape(len(pairs), 2)

    def _normalized(self, texts: list[str]) -> list[str]:
        if self.lowercase or self.remove_punctuation or self.normalize_whitespace:
            return [self._normalize(text) for text in texts]
        return texts

    @staticmethod
    def _pairwise(ref_seqs: list[Sequence[str]], hyp_seqs: list[Sequence[str]]) -> np.ndarray:
        """``[edits, reference length]`` of each pair, by rapidfuzz's pairwise batch call (one worker): the
        per-pair Python call costs more than the distance."""
        edits = cpdist(ref_seqs, hyp_seqs, scorer=Levenshtein.distance, dtype=np.int64, workers=1)
        ref_lens = np.fromiter(map(len, ref_seqs), dtype=np.int64, count=len(ref_seqs))
        return np.stack([edits, ref_lens], axis=1)

    def _few_statistics(self, pairs: Pairs) -> list[tuple[int, int]]:
        """:meth:`statistics` one pair at a time: for a few pairs, indexing the batch costs more than the distances."""
        units = self._prepared_units
        rows = []
        for hyp, refs in pairs:
            if len(refs) == 1:  # one reference: its distance and length
                ref = units(refs[0])
                rows.append((Levenshtein.distance(ref, units(hyp)), len(ref)))
            else:
                rows.append(self._best_reference(units(hyp), [units(ref) for ref in refs]))
        return rows

    def _all_units(self, texts: list[str]) -> list[Sequence[str]]:
        return list(map(self._units, texts))

    def _prepared_units(self, text: str) -> Sequence[str]:
        if self.lowercase or self.remove_punctuation or self.normalize_whitespace:
            text = self._normalize(text)
        return self._units(text)

    #: WER's words are jiwer's, which the compiled word-id kernel splits (:func:`jiwer_word_ids`)
    _compiled_words = False

    def _dedupes_pairs(self) -> bool:
        # the compiled word edits (bit-parallel) cost less than finding a batch's repeated pairs
        return not (self._compiled_words and compiled_available())

    @staticmethod
    def _rate(edits: float, ref_len: float) -> float:
        # jiwer: an empty reference returns the insertion count itself.
        return float(edits) / float(ref_len) if ref_len else float(edits)

    def primary_of_pairs(self, pairs: Pairs) -> list[float]:
        if len(pairs) <= self.few_pairs:  # in Python floats: a few array operations cost more than the pairs
            return [self._rate(*row) for row in self._few_statistics(pairs)]
        return super().primary_of_pairs(pairs)

    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        if len(pairs) <= self.few_pairs:
            return {self.name: np.array(self.primary_of_pairs(pairs), dtype=np.float64)}
        edits, ref_lens = self.statistics(pairs).astype(np.float64).T
        # IEEE division, as jiwer's float(S + D + I) / float(H + S + D); an empty reference gives the edits
        return {self.name: np.divide(edits, ref_lens, out=edits.copy(), where=ref_lens > 0)}

    def _corpus_score(self, pairs: Pairs) -> float:
        edits, ref_len = self.statistics(pairs).sum(axis=0).tolist()
        return self._rate(edits, ref_len)


class WER(_ErrorRate):
    """Word error rate (0 is perfect, unbounded above), identical to ``jiwer.wer``."""

    name = "wer"
    _compiled_words = True

    def _units(self, text: str) -> Sequence[str]:
        return jiwer_words(text)


class CER(_ErrorRate):
    """Character error rate (0 is perfect, unbounded above), identical to ``jiwer.cer``."""

    name = "cer"

    def _units(self, text: str) -> Sequence[str]:
        return jiwer_chars(text)

    def _all_units(self, texts: list[str]) -> list[Sequence[str]]:
        return list(map(str.strip, texts))  # jiwer_chars of every text, without a Python call per text


def wer(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample word error rate (jiwer semantics)."""
    return cached_metric(WER, **options).score(hyps, refs)


def cer(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample character error rate (jiwer semantics)."""
    return cached_metric(CER, **options).score(hyps, refs)


def corpus_wer(hyps: Sequence[str], refs: References, **options: Any) -> float:
    """Corpus WER: summed edits over summed reference words, as ``jiwer.wer(list, list)``."""
    return cached_metric(WER, **options).corpus_score(hyps, refs=refs)


def corpus_cer(hyps: Sequence[str], refs: References, **options: Any) -> float:
    """Corpus CER: summed edits over summed reference characters, as ``jiwer.cer(list, list)``."""
    return cached_metric(CER, **options).corpus_score(hyps, refs=refs)

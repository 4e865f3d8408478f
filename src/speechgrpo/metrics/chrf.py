"""chrF and chrF++ with sacrebleu semantics, computed group-aware.

Equal to ``sacrebleu.metrics.CHRF(...).sentence_score(h, refs).score``: character n-grams of the
whitespace-stripped text, optional word n-grams after sacrebleu's punctuation splitting (chrF++),
the best-F reference among several, and both scoring modes (sacreBLEU's effective-order averaging by
default, chrF++.py-style eps smoothing on request). Reference n-grams are extracted once per batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from speechgrpo._validation import References
from speechgrpo.metrics._formulas import chrf_from_statistics
from speechgrpo.metrics._reference_cache import ReferenceCache
from speechgrpo.metrics.base import Metric, Pairs, cached_metric, index_pairs, sacrebleu_signature_of
from speechgrpo.metrics.jit import compiled_available
from speechgrpo.metrics.word_ids import CHRF_PUNCTUATION, WordIds, char_ids, chrf_word_ids, ids_of_token_lists

_PUNCTS = frozenset(CHRF_PUNCTUATION)

NgramStats = list[Counter[str]]


def _split_punctuation(sentence: str) -> list[str]:
    # sacrebleu's CHRF._remove_punctuation: split one leading or trailing punctuation char per word.
    words: list[str] = []
    for word in sentence.split():
        if len(word) == 1:
            words.append(word)
        elif word[-1] in _PUNCTS:
            words += [word[:-1], word[-1]]
        elif word[0] in _PUNCTS:
            words += [word[0], word[1:]]
        else:
            words.append(word)
    return words


class CHRF(Metric):
    """chrF / chrF++ (0-100) with sacrebleu semantics.

    Args:
        char_order: character n-gram order (6).
        word_order: word n-gram order (0 = chrF, 2 = chrF++).
        beta: recall weight (2).
        lowercase: case-insensitive matching.
        whitespace: keep whitespace inside character n-grams.
        eps_smoothing: average per-order F scores with eps=1e-16 (chrF++.py / Moses / NLTK style)
            instead of sacreBLEU's effective-order averaging of precision and recall.
    """

    name = "chrf"
    scale = 100.0
    backends = ("sacrebleu",)

    def __init__(self, char_order: int = 6, word_order: int = 0, beta: int = 2, lowercase: bool = False,
                 whitespace: bool = False, eps_smoothing: bool = False) -> None:
        if char_order < 1 or word_order < 0:
            raise ValueError(f"need char_order >= 1 and word_order >= 0, got {char_order}, {word_order}")
        if beta < 1:
            raise ValueError(f"beta must be >= 1, got {beta}")
        self.char_order = char_order
        self.word_order = word_order
        self.beta = beta
        self.lowercase = lowercase
        self.whitespace = whitespace
        self.eps_smoothing = eps_smoothing
        self._reference_cache = ReferenceCache(self._ngrams)

    def options(self) -> dict[str, Any]:
        return {"nc": self.char_order, "nw": self.word_order, "beta": self.beta,
                "case": "lc" if self.lowercase else "mixed", "space": self.whitespace,
                "eps": self.eps_smoothing}

    def sacrebleu_signature(self, nrefs: str) -> str:
        from sacrebleu.metrics.chrf import CHRF as SacreCHRF

        return sacrebleu_signature_of(SacreCHRF(
            char_order=self.char_order, word_order=self.word_order, beta=self.beta, lowercase=self.lowercase,
            whitespace=self.whitespace, eps_smoothing=self.eps_smoothing), nrefs)

    def _ngrams(self, text: str) -> NgramStats:
        if self.lowercase:
            text = text.lower()
        chars = text if self.whitespace else "".join(text.split())
        size = len(chars)
        stats = [Counter(map(chars.__getitem__, map(slice, range(size - n + 1), range(n, size + 1))))
                 for n in range(1, self.char_order + 1)]
        if self.word_order:
            words = _split_punctuation(text)
            stats += [Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
                      for n in range(1, self.word_order + 1)]
        return stats

    @staticmethod
    def _match(hyp: NgramStats, ref: NgramStats) -> list[int]:
        stats: list[int] = []
        for h, r in zip(hyp, ref, strict=True):
            common = h.keys() & r.keys()  # the clipped count, summed over the n-grams both sides hold
            match = sum(map(min, map(h.__getitem__, common), map(r.__getitem__, common)))
            stats += [h.total() if r else 0, r.total(), match]
        return stats

    def f_score(self, stats: Sequence[int]) -> float:
        return chrf_from_statistics(stats, self.char_order + self.word_order, self.beta, self.eps_smoothing)

    def _compiled_statistics(self, pairs: Pairs) -> np.ndarray:
        """The batch engine: every distinct text's characters (and words) as ids, counted in numba."""
        from speechgrpo.metrics.ngram_kernels import chrf_statistics, ngram_key_source

        index = index_pairs(pairs)
        processed = [t.lower() for t in index.texts] if self.lowercase else index.texts
        chars = char_ids(processed if self.whitespace else ["".join(t.split()) for t in processed])
        char_keys, char_bits = ngram_key_source(chars.ids, chars.starts, chars.ends, chars.vocab_size,
                                                self.char_order)
        if self.word_order:
            words = chrf_word_ids(processed)
            if words is None:  # a text with a line break
                words = ids_of_token_lists([_split_punctuation(t) for t in processed])
        else:  # no word n-grams: every text has zero words
            empty = np.zeros(len(processed), np.int64)
            words = WordIds(np.empty(0, np.int64), empty, empty, 0)
        word_keys, word_bits = ngram_key_source(words.ids, words.starts, words.ends, words.vocab_size,
                                                self.word_order)
        starts = np.stack([chars.starts, words.starts])
        lengths = np.stack([chars.ends - chars.starts, words.ends - words.starts])
        order = index.by_refset
        stats = np.empty((len(pairs), 3 * (self.char_order + self.word_order)), dtype=np.int64)
        stats[order] = chrf_statistics(chars.ids, char_keys, char_bits, words.ids, word_keys, word_bits, starts,
                                       lengths, index.pair_hyp[order],
                                       index.pair_refset[order],
                                       index.refset_ptr, index.refset_texts, self.char_order, self.beta,
                                       self.eps_smoothing)
        return stats

    def _python_statistics(self, pairs: Pairs) -> list[list[int]]:
        """The exact pure-Python path (a few pairs per call, or no numba): per pair, the best-F reference's
        counts, each reference's n-grams counted once while it stays in the reference cache."""
        rows = []
        for hyp, refs in pairs:
            hyp_ngrams = self._ngrams(hyp)
            best: list[int] = []
            best_f = -1.0
            for ref in refs:
                stats = self._match(hyp_ngrams, self._reference_cache(ref))
                f = self.f_score(stats)
                if f > best_f:
                    best_f, best = f, stats
            rows.append(best)
        return rows

    def statistics(self, pairs: Pairs) -> np.ndarray:
        """Per pair ``[hyp, ref, match]`` counts per order, for the best-F reference."""
        if compiled_available() and pairs:
            return self._compiled_statistics(pairs)
        width = 3 * (self.char_order + self.word_order)
        return np.array(self._python_statistics(pairs), dtype=np.int64).reshape(len(pairs), width)

    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        if self._batched(pairs):
            from speechgrpo.metrics.ngram_kernels import chrf_scores

            return {"chrf": chrf_scores(self._compiled_statistics(pairs), self.char_order + self.word_order,
                                        self.beta, self.eps_smoothing)}
        return {"chrf": np.array([self.f_score(row) for row in self._python_statistics(pairs)], dtype=np.float64)}

    def _corpus_score(self, pairs: Pairs) -> float:
        return self.f_score(self.statistics(pairs).sum(axis=0).tolist())


def sentence_chrf(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample chrF (0-100); ``word_order=2`` gives chrF++."""
    return cached_metric(CHRF, **options).score(hyps, refs)


def corpus_chrf(hyps: Sequence[str], *positional: Any, refs: References | None = None,
                ref_streams: Sequence[Sequence[str | None]] | None = None, **options: Any) -> float:
    """Corpus chrF (0-100) from summed statistics, equal to ``sacrebleu.corpus_chrf``; references by
    keyword, ``refs=`` (per sample) or ``ref_streams=`` (sacrebleu's layout)."""
    return cached_metric(CHRF, **options).corpus_score(hyps, *positional, refs=refs, ref_streams=ref_streams)

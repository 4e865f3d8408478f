"""Sentence and corpus BLEU with sacrebleu's semantics, computed group-aware.

Scores equal ``sacrebleu.metrics.BLEU(...).sentence_score(h, refs).score`` bit for bit: the same
tokenizers (taken from sacrebleu itself), the same clipped n-gram statistics and the same smoothing
arithmetic. The difference is the work done: each distinct reference set is tokenized and counted
once per batch (a GRPO group shares one reference), and identical completions are scored once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from importlib import import_module
from itertools import chain
from typing import Any

import numpy as np

from speechgrpo._validation import References
from speechgrpo.metrics._formulas import bleu_from_statistics, smooth_value_of
from speechgrpo.metrics._reference_cache import ReferenceCache
from speechgrpo.metrics.base import Metric, Pairs, cached_metric, index_pairs, sacrebleu_signature_of
from speechgrpo.metrics.jit import compiled_available
from speechgrpo.metrics.word_ids import tokenize_13a, tokens_13a, word_ids

#: sacrebleu tokenizers that work offline; the SentencePiece ones download a model at run time.
TOKENIZERS = {
    "none": "tokenizer_none.NoneTokenizer",
    "13a": "tokenizer_13a.Tokenizer13a",
    "intl": "tokenizer_intl.TokenizerV14International",
    "zh": "tokenizer_zh.TokenizerZh",
    "char": "tokenizer_char.TokenizerChar",
    "ja-mecab": "tokenizer_ja_mecab.TokenizerJaMecab",
    "ko-mecab": "tokenizer_ko_mecab.TokenizerKoMecab",
}


def load_sacrebleu_tokenizer(name: str) -> Callable[[str], str]:
    """Instantiate one of sacrebleu's tokenizers by its sacrebleu name."""
    if name not in TOKENIZERS:
        raise ValueError(f"unknown tokenize={name!r}; choose one of {sorted(TOKENIZERS)} "
                         "(SentencePiece tokenizers download models and are not supported)")
    module_name, class_name = TOKENIZERS[name].rsplit(".", 1)
    try:
        module = import_module(f"sacrebleu.tokenizers.{module_name}")
    except ImportError as err:
        raise ImportError(f"tokenize={name!r} needs an extra package: {err}") from err
    tokenizer: Callable[[str], str] = getattr(module, class_name)()
    return tokenizer


#: An n-gram's key in the counts below: a word for a unigram (its hash is cached by the string), a tuple of
#: words above (a word never equals a tuple, so the orders cannot collide)
Gram = str | tuple[str, ...]


def _ngram_counts(tokens: list[str], max_order: int) -> Counter[Gram]:
    """Counts of the 1- to ``max_order``-grams of ``tokens``, keyed as :data:`Gram`."""
    shifted = [tokens[i:] for i in range(max_order)]
    return Counter(chain(tokens, *[zip(*shifted[:n], strict=False) for n in range(2, max_order + 1)]))


def _clipped_matches(tokens: list[str], ref_counts: Counter[Gram], max_order: int) -> list[int]:
    """Per order, the hypothesis n-grams found in the references, each counted at most as often as there
    (sacrebleu's clipped counts), one order at a time at C speed.

    Only found n-grams are counted: an n-gram is found only if its first n-1 words are, so once an order finds
    none the higher ones find none, and once the found n-grams of an order are all distinct so are the higher
    orders' (clipping then changes nothing)."""
    shifted = [tokens[i:] for i in range(max_order)]
    correct = [0] * max_order
    found = ref_counts.__contains__
    repeats = True  # whether this order's found n-grams may repeat
    for n in range(1, max_order + 1):
        hits: list[Gram] = list(filter(found, tokens if n == 1 else zip(*shifted[:n], strict=False)))
        if not hits:
            break
        if repeats:
            counts = Counter(hits)
            repeats = len(counts) < len(hits)
            if repeats:  # each counted at most as often as in the references: min() per n-gram, in C
                correct[n - 1] = sum(map(min, counts.values(), map(ref_counts.__getitem__, counts)))
                continue
        correct[n - 1] = len(hits)
    return correct


def _closest_ref_len(hyp_len: int, ref_lens: list[int]) -> int:
    # Closest reference length; ties go to the shorter reference (sacrebleu).
    return ref_lens[0] if len(ref_lens) == 1 else min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


class BLEU(Metric):
    """BLEU (0-100) with sacrebleu semantics.

    Args:
        tokenize: a sacrebleu tokenizer name (``13a`` default, ``intl``, ``zh``, ``char``, ``none``, ...).
        smooth_method: ``exp`` (default, NIST / Chen & Cherry method 3), ``floor``, ``add-k`` or ``none``.
        smooth_value: value for ``floor`` (default 0.1) and ``add-k`` (default 1).
        effective_order: average only over n-gram orders the hypothesis has (sentence-level default).
        lowercase: lowercase hypotheses and references before tokenizing.
        max_ngram_order: highest n-gram order (4).
    """

    name = "bleu"
    scale = 100.0
    backends = ("sacrebleu",)
    few_pairs = 1

    def __init__(self, tokenize: str = "13a", smooth_method: str = "exp", smooth_value: float | None = None,
                 effective_order: bool = True, lowercase: bool = False, max_ngram_order: int = 4) -> None:
        self._smooth_value = smooth_value_of(smooth_method, smooth_value)  # checks the name
        if max_ngram_order < 1:
            raise ValueError(f"max_ngram_order must be >= 1, got {max_ngram_order}")
        self.tokenize = tokenize
        self.smooth_method = smooth_method
        self.smooth_value = smooth_value
        self.effective_order = effective_order
        self.lowercase = lowercase
        self.max_ngram_order = max_ngram_order
        self._tokenizer = load_sacrebleu_tokenizer(tokenize)
        self._reference_cache = ReferenceCache(self._reference_statistics)

    def options(self) -> dict[str, Any]:
        return {"tok": self.tokenize, "smooth": self.smooth_method, "smooth_value": self.smooth_value,
                "eff": self.effective_order, "case": "lc" if self.lowercase else "mixed",
                "order": self.max_ngram_order}

    def sacrebleu_signature(self, nrefs: str) -> str:
        from sacrebleu.metrics.bleu import BLEU as SacreBLEU

        return sacrebleu_signature_of(SacreBLEU(
            lowercase=self.lowercase, tokenize=self.tokenize, smooth_method=self.smooth_method,
            smooth_value=self.smooth_value, max_ngram_order=self.max_ngram_order,
            effective_order=self.effective_order), nrefs)

    def _tokens(self, text: str) -> list[str]:
        line = (text.lower() if self.lowercase else text).rstrip()  # _preprocess of one text
        if self.tokenize == "13a" and compiled_available():
            return tokens_13a(line)  # sacrebleu's four regular expressions as one compiled pass
        return self._tokenizer(line).split()

    def _preprocess(self, texts: Sequence[str]) -> list[str]:
        """sacrebleu's preprocessing before the tokenizer: lower-cased if asked, trailing whitespace off."""
        return list(map(str.rstrip, map(str.lower, texts) if self.lowercase else texts))

    def _compiled_statistics(self, pairs: Pairs) -> np.ndarray:
        """The batch engine: all distinct texts tokenized to ids at once, n-grams counted in numba."""
        from speechgrpo.metrics.ngram_kernels import clipped_statistics, ngram_keys

        index = index_pairs(pairs)
        processed = self._preprocess(index.texts)
        if self.tokenize == "13a":
            words = tokenize_13a(processed, self._tokenizer)
        else:
            words = word_ids([self._tokenizer(t) for t in processed])
        keys = ngram_keys(words.ids, words.starts, words.ends, words.vocab_size, self.max_ngram_order)
        order = index.by_refset
        stats = np.empty((len(pairs), 2 + 2 * self.max_ngram_order), dtype=np.int64)
        stats[order] = clipped_statistics(keys, words.starts, words.ends, index.pair_hyp[order],
                                          index.pair_refset[order], index.refset_ptr, index.refset_texts,
                                          self.max_ngram_order)
        return stats

    def _reference_statistics(self, refs: tuple[str, ...]) -> tuple[Counter[Gram], list[int]]:
        """A reference set's n-gram counts (the highest count of each n-gram over the set) and lengths."""
        if len(refs) == 1:  # the usual set: its own counts (merging is a Python loop over every n-gram)
            tokens = self._tokens(refs[0])
            return _ngram_counts(tokens, self.max_ngram_order), [len(tokens)]
        merged: Counter[Gram] = Counter()
        ref_lens = []
        for ref in refs:
            tokens = self._tokens(ref)
            ref_lens.append(len(tokens))
            merged |= _ngram_counts(tokens, self.max_ngram_order)  # the element-wise maximum
        return merged, ref_lens

    def _statistics(self, pairs: Pairs) -> list[list[int]]:
        """The exact pure-Python path (a few pairs per call, or no numba)."""
        order = self.max_ngram_order
        rows = []
        for hyp, refs in pairs:
            ref_counts, ref_lens = self._reference_cache(refs)
            tokens = self._tokens(hyp)
            correct = _clipped_matches(tokens, ref_counts, order)
            total = [max(0, len(tokens) - n) for n in range(order)]
            rows.append([len(tokens), _closest_ref_len(len(tokens), ref_lens), *correct, *total])
        return rows

    def statistics(self, pairs: Pairs) -> np.ndarray:
        """Sufficient statistics per pair: ``[hyp_len, ref_len, correct_1..N, total_1..N]``."""
        if compiled_available() and pairs:
            return self._compiled_statistics(pairs)
        return np.array(self._statistics(pairs), dtype=np.int64).reshape(len(pairs), 2 + 2 * self.max_ngram_order)

    def score_from_statistics(self, row: Sequence[int]) -> float:
        """BLEU (0-100) of one row of :meth:`statistics`, or of their sum (corpus BLEU)."""
        order = self.max_ngram_order
        return bleu_from_statistics(row[2:2 + order], row[2 + order:], row[0], row[1], self.smooth_method,
                                    self._smooth_value, self.effective_order)

    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        if self._batched(pairs):
            from speechgrpo.metrics.ngram_kernels import bleu_scores

            return {"bleu": bleu_scores(self._compiled_statistics(pairs), self.max_ngram_order, self.smooth_method,
                                        self._smooth_value, self.effective_order)}
        return {"bleu": np.array([self.score_from_statistics(row) for row in self._statistics(pairs)],
                                 dtype=np.float64)}

    def _corpus_score(self, pairs: Pairs) -> float:
        return self.score_from_statistics(self.statistics(pairs).sum(axis=0).tolist())


def sentence_bleu(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample BLEU (0-100); ``options`` are those of :class:`BLEU`."""
    return cached_metric(BLEU, **options).score(hyps, refs)


def corpus_bleu(hyps: Sequence[str], *positional: Any, refs: References | None = None,
                ref_streams: Sequence[Sequence[str | None]] | None = None, **options: Any) -> float:
    """Corpus BLEU (0-100) from summed statistics, equal to ``sacrebleu.corpus_bleu``.

    References by keyword: ``refs=`` one entry per sample, or ``ref_streams=`` sacrebleu's layout (one
    list per reference set). ``options`` are those of :class:`BLEU`, with sacrebleu's corpus defaults
    (``effective_order=False``, unlike the per-sample reward).
    """
    options.setdefault("effective_order", False)
    return cached_metric(BLEU, **options).corpus_score(hyps, *positional, refs=refs, ref_streams=ref_streams)

"""METEOR through NLTK's implementation (the reference), batched and deduplicated.

NLTK's ``meteor_score`` takes pre-tokenised text. ``tokenize="treebank"`` (default) is NLTK's
``word_tokenize(text, preserve_line=True)``: the Treebank tokenizer that HF ``evaluate``'s METEOR uses,
minus the Punkt sentence split (Punkt data cannot be downloaded offline; the two differ only on
sentence-internal periods). ``tokenize="whitespace"`` is ``str.split``. With several references the
best reference counts, as in NLTK. METEOR needs WordNet: see :mod:`speechgrpo.metrics.wordnet`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from speechgrpo._validation import References
from speechgrpo.metrics.base import Metric, Pairs, cached_metric

TOKENIZERS = ("treebank", "whitespace")
_WORDS_REMEMBERED = 200_000  # per lookup: the stems and synsets of a large vocabulary


class _Remembered:
    """What NLTK's METEOR asks per word, answered once per distinct word: ``stem`` of its stemmer and
    ``synsets`` of its WordNet reader (both pure functions of the word; NLTK calls them for every word
    of every pair, and they are most of its time)."""

    def __init__(self, stemmer: Any, wordnet: Any) -> None:
        self.stem = lru_cache(maxsize=_WORDS_REMEMBERED)(stemmer.stem)
        self.synsets = lru_cache(maxsize=_WORDS_REMEMBERED)(wordnet.synsets)


class METEOR(Metric):
    """METEOR (0-1) computed by ``nltk.translate.meteor_score.meteor_score``.

    Args:
        alpha, beta, gamma: NLTK's parameters (0.9, 3.0, 0.5).
        tokenize: ``treebank`` (default) or ``whitespace``.
    """

    name = "meteor"
    backends = ("nltk",)

    def __init__(self, alpha: float = 0.9, beta: float = 3.0, gamma: float = 0.5,
                 tokenize: str = "treebank") -> None:
        if tokenize not in TOKENIZERS:
            raise ValueError(f"unknown tokenize={tokenize!r}; use one of {TOKENIZERS}")
        try:
            from nltk.corpus import wordnet
            from nltk.stem.porter import PorterStemmer
            from nltk.tokenize import word_tokenize
            from nltk.translate.meteor_score import meteor_score
        except ImportError as err:
            raise ImportError("METEOR needs nltk: pip install 'speechgrpo[meteor]'") from err
        from speechgrpo.metrics.wordnet import ensure_wordnet

        ensure_wordnet()
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.tokenize = tokenize
        self._meteor = meteor_score
        self._lookups = _Remembered(PorterStemmer(), wordnet)  # NLTK's defaults
        self._split: Callable[[str], list[str]] = (
            (lambda text: word_tokenize(text, preserve_line=True)) if tokenize == "treebank" else str.split)

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma, "tok": self.tokenize,
                "wordnet": "3.0"}

    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        tokens: dict[str, list[str]] = {}

        def split(text: str) -> list[str]:
            if text not in tokens:
                tokens[text] = self._split(text)
            return tokens[text]

        return {"meteor": np.array([
            self._meteor([split(r) for r in refs], split(hyp), alpha=self.alpha, beta=self.beta,
                         gamma=self.gamma, stemmer=self._lookups, wordnet=self._lookups)
            for hyp, refs in pairs], dtype=np.float64)}


def meteor(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample METEOR (0-1); ``options`` are those of :class:`METEOR`."""
    return cached_metric(METEOR, **options).score(hyps, refs)

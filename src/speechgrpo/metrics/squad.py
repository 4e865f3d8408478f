"""SQuAD-style answer metrics for spoken question answering: exact match and token F1.

Both follow the official SQuAD v2.0 evaluation script: answers are normalised (lower-cased,
ASCII punctuation removed, the articles a/an/the removed, whitespace collapsed) and, with several
references, the best reference counts. As in the script's ``get_raw_scores``, references that normalise
to nothing (``"the"``, ``"..."``, ``""``) are dropped first, and a sample left with none is unanswerable:
its only correct answer is the empty string. Token F1 uses clipped bag-of-token overlap; when either
side normalises to no tokens, F1 is 1 if both are empty and 0 otherwise (v2.0 behaviour; v1.1
gave 0 even for two empty answers).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from speechgrpo._validation import References
from speechgrpo.metrics.base import Metric, Pairs, cached_metric

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's ``normalize_answer``: lower, drop punctuation, drop articles, collapse whitespace."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


class _Normalized(dict[str, str]):
    """``normalize_answer`` memoised for one batch: a group's shared reference is normalised once."""

    def __missing__(self, text: str) -> str:
        value = self[text] = normalize_answer(text)
        return value

    def gold(self, refs: Sequence[str]) -> list[str]:
        """Normalised gold answers as evaluate-v2.0.py's ``get_raw_scores`` takes them: answers that
        normalise to nothing are dropped; with none left the question is unanswerable and the empty
        string is its only correct answer."""
        return [n for n in (self[r] for r in refs) if n] or [""]


def _token_f1(prediction: list[str], gold: list[str]) -> float:
    if not prediction or not gold:
        return float(prediction == gold)
    common = Counter(prediction) & Counter(gold)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction)
    recall = num_same / len(gold)
    return (2 * precision * recall) / (precision + recall)


class ExactMatch(Metric):
    """1.0 when the normalised answer equals a normalised reference, else 0.0.

    Args:
        normalize: apply SQuAD normalisation (default); ``False`` compares the raw strings.
    """

    name = "exact_match"

    def __init__(self, normalize: bool = True) -> None:
        self.normalize = normalize

    def options(self) -> dict[str, Any]:
        return {"norm": "squad" if self.normalize else "none"}

    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        if not self.normalize:
            return {"exact_match": np.array([float(hyp in refs) for hyp, refs in pairs], dtype=np.float64)}
        norm = _Normalized()
        return {"exact_match": np.array([float(norm[hyp] in norm.gold(refs)) for hyp, refs in pairs],
                                        dtype=np.float64)}


class TokenF1(Metric):
    """SQuAD token F1 (0-1) between the normalised answer and the best reference."""

    name = "token_f1"

    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        norm = _Normalized()
        return {"token_f1": np.array([max(_token_f1(norm[hyp].split(), gold.split()) for gold in norm.gold(refs))
                                      for hyp, refs in pairs], dtype=np.float64)}


def exact_match(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample exact match (0 or 1) after SQuAD normalisation."""
    return cached_metric(ExactMatch, **options).score(hyps, refs)


def token_f1(hyps: Sequence[str], refs: References) -> np.ndarray:
    """Per-sample SQuAD token F1 (0-1)."""
    return cached_metric(TokenF1).score(hyps, refs)

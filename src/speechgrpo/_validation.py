"""Input checks shared by metrics and rewards.

Every public entry point normalises its inputs here so that bad data fails early with an
error that names the offending field and index, instead of deep inside a metric library.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

References = Sequence[str] | Sequence[Sequence[str]] | Sequence[Mapping[str, Any]]
"""Per sample: one reference string, a sequence of reference strings, or a dict holding them under
one of :data:`REFERENCE_KEYS` (SQuAD's ``{"text": [...], "answer_start": [...]}`` included)."""

#: Keys tried, in order, when a sample's reference is a dict (SQuAD answers, verl's ``reward_model``
#: field, user JSON rows); the metrics, the rewards and every adapter read dicts the same way.
REFERENCE_KEYS = ("references", "reference", "ground_truth", "answers", "answer", "label", "target", "text")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _as_list(values: Any, field: str) -> list[Any]:
    if type(values) is list:  # the usual input, recognised before the slower checks
        return values.copy()
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{field} must be a sequence of strings, got a single {type(values).__name__}")
    if isinstance(values, np.ndarray):
        return list(values.tolist())
    if not isinstance(values, Iterable):
        raise TypeError(f"{field} must be a sequence of strings, got {type(values).__name__}")
    return list(values)


def unencodable(text: str) -> str | None:
    """Why ``text`` is not valid Unicode (a lone surrogate, as ``errors="surrogateescape"`` decoding
    leaves), or ``None``. Tokenizers and metric libraries fail on such strings deep inside."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return (f"is not valid Unicode: {text[err.start]!r} at position {err.start} is a lone surrogate; "
                "decode with errors='replace' (or 'ignore')")
    return None


def encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone surrogate), at C speed: UTF-16's encoder, which refuses
    surrogates as UTF-8's does, at a quarter of its time on real text."""
    try:
        text.encode("utf-16-le")
    except UnicodeEncodeError:
        return False
    return True


#: Strings joined per encodability check: the encoded copy grows with a chunk, not with the batch.
_CHECK_CHUNK = 4096


def all_encodable(texts: Sequence[str]) -> bool:
    """Whether every string of ``texts`` is valid Unicode, a few thousand joined per C-speed check."""
    if not isinstance(texts, (list, tuple)):  # slices below (a deque, a numpy array of str... is listed first)
        texts = list(texts)
    if len(texts) == 1:
        return encodable(texts[0])
    return all(encodable("".join(texts[i:i + _CHECK_CHUNK])) for i in range(0, len(texts), _CHECK_CHUNK))


def check_encodable(texts: Sequence[str], field: str) -> None:
    """Raise naming the first string of ``texts`` that is not valid Unicode (C-speed checks if none)."""
    if all_encodable(texts):
        return
    for i, text in enumerate(texts):
        problem = unencodable(text)
        if problem:
            raise ValueError(f"{field}[{i}] {problem}") from None


def as_texts(values: Any, field: str = "hyps") -> list[str]:
    """Return ``values`` as a list of valid ``str``, or raise naming the first bad index."""
    items = _as_list(values, field)
    if not set(map(type, items)) <= {str}:  # the common case is checked at C speed
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise TypeError(f"{field}[{i}] must be str, got {_describe(item)}")
    check_encodable(items, field)
    return items


def references_of(item: Any, where: str) -> tuple[str, ...]:
    """The reference strings of one sample: a string, a sequence of strings, or a dict holding them
    under one of :data:`REFERENCE_KEYS`. Raises ``TypeError``/``ValueError`` naming ``where``."""
    if isinstance(item, str):
        problem = unencodable(item)
        if problem:
            raise ValueError(f"{where} {problem}")
        return (item,)
    if isinstance(item, Mapping):  # never iterated: that would score the dict's keys
        for key in REFERENCE_KEYS:
            if key in item:
                return references_of(item[key], f"{where}[{key!r}]")
        raise ValueError(f"{where} is a dict without any of the reference keys {', '.join(REFERENCE_KEYS)}: "
                         f"keys {sorted(map(str, item))}")
    if isinstance(item, np.ndarray):
        item = item.tolist()
    if isinstance(item, bytes) or not isinstance(item, Iterable):
        raise TypeError(f"{where} must be str, a sequence of str or a dict with a reference key, got "
                        f"{_describe(item)}")
    group = tuple(item)
    if not group:
        raise ValueError(f"{where} is an empty sequence: every sample needs at least one reference")
    for j, ref in enumerate(group):
        if not isinstance(ref, str):
            raise TypeError(f"{where}[{j}] must be str, got {_describe(ref)}")
        problem = unencodable(ref)
        if problem:
            raise ValueError(f"{where}[{j}] {problem}")
    return group


def as_references(refs: Any, n: int, field: str = "refs") -> list[tuple[str, ...]]:
    """Normalise references to one non-empty tuple of strings per sample (see :data:`References`).

    This is the per-sample layout (``refs[i]`` holds sample ``i``'s references), not sacrebleu's
    reference streams (``refs[k][i]``: the ``k``-th reference of every sample); the corpus functions
    named after sacrebleu's take streams by keyword (see :func:`speechgrpo.metrics.base.corpus_references`).
    """
    items = _as_list(refs, field)
    if len(items) != n:
        raise ValueError(f"{field} has {len(items)} entries but there are {n} hypotheses: {field} holds one "
                         f"entry per sample (a string, a list of strings or a dict), not sacrebleu's reference "
                         "streams (one list per reference set)")
    kinds = set(map(type, items))
    if kinds <= {str}:  # one reference string per sample: 1-tuples built at C speed
        check_encodable(items, field)
        return list(zip(items))
    if kinds <= {tuple, list} and items and min(map(len, items)) > 0:  # lists of strings, checked at C speed
        flat = list(itertools.chain.from_iterable(items))
        if set(map(type, flat)) <= {str} and all_encodable(flat):  # else the loop names [i][j]
            return items if kinds == {tuple} else list(map(tuple, items))
    return [references_of(item, f"{field}[{i}]") for i, item in enumerate(items)]


def check_same_length(n: int, values: Sequence[Any] | np.ndarray, field: str) -> None:
    if len(values) != n:
        raise ValueError(f"{field} has {len(values)} entries but there are {n} samples")


def check_weight(weight: Any, field: str = "weight") -> float:
    """Reject non-numeric, NaN, infinite and negative weights."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        raise TypeError(f"{field} must be a number, got {_describe(weight)}")
    value = float(weight)
    if not math.isfinite(value):
        raise ValueError(f"{field} must be finite, got {value}")
    if value < 0:
        raise ValueError(f"{field} must be >= 0 (negative weights are not allowed), got {value}")
    return value


def check_scores(scores: Any, n: int, field: str) -> np.ndarray:
    """Turn user-returned scores into a float array of length ``n``; name the first bad index."""
    items = _as_list(scores, field)
    if len(items) != n:
        raise ValueError(f"{field} returned {len(items)} scores for {n} samples")
    out = np.empty(n, dtype=np.float64)
    for i, value in enumerate(items):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{field}[{i}] must be a number, got {_describe(value)}")
        if not math.isfinite(float(value)):
            raise ValueError(f"{field}[{i}] is not finite ({value})")
        out[i] = float(value)
    return out

"""Input checks shared by metrics and rewards.

Every public entry point normalises its inputs here so that bad data fails early with an
error that names the offending field and index, instead of deep inside a metric library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

References = Sequence[str] | Sequence[Sequence[str]]
"""One reference string per sample, or a sequence of reference strings per sample."""


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _as_list(values: Any, field: str) -> list[Any]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{field} must be a sequence of strings, got a single {type(values).__name__}")
    if isinstance(values, np.ndarray):
        return list(values.tolist())
    if not isinstance(values, Iterable):
        raise TypeError(f"{field} must be a sequence of strings, got {type(values).__name__}")
    return list(values)


def as_texts(values: Any, field: str = "hyps") -> list[str]:
    """Return ``values`` as a list of ``str``, or raise naming the first bad index."""
    items = _as_list(values, field)
    if set(map(type, items)) <= {str}:  # the common case, checked at C speed
        return items
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{field}[{i}] must be str, got {_describe(item)}")
    return items


def as_references(refs: Any, n: int, field: str = "refs") -> list[tuple[str, ...]]:
    """Normalise references to one non-empty tuple of strings per sample.

    Accepts one string per sample or a (possibly ragged) sequence of strings per sample.
    """
    items = _as_list(refs, field)
    if len(items) != n:
        raise ValueError(f"{field} has {len(items)} entries but there are {n} hypotheses")
    if set(map(type, items)) <= {str}:  # one reference string per sample: 1-tuples built at C speed
        return list(zip(items))
    out: list[tuple[str, ...]] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append((item,))
            continue
        if isinstance(item, bytes) or not isinstance(item, Iterable):
            raise TypeError(f"{field}[{i}] must be str or a sequence of str, got {_describe(item)}")
        group = tuple(item)
        if not group:
            raise ValueError(f"{field}[{i}] is an empty sequence: every sample needs at least one reference")
        for j, ref in enumerate(group):
            if not isinstance(ref, str):
                raise TypeError(f"{field}[{i}][{j}] must be str, got {_describe(ref)}")
        out.append(group)
    return out


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

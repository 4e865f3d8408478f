"""Group ids: which samples of a batch share a prompt, as dense integers (0, 1, 2, ... by first appearance).

Rewards, advantages, trainer adapters and ``bench`` all turn group keys (prompt strings, uids, references)
into these ids; this is the one place that does it.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from speechgrpo._validation import check_same_length


def dense_ids(keys: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    """One int64 id per key: equal keys get the same id, ids numbered in order of first appearance."""
    if isinstance(keys, np.ndarray) and keys.ndim != 1:
        raise ValueError(f"group keys must be one-dimensional, got shape {keys.shape}")
    if isinstance(keys, np.ndarray) and keys.dtype != object:
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
        return rank[inverse.reshape(-1)]
    return factorize(keys)[0]


def factorize(keys: Sequence[Hashable] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, firsts)``: :func:`dense_ids` of ``keys`` and the position of each id's first occurrence, in
    one C-speed pass that hashes each key once (a batch can hold a million keys; a tuple's hash is not
    cached, so every pass over reference tuples costs)."""
    n = len(keys)
    seen: dict[Hashable, int] = {}
    first = np.fromiter(map(seen.setdefault, keys, itertools.count()), dtype=np.int64, count=n)
    if len(seen) == n:  # every key distinct
        return first, first.copy()
    is_first = first == np.arange(n, dtype=np.int64)
    rank = np.cumsum(is_first, dtype=np.int64) - 1
    return rank[first], np.flatnonzero(is_first)


def group_ids_of_runs(keys: Sequence[Any]) -> np.ndarray:
    """One id per contiguous run of equal keys (a GRPO batch lists a prompt's G samples together, so two
    prompts with the same text in different places of the batch stay two groups)."""
    keys = list(keys)
    changes = map(operator.ne, keys[1:], keys[:-1])  # True where a new run starts
    return np.fromiter(itertools.accumulate(changes, initial=0) if keys else (), dtype=np.int64, count=len(keys))


def as_group_ids(group_ids: Any, n: int, references: Sequence[Hashable] | None = None) -> np.ndarray:
    """Group ids as an int64 array of length ``n``.

    ``None`` infers groups from the references: samples with the same reference(s) form a group, which
    is what a GRPO batch looks like (G completions per prompt, one reference per prompt).
    """
    if group_ids is None:
        if references is None or n <= 1:
            return np.arange(n, dtype=np.int64)
        return dense_ids(references)
    ids = np.asarray(group_ids)
    check_same_length(n, ids, "group_ids")
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):  # kind: np.issubdtype's answer at C speed
        raise TypeError(f"group_ids must be a 1-D sequence of integers, got dtype {ids.dtype}")
    return ids.astype(np.int64, copy=False)

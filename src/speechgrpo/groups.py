"""GRPO groups: which samples share a prompt, and statistics computed within each group."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from speechgrpo.validation import check_same_length


def as_group_ids(group_ids: Any, n: int, references: Sequence[Hashable] | None = None) -> np.ndarray:
    """Group ids as an int64 array of length ``n``.

    ``None`` infers groups from the references: samples with the same reference(s) form a group, which
    is what a GRPO batch looks like (G completions per prompt, one reference per prompt).
    """
    if group_ids is None:
        if references is None:
            return np.arange(n, dtype=np.int64)
        seen: dict[Hashable, int] = {}
        return np.fromiter((seen.setdefault(r, len(seen)) for r in references), dtype=np.int64, count=n)
    ids = np.asarray(group_ids)
    check_same_length(n, ids, "group_ids")
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise TypeError(f"group_ids must be a 1-D sequence of integers, got dtype {ids.dtype}")
    return ids.astype(np.int64, copy=False)


def group_zscore(values: np.ndarray, group_ids: np.ndarray, in_stats: np.ndarray | None = None,
                 std_tol: float = 1e-8) -> np.ndarray:
    """``(x - group mean) / group std`` with the biased std, over the samples in ``in_stats``.

    Groups whose std is below ``std_tol`` get exactly 0 (no amplification of float residue).
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.ones(len(values), dtype=bool) if in_stats is None else np.asarray(in_stats, dtype=bool)
    _, inverse = np.unique(group_ids, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    weight = mask.astype(np.float64)
    count = np.bincount(inverse, weights=weight, minlength=n_groups)
    safe = np.maximum(count, 1.0)
    mean = np.bincount(inverse, weights=values * weight, minlength=n_groups) / safe
    centered = values - mean[inverse]
    var = np.bincount(inverse, weights=centered**2 * weight, minlength=n_groups) / safe
    std = np.sqrt(var)
    out = np.zeros_like(values)
    ok = std[inverse] >= std_tol
    out[ok] = centered[ok] / std[inverse][ok]
    return out

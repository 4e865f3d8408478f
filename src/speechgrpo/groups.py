"""GRPO groups: which samples share a prompt (statistics within groups live in ``speechgrpo.advantages``)."""

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


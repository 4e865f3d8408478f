"""Per-reference work kept across calls, for callers that score one sample at a time.

verl's default reward manager, per-sample reward files and ms-swift's ORM call a reward once per
completion, and the G completions of a prompt share its reference: tokenizing and counting that
reference once per prompt, not once per call, is what the batched engine does within a batch. sacrebleu
gets the same effect from the ``lru_cache`` on its tokenizers. The cache is bounded (emptied when full)
and :func:`clear_reference_caches` empties every one, so that benchmarks start cold on both sides.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_ALL: weakref.WeakSet[ReferenceCache] = weakref.WeakSet()  # type: ignore[type-arg]


class ReferenceCache(Generic[K, V]):
    """``cache(key)`` is ``make(key)``, computed once while ``key`` stays among the last ``max_size`` kept."""

    def __init__(self, make: Callable[[K], V], max_size: int = 4096) -> None:
        self._make = make
        self._max_size = max_size
        self._values: dict[K, V] = {}
        _ALL.add(self)

    def __call__(self, key: K) -> V:
        value = self._values.get(key)
        if value is None:
            if len(self._values) >= self._max_size:
                self._values.clear()
            value = self._values[key] = self._make(key)
        return value

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        self._values.clear()


def clear_reference_caches() -> int:
    """Empty every reference cache (benchmarks start each timed run cold); returns how many there are."""
    caches = list(_ALL)
    for cache in caches:
        cache.clear()
    return len(caches)

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


def _characters(key: object) -> int:
    """A reference key's size: its characters (a string, or a tuple of strings)."""
    return len(key) if isinstance(key, str) else sum(map(len, key))  # type: ignore[call-overload]


class ReferenceCache(Generic[K, V]):
    """``cache(key)`` is ``make(key)``, computed once while kept. The cache is emptied once it holds ``max_size``
    references or ``max_characters`` characters of them (the values take ~130 bytes a character for BLEU: the
    default bounds them near 30 MB per metric). Pickled empty: a trainer's workers rebuild their own."""

    def __init__(self, make: Callable[[K], V], max_size: int = 4096, max_characters: int = 250_000) -> None:
        self._make = make
        self._max_size = max_size
        self._max_characters = max_characters
        self._values: dict[K, V] = {}
        self._characters = 0
        _ALL.add(self)

    def __call__(self, key: K) -> V:
        value = self._values.get(key)
        if value is None:
            size = _characters(key)
            if len(self._values) >= self._max_size or self._characters + size > self._max_characters:
                self.clear()
            value = self._values[key] = self._make(key)
            self._characters += size
        return value

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        self._values.clear()
        self._characters = 0

    def __getstate__(self) -> dict[str, object]:
        return {"make": self._make, "max_size": self._max_size, "max_characters": self._max_characters}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["make"], state["max_size"], state["max_characters"])  # type: ignore[misc]


def clear_reference_caches() -> int:
    """Empty every reference cache (benchmarks start each timed run cold); returns how many there are."""
    caches = list(_ALL)
    for cache in caches:
        cache.clear()
    return len(caches)

"""Wrapping a user's plain Python function as a reward.

Batched functions get the whole batch, ``fn(completions, references, **extra) -> sequence of floats``;
per-sample functions get one sample, ``fn(completion, references) -> float`` (``references`` is a
tuple of strings). The returned values are checked: one finite number per sample, inside the
declared bounds; anything else raises an error naming the offending index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from speechgrpo._validation import check_scores
from speechgrpo.rewards.base import Reward, RewardBatch


class FunctionReward(Reward):
    """A reward computed by ``fn``.

    Args:
        fn: the scoring function.
        name: component name (default: the function's ``__name__``).
        batched: whether ``fn`` scores a whole batch (default) or one sample.
        bounds: the range ``fn`` promises; values outside it are rejected.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None, batched: bool = True,
                 bounds: tuple[float, float] = (0.0, 1.0), **reward_options: float | bool | None) -> None:
        super().__init__(**reward_options)  # type: ignore[arg-type]
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        lo, hi = float(bounds[0]), float(bounds[1])
        if not lo <= hi:
            raise ValueError(f"bounds must be (low, high) with low <= high, got {bounds}")
        self.fn, self.batched, self._bounds = fn, batched, (lo, hi)
        self.name = name or str(getattr(fn, "__name__", "function"))

    @property
    def bounds(self) -> tuple[float, float]:
        return self._bounds

    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if self.batched:
            raw = self.fn(batch.completions, batch.references, **batch.extra)
        else:
            raw = [self.fn(c, r) for c, r in zip(batch.completions, batch.references, strict=True)]
        scores = check_scores(raw, len(batch), self.name)
        lo, hi = self._bounds
        outside = np.flatnonzero((scores < lo) | (scores > hi))
        if outside.size:
            i = int(outside[0])
            raise ValueError(f"{self.name}[{i}] = {scores[i]} is outside the declared bounds {self._bounds}")
        return scores, {self.name: scores}

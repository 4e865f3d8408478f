"""Length shaping: DAPO's soft overlong punishment added to a reward.

With ``L_max = max_length`` and ``L_cache = cache_length``, a completion of length ``L`` gets

    0                                  if L <= L_max - L_cache
    ((L_max - L_cache) - L) / L_cache  if L_max - L_cache < L <= L_max   (linear, 0 down to -1)
    -1                                 if L > L_max

added to the wrapped reward (DAPO, Yu et al. 2025, eq. 13). Length is counted in whitespace words,
characters, or tokens; tokens come from the extra field ``completion_ids`` (TRL passes it) or
``completion_lengths``.
"""

from __future__ import annotations

import numpy as np

from speechgrpo.rewards.base import Reward, RewardBatch
from speechgrpo.rewards.composite import _Composite, _merge_components

UNITS = ("words", "chars", "tokens")


def overlong_penalty(lengths: np.ndarray, max_length: int, cache_length: int) -> np.ndarray:
    """DAPO's soft overlong penalty for each length (0 down to -1)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    soft_start = max_length - cache_length
    penalty = np.where(lengths > soft_start, (soft_start - lengths) / max(cache_length, 1), 0.0)
    return np.where(lengths > max_length, -1.0, penalty)


class OverlongPenalty(_Composite):
    """``reward + overlong_penalty(length)``."""

    name = "overlong"

    def __init__(self, reward: Reward, max_length: int, cache_length: int = 0, unit: str = "words",
                 **reward_options: float | bool | None) -> None:
        super().__init__([reward], **reward_options)
        if unit not in UNITS:
            raise ValueError(f"unknown unit={unit!r}; use one of {UNITS}")
        if max_length < 1 or not 0 <= cache_length <= max_length:
            raise ValueError(f"need max_length >= 1 and 0 <= cache_length <= max_length, "
                             f"got {max_length}, {cache_length}")
        self.reward, self.max_length, self.cache_length, self.unit = reward, max_length, cache_length, unit

    @property
    def bounds(self) -> tuple[float, float]:
        lo, hi = self.reward.bounds
        return (lo - 1.0, hi)

    @property
    def spec(self) -> str:
        return self._spec or self.call_spec([self.reward.spec], {"max_length": self.max_length,
                                                                  "cache_length": self.cache_length, "unit": self.unit})

    def lengths(self, batch: RewardBatch) -> np.ndarray:
        if self.unit == "words":
            return np.array([len(c.split()) for c in batch.completions])
        if self.unit == "chars":
            return np.array([len(c) for c in batch.completions])
        if "completion_lengths" in batch.extra:
            return np.asarray(batch.extra["completion_lengths"], dtype=np.int64)
        if "completion_ids" in batch.extra:
            return np.array([len(ids) for ids in batch.extra["completion_ids"]])
        raise ValueError("unit='tokens' needs the extra field completion_ids or completion_lengths")

    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        result = self.reward.score_batch(batch)
        penalty = overlong_penalty(self.lengths(batch), self.max_length, self.cache_length)
        components = _merge_components(self.children, [result])
        components["overlong_penalty"] = penalty
        return result.scores + penalty, components

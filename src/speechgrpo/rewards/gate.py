"""Gates: checks that zero a reward when a completion fails them (format, length, script).

A gate is itself a reward scoring 1 (pass) or 0 (fail); :class:`Gate` combines one with the reward it
guards: ``gate(regex(pattern='^[^\\n]*$'), bleu)`` gives BLEU to one-line answers and 0 to the rest.
"""

from __future__ import annotations

import re
import unicodedata
from abc import abstractmethod
from typing import Any

import numpy as np

from speechgrpo.rewards.base import Reward, RewardBatch, format_call
from speechgrpo.rewards.composite import _Composite


class _Check(Reward):
    """A pass/fail check scoring 1.0 or 0.0."""

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def options(self) -> dict[str, Any]:
        """Constructor options, so that the spec round-trips."""
        return {}

    @property
    def spec(self) -> str:
        return self._spec or format_call(self.name, self.options())

    @abstractmethod
    def passes(self, completion: str) -> bool:
        """Whether one completion passes the check."""

    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        scores = np.array([float(self.passes(c)) for c in batch.completions], dtype=np.float64)
        return scores, {self.name: scores}


class NonEmpty(_Check):
    """Passes completions with at least one non-whitespace character."""

    name = "nonempty"

    def passes(self, completion: str) -> bool:
        return bool(completion.strip())


class RegexMatch(_Check):
    """Passes completions matching ``pattern`` (``mode``: ``search``, ``match`` or ``fullmatch``)."""

    name = "regex"

    def __init__(self, pattern: str, mode: str = "search", **reward_options: float | bool | None) -> None:
        super().__init__(**reward_options)  # type: ignore[arg-type]
        if mode not in ("search", "match", "fullmatch"):
            raise ValueError(f"unknown mode={mode!r}; use search, match or fullmatch")
        try:
            self._regex = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"invalid regex pattern {pattern!r}: {err}") from err
        self.pattern, self.mode = pattern, mode

    def options(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "mode": self.mode}

    def passes(self, completion: str) -> bool:
        return getattr(self._regex, self.mode)(completion) is not None


class WordCount(_Check):
    """Passes completions whose whitespace word count is within ``[min_words, max_words]``."""

    name = "word_count"

    def __init__(self, min_words: int = 0, max_words: int | None = None,
                 **reward_options: float | bool | None) -> None:
        super().__init__(**reward_options)  # type: ignore[arg-type]
        if min_words < 0 or (max_words is not None and max_words < min_words):
            raise ValueError(f"need 0 <= min_words <= max_words, got {min_words}, {max_words}")
        self.min_words, self.max_words = min_words, max_words

    def options(self) -> dict[str, Any]:
        return {"min_words": self.min_words, "max_words": self.max_words}

    def passes(self, completion: str) -> bool:
        n = len(completion.split())
        return n >= self.min_words and (self.max_words is None or n <= self.max_words)


class Script(_Check):
    """Passes completions whose letters are mostly (``min_fraction``) in one of the Unicode ``scripts``.

    A cheap language-family check: ``script(scripts='LATIN')`` rejects an answer in Cyrillic or CJK
    when the task is English→German translation. The script is the first word of the Unicode name
    of each letter (``LATIN SMALL LETTER A`` → ``LATIN``). Texts without letters pass.
    """

    name = "script"

    def __init__(self, scripts: str = "LATIN", min_fraction: float = 0.9,
                 **reward_options: float | bool | None) -> None:
        super().__init__(**reward_options)  # type: ignore[arg-type]
        if not 0.0 <= min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
        self.scripts = frozenset(s.strip().upper() for s in scripts.split(",") if s.strip())
        if not self.scripts:
            raise ValueError("scripts must name at least one Unicode script, e.g. 'LATIN'")
        self.min_fraction = min_fraction

    def options(self) -> dict[str, Any]:
        return {"scripts": ",".join(sorted(self.scripts)), "min_fraction": self.min_fraction}

    def passes(self, completion: str) -> bool:
        letters = [ch for ch in completion if ch.isalpha()]
        if not letters:
            return True
        inside = sum(unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0] in self.scripts for ch in letters)
        return inside >= self.min_fraction * len(letters)


class Gate(_Composite):
    """``reward`` where ``check`` scores at least ``threshold``, ``value`` elsewhere.

    The guarded reward is computed only for passing samples; its component is NaN for the others.
    """

    name = "gate"

    def __init__(self, check: Reward, reward: Reward, threshold: float = 0.5, value: float = 0.0,
                 **reward_options: float | bool | None) -> None:
        super().__init__([check, reward], **reward_options)
        self.check, self.reward = check, reward
        self.threshold, self.value = float(threshold), float(value)

    @property
    def bounds(self) -> tuple[float, float]:
        lo, hi = self.reward.bounds
        return (min(lo, self.value), max(hi, self.value))

    @property
    def spec(self) -> str:
        options = {k: v for k, v in (("threshold", self.threshold), ("value", self.value))
                   if v != {"threshold": 0.5, "value": 0.0}[k]}
        return self._spec or self.call_spec([self.check.spec, self.reward.spec], options)

    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        # The guarded reward is computed only where the check passes (it may be expensive).
        checked = self.check.score_batch(batch)
        passed = checked.scores >= self.threshold
        scores = np.full(len(batch), self.value, dtype=np.float64)
        guarded = np.full(len(batch), np.nan)
        if passed.any():
            inner = self.reward.score_batch(batch.select(passed))
            scores[passed] = inner.scores
            guarded[passed] = inner.scores
        return scores, {self.check.component_name: checked.scores, self.reward.component_name: guarded}

"""Rewards made from metrics, mapped onto [0, 1] with higher = better.

- Metrics on a 0-100 scale (BLEU, chrF) are divided by 100.
- Metrics already on 0-1 (ROUGE, METEOR, exact match, token F1) are used as they are.
- BERTScore is cosine-based and can in principle go below 0: it is clipped to [0, 1].
- Error rates (WER, CER, TER) are unbounded above: the reward is ``1 - min(rate, 1)``, where TER's
  rate is its 0-100 score divided by 100. A perfect transcript scores 1; one with as many errors as
  reference units, or more, scores 0. Their component is named ``1-wer`` (``1-cer``, ``1-ter``) so that
  a logged value is never read as an error rate.
"""

from __future__ import annotations

import numpy as np

from speechgrpo.metrics.base import Metric
from speechgrpo.rewards.base import Reward, RewardBatch

#: Up to this many values are mapped in Python floats (one sample per call: verl's default reward manager).
_FEW = 8


class MetricReward(Reward):
    """A reward computed by one metric over the whole batch in a single call."""

    def __init__(self, metric: Metric, name: str | None = None, **reward_options: float | bool | None) -> None:
        super().__init__(**reward_options)  # type: ignore[arg-type]
        self.metric = metric
        self.name = name or metric.name

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def component_name(self) -> str:
        """``bleu`` for a higher-is-better metric; ``1-wer`` where the reward inverts an error rate."""
        return self.name if self.metric.higher_is_better else f"1-{self.name}"

    def describe(self) -> str:
        return f"{self.spec}[{self.metric.describe()}]"

    def _sacrebleu_signatures(self, nrefs: str) -> dict[str, str]:
        signature = self.metric.sacrebleu_signature(nrefs)
        return {} if signature is None else {self.component_name: signature}

    def to_reward_scale(self, values: np.ndarray) -> np.ndarray:
        """Map raw metric values onto [0, 1], higher is better (NaN stays NaN)."""
        if len(values) <= _FEW:  # in Python floats, the same IEEE operations: three array calls cost more
            return np.array(self._reward_floats(values.tolist()), dtype=np.float64)
        fraction = values / self.metric.scale if self.metric.scale != 1 else values
        if self.metric.higher_is_better:
            return np.maximum(np.minimum(fraction, 1.0), 0.0)  # np.clip's, at a third of its fixed cost
        return 1.0 - np.minimum(fraction, 1.0)

    def _reward_floats(self, values: list[float]) -> list[float]:
        """:meth:`to_reward_scale`'s array operations on Python floats, bit for bit (NaN stays NaN, -0.0 becomes
        0.0 as ``np.maximum(-0.0, 0.0)`` does; Python's ``max`` would keep -0.0)."""
        scale = self.metric.scale
        if self.metric.higher_is_better:
            return [1.0 if x > 1.0 else x if x > 0.0 or x != x else 0.0 for x in [v / scale for v in values]]
        return [1.0 - min(v / scale, 1.0) for v in values]

    def _raw(self, completions: list[str], references: list[tuple[str, ...]]) -> np.ndarray:
        pairs = list(zip(completions, references, strict=True))  # validated by the caller
        return self.metric.components_of_pairs(pairs)[self.metric.primary]

    def _few_reward_floats(self, completions: list[str], references: list[tuple[str, ...]]) -> list[float]:
        """The rewards of a few pairs in Python floats throughout: the arrays' fixed costs exceed their work."""
        return self._reward_floats(self.metric.primary_of_pairs(list(zip(completions, references, strict=True))))

    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if len(batch) <= _FEW:
            scores = np.array(self._few_reward_floats(batch.completions, batch.references), dtype=np.float64)
        else:
            scores = self.to_reward_scale(self._raw(batch.completions, batch.references))
        return scores, {self.component_name: scores}

    def _score_texts(self, completions: list[str], references: list[tuple[str, ...]]
                     ) -> tuple[list[float], dict[str, list[float]]]:
        if len(completions) <= _FEW:
            scores = self._few_reward_floats(completions, references)
        else:
            scores = self.to_reward_scale(self._raw(completions, references)).tolist()
        return scores, {self.component_name: list(scores)}

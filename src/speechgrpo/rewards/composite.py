"""Rewards built from other rewards. Every child's scores are reported as components.

- :class:`WeightedSum`: ``sum_i w_i r_i`` (weights as written: ``0.7*bleu + 0.3*bertscore`` stays in [0, 1]).
- :class:`GroupNormalizedSum`: GDPO-style: each component is z-scored within its GRPO group first,
  then summed with the weights, so a component with a small spread is not drowned by one with a
  large spread. Its scores are already centred per group (not on [0, 1]).
- :class:`Minimum` and :class:`Product`: all criteria must be good at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from speechgrpo._validation import check_weight
from speechgrpo.advantages import group_advantages
from speechgrpo.rewards.base import Reward, RewardBatch, RewardResult


def _merge_components(children: Sequence[Reward], results: Sequence[RewardResult]) -> dict[str, np.ndarray]:
    """Union of the children's components; repeated keys get a ``#k`` suffix."""
    merged: dict[str, np.ndarray] = {}
    for child, result in zip(children, results, strict=True):
        for key, values in result.components.items():
            name, k = key, 2
            while name in merged:
                name, k = f"{key}#{k}", k + 1
            merged[name] = values
        if child.component_name not in result.components and child.component_name not in merged:
            merged[child.component_name] = result.scores
    return merged


def _format_weight(weight: float) -> str:
    """The shortest text that reads back as ``weight`` (``1`` for 1.0, ``1e+300`` for 1e300)."""
    return str(int(weight)) if weight.is_integer() and abs(weight) < 1e16 else repr(weight)


class _Composite(Reward):
    """Shared plumbing: children are scored on the same validated batch."""

    def __init__(self, children: Sequence[Reward], **reward_options: float | bool | None) -> None:
        super().__init__(**reward_options)  # type: ignore[arg-type]
        if not children:
            raise ValueError(f"{type(self).__name__} needs at least one reward")
        for i, child in enumerate(children):
            if not isinstance(child, Reward):
                raise TypeError(f"component {i} is {type(child).__name__}, expected a Reward")
        self.children = list(children)

    @property
    def group_dependent(self) -> bool:
        return any(child.group_dependent for child in self.children)

    def _sacrebleu_signatures(self, nrefs: str) -> dict[str, str]:
        merged: dict[str, str] = {}
        for child in self.children:
            for name, signature in child._sacrebleu_signatures(nrefs).items():
                merged.setdefault(name, signature)
        return merged

    def _child_results(self, batch: RewardBatch) -> list[RewardResult]:
        return [child.score_batch(batch) for child in self.children]

    def describe(self) -> str:
        return f"{self.spec}[{'; '.join(child.describe() for child in self.children)}]"


class WeightedSum(_Composite):
    """``sum_i w_i * r_i``; weights must be finite and >= 0."""

    name = "weighted_sum"

    def __init__(self, terms: Sequence[tuple[float, Reward]], **reward_options: float | bool | None) -> None:
        super().__init__([reward for _, reward in terms], **reward_options)
        self.weights = [check_weight(w, f"weight of term {i}") for i, (w, _) in enumerate(terms)]

    @property
    def bounds(self) -> tuple[float, float]:
        return (sum(w * c.bounds[0] for w, c in zip(self.weights, self.children, strict=True)),
                sum(w * c.bounds[1] for w, c in zip(self.weights, self.children, strict=True)))

    @property
    def spec(self) -> str:
        return self._spec or " + ".join(f"{_format_weight(w)}*{c.spec}"
                                        for w, c in zip(self.weights, self.children, strict=True))

    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        results = self._child_results(batch)
        scores = np.zeros(len(batch), dtype=np.float64)
        for weight, result in zip(self.weights, results, strict=True):
            scores += weight * result.scores
        return scores, _merge_components(self.children, results)


class GroupNormalizedSum(WeightedSum):
    """GDPO: z-score each component within its group (biased std, zero-spread groups give 0), then
    take the weighted sum. Off-policy samples excluded by a child are left out of that child's stats."""

    name = "gdpo"

    @property
    def group_dependent(self) -> bool:
        return True

    @property
    def bounds(self) -> tuple[float, float]:
        return (-np.inf, np.inf)

    @property
    def spec(self) -> str:
        return self._spec or self.call_spec([super().spec])

    _warned_inferred_groups = False

    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if batch.groups_inferred and not self._warned_inferred_groups:
            self._warned_inferred_groups = True
            warnings.warn(f"{self.spec}: no group_ids given, so groups were inferred from identical references; "
                          "different prompts that share an answer are merged into one group. Pass group_ids= "
                          "(one id per prompt) to normalise within the real GRPO groups.", UserWarning, stacklevel=4)
        results = self._child_results(batch)
        scores = np.zeros(len(batch), dtype=np.float64)
        for weight, result in zip(self.weights, results, strict=True):
            normalized = group_advantages(result.scores, batch.group_ids, off_policy=~result.in_group_stats,
                                          off_policy_in_stats=False)
            scores += weight * normalized.advantages
        return scores, _merge_components(self.children, results)


class Minimum(_Composite):
    """The smallest child score per sample."""

    name = "min"

    @property
    def bounds(self) -> tuple[float, float]:
        return (min(c.bounds[0] for c in self.children), min(c.bounds[1] for c in self.children))

    @property
    def spec(self) -> str:
        return self._spec or self.call_spec([c.spec for c in self.children])

    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        results = self._child_results(batch)
        return np.min([r.scores for r in results], axis=0), _merge_components(self.children, results)


class Product(_Composite):
    """The product of child scores per sample (children must be non-negative)."""

    name = "product"

    def __init__(self, children: Sequence[Reward], **reward_options: float | bool | None) -> None:
        super().__init__(children, **reward_options)
        for child in self.children:
            if child.bounds[0] < 0:
                raise ValueError(f"product needs non-negative rewards; {child.spec} can be {child.bounds[0]}")

    @property
    def bounds(self) -> tuple[float, float]:
        return (float(np.prod([c.bounds[0] for c in self.children])),
                float(np.prod([c.bounds[1] for c in self.children])))

    @property
    def spec(self) -> str:
        return self._spec or self.call_spec([c.spec for c in self.children])

    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        results = self._child_results(batch)
        return np.prod([r.scores for r in results], axis=0), _merge_components(self.children, results)

"""The reward protocol: one batched call per trainer step, scores on a documented scale.

A reward takes a batch of completions with their references (one or several per sample), optional
group ids, an optional off-policy mask and optional extra per-sample fields, and returns a
:class:`RewardResult`: per-sample float scores, per-component scores, which samples enter group
statistics, which inputs were invalid, and a signature that makes the numbers reproducible.

Off-policy samples (MP-GRPO puts the ground truth into each group as one extra sample) are handled
per reward: scored like any other sample (default; the paper's semantics, where BLEU of the
reference with itself is the group's top reward), or given a fixed value without being scored, and
either counted in their group's mean/std (default, as in LUFFY and the paper) or excluded from it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from speechgrpo._group_ids import as_group_ids
from speechgrpo._validation import References, as_references, as_texts, check_same_length, unencodable
from speechgrpo.metrics.base import nrefs_of, package_version


@dataclass(frozen=True)
class RewardBatch:
    """A validated batch: what every reward's ``_compute`` receives."""

    completions: list[str]
    references: list[tuple[str, ...]]
    group_ids: np.ndarray
    off_policy: np.ndarray
    extra: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    #: True when the caller gave no ``group_ids`` and groups were inferred from identical references
    #: (which merges different prompts that share an answer, e.g. "yes").
    groups_inferred: bool = False
    #: sacrebleu's ``nrefs`` of the batch: references per sample, ``var`` if it varies (set from ``references``).
    nrefs: str | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nrefs", nrefs_of(self.references))  # once: every reward of a composite reads it

    def __len__(self) -> int:
        return len(self.completions)

    def select(self, mask: np.ndarray) -> RewardBatch:
        """The sub-batch of samples where ``mask`` is true (extra fields included)."""
        idx = np.flatnonzero(mask).tolist()
        return RewardBatch(
            completions=[self.completions[i] for i in idx],
            references=[self.references[i] for i in idx],
            group_ids=self.group_ids[idx],
            off_policy=self.off_policy[idx],
            extra={k: [v[i] for i in idx] for k, v in self.extra.items()},
            groups_inferred=self.groups_inferred,
        )


@dataclass(frozen=True)
class RewardResult:
    """Scores of one batch.

    Attributes:
        scores: per-sample reward, float64, shape ``(n,)``.
        components: per-sample score of every component (a plain reward has one, named after it).
        signature: reproducibility string (reward spec, options, ``nrefs`` of the batch as sacrebleu's,
            library versions).
        in_group_stats: samples that should enter group mean/std (off-policy ones may be excluded).
        invalid: completions that were not (valid) strings and got the reward's ``invalid_value``.
    """

    scores: np.ndarray
    components: dict[str, np.ndarray]
    signature: str
    in_group_stats: np.ndarray
    invalid: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def tolist(self) -> list[float]:
        return [float(x) for x in self.scores]


def format_call(name: str, options: Mapping[str, Any]) -> str:
    """``name`` or ``name(key=value, ...)`` with keys sorted: the canonical spec of a call."""
    if not options:
        return name
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in sorted(options.items()))})"


def _option_value(value: float | None, field_name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field_name} must be a finite number or None, got {value!r}")
    return float(value)


class Reward(ABC):
    """Base class of every reward.

    Args:
        off_policy_value: score given to off-policy samples instead of computing it (``None``: compute).
        off_policy_in_group_stats: whether off-policy samples count in their group's mean/std.
        invalid_value: score for a completion that is not a string or not valid Unicode (a lone
            surrogate) (``None``: raise a ``TypeError``/``ValueError`` naming its index).
    """

    #: Short name used for the component key and in specs.
    name: str = "reward"

    def __init__(self, *, off_policy_value: float | None = None, off_policy_in_group_stats: bool = True,
                 invalid_value: float | None = None) -> None:
        self.off_policy_value = _option_value(off_policy_value, "off_policy_value")
        self.off_policy_in_group_stats = bool(off_policy_in_group_stats)
        self.invalid_value = _option_value(invalid_value, "invalid_value")
        self._spec: str | None = None
        self._nrefs: str | None = None  # references per sample over every batch scored: a count, or "var"
        self._signatures: dict[str | None, str] = {}  # by nrefs: the reward's options do not change once built

    @property
    def component_name(self) -> str:
        """The key of this reward's own scores in ``RewardResult.components`` (and in trainers' logs)."""
        return self.name

    # -- description -------------------------------------------------------------------------------
    @property
    def group_dependent(self) -> bool:
        """Whether a sample's score depends on the other samples of its GRPO group (GDPO's per-group
        z-scores): such a reward scores every lone sample 0, so a framework that calls the reward one sample
        at a time cannot use it."""
        return False

    @property
    @abstractmethod
    def bounds(self) -> tuple[float, float]:
        """Lowest and highest score this reward can give (higher is always better)."""

    @property
    def spec(self) -> str:
        """A spec string that :func:`speechgrpo.rewards.parse_reward` turns back into this reward."""
        return self._spec or self.name

    def sacrebleu_signatures(self, nrefs: str | None = None) -> dict[str, str]:
        """sacrebleu's own signature string of each BLEU, chrF or TER component, by component name, at
        ``nrefs`` (default: this reward's, from the batches it has scored)."""
        nrefs = nrefs or self._nrefs
        if nrefs is None:
            raise ValueError("sacrebleu's signature needs the references per sample: score a batch first, or "
                             "pass nrefs")
        return self._sacrebleu_signatures(nrefs)

    def _sacrebleu_signatures(self, nrefs: str) -> dict[str, str]:
        return {}

    def reward_options(self) -> dict[str, Any]:
        """The off-policy and invalid-completion options set off their defaults, as a spec writes them."""
        options: dict[str, Any] = {}
        if self.off_policy_value is not None:
            options["off_policy_value"] = self.off_policy_value
        if not self.off_policy_in_group_stats:
            options["off_policy_in_group_stats"] = False
        if self.invalid_value is not None:
            options["invalid_value"] = self.invalid_value
        return options

    def call_spec(self, arguments: Sequence[str], options: Mapping[str, Any] | None = None) -> str:
        """``name(argument, ..., key=value, ...)`` with this reward's own options and its reward options, keys
        sorted: the canonical spec of a combinator."""
        keywords = {**(options or {}), **self.reward_options()}
        return f"{self.name}({', '.join([*arguments, *(f'{k}={v!r}' for k, v in sorted(keywords.items()))])})"

    def describe(self) -> str:
        """Spec plus what the numbers depend on (metric options); overridden by wrappers."""
        return self.spec

    @property
    def signature(self) -> str:
        """Reproducibility string of the reward's configuration, with ``nrefs`` (references per sample, as
        sacrebleu's signature gives it) over every batch it has scored: a count while they agree, ``var`` once
        they differ; none before the first batch. A result's signature has its own batch's ``nrefs``."""
        return self.signature_with_nrefs(self._nrefs)

    def signature_with_nrefs(self, nrefs: str | None) -> str:
        signature = self._signatures.get(nrefs)
        if signature is None:
            signature = self._signatures[nrefs] = self._format_signature(nrefs)
        return signature

    def _format_signature(self, nrefs: str | None) -> str:
        lo, hi = self.bounds
        off = ("compute" if self.off_policy_value is None else f"{self.off_policy_value:g}") + (
            ",in-stats" if self.off_policy_in_group_stats else ",excluded")
        invalid = "raise" if self.invalid_value is None else f"{self.invalid_value:g}"
        batch = "" if nrefs is None else f"|nrefs:{nrefs}"
        return (f"{self.describe()}{batch}|range:{lo:g}..{hi:g}|offpolicy:{off}|invalid:{invalid}"
                f"|speechgrpo:{package_version('speechgrpo')}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"

    # -- arithmetic, as in spec strings: 0.7 * bleu + 0.3 * chrf ------------------------------------
    def __mul__(self, weight: object) -> Reward:
        from speechgrpo.rewards.composite import WeightedSum

        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
            return NotImplemented
        return WeightedSum([(float(weight), self)])

    __rmul__ = __mul__

    def __add__(self, other: object) -> Reward:
        from speechgrpo.rewards.composite import WeightedSum

        if not isinstance(other, Reward):
            return NotImplemented

        def terms(reward: Reward) -> list[tuple[float, Reward]]:
            if type(reward) is WeightedSum and reward.has_default_options():  # flatten a + b + c
                return list(zip(reward.weights, reward.children, strict=True))
            return [(1.0, reward)]

        return WeightedSum(terms(self) + terms(other))

    def has_default_options(self) -> bool:
        """No off-policy or invalid-completion option set (such a reward can be merged into a sum)."""
        return self.off_policy_value is None and self.off_policy_in_group_stats and self.invalid_value is None

    # -- scoring -----------------------------------------------------------------------------------
    def __call__(self, completions: Sequence[Any], references: References, *,
                 group_ids: Sequence[int] | np.ndarray | None = None,
                 off_policy: Sequence[bool] | np.ndarray | None = None, **extra: Sequence[Any]) -> RewardResult:
        """Score a batch. ``extra`` fields (e.g. ``completion_ids``) hold one entry per sample."""
        texts, invalid = self._validate_completions(completions)
        refs = as_references(references, len(texts), "references")
        n = len(texts)
        if off_policy is None:
            off_mask = np.zeros(n, dtype=bool)
        else:
            off_mask = np.asarray(off_policy)
            check_same_length(n, off_mask, "off_policy")
            if off_mask.dtype != bool:
                raise TypeError(f"off_policy must be a boolean mask, got dtype {off_mask.dtype}")
        for key, values in extra.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
                raise TypeError(f"unexpected keyword argument {key!r} ({type(values).__name__}): a reward takes "
                                "completions, references, group_ids=, off_policy= and per-sample fields (one "
                                "value per completion, e.g. completion_ids=)")
            check_same_length(n, values, key)
        batch = RewardBatch(texts, refs, as_group_ids(group_ids, n, refs), off_mask, dict(extra),
                            groups_inferred=group_ids is None)
        result = self.score_batch(batch, invalid)
        self._note_nrefs(batch.nrefs)
        return result

    def _note_nrefs(self, nrefs: str | None) -> None:
        """Count a scored batch's ``nrefs`` in the reward's signature (a count while batches agree, then ``var``)."""
        if nrefs is not None and nrefs != self._nrefs:
            self._nrefs = nrefs if self._nrefs is None else "var"

    def score_texts(self, completions: list[str], references: list[tuple[str, ...]]
                    ) -> tuple[list[float], dict[str, list[float]]]:
        """Scores and components, as Python floats, of valid strings without group ids, off-policy mask or
        extra fields: :meth:`__call__`'s numbers, without its checks (the caller has made them: ``completions``
        are ``str`` of valid Unicode, ``references`` one non-empty tuple of them per sample) and without the
        arrays of a :class:`RewardResult`. For the one-sample calls of per-sample adapters (verl's default
        reward manager, OpenRLHF's reward file), where those fixed costs exceed the metric's own work."""
        scores, components = self._score_texts(completions, references)
        self._note_nrefs(nrefs_of(references))
        return scores, components

    def _score_texts(self, completions: list[str], references: list[tuple[str, ...]]
                     ) -> tuple[list[float], dict[str, list[float]]]:
        n = len(completions)
        result = self.score_batch(RewardBatch(completions, references, as_group_ids(None, n, references),
                                              np.zeros(n, dtype=bool), groups_inferred=True))
        return result.scores.tolist(), {key: np.asarray(values, dtype=np.float64).tolist()
                                        for key, values in result.components.items()}

    def component_names(self) -> tuple[str, ...]:
        """The components every result of this reward carries, read off one trivial sample (not counted in
        the signature's ``nrefs``): what adapters declare to trainers before the first batch."""
        probe = RewardBatch(["speechgrpo"], [("speechgrpo",)], np.zeros(1, dtype=np.int64), np.zeros(1, dtype=bool))
        return tuple(self.score_batch(probe).components)

    def _validate_completions(self, completions: Sequence[Any]) -> tuple[list[str], np.ndarray | None]:
        """The completions as texts, and which were invalid (``None``: none can be, invalid ones raise)."""
        if self.invalid_value is None:
            return as_texts(completions, "completions"), None
        if isinstance(completions, (str, bytes)):
            as_texts(completions, "completions")  # raises the usual error
        items = list(completions)
        invalid = np.array([not isinstance(c, str) or unencodable(c) is not None for c in items], dtype=bool)
        return [c if not bad else "" for c, bad in zip(items, invalid, strict=True)], invalid

    def score_batch(self, batch: RewardBatch, invalid: np.ndarray | None = None) -> RewardResult:
        """Score an already validated batch (composites call this on their children)."""
        n = len(batch)
        fixed_off = batch.off_policy if self.off_policy_value is not None else None
        skipped = invalid if fixed_off is None else fixed_off if invalid is None else invalid | fixed_off
        if skipped is None or not skipped.any():  # every sample computed (the common case: few array operations)
            scores, components = self._compute(batch)
        else:
            compute = ~skipped
            scores = np.zeros(n, dtype=np.float64)
            components = {}
            if compute.any():
                sub_scores, sub_components = self._compute(batch.select(compute))
                scores[compute] = sub_scores
                for key, values in sub_components.items():
                    components[key] = np.full(n, np.nan)
                    components[key][compute] = values
            if fixed_off is not None:
                scores[fixed_off] = self.off_policy_value
            if invalid is not None and self.invalid_value is not None:
                scores[invalid] = self.invalid_value
            for values in components.values():  # components of samples not computed take the final score
                values[skipped] = scores[skipped]
        if not components:
            components = {self.component_name: scores.copy()}
        in_stats = np.ones(n, dtype=bool) if self.off_policy_in_group_stats else ~batch.off_policy
        return RewardResult(scores, components, self.signature_with_nrefs(batch.nrefs), in_stats,
                            np.zeros(n, dtype=bool) if invalid is None else invalid)

    @abstractmethod
    def _compute(self, batch: RewardBatch) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Scores and components for every sample of ``batch``."""

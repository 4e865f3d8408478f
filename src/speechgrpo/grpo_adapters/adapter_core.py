"""What every framework adapter shares: turning labels into references, one engine call per batch,
the signature logged once, and a never-raise mode for trainers that swallow exceptions.

Framework modules (``trl``, ``openrlhf``, ``verl``, the reward server) only translate their calling
convention into :meth:`AdapterReward.score`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speechgrpo._validation import REFERENCE_KEYS, all_encodable, encodable, references_of, unencodable
from speechgrpo.rewards import Reward, as_reward

logger = logging.getLogger("speechgrpo.adapters")

#: Keys tried, in order, when a label is a dict (verl's ``reward_model`` field, user JSON rows).
LABEL_KEYS = REFERENCE_KEYS


class LabelError(ValueError):
    """A label from which no reference string can be read."""


def references_from_label(label: Any, where: str) -> tuple[str, ...]:
    """The reference strings of one sample.

    A label may be a string (used verbatim), a list/tuple of strings (several references), or a dict
    holding one of :data:`LABEL_KEYS` (SQuAD-style ``{"text": [...]}`` included). Frameworks pass the
    dataset value as stored (OpenRLHF's ``--data.label_key`` column, verl's ``ground_truth``).
    """
    if isinstance(label, (Mapping, list, tuple, np.ndarray, str)):
        try:
            return references_of(label, where)
        except (TypeError, ValueError) as err:
            raise LabelError(str(err)) from None
    raise LabelError(f"{where} must be a string, a list of strings or a dict with a reference key, "
                     f"got {type(label).__name__} {label!r}"[:200])


@dataclass(frozen=True)
class AdapterScores:
    """Scores of one adapter call: ``scores`` (float per sample), ``components`` and per-sample errors."""

    scores: list[float]
    components: dict[str, list[float]]
    errors: dict[int, str]


class AdapterReward:
    """A speechgrpo reward as framework adapters use it.

    Args:
        reward: a spec string (``"0.7*bleu + 0.3*chrf"``), a :class:`~speechgrpo.rewards.Reward` or a
            batched function (see :func:`speechgrpo.rewards.as_reward`).
        error_value: with ``safe=True`` in :meth:`score`, the score of a sample that cannot be scored.
    """

    def __init__(self, reward: str | Reward | Callable[..., Any], error_value: float = 0.0) -> None:
        self.reward = as_reward(reward)
        if not math.isfinite(error_value):
            raise ValueError(f"error_value must be finite, got {error_value}")
        self.error_value = float(error_value)
        self._logged_signature: str | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # picklable (TRL's async workers pickle reward functions)
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @property
    def signature(self) -> str:
        return self.reward.signature

    def log_signature(self) -> None:
        """Log the reward's signature (what makes a run's rewards reproducible) when it first scores and when
        it changes: its ``nrefs`` is the run's, a count, then ``var`` once batches differ."""
        signature = self.signature
        if signature == self._logged_signature:  # the usual call, without the lock (a race only takes it below)
            return
        with self._lock:
            if signature == self._logged_signature:
                return
            self._logged_signature = signature
        logger.info("speechgrpo reward %s", signature)

    def score(self, completions: Sequence[Any], labels: Sequence[Any], *, group_ids: Sequence[int] | None = None,
              off_policy: Sequence[bool] | None = None, safe: bool = False, returned_on_error: str | None = None,
              **extra: Sequence[Any]) -> AdapterScores:
        """Score a batch in one engine call.

        With ``safe=False`` bad input raises (a clear error naming the index). With ``safe=True`` nothing
        raises: a sample whose label or completion is unusable gets ``error_value``, the others are
        still scored together, and every problem is logged and returned in ``errors``.
        ``returned_on_error`` is what the log says such a sample gets, where the framework adapter
        returns something else than ``error_value`` (TRL's and ms-swift's ``None``).
        """
        n = len(completions)
        if len(labels) != n or (group_ids is not None and len(group_ids) != n) or (
                off_policy is not None and len(off_policy) != n):
            # one value per completion, whether or not some samples are bad (extra fields: the reward checks)
            fields = (("labels", labels), ("group_ids", group_ids), ("off_policy", off_policy))
            message = "; ".join(f"{len(values)} {name} for {n} completions" for name, values in fields
                                if values is not None and len(values) != n)
            if not safe:
                raise ValueError(message)
            logger.error("speechgrpo reward: %s; every sample gets %s", message, self._shown(returned_on_error))
            return AdapterScores([self.error_value] * n, {}, dict.fromkeys(range(n), message))
        plain = valid_strings(labels) and valid_strings(completions)  # the usual batch: one reference string a sample
        if plain and n and group_ids is None and off_policy is None and not extra:  # every per-sample call
            try:
                plain_scores, plain_components = self._score_usable(completions, list(zip(labels)), None, None, {})
            except Exception as err:
                if not safe:
                    raise
                return self._finish([self.error_value] * n, {}, self._failed(range(n), err, returned_on_error),
                                    returned_on_error)
            return self._finish(plain_scores, plain_components, {}, returned_on_error)
        errors: dict[int, str] = {}
        references: list[tuple[str, ...]] = []
        if plain:
            references = list(zip(labels))
        else:  # every item checked, one by one
            errors = self._check(completions, labels, references, safe)
        good = [i for i in range(n) if i not in errors] if errors else range(n)

        def usable(values: Sequence[Any]) -> Sequence[Any]:
            return [values[i] for i in good] if errors else values

        scores = [self.error_value] * n
        components: dict[str, list[float]] = {}
        if good:
            try:
                good_scores, good_components = self._score_usable(
                    usable(completions), usable(references), None if group_ids is None else usable(group_ids),
                    None if off_policy is None else usable(off_policy), {key: usable(v) for key, v in extra.items()})
            except Exception as err:
                if not safe:
                    raise
                errors.update(self._failed(good, err, returned_on_error))
            else:
                if not errors:  # every sample scored (the usual batch)
                    scores, components = good_scores, good_components
                else:
                    for j, i in enumerate(good):
                        scores[i] = good_scores[j]
                    for name, values in good_components.items():
                        column = [self.error_value] * n
                        for j, i in enumerate(good):
                            column[i] = values[j]
                        components[name] = column
        return self._finish(scores, components, errors, returned_on_error)

    def _failed(self, samples: Sequence[int], err: Exception, returned_on_error: str | None) -> dict[int, str]:
        """Log a reward call that raised on ``samples`` (scored together) and return their errors."""
        logger.exception("speechgrpo reward failed on a batch of %d; every sample gets %s", len(samples),
                         self._shown(returned_on_error))
        return dict.fromkeys(samples, f"{type(err).__name__}: {err}")

    def _finish(self, scores: list[float], components: dict[str, list[float]], errors: dict[int, str],
                returned_on_error: str | None) -> AdapterScores:
        """Log each sample that could not be scored and the reward's signature; the call's result."""
        for i, message in sorted(errors.items()):
            logger.error("speechgrpo reward: sample %d gets %s: %s", i, self._shown(returned_on_error), message)
        self.log_signature()
        return AdapterScores(scores, components, errors)

    def _score_usable(self, completions: Sequence[str], references: Sequence[tuple[str, ...]],
                      group_ids: Sequence[int] | None, off_policy: Sequence[Any] | None,
                      extra: dict[str, Sequence[Any]]) -> tuple[list[float], dict[str, list[float]]]:
        """Scores and components of checked samples as Python floats, in one reward call."""
        if group_ids is None and off_policy is None and not extra:  # every per-sample call: no result arrays
            return self.reward.score_texts(list(completions), list(references))
        result = self.reward(completions, references, group_ids=group_ids,
                             off_policy=None if off_policy is None else np.asarray([bool(x) for x in off_policy]),
                             **extra)
        return np.asarray(result.scores, dtype=np.float64).tolist(), {
            name: np.asarray(values, dtype=np.float64).tolist() for name, values in result.components.items()}

    def _shown(self, returned_on_error: str | None) -> str:
        """What the log says a sample that cannot be scored gets."""
        return returned_on_error if returned_on_error is not None else f"{self.error_value:g}"

    @staticmethod
    def _check(completions: Sequence[Any], labels: Sequence[Any], references: list[Any], safe: bool) -> dict[int, str]:
        """Read each label's references into ``references`` and check each completion, one by one: raises on the
        first problem unless ``safe``, else returns the problems by sample (that sample's reference ``""``)."""
        errors: dict[int, str] = {}
        for i, label in enumerate(labels):
            try:
                references.append(references_from_label(label, f"labels[{i}]"))
            except LabelError as err:
                if not safe:
                    raise
                errors[i] = str(err)
                references.append(("",))
        for i, completion in enumerate(completions):
            if not isinstance(completion, str):
                if not safe:
                    raise TypeError(f"completions[{i}] must be str, got {type(completion).__name__}")
                errors.setdefault(i, f"completions[{i}] is {type(completion).__name__}, not str")
            elif problem := unencodable(completion):
                if not safe:
                    raise ValueError(f"completions[{i}] {problem}")
                errors.setdefault(i, f"completions[{i}] {problem}")
        return errors


def valid_strings(items: Sequence[Any]) -> bool:
    """Whether every item is a ``str`` of valid Unicode (one C-speed pass; the usual batch)."""
    if len(items) == 1 and isinstance(items, (list, tuple)):  # one sample a call (verl, OpenRLHF v0.9.1+)
        return type(items[0]) is str and encodable(items[0])
    return set(map(type, items)) <= {str} and all_encodable(items)

"""Group advantages for GRPO-family trainers, on numpy arrays or torch tensors with one API.

All group statistics are segment sums over group ids (``np.bincount`` / ``Tensor.index_add_``), so
ragged, unsorted groups cost the same as fixed-size ones and nothing loops in Python. Computation is
in float64; torch inputs stay on their device.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speechgrpo._group_ids import dense_ids
from speechgrpo.advantages.config import AdvantageConfig, advantage_config

MAX_ABS_REWARD = 1e12
"""Larger rewards are rejected: their squares could overflow the statistics of a big batch."""


@dataclass(frozen=True)
class GroupAdvantages:
    """Result of :func:`group_advantages`.

    Attributes:
        advantages: one advantage per sample, shape ``(n,)``; a numpy float64 array, or a tensor of the
            rewards' float dtype on their device.
        keep: samples whose group carries signal (its rewards are not all equal): DAPO's dynamic-sampling
            filter. Same array type as ``advantages``, dtype bool.
        stats: floats for logging: ``groups``, ``frac_zero_std_groups``, ``group_std_mean``,
            ``reward_mean``, ``reward_std``, ``frac_missing``, ``advantage_mean``, ``advantage_std``,
            ``advantage_abs_max`` and, when ``clip`` is set, ``frac_clipped``.
    """

    advantages: Any
    keep: Any
    stats: dict[str, float]


class _Ops:
    """The few operations that differ between numpy and torch; everything else is shared syntax."""

    def __init__(self, like: Any) -> None:
        torch = sys.modules.get("torch")
        self.torch = torch if torch is not None and isinstance(like, torch.Tensor) else None
        self.device = like.device if self.torch is not None else None
        self.xp: Any = self.torch if self.torch is not None else np

    def floats(self, values: Any) -> Any:
        if self.torch is not None:
            return self.torch.as_tensor(values, device=self.device).detach().to(self.torch.float64)
        return np.asarray(values, dtype=np.float64)

    def array(self, values: Any, dtype: Any = None) -> Any:
        if self.torch is not None:
            return self.torch.as_tensor(values, device=self.device, dtype=dtype)
        return np.asarray(values, dtype=dtype)

    def bools(self, values: Any) -> Any:
        return self.array(values, self.torch.bool if self.torch is not None else bool)

    def segment_sum(self, values: Any, inverse: Any, n_groups: int) -> Any:
        if self.torch is not None:
            return self.torch.zeros(n_groups, dtype=values.dtype, device=self.device).index_add_(0, inverse, values)
        return np.bincount(inverse, weights=values, minlength=n_groups)

    def numpy(self, values: Any) -> np.ndarray:
        return np.asarray(values.cpu()) if self.torch is not None else np.asarray(values)

    def clamp_min(self, values: Any, low: float) -> Any:
        return values.clamp(min=low) if self.torch is not None else np.maximum(values, low)

    def to_floats(self, values: Sequence[Any]) -> list[float]:
        """Python floats from 0-d results, with one device sync for torch."""
        if self.torch is not None:
            return [float(v) for v in self.torch.stack([self.floats(v) for v in values]).tolist()]
        return [float(v) for v in values]


def _group_inverse(ops: _Ops, groups: Any, n: int) -> tuple[Any, int]:
    """Dense group index per sample (0..n_groups-1) from a group size or per-sample group ids."""
    if isinstance(groups, (int, np.integer)) and not isinstance(groups, bool):
        size = int(groups)
        if size < 1 or n % size:
            raise ValueError(f"group size {size} does not divide the batch of {n} samples; pass group ids "
                             "for ragged groups")
        return ops.array(np.arange(n, dtype=np.int64) // size), n // size
    if ops.torch is not None and isinstance(groups, ops.torch.Tensor):
        if groups.shape != (n,):
            raise ValueError(f"groups has shape {tuple(groups.shape)} but there are {n} samples")
        unique, inverse = ops.torch.unique(groups.to(ops.device), return_inverse=True)
        return inverse, len(unique)
    ids = np.asarray(groups)
    if ids.shape != (n,):
        raise ValueError(f"groups has shape {ids.shape} but there are {n} samples; pass a group size or one id "
                         "per sample")
    try:
        inverse = dense_ids(ids)
    except TypeError as err:
        raise TypeError(f"group ids must be hashable (ints or strings): {err}") from None
    return ops.array(inverse), int(inverse.max()) + 1 if n else 0


def _check_rewards(ops: _Ops, rewards: Any) -> Any:
    r = ops.floats(rewards)
    if r.ndim not in (1, 2):
        raise ValueError(f"rewards must have shape (n,) or (n, n_rewards), got {tuple(r.shape)}")
    bad = ops.xp.abs(r) > MAX_ABS_REWARD
    if bool(bad.any()):
        index = [int(i) for i in np.argwhere(ops.numpy(bad))[0]]
        raise ValueError(f"rewards{index} = {float(r[tuple(index)])} is infinite or above {MAX_ABS_REWARD:g} in "
                         "magnitude; use NaN for a missing reward")
    return r


class _Groups:
    """Per-group sums of the samples that enter the statistics."""

    def __init__(self, ops: _Ops, inverse: Any, n_groups: int, in_stats: Any, unbiased: bool) -> None:
        self.ops, self.inverse, self.n_groups, self.in_stats, self.unbiased = ops, inverse, n_groups, in_stats, unbiased
        self.weight = ops.floats(in_stats)
        self.count = ops.segment_sum(self.weight, inverse, n_groups)

    def moments(self, values: Any) -> tuple[Any, Any, Any]:
        """Group sum, mean and std of ``values`` over the samples in the statistics."""
        ops = self.ops
        total = ops.segment_sum(values * self.weight, self.inverse, self.n_groups)
        mean = total / ops.clamp_min(self.count, 1.0)
        deviation = (values - mean[self.inverse]) * self.weight
        dof = self.count - 1.0 if self.unbiased else self.count
        std = ops.xp.sqrt(ops.segment_sum(deviation * deviation, self.inverse, self.n_groups) / ops.clamp_min(dof, 1.0))
        return total, mean, std


def _batch_moments(ops: _Ops, values: Any, weight: Any, unbiased: bool) -> tuple[Any, Any, Any]:
    """Weighted batch total weight, mean and std (``weight`` 0 leaves a sample out)."""
    total = weight.sum()
    mean = (values * weight).sum() / ops.clamp_min(total, 1e-300)
    dof = total - 1.0 if unbiased else total
    var = (weight * (values - mean) ** 2).sum() / ops.clamp_min(dof, 1e-300)
    return total, mean, ops.xp.sqrt(var)


def _divide(ops: _Ops, numerator: Any, std: Any, config: AdvantageConfig) -> tuple[Any, Any]:
    """``numerator / (max(std, floor) + epsilon)`` and where that is defined (a positive denominator)."""
    denominator = ops.clamp_min(std, config.std_floor) + config.epsilon
    defined = denominator > 0
    return numerator / ops.xp.where(defined, denominator, 1.0), defined


def _group_stage(ops: _Ops, r: Any, valid: Any, groups: _Groups, config: AdvantageConfig) -> tuple[Any, Any, Any]:
    """Centre and scale one reward column; returns (advantages, per-group std, per-group zero-signal)."""
    xp = ops.xp
    r = xp.where(valid, r, 0.0)
    total, mean, std = groups.moments(r)
    zero_group = (groups.count < 2) | (std < config.zero_std_tol)
    if config.center == "group":
        centered, has_baseline = r - mean[groups.inverse], groups.count[groups.inverse] > 0
    elif config.center == "leave_one_out":
        others = groups.count[groups.inverse] - groups.weight
        baseline = (total[groups.inverse] - r * groups.weight) / ops.clamp_min(others, 1.0)
        centered, has_baseline = r - baseline, others > 0
    else:
        centered, has_baseline = r, xp.ones_like(valid)
    defined = xp.ones_like(valid)
    if config.scale == "group":
        centered, defined = _divide(ops, centered, std[groups.inverse], config)
        defined = defined & ~zero_group[groups.inverse]
    elif config.scale == "batch":
        count, _, batch_std = _batch_moments(ops, r, groups.weight, config.std_unbiased)
        centered, defined = _divide(ops, centered, batch_std, config)
        defined = defined & (count >= 2) & (batch_std >= config.zero_std_tol)
    keep = valid & has_baseline & defined
    if config.center != "none":  # in-stats members of a zero-spread group hold only float residue: exactly 0
        keep = keep & ~(zero_group[groups.inverse] & groups.in_stats)
    advantages = xp.where(keep, centered, 0.0)
    # A sample outside the statistics (MP-GRPO's reference with off_policy_in_stats=False) in a group whose
    # members leave no spread (all failed alike, or a single one): LUFFY's grpo_split takes the std as 1 (the
    # baseline 0 for a single member) instead of giving it 0, where it carries the most signal.
    outside = valid & ~groups.in_stats & zero_group[groups.inverse] & (groups.count[groups.inverse] > 0)
    if config.center == "group" and bool(outside.any()):
        single = groups.count[groups.inverse] == 1
        raw = r - xp.where(single, 0.0, mean[groups.inverse])
        unit = xp.ones_like(std[groups.inverse])
        fallback = _divide(ops, raw, unit, config)[0] if config.scale != "none" else raw
        advantages = xp.where(outside, fallback, advantages)
    return advantages, std, zero_group


def group_advantages(rewards: Any, groups: Any, *, preset: str | AdvantageConfig | None = None,
                     off_policy: Any = None, reward_weights: Sequence[float] | None = None,
                     token_counts: Any = None, **overrides: Any) -> GroupAdvantages:
    """Advantages of a GRPO batch, one per sample.

    Args:
        rewards: shape ``(n,)``, or ``(n, k)`` for ``k`` reward functions combined by ``reward_weights``
            according to ``aggregation``. A numpy array (or list) gives numpy results, a torch tensor
            gives tensors on its device. NaN marks a missing reward (TRL's ``None``): the sample is left
            out of the statistics and gets advantage 0. Infinite rewards, or above ``MAX_ABS_REWARD`` in
            magnitude, are an error.
        groups: the group size (samples of a group contiguous), or one group id per sample (ints or
            strings, any order, groups of any size).
        preset: a name from :data:`ADVANTAGE_PRESETS` (``"trl"``, ``"verl"``, ``"openrlhf"``,
            ``"paper"``, ...) or an :class:`AdvantageConfig`; default: z-score with the population std.
        off_policy: bool per sample: MP-GRPO's off-policy samples (the reference answer). They get an
            advantage like the others; ``off_policy_in_stats`` decides whether they enter the group stats.
        reward_weights: one weight per reward column (default all 1).
        token_counts: completion lengths; whitening then weights each sample by its tokens, which is
            the token-level whitening of OpenRLHF and verl for outcome rewards.
        **overrides: :class:`AdvantageConfig` fields changed on top of the preset.
    """
    config = advantage_config(preset, **overrides)
    ops = _Ops(rewards)
    xp = ops.xp
    r = _check_rewards(ops, rewards)
    n = r.shape[0]
    inverse, n_groups = _group_inverse(ops, groups, n)
    columns = r[:, None] if r.ndim == 1 else r
    weights = ops.floats([1.0] * columns.shape[1] if reward_weights is None else list(reward_weights))
    if weights.shape != (columns.shape[1],):
        raise ValueError(f"reward_weights has {weights.shape[0]} entries but rewards have {columns.shape[1]} columns")
    if not bool(xp.isfinite(weights).all()):
        raise ValueError(f"reward_weights must be finite, got {ops.numpy(weights).tolist()}")
    present = ~xp.isnan(columns)
    valid = present.any(1)
    summed = xp.where(present, columns, 0.0) @ weights
    if off_policy is None:
        off = xp.zeros_like(valid)
    else:
        off = ops.bools(off_policy)
        if off.shape != (n,):
            raise ValueError(f"off_policy has shape {tuple(off.shape)} but there are {n} samples")
    in_stats = valid & (~off | config.off_policy_in_stats)
    stat_groups = _Groups(ops, inverse, n_groups, in_stats, config.std_unbiased)

    if config.aggregation == "sum_then_normalize":
        advantages, group_std, zero_group = _group_stage(ops, summed, valid, stat_groups, config)
    else:
        advantages = xp.zeros_like(summed)
        zero_group = xp.ones_like(stat_groups.count, dtype=valid.dtype)
        for k in range(columns.shape[1]):
            column_groups = _Groups(ops, inverse, n_groups, in_stats & present[:, k], config.std_unbiased)
            z, _, zero_k = _group_stage(ops, columns[:, k], present[:, k], column_groups, config)
            advantages = advantages + weights[k] * z
            zero_group = zero_group & zero_k
        group_std = stat_groups.moments(xp.where(valid, summed, 0.0))[2]

    if config.whiten:
        tokens = xp.ones_like(summed) if token_counts is None else ops.floats(token_counts)
        if tokens.shape != (n,) or not bool((xp.isfinite(tokens) & (tokens >= 0)).all()):
            raise ValueError(f"token_counts must be {n} finite non-negative numbers")
        count, mean, std = _batch_moments(ops, advantages, xp.where(in_stats, tokens, 0.0), config.std_unbiased)
        whitened, defined = _divide(ops, advantages - mean, std, config)
        signal = defined & (count > 0) & (std >= config.zero_std_tol)
        advantages = xp.where(valid & signal, whitened, 0.0)

    frac_clipped = None
    if config.clip is not None:
        frac_clipped = ops.floats(xp.abs(advantages) > config.clip).mean()
        advantages = xp.clip(advantages, -config.clip, config.clip)

    keep = valid & ~zero_group[inverse]
    stats = _stats(ops, summed, valid, advantages, group_std, zero_group, stat_groups.count, n_groups, frac_clipped)
    if ops.torch is not None:
        out_dtype = rewards.dtype if rewards.is_floating_point() else ops.torch.get_default_dtype()
        advantages = advantages.to(out_dtype)
    return GroupAdvantages(advantages, keep, stats)


def _stats(ops: _Ops, summed: Any, valid: Any, advantages: Any, group_std: Any, zero_group: Any, count: Any,
           n_groups: int, frac_clipped: Any) -> dict[str, float]:
    xp = ops.xp
    weight = ops.floats(valid)
    n_valid, reward_mean, reward_std = _batch_moments(ops, xp.where(valid, summed, 0.0), weight, False)
    _, advantage_mean, advantage_std = _batch_moments(ops, advantages, weight, False)
    populated = ops.floats(count > 0)
    values = {
        "groups": float(n_groups),
        "frac_zero_std_groups": ops.floats(zero_group).mean() if n_groups else 0.0,
        "group_std_mean": (group_std * populated).sum() / ops.clamp_min(populated.sum(), 1.0),
        "reward_mean": reward_mean,
        "reward_std": reward_std,
        "frac_missing": 1.0 - n_valid / max(len(summed), 1),
        "advantage_mean": advantage_mean,
        "advantage_std": advantage_std,
        "advantage_abs_max": xp.abs(advantages).max() if len(advantages) else 0.0,
    }
    if frac_clipped is not None:
        values["frac_clipped"] = frac_clipped
    return dict(zip(values, ops.to_floats(list(values.values())), strict=True))

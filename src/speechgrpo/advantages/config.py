"""How group advantages are computed: one config object, and presets that match each framework."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from speechgrpo._presets import check_choice, resolve_preset

Center = Literal["group", "leave_one_out", "none"]
Scale = Literal["group", "batch", "none"]
Aggregation = Literal["sum_then_normalize", "normalize_then_sum"]


@dataclass(frozen=True)
class AdvantageConfig:
    """Options of :func:`speechgrpo.advantages.group_advantages`.

    The advantage of sample ``i`` in group ``g`` is computed in three stages:

    1. centre: ``r_i - mean_g`` (``"group"``), ``r_i - mean of the other members of g``
       (``"leave_one_out"``, RLOO) or ``r_i`` (``"none"``);
    2. scale: divide by ``max(std, std_floor) + epsilon`` where std is the std of the raw rewards of
       the group (``"group"``) or of the whole batch (``"batch"``, TRL's ``scale_rewards="batch"``),
       or do not divide (``"none"``, Dr. GRPO);
    3. whiten (optional): ``(a - batch mean) / (max(batch std, std_floor) + epsilon)`` over the batch,
       optionally weighted by token counts (REINFORCE++, GDPO's final step), then clamp to ``±clip``.

    Attributes:
        center, scale: see above.
        std_unbiased: Bessel-corrected std (TRL, verl, OpenRLHF use ``torch.std``) or the population std.
        epsilon: added to the std before dividing.
        std_floor: the std is raised to at least this value before dividing (LEAF uses 1/3).
        zero_std_tol: a group (or batch) whose std is below this has no learning signal: its members get
            exactly 0 instead of float residue divided by a tiny number.
        whiten: apply stage 3.
        clip: clamp advantages to ``[-clip, clip]`` (OpenRLHF's ``reward.clip_range``), ``None``: no clamp.
        off_policy_in_stats: whether off-policy samples (MP-GRPO's reference) enter their group's
            mean/std (LUFFY and the paper) or are scored against the on-policy samples only.
        aggregation: for several reward columns, ``"sum_then_normalize"`` (weighted sum, then stages
            1-3) or ``"normalize_then_sum"`` (GDPO: stages 1-2 per column, weighted sum, then a whitening).
    """

    center: Center = "group"
    scale: Scale = "group"
    std_unbiased: bool = False
    epsilon: float = 0.0
    std_floor: float = 0.0
    zero_std_tol: float = 1e-8
    whiten: bool = False
    clip: float | None = None
    off_policy_in_stats: bool = True
    aggregation: Aggregation = "sum_then_normalize"

    def __post_init__(self) -> None:
        check_choice("center", self.center, ("group", "leave_one_out", "none"))
        check_choice("scale", self.scale, ("group", "batch", "none"))
        check_choice("aggregation", self.aggregation, ("sum_then_normalize", "normalize_then_sum"))
        for name in ("epsilon", "std_floor", "zero_std_tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and
                                                                                       math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.clip is not None and not (isinstance(self.clip, (int, float)) and self.clip > 0):
            raise ValueError(f"clip must be a positive number or None, got {self.clip!r}")


ADVANTAGE_PRESETS: dict[str, AdvantageConfig] = {
    # TRL GRPOTrainer, scale_rewards="group" (default): (r - mean_g) / (unbiased std_g + 1e-4).
    "trl": AdvantageConfig(std_unbiased=True, epsilon=1e-4),
    # TRL scale_rewards="batch": group mean, std of the whole batch's rewards.
    "trl_batch": AdvantageConfig(scale="batch", std_unbiased=True, epsilon=1e-4),
    # TRL multi_objective_aggregation="normalize_then_sum" (GDPO).
    "trl_gdpo": AdvantageConfig(std_unbiased=True, epsilon=1e-4, whiten=True, aggregation="normalize_then_sum"),
    # verl compute_grpo_outcome_advantage, norm_adv_by_std_in_grpo=True: unbiased std + 1e-6.
    "verl": AdvantageConfig(std_unbiased=True, epsilon=1e-6),
    # OpenRLHF advantage_estimator=group_norm: unbiased std + 1e-9, then reward.clip_range [-10, 10].
    "openrlhf": AdvantageConfig(std_unbiased=True, epsilon=1e-9, clip=10.0),
    # Dr. GRPO (TRL scale_rewards="none", verl norm_adv_by_std_in_grpo=False, OpenRLHF dr_grpo): r - mean_g.
    "dr_grpo": AdvantageConfig(scale="none"),
    # RLOO: r - mean of the other G-1 samples (OpenRLHF rloo, verl rloo).
    "rloo": AdvantageConfig(center="leave_one_out", scale="none"),
    # REINFORCE++ (OpenRLHF reinforce): rewards whitened over the batch, (a - mean) / sqrt(max(var, 1e-8))
    # with the biased variance; pass token counts to whiten over tokens as OpenRLHF does.
    "reinforce_pp": AdvantageConfig(center="none", scale="none", whiten=True, std_floor=1e-4),
    # REINFORCE++-baseline (OpenRLHF reinforce_baseline): group mean subtracted, then whitened as above.
    "reinforce_pp_baseline": AdvantageConfig(scale="none", whiten=True, std_floor=1e-4),
    # The paper (Eq. 1 over the whole mixed group, off-policy reference included): its settings follow
    # TRL's GRPOConfig names, so TRL's std (unbiased + 1e-4) is the reading used here.
    "paper": AdvantageConfig(std_unbiased=True, epsilon=1e-4, off_policy_in_stats=True),
    # LEAF's GRPO baseline of the paper: z-score with the std floored at 1/3.
    "leaf": AdvantageConfig(std_floor=1.0 / 3.0),
    # LUFFY's training code (verl mix_src, adv_estimator=grpo_split with grpo_use_std=False): the group mean of
    # the on-policy samples only, no division by the std (as Dr. GRPO); the off-policy sample is scored against
    # that mean (with no on-policy spread too). Its paper writes the statistics over the whole mixed group.
    "luffy": AdvantageConfig(scale="none", off_policy_in_stats=False, epsilon=1e-6),
}


def advantage_config(preset: str | AdvantageConfig | None = None, **overrides: Any) -> AdvantageConfig:
    """A preset by name (see ``ADVANTAGE_PRESETS``) or a config, with fields overridden."""
    return resolve_preset(preset, ADVANTAGE_PRESETS, AdvantageConfig, "advantage", overrides)

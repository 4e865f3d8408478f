"""How the GRPO policy loss is computed: one config object, and presets for each published variant."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from speechgrpo._presets import check_choice, resolve_preset

RatioLevel = Literal["token", "sequence"]
LossAggregation = Literal["sequence_mean", "token_mean", "constant"]
KLEstimator = Literal["k1", "k2", "k3"]


@dataclass(frozen=True)
class LossConfig:
    """Options of :func:`speechgrpo.losses.policy_loss`.

    Attributes:
        epsilon_low, epsilon_high: the ratio is clipped to ``[1 - epsilon_low, 1 + epsilon_high]``;
            ``epsilon_high=None`` means symmetric (DAPO's clip-higher uses 0.2 / 0.28).
        ratio_level: ``"token"`` (PPO/GRPO) or ``"sequence"`` (GSPO: ``exp`` of the mean log-ratio of the
            sequence, shared by its tokens).
        aggregation: ``"sequence_mean"`` (original GRPO: mean over tokens, then over sequences),
            ``"token_mean"`` (DAPO and the paper: sum over all tokens / number of tokens) or
            ``"constant"`` (Dr. GRPO: sum / (batch size * max_completion_length)).
        max_completion_length: the constant of ``"constant"``; ``None`` uses the mask's width.
        beta: weight of the KL penalty to the reference policy (in the loss, per token).
        kl_estimator: ``"k1"`` (log-ratio), ``"k2"`` (half squared log-ratio) or ``"k3"``
            (``exp(ref - logp) - (ref - logp) - 1``, DeepSeekMath's, always >= 0).
        off_policy_shaping: LUFFY's gamma: off-policy tokens use ``p / (p + gamma)`` instead of ``p``;
            ``None`` keeps ``p`` (the paper's MP-GRPO).
        off_policy_kl: apply the KL penalty to off-policy tokens too.
        entropy_coef: entropy bonus (needs ``logits``); LUFFY uses 0.01.
        log_ratio_limit: log-ratios are clamped to ``±log_ratio_limit`` before ``exp`` (verl uses 20), so
            extreme log-probs give large finite ratios, never inf or NaN.
    """

    epsilon_low: float = 0.2
    epsilon_high: float | None = None
    ratio_level: RatioLevel = "token"
    aggregation: LossAggregation = "token_mean"
    max_completion_length: int | None = None
    beta: float = 0.0
    kl_estimator: KLEstimator = "k3"
    off_policy_shaping: float | None = None
    off_policy_kl: bool = True
    entropy_coef: float = 0.0
    log_ratio_limit: float = 20.0

    def __post_init__(self) -> None:
        check_choice("ratio_level", self.ratio_level, ("token", "sequence"))
        check_choice("aggregation", self.aggregation, ("sequence_mean", "token_mean", "constant"))
        check_choice("kl_estimator", self.kl_estimator, ("k1", "k2", "k3"))
        for name in ("epsilon_low", "epsilon_high", "beta", "entropy_coef", "off_policy_shaping", "log_ratio_limit"):
            value = getattr(self, name)
            if value is None and name in ("epsilon_high", "off_policy_shaping"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and
                                                                                       math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.off_policy_shaping == 0 or self.log_ratio_limit == 0:
            raise ValueError("off_policy_shaping and log_ratio_limit must be positive")
        if self.max_completion_length is not None and self.max_completion_length < 1:
            raise ValueError(f"max_completion_length must be >= 1, got {self.max_completion_length}")

    @property
    def clip_high(self) -> float:
        return self.epsilon_low if self.epsilon_high is None else self.epsilon_high


LOSS_PRESETS: dict[str, LossConfig] = {
    # DeepSeekMath GRPO: per-sequence token mean, then mean over sequences; k3 KL with beta 0.04.
    "grpo": LossConfig(aggregation="sequence_mean", beta=0.04),
    # DAPO: clip-higher 0.2/0.28, token-level normalization, no KL.
    "dapo": LossConfig(epsilon_high=0.28, aggregation="token_mean"),
    # Dr. GRPO: sum over tokens divided by a constant (batch size x max completion length), no KL.
    "dr_grpo": LossConfig(aggregation="constant"),
    # GSPO: sequence-level ratio with the GSPO paper's clip range, per-sequence mean.
    "gspo": LossConfig(epsilon_low=3e-4, epsilon_high=4e-4, ratio_level="sequence", aggregation="sequence_mean"),
    # TRL GRPOConfig defaults (loss_type="dapo", epsilon=0.2, beta=0).
    "trl": LossConfig(aggregation="token_mean"),
    # The paper: DAPO's token-level loss with GRPO's symmetric clip and k3 KL, beta 0.02; MP-GRPO's
    # reference tokens use ratio p/1 without clipping.
    "paper": LossConfig(aggregation="token_mean", beta=0.02),
    # LUFFY: token-level loss, no KL, policy shaping gamma 0.1 on off-policy tokens, entropy bonus 0.01.
    "luffy": LossConfig(aggregation="token_mean", off_policy_shaping=0.1, entropy_coef=0.01),
}


def loss_config(preset: str | LossConfig | None = None, **overrides: Any) -> LossConfig:
    """A preset by name (see ``LOSS_PRESETS``) or a config, with fields overridden."""
    return resolve_preset(preset, LOSS_PRESETS, LossConfig, "loss", overrides)

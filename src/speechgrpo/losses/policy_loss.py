"""The GRPO-family policy loss: PPO-clip surrogate, KL to a reference, off-policy (MP-GRPO) tokens.

Everything is masked with ``torch.where`` (never multiplication), so NaN or inf in padded positions
cannot leak into the loss or its gradient; ratios are formed in log space and clamped before ``exp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from speechgrpo.losses.config import LossConfig, loss_config
from speechgrpo.losses.log_probs import token_entropy


@dataclass(frozen=True)
class PolicyLoss:
    """Result of :func:`policy_loss`.

    Attributes:
        loss: the scalar to call ``backward()`` on.
        per_token: the unaggregated loss, shape ``(batch, tokens)``, 0 at padding.
        stats: detached 0-d tensors for logging (no device sync): ``clip_frac_low``, ``clip_frac_high``,
            ``clip_frac`` (on-policy tokens where the clip is active), ``ratio_mean``, ``tokens``,
            ``pg_loss`` (the policy-gradient part of ``loss``), and when they apply ``kl``, ``kl_loss``
            (``beta`` x KL, aggregated as ``loss``), ``entropy``, ``off_policy_prob``.
    """

    loss: torch.Tensor
    per_token: torch.Tensor
    stats: dict[str, torch.Tensor]


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3",
               log_ratio_limit: float = 20.0) -> torch.Tensor:
    """Per-token estimate of KL(pi_theta || pi_ref) from log-probs of the sampled tokens."""
    log_ratio = (ref_logprobs - logprobs).clamp(-log_ratio_limit, log_ratio_limit)
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.exp(log_ratio) - log_ratio - 1.0
    raise ValueError(f"kl estimator must be 'k1', 'k2' or 'k3', got {estimator!r}")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, values, 0.0).sum() / mask.sum().clamp(min=1)


def _check_shape(name: str, tensor: torch.Tensor | None, shape: tuple[int, ...]) -> None:
    if tensor is not None and tuple(tensor.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {shape}")


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor | None, advantages: torch.Tensor,
                mask: torch.Tensor, *, ref_logprobs: torch.Tensor | None = None,
                off_policy: torch.Tensor | None = None, logits: torch.Tensor | None = None,
                temperature: float = 1.0, sampling_ratio: torch.Tensor | None = None,
                num_tokens: float | torch.Tensor | None = None, num_sequences: float | torch.Tensor | None = None,
                preset: str | LossConfig | None = None, **overrides: Any) -> PolicyLoss:
    """GRPO policy loss over a batch of completions.

    Args:
        logprobs: ``(batch, tokens)`` log-probs of the completion tokens under the current policy.
        old_logprobs: the same under the policy that sampled them; ``None`` means one update per rollout
            (ratio 1, gradient of the plain policy gradient). Ignored for off-policy rows.
        advantages: ``(batch,)`` (broadcast over tokens) or ``(batch, tokens)``; must be finite.
        mask: ``(batch, tokens)``, true (or 1) on completion tokens, false on padding.
        ref_logprobs: log-probs under the reference policy; required when ``beta > 0``.
        off_policy: ``(batch,)`` bool, MP-GRPO/LUFFY rows (e.g. the reference answer): their behaviour
            probability is taken as 1, so the per-token term is ``f(p) * A`` with ``p = exp(logprobs)``,
            ``f`` the identity or LUFFY's shaping ``p / (p + gamma)``, and no clipping.
        logits: ``(batch, tokens, vocab)`` for the entropy statistic and bonus: the entropy of
            ``softmax(logits / temperature)``. Without a bonus (``entropy_coef`` 0) the statistic is computed
            without gradient, chunk by chunk.
        sampling_ratio: ``(batch, tokens)`` or ``(batch, 1)``, TRL's vLLM importance-sampling correction: the
            policy-gradient term of each token is multiplied by it (the KL term is not), e.g. ``exp(trainer
            log-prob - sampler log-prob)``, truncated or masked; no gradient flows through it.
        num_tokens: the token normalizer of ``"token_mean"`` when it must span more than this call
            (gradient accumulation or several ranks: pass the global count of completion tokens).
        num_sequences: likewise the number of sequences that ``"sequence_mean"`` and ``"constant"``
            divide by (default: this call's batch size).
        preset: a name from :data:`LOSS_PRESETS` (``"paper"``, ``"dapo"``, ``"grpo"``, ...) or a config.
        **overrides: :class:`LossConfig` fields changed on top of the preset.
    """
    config = loss_config(preset, **overrides)
    if logprobs.ndim != 2:
        raise ValueError(f"logprobs must have shape (batch, tokens), got {tuple(logprobs.shape)}")
    shape = tuple(logprobs.shape)
    batch, width = shape
    for name, tensor in (("old_logprobs", old_logprobs), ("mask", mask), ("ref_logprobs", ref_logprobs)):
        _check_shape(name, tensor, shape)
    _check_shape("off_policy", off_policy, (batch,))
    if advantages.shape not in ((batch,), shape):
        raise ValueError(f"advantages has shape {tuple(advantages.shape)}, expected ({batch},) or {shape}")
    if not torch.isfinite(advantages).all():
        index = torch.nonzero(~torch.isfinite(advantages))[0].tolist()
        raise ValueError(f"advantages{index} is not finite")
    if config.beta > 0 and ref_logprobs is None:
        raise ValueError(f"beta={config.beta} needs ref_logprobs")
    if config.entropy_coef > 0 and logits is None:
        raise ValueError(f"entropy_coef={config.entropy_coef} needs logits")
    if sampling_ratio is not None and (sampling_ratio.shape not in ((batch, 1), shape)
                                       or not bool(torch.isfinite(sampling_ratio).all())):
        raise ValueError(f"sampling_ratio must be finite with shape ({batch}, 1) or {shape}, got "
                         f"{tuple(sampling_ratio.shape)}")

    valid = mask.bool()
    logp = torch.where(valid, logprobs, 0.0)
    old = logp.detach() if old_logprobs is None else torch.where(valid, old_logprobs, 0.0)
    adv = (advantages[:, None] if advantages.ndim == 1 else advantages).to(logp.dtype).expand(shape)
    limit = config.log_ratio_limit

    log_ratio = (logp - old).clamp(-limit, limit)
    if config.ratio_level == "sequence":
        lengths = valid.sum(-1).clamp(min=1)
        log_ratio = (torch.where(valid, log_ratio, 0.0).sum(-1) / lengths)[:, None].expand(shape)
    ratio = torch.exp(log_ratio)
    clipped = ratio.clamp(1.0 - config.epsilon_low, 1.0 + config.clip_high)
    objective = torch.minimum(ratio * adv, clipped * adv)

    off = torch.zeros(batch, dtype=torch.bool, device=logp.device) if off_policy is None else off_policy.bool()
    off_tokens = valid & off[:, None]
    on_tokens = valid & ~off[:, None]
    if off_policy is not None:
        capped = logp.clamp(max=0.0)  # log p <= 0, so p = exp(log p) <= 1 cannot overflow
        if config.off_policy_shaping is None:
            weight = torch.exp(capped)
        else:  # p / (p + gamma) = sigmoid(log p - log gamma), stable for any log p
            weight = torch.sigmoid(capped - torch.log(torch.tensor(config.off_policy_shaping, dtype=logp.dtype)))
        objective = torch.where(off_tokens, weight * adv, objective)

    if sampling_ratio is not None:
        objective = objective * sampling_ratio.detach().to(objective.dtype)

    sequences = batch if num_sequences is None else num_sequences

    def aggregate(values: torch.Tensor) -> torch.Tensor:
        values = torch.where(valid, values, 0.0)
        if config.aggregation == "sequence_mean":
            return (values.sum(-1) / valid.sum(-1).clamp(min=1)).sum() / sequences
        if config.aggregation == "token_mean":
            return values.sum() / (valid.sum().clamp(min=1) if num_tokens is None else num_tokens)
        return values.sum() / (sequences * (config.max_completion_length or width))

    per_token = -objective
    stats: dict[str, torch.Tensor] = {"pg_loss": aggregate(per_token.detach())}
    if ref_logprobs is not None:
        kl = kl_penalty(logp, torch.where(valid, ref_logprobs, 0.0), config.kl_estimator, limit)
        kl_tokens = valid if config.off_policy_kl else on_tokens
        if config.beta > 0:
            kl_term = config.beta * torch.where(kl_tokens, kl, 0.0)
            per_token = per_token + kl_term
            stats["kl_loss"] = aggregate(kl_term.detach())
        stats["kl"] = _masked_mean(kl.detach(), kl_tokens)
    if logits is not None:
        _check_shape("logits", logits, (*shape, logits.shape[-1]))
        with torch.set_grad_enabled(torch.is_grad_enabled() and config.entropy_coef > 0):
            entropy = token_entropy(logits, temperature)
        if config.entropy_coef > 0:
            per_token = per_token - config.entropy_coef * entropy
        stats["entropy"] = _masked_mean(entropy.detach(), valid)
    per_token = torch.where(valid, per_token, 0.0)
    loss = aggregate(per_token)

    ratio_d, adv_d = ratio.detach(), adv.detach()
    low = (ratio_d < 1.0 - config.epsilon_low) & (adv_d < 0)
    high = (ratio_d > 1.0 + config.clip_high) & (adv_d > 0)
    stats.update(clip_frac_low=_masked_mean(low.float(), on_tokens),
                 clip_frac_high=_masked_mean(high.float(), on_tokens),
                 clip_frac=_masked_mean((low | high).float(), on_tokens),
                 ratio_mean=_masked_mean(ratio_d, on_tokens),
                 tokens=valid.sum().float())
    if off_policy is not None:
        stats["off_policy_prob"] = _masked_mean(torch.exp(logp.detach().clamp(max=0.0)), off_tokens)
    return PolicyLoss(loss, per_token, stats)

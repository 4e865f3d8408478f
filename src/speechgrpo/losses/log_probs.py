"""Per-token log-probabilities and entropies from logits, safe on extreme and masked (-inf) logits."""

from __future__ import annotations

import torch


def _finite_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = logits.float() / temperature
    if torch.isnan(logits).any():
        raise ValueError("logits contain NaN")
    finfo = torch.finfo(logits.dtype)
    # -inf marks a masked vocabulary entry; a floor keeps logsumexp and 0 * logit finite.
    return logits.clamp(min=finfo.min / 2, max=finfo.max / 2)


def token_log_probs(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / temperature)`` at ``token_ids``: shape ``logits.shape[:-1]``, float32.

    Uses gather minus logsumexp, so no ``(batch, tokens, vocab)`` log-softmax is materialized.
    """
    if logits.shape[:-1] != token_ids.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and token_ids {tuple(token_ids.shape)} do not match")
    logits = _finite_logits(logits, temperature)
    picked = logits.gather(-1, token_ids.long().unsqueeze(-1)).squeeze(-1)
    return (picked - torch.logsumexp(logits, dim=-1)).clamp(max=0.0)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of ``softmax(logits / temperature)`` per position: shape ``logits.shape[:-1]``, float32."""
    logits = _finite_logits(logits, temperature)
    # logsumexp - E_p[logit]: finite value and gradient even where p underflows to 0 (p log p would not be).
    return torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(-1)

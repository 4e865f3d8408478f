"""Per-token log-probabilities and entropies from logits, safe on extreme and masked (-inf) logits.

A GRPO micro-batch's logits are ``(completions, tokens, vocabulary)``: 1 GiB in float32 at 8 x 200 tokens of
Qwen2-Audio's 156k vocabulary. :func:`token_log_probs` never copies them whole: it works through them in
chunks of positions (upcast to float32 one chunk at a time) and its backward pass forms the gradient chunk by
chunk too, so autograd holds the logits as the model made them (bf16 under autocast) plus one gradient of the
same size. :func:`token_entropy` does the same when no gradient is asked for (the logged statistic).
"""

from __future__ import annotations

from typing import Any

import torch

CHUNK_ELEMENTS = 1 << 24  # float32 elements per chunk (64 MiB)


def _finite_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float() / temperature
    if torch.isnan(logits).any():
        raise ValueError("logits contain NaN")
    finfo = torch.finfo(logits.dtype)
    # -inf marks a masked vocabulary entry; a floor keeps logsumexp and 0 * logit finite.
    return logits.clamp(min=finfo.min / 2, max=finfo.max / 2)


def _check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def _chunks(rows: int, vocabulary: int) -> list[slice]:
    size = max(1, CHUNK_ELEMENTS // max(vocabulary, 1))
    return [slice(start, min(start + size, rows)) for start in range(0, rows, size)]


class _SelectedLogProbs(torch.autograd.Function):
    """``log softmax(logits / T)`` at the given ids, chunk by chunk in float32; saves the logits, not a copy."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, ids: torch.Tensor, temperature: float) -> torch.Tensor:
        vocabulary = logits.shape[-1]
        flat, flat_ids = logits.reshape(-1, vocabulary), ids.reshape(-1, 1).long()
        out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(out)
        for rows in _chunks(flat.shape[0], vocabulary):
            x = _finite_logits(flat[rows], temperature)
            lse[rows] = torch.logsumexp(x, dim=-1)
            out[rows] = x.gather(-1, flat_ids[rows])[:, 0] - lse[rows]
        keep = out <= 0.0  # rounding can put a certain token at +1e-7: clamped to 0, no gradient there
        ctx.save_for_backward(logits, ids, lse, keep)
        ctx.temperature = temperature
        return out.clamp(max=0.0).reshape(ids.shape)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        logits, ids, lse, keep = ctx.saved_tensors
        temperature = ctx.temperature
        vocabulary = logits.shape[-1]
        flat, flat_ids = logits.reshape(-1, vocabulary), ids.reshape(-1, 1).long()
        weight = torch.where(keep, grad.reshape(-1).float(), 0.0)
        out = torch.empty_like(flat)
        for rows in _chunks(flat.shape[0], vocabulary):
            x = _finite_logits(flat[rows], temperature)
            # d/dx_j (x_t - logsumexp x) = [j == t] - softmax(x)_j, and x = logits / T
            part = torch.exp(x - lse[rows, None]).mul_(-weight[rows, None])
            part.scatter_add_(-1, flat_ids[rows], weight[rows, None])
            out[rows] = part.div_(temperature).to(out.dtype)
        return out.reshape(logits.shape), None, None


def token_log_probs(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / temperature)`` at ``token_ids``: shape ``logits.shape[:-1]``, float32.

    Selective and chunked (module docstring): no ``(batch, tokens, vocab)`` float32 tensor is materialized,
    in the forward or the backward pass.
    """
    if logits.shape[:-1] != token_ids.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and token_ids {tuple(token_ids.shape)} do not match")
    _check_temperature(temperature)
    result: torch.Tensor = _SelectedLogProbs.apply(logits, token_ids, float(temperature))  # type: ignore[no-untyped-call]
    return result


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of ``softmax(logits / temperature)`` per position: shape ``logits.shape[:-1]``, float32.

    Without a gradient to track (``torch.no_grad()``, or logits that need none) it runs chunk by chunk."""
    _check_temperature(temperature)
    if torch.is_grad_enabled() and logits.requires_grad:
        return _entropy(_finite_logits(logits, temperature))
    vocabulary = logits.shape[-1]
    flat = logits.detach().reshape(-1, vocabulary)
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
    for rows in _chunks(flat.shape[0], vocabulary):
        out[rows] = _entropy(_finite_logits(flat[rows], temperature))
    return out.reshape(logits.shape[:-1])


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    # logsumexp - E_p[logit]: finite value and gradient even where p underflows to 0 (p log p would not be).
    return torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(-1)

"""Token-id BLEU in torch (CPU or CUDA), for trainers that hold completions as token ids.

This is BLEU over the policy's token ids, not linguistic BLEU: it depends on the tokenizer and is
not comparable with sacrebleu scores on text. What it shares with sacrebleu is the arithmetic:
clipped n-gram counts (maximum over references), the closest reference length (ties to the
shorter), ``exp``/``floor``/``add-k``/``none`` smoothing and effective order, on a 0-100 scale.

Counting is sparse and exact: n-grams are numbered order by order with ``torch.unique`` over
``(previous key, next id)`` pairs, so keys never collide whatever the vocabulary size, and counts
are taken over ``(row, key)`` pairs that occur, never over a dense ``batch x vocabulary`` table.
Memory is O(number of n-grams).
"""

from __future__ import annotations

import torch

SMOOTHING = ("none", "floor", "add-k", "exp")
_DEFAULT_SMOOTH_VALUE = {"none": 0.0, "floor": 0.1, "add-k": 1.0, "exp": 0.0}


def _masks(candidates: torch.Tensor, references: torch.Tensor, pad_id: int | None,
           candidate_mask: torch.Tensor | None,
           reference_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if candidate_mask is None:
        candidate_mask = candidates != pad_id if pad_id is not None else torch.ones_like(candidates, dtype=torch.bool)
    if reference_mask is None:
        reference_mask = references != pad_id if pad_id is not None else torch.ones_like(references, dtype=torch.bool)
    return candidate_mask.bool(), reference_mask.bool()


def token_bleu_statistics(candidates: torch.Tensor, references: torch.Tensor, pad_id: int | None = None,
                          candidate_mask: torch.Tensor | None = None, reference_mask: torch.Tensor | None = None,
                          max_order: int = 4) -> torch.Tensor:
    """Per row ``[hyp_len, ref_len, correct_1..N, total_1..N]`` (int64), sacrebleu's BLEU statistics.

    Args:
        candidates: ``(B, Lc)`` token ids.
        references: ``(B, Lr)`` or ``(B, R, Lr)`` token ids.
        pad_id: id marking padding (excluded); or give explicit boolean masks of the same shapes.
            Masked positions are removed before n-grams are formed (left, right or inner padding).
    """
    if candidates.dim() != 2:
        raise ValueError(f"candidates must be (batch, length), got shape {tuple(candidates.shape)}")
    if references.dim() == 2:
        references = references.unsqueeze(1)
        if reference_mask is not None:
            reference_mask = reference_mask.unsqueeze(1)
    if references.dim() != 3 or references.shape[0] != candidates.shape[0]:
        raise ValueError(f"references must be (batch, length) or (batch, refs, length) with batch "
                         f"{candidates.shape[0]}, got shape {tuple(references.shape)}")
    if max_order < 1:
        raise ValueError(f"max_order must be >= 1, got {max_order}")
    cand_mask, ref_mask = _masks(candidates, references, pad_id, candidate_mask, reference_mask)
    batch, n_refs, _ = references.shape
    device = candidates.device
    # Pack the kept tokens of every sequence (candidates, then references) with their sequence index.
    cand_seq = torch.arange(batch, device=device).unsqueeze(1).expand_as(candidates)
    ref_seq = (batch + torch.arange(batch * n_refs, device=device)).reshape(batch, n_refs, 1).expand_as(references)
    ids = torch.cat([candidates[cand_mask], references[ref_mask]]).long()
    seq = torch.cat([cand_seq[cand_mask], ref_seq[ref_mask]])
    lengths = torch.bincount(seq, minlength=batch * (1 + n_refs))
    hyp_len, ref_lens = lengths[:batch], lengths[batch:].reshape(batch, n_refs)
    # closest reference length, ties to the shorter one
    longest = int(ref_lens.max().item()) + 1 if ref_lens.numel() else 1
    rank = (ref_lens - hyp_len.unsqueeze(1)).abs() * longest + ref_lens
    ref_len = ref_lens.gather(1, rank.argmin(dim=1, keepdim=True)).squeeze(1)

    correct = torch.zeros(batch, max_order, dtype=torch.long, device=device)
    total = torch.zeros(batch, max_order, dtype=torch.long, device=device)
    id_space = int(ids.max().item()) + 1 if ids.numel() else 1
    keys = ids  # keys[p]: number of the n-gram starting at packed position p (-1: crosses a sequence end)
    for n in range(1, max_order + 1):
        if n > 1:
            nxt = ids[n - 1:]
            valid = (seq[n - 1:] == seq[: nxt.numel()]) & (keys[: nxt.numel()] >= 0)
            combined = torch.where(valid, keys[: nxt.numel()] * id_space + nxt, torch.full_like(nxt, -1))
            uniq, inverse = torch.unique(combined, return_inverse=True)
            keys = torch.where(valid, inverse - int(bool((uniq < 0).any())), torch.full_like(inverse, -1))
        ok = keys >= 0
        key, owner = keys[ok], seq[: keys.numel()][ok]
        space = int(key.max().item()) + 1 if key.numel() else 1
        is_cand = owner < batch
        total[:, n - 1] = torch.bincount(owner[is_cand], minlength=batch)
        cand_code, cand_count = torch.unique(owner[is_cand] * space + key[is_cand], return_counts=True)
        # reference counts per (reference, n-gram), then the maximum over each row's references
        ref_code, ref_count = torch.unique((owner[~is_cand] - batch) * space + key[~is_cand], return_counts=True)
        row_code = torch.div(ref_code, space * n_refs, rounding_mode="floor") * space + ref_code % space
        merged, where = torch.unique(row_code, return_inverse=True)
        if merged.numel() == 0 or cand_code.numel() == 0:
            continue
        merged_count = torch.zeros(merged.numel(), dtype=torch.long, device=device).scatter_reduce(
            0, where, ref_count, reduce="amax", include_self=False)
        pos = torch.searchsorted(merged, cand_code).clamp(max=merged.numel() - 1)
        clipped = torch.where(merged[pos] == cand_code, torch.minimum(cand_count, merged_count[pos]),
                              torch.zeros_like(cand_count))
        correct[:, n - 1].index_add_(0, torch.div(cand_code, space, rounding_mode="floor"), clipped)
    return torch.cat([hyp_len.unsqueeze(1), ref_len.unsqueeze(1), correct, total], dim=1)


def bleu_from_statistics_torch(stats: torch.Tensor, smooth_method: str = "exp", smooth_value: float | None = None,
                               effective_order: bool = True) -> torch.Tensor:
    """sacrebleu's ``compute_bleu`` on rows of statistics, vectorised (float64, 0-100)."""
    if smooth_method not in SMOOTHING:
        raise ValueError(f"unknown smooth_method={smooth_method!r}; choose one of {SMOOTHING}")
    value = _DEFAULT_SMOOTH_VALUE[smooth_method] if smooth_value is None else float(smooth_value)
    order = (stats.shape[1] - 2) // 2
    stats = stats.double()
    sys_len, ref_len = stats[:, 0], stats[:, 1]
    correct, total = stats[:, 2:2 + order].clone(), stats[:, 2 + order:].clone()
    any_match = (correct > 0).any(dim=1)
    if smooth_method == "add-k" and order > 1:
        correct[:, 1:] += value
        total[:, 1:] += value
    valid = torch.cumprod((total > 0).double(), dim=1).bool()  # sacrebleu stops at the first empty order
    zero = valid & (correct == 0)
    if smooth_method == "exp":
        halvings = torch.cumsum(zero.double(), dim=1)
        zero_precision = 100.0 / (torch.pow(2.0, halvings) * total.clamp(min=1))
    elif smooth_method == "floor":
        zero_precision = 100.0 * value / total.clamp(min=1)
    else:
        zero_precision = torch.zeros_like(total)
    precision = torch.where(zero, zero_precision, 100.0 * correct / total.clamp(min=1))
    precision = torch.where(valid, precision, torch.zeros_like(precision))
    eff = valid.sum(dim=1).clamp(min=1).double() if effective_order else torch.full_like(sys_len, order)
    use = valid if effective_order else torch.ones_like(valid)
    logs = torch.where(precision > 0, torch.log(precision.clamp(min=1e-300)),
                       torch.full_like(precision, -9999999999.0))
    log_sum = torch.where(use, logs, torch.zeros_like(logs)).sum(dim=1)
    brevity = torch.where(sys_len < ref_len,
                          torch.where(sys_len > 0, torch.exp(1 - ref_len / sys_len.clamp(min=1)),
                                      torch.zeros_like(sys_len)),
                          torch.ones_like(sys_len))
    score = brevity * torch.exp(log_sum / eff)
    return torch.where(any_match, score, torch.zeros_like(score))


def token_bleu(candidates: torch.Tensor, references: torch.Tensor, pad_id: int | None = None,
               candidate_mask: torch.Tensor | None = None, reference_mask: torch.Tensor | None = None,
               max_order: int = 4, smooth_method: str = "exp", smooth_value: float | None = None,
               effective_order: bool = True) -> torch.Tensor:
    """Per-row BLEU (0-100, float64) over token ids; see :func:`token_bleu_statistics` for the inputs."""
    stats = token_bleu_statistics(candidates, references, pad_id, candidate_mask, reference_mask, max_order)
    return bleu_from_statistics_torch(stats, smooth_method, smooth_value, effective_order)

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

import numpy as np
import torch

from speechgrpo.metrics._formulas import bleu_from_statistics, smooth_value_of
from speechgrpo.metrics.jit import compiled_available


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
    """sacrebleu's ``compute_bleu`` on each row of statistics (float64, 0-100, on ``stats``' device).

    The formula is the library's one copy (:mod:`speechgrpo.metrics._formulas`), compiled with numba
    when available; it runs on the CPU, which for a batch of rows costs microseconds next to counting.
    """
    value = smooth_value_of(smooth_method, smooth_value)
    order = (stats.shape[1] - 2) // 2
    rows = stats.detach().to("cpu", torch.int64).numpy()
    if compiled_available():
        from speechgrpo.metrics.ngram_kernels import bleu_scores

        scores = bleu_scores(rows, order, smooth_method, value, effective_order)
    else:
        scores = np.array([bleu_from_statistics(r[2:2 + order], r[2 + order:], int(r[0]), int(r[1]), smooth_method,
                                                value, effective_order) for r in rows], dtype=np.float64)
    return torch.from_numpy(np.asarray(scores, dtype=np.float64)).to(stats.device)


def token_bleu(candidates: torch.Tensor, references: torch.Tensor, pad_id: int | None = None,
               candidate_mask: torch.Tensor | None = None, reference_mask: torch.Tensor | None = None,
               max_order: int = 4, smooth_method: str = "exp", smooth_value: float | None = None,
               effective_order: bool = True) -> torch.Tensor:
    """Per-row BLEU (0-100, float64) over token ids; see :func:`token_bleu_statistics` for the inputs."""
    stats = token_bleu_statistics(candidates, references, pad_id, candidate_mask, reference_mask, max_order)
    return bleu_from_statistics_torch(stats, smooth_method, smooth_value, effective_order)

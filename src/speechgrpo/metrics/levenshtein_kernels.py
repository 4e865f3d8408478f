"""Compiled word-level Levenshtein distance over a batch of id sequences (the WER kernel).

Texts are ranges of one flat id array (:mod:`speechgrpo.metrics.word_ids`). Each pair's distance (unit
costs, as jiwer's and rapidfuzz's) is computed after stripping the common prefix and suffix (which never
changes the distance): where the shorter side has at most 64 words, by Hyyrö's bit-parallel form of
Myers' algorithm (one 64-bit column of the dynamic programme per word of the other side, as rapidfuzz
does), else by the textbook dynamic programme on one row of cells. With several references the one with
the lowest rate is kept, the first on ties, as ``min(candidates, key=rate)`` does.
"""

from __future__ import annotations

import numpy as np

from speechgrpo.metrics.jit import njit


@njit
def _bit_parallel_distance(ids: np.ndarray, p0: int, m: int, t0: int, n: int, masks: np.ndarray) -> int:
    # pragma: no cover - compiled
    """Levenshtein distance of pattern ``ids[p0:p0+m]`` (1 <= m <= 64) and text ``ids[t0:t0+n]``: the
    vertical differences of a DP column as two bit vectors (+1 in ``vp``, -1 in ``vn``), advanced one text
    word per step (Hyyrö 2003). ``masks`` is all zeros by word id, and is left so."""
    one = np.uint64(1)
    for j in range(m):
        masks[ids[p0 + j]] |= one << np.uint64(j)
    last = one << np.uint64(m - 1)
    vp = ~np.uint64(0)
    vn = np.uint64(0)
    distance = m
    for i in range(n):
        x = masks[ids[t0 + i]]
        d0 = (((x & vp) + vp) ^ vp) | x | vn
        hp = vn | ~(d0 | vp)
        hn = d0 & vp
        if hp & last:
            distance += 1
        elif hn & last:
            distance -= 1
        hp = (hp << one) | one  # row 0 of the programme grows by one per text word
        hn = hn << one
        vp = hn | ~(d0 | hp)
        vn = hp & d0
    for j in range(m):
        masks[ids[p0 + j]] = np.uint64(0)
    return distance


@njit
def _distance(ids: np.ndarray, a0: int, a1: int, b0: int, b1: int, row: np.ndarray, masks: np.ndarray) -> int:
    # pragma: no cover - compiled
    while a0 < a1 and b0 < b1 and ids[a0] == ids[b0]:
        a0 += 1
        b0 += 1
    while a0 < a1 and b0 < b1 and ids[a1 - 1] == ids[b1 - 1]:
        a1 -= 1
        b1 -= 1
    n, m = a1 - a0, b1 - b0
    if n == 0 or m == 0:
        return n + m
    if min(n, m) <= 64:
        if n < m:  # the shorter side is the pattern
            return _bit_parallel_distance(ids, a0, n, b0, m, masks)
        return _bit_parallel_distance(ids, b0, m, a0, n, masks)
    for j in range(m + 1):
        row[j] = j
    for i in range(1, n + 1):
        diagonal = row[0]
        row[0] = i
        x = ids[a0 + i - 1]
        for j in range(1, m + 1):
            above = row[j]
            best = diagonal + (0 if ids[b0 + j - 1] == x else 1)
            if above + 1 < best:
                best = above + 1
            if row[j - 1] + 1 < best:
                best = row[j - 1] + 1
            row[j] = best
            diagonal = above
    return int(row[m])


@njit
def best_reference_edits(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, pair_hyp: np.ndarray,
                         pair_refset: np.ndarray, refset_ptr: np.ndarray, refset_texts: np.ndarray) -> np.ndarray:
    # pragma: no cover - compiled
    """Per pair ``[edits, reference length]`` against its best reference (lowest rate, first on ties)."""
    out = np.zeros((pair_hyp.size, 2), np.int64)
    longest = 1
    for t in range(starts.size):
        longest = max(longest, ends[t] - starts[t])
    row = np.empty(longest + 1, np.int64)
    masks = np.zeros(ids.max() + 1 if ids.size else 1, np.uint64)  # per word id, its positions in a pattern
    for q in range(pair_hyp.size):
        h = pair_hyp[q]
        best_rate = np.inf
        rs = pair_refset[q]
        for k in range(refset_ptr[rs], refset_ptr[rs + 1]):
            r = refset_texts[k]
            edits = _distance(ids, starts[h], ends[h], starts[r], ends[r], row, masks)
            length = ends[r] - starts[r]
            rate = edits / length if length > 0 else float(edits)
            if rate < best_rate:
                best_rate = rate
                out[q, 0] = edits
                out[q, 1] = length
    return out

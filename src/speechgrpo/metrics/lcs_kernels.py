"""Compiled longest-common-subsequence length over a batch of id sequences (the ROUGE-L kernel).

Texts are ranges of one flat id array (:mod:`speechgrpo.metrics.word_ids`). After taking off the common
prefix and suffix (each common end token adds exactly one to the LCS), a pair whose shorter side has at
most 64 words is computed bit-parallel (Allison and Dix 1986, in Hyyrö's 2004 form: one 64-bit row of
the dynamic programme per word of the other side, as rapidfuzz's ``LCSseq`` does); longer pairs by the
textbook dynamic programme on one row of cells. Both are exact for any lengths.
"""

from __future__ import annotations

import numpy as np

from speechgrpo.metrics.jit import njit


@njit
def _bit_parallel_lcs(ids: np.ndarray, p0: int, m: int, t0: int, n: int, masks: np.ndarray) -> int:
    # pragma: no cover - compiled
    """LCS length of pattern ``ids[p0:p0+m]`` (1 <= m <= 64) and text ``ids[t0:t0+n]``. Bit ``i`` of ``v`` is
    0 where row ``i`` of the programme has grown; ``masks`` is all zeros by word id, and is left so."""
    one = np.uint64(1)
    for j in range(m):
        masks[ids[p0 + j]] |= one << np.uint64(j)
    v = ~np.uint64(0)
    for i in range(n):
        u = v & masks[ids[t0 + i]]
        v = (v + u) | (v - u)
    for j in range(m):
        masks[ids[p0 + j]] = np.uint64(0)
    zeros = ~v
    if m < 64:
        zeros &= (one << np.uint64(m)) - one
    count = 0
    while zeros:  # population count
        zeros &= zeros - one
        count += 1
    return count


@njit
def lcs_lengths(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, a: np.ndarray,
                b: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``out[q]``: the LCS length of texts ``a[q]`` and ``b[q]``."""
    out = np.zeros(a.size, np.int64)
    longest = 1
    for t in range(starts.size):
        longest = max(longest, ends[t] - starts[t])
    row = np.empty(longest + 1, np.int64)
    masks = np.zeros(ids.max() + 1 if ids.size else 1, np.uint64)  # per word id, its positions in a pattern
    for q in range(a.size):
        x0, x1 = starts[a[q]], ends[a[q]]
        y0, y1 = starts[b[q]], ends[b[q]]
        common = 0
        while x0 < x1 and y0 < y1 and ids[x0] == ids[y0]:
            x0 += 1
            y0 += 1
            common += 1
        while x0 < x1 and y0 < y1 and ids[x1 - 1] == ids[y1 - 1]:
            x1 -= 1
            y1 -= 1
            common += 1
        n = x1 - x0
        m = y1 - y0
        if n == 0 or m == 0:
            out[q] = common
        elif m <= 64:
            out[q] = common + _bit_parallel_lcs(ids, y0, m, x0, n, masks)
        elif n <= 64:
            out[q] = common + _bit_parallel_lcs(ids, x0, n, y0, m, masks)
        else:
            row[:m + 1] = 0
            for i in range(x0, x1):
                x = ids[i]
                diagonal = 0
                for j in range(1, m + 1):
                    above = row[j]
                    if ids[y0 + j - 1] == x:
                        row[j] = diagonal + 1
                    elif row[j - 1] > above:
                        row[j] = row[j - 1]
                    diagonal = above
            out[q] = common + row[m]
    return out

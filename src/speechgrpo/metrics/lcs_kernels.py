"""Compiled longest-common-subsequence length over a batch of id sequences (the ROUGE-L kernel).

Texts are ranges of one flat id array (:mod:`speechgrpo.metrics.word_ids`). Each length is the
textbook dynamic programme on one row of ``len(b) + 1`` cells, after taking off the common prefix and
suffix (each common end token adds exactly one to the LCS), so it is exact for any lengths.
"""

from __future__ import annotations

import numpy as np

from speechgrpo.metrics.jit import njit


@njit
def lcs_lengths(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, a: np.ndarray,
                b: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``out[q]``: the LCS length of texts ``a[q]`` and ``b[q]``."""
    out = np.zeros(a.size, np.int64)
    longest = 1
    for t in range(starts.size):
        longest = max(longest, ends[t] - starts[t])
    row = np.empty(longest + 1, np.int64)
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
        m = y1 - y0
        if x1 == x0 or m == 0:
            out[q] = common
            continue
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

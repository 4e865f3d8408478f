"""numba kernels behind :mod:`speechgrpo.metrics.word_ids` (imported only when numba is used)."""

from __future__ import annotations

import numpy as np

from speechgrpo.metrics.jit import njit

_SP, _NL, _DOT, _COMMA, _DASH, _ZERO, _NINE = 32, 10, 46, 44, 45, 48, 57


@njit
def apply_13a_rules(src: np.ndarray, padded: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    n0 = src.size
    s = np.empty(3 * n0 + 4, np.uint32)
    n = 0
    for i in range(n0):  # rule 1: ([{-~[-` -&(-+:-@/]) -> ' \1 '
        c = src[i]
        if c < 128 and padded[c]:
            s[n] = _SP
            s[n + 1] = c
            s[n + 2] = _SP
            n += 3
        else:
            s[n] = c
            n += 1
    a = np.empty(2 * n + 4, np.uint32)
    m = 0
    i = 0
    while i < n:  # rule 2: ([^0-9])([\.,]) -> '\1 \2 '
        c = s[i]
        if i + 1 < n and not (_ZERO <= c <= _NINE) and (s[i + 1] == _DOT or s[i + 1] == _COMMA):
            a[m] = c
            a[m + 1] = _SP
            a[m + 2] = s[i + 1]
            a[m + 3] = _SP
            m += 4
            i += 2
        else:
            a[m] = c
            m += 1
            i += 1
    b = np.empty(2 * m + 4, np.uint32)
    k = 0
    i = 0
    while i < m:  # rule 3: ([\.,])([^0-9]) -> ' \1 \2'
        c = a[i]
        if i + 1 < m and c in (_DOT, _COMMA) and not (_ZERO <= a[i + 1] <= _NINE):
            b[k] = _SP
            b[k + 1] = c
            b[k + 2] = _SP
            b[k + 3] = a[i + 1]
            k += 4
            i += 2
        else:
            b[k] = c
            k += 1
            i += 1
    out = np.empty(2 * k + 4, np.uint32)
    j = 0
    i = 0
    while i < k:  # rule 4: ([0-9])(-) -> '\1 \2 '
        c = b[i]
        if i + 1 < k and _ZERO <= c <= _NINE and b[i + 1] == _DASH:
            out[j] = c
            out[j + 1] = _SP
            out[j + 2] = _DASH
            out[j + 3] = _SP
            j += 4
            i += 2
        else:
            out[j] = c
            j += 1
            i += 1
    return out[:j]


@njit
def _grow(table: np.ndarray, hashes: np.ndarray, n_words: int) -> np.ndarray:  # pragma: no cover - compiled
    """A hash table twice as large holding words ``0..n_words-1`` (open addressing on their hashes)."""
    cap = table.size * 2
    grown = np.full(cap, -1, np.int64)
    for w in range(n_words):
        slot = np.int64(hashes[w] & np.uint64(cap - 1))
        while grown[slot] != -1:
            slot = (slot + 1) & (cap - 1)
        grown[slot] = w
    return grown


@njit
def split_ids(text: np.ndarray, n_lines: int, space: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    # pragma: no cover - compiled
    """Words of each line (split on ``space``, lines on newline) as ids, equal words equal ids in order of
    first occurrence; the table grows with the vocabulary (kept at most half full), so it stays in cache."""
    n = text.size
    ids = np.empty(n // 2 + 1, np.int64)
    ends = np.zeros(n_lines, np.int64)
    table = np.full(1024, -1, np.int64)
    first = np.empty(1024, np.int64)
    length = np.empty(1024, np.int64)
    hashes = np.empty(1024, np.uint64)
    n_words = 0
    n_tok = 0
    line = 0
    i = 0
    while i < n:
        c = text[i]
        if c == _NL:
            ends[line] = n_tok
            line += 1
            i += 1
            continue
        if c == _SP or (c <= 0x3000 and space[c]):
            i += 1
            continue
        j = i
        h = np.uint64(1469598103934665603)
        while j < n:
            d = text[j]
            if d == _SP or (d <= 0x3000 and space[d]):
                break
            h = (h ^ np.uint64(d)) * np.uint64(1099511628211)
            j += 1
        size = j - i
        cap = table.size
        slot = np.int64(h & np.uint64(cap - 1))
        while True:
            w = table[slot]
            if w == -1:
                if n_words == first.size:
                    first = np.concatenate((first, np.empty(first.size, np.int64)))
                    length = np.concatenate((length, np.empty(length.size, np.int64)))
                    hashes = np.concatenate((hashes, np.empty(hashes.size, np.uint64)))
                first[n_words] = i
                length[n_words] = size
                hashes[n_words] = h
                ids[n_tok] = n_words
                n_words += 1
                if 2 * n_words > cap:
                    table = _grow(table, hashes, n_words)
                else:
                    table[slot] = n_words - 1
                break
            if length[w] == size and hashes[w] == h:
                f = first[w]
                same = True
                for x in range(size):
                    if text[f + x] != text[i + x]:
                        same = False
                        break
                if same:
                    ids[n_tok] = w
                    break
            slot = (slot + 1) & (cap - 1)
        n_tok += 1
        i = j
    ends[line] = n_tok
    return ids[:n_tok], ends, n_words


@njit
def compact_ids(points: np.ndarray) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
    """Code points to ids ``0..k-1`` in order of first occurrence, through a table over all of Unicode."""
    table = np.full(0x110000, -1, np.int64)
    ids = np.empty(points.size, np.int64)
    k = 0
    for i in range(points.size):
        c = points[i]
        if table[c] == -1:
            table[c] = k
            k += 1
        ids[i] = table[c]
    return ids, k

"""numba kernels behind :mod:`speechgrpo.metrics.word_ids` (imported only when numba is used)."""

from __future__ import annotations

from typing import Any

import numpy as np

from speechgrpo.metrics.jit import njit

_SP, _NL, _DOT, _COMMA, _DASH, _ZERO, _NINE = 32, 10, 46, 44, 45, 48, 57


@njit
def apply_13a_rules(src: np.ndarray, padded: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """sacrebleu 13a's four regular expressions, in order, each as ``re.sub`` applies it (leftmost,
    non-overlapping matches):

    1. ``([{-~[-` -&(-+:-@/])`` -> ``' \\1 '``
    2. ``([^0-9])([\\.,])`` -> ``'\\1 \\2 '``
    3. ``([\\.,])([^0-9])`` -> ``' \\1 \\2'``
    4. ``([0-9])(-)`` -> ``'\\1 \\2 '``

    Rules 2-4 look one character ahead, so the four run as one pipeline over the text, each later rule
    holding at most one pending character (``p2``, ``p3``, ``p4``) of the previous rule's output. While
    every stage holds one and ``p3`` is not ``.,-``, a character other than ``.,`` (and rule 1's padding
    of it) only moves the pending characters on: the fast path, a tight loop over most of a text. They add
    only spaces: two per padded character (rule 1), per ``.`` or ``,`` (rules 2 and 3) and per ``-``
    (rule 4), which bounds the output.
    """
    n = src.size
    kind = np.zeros(128, np.int64)  # 1: padded by rule 1, 2: "." or ","; what each adds to the output
    grows = np.zeros(128, np.int64)
    for c in range(128):
        if padded[c]:
            kind[c] = 1
            grows[c] = 2
        elif c in (_DOT, _COMMA):
            kind[c] = 2
            grows[c] = 4
        elif c == _DASH:
            grows[c] = 2
    bound = n + 16
    for i in range(n):
        c = src[i]
        if c < 128:
            bound += grows[c]
    out = np.empty(bound, np.uint32)
    b1 = np.empty(3, np.int64)  # one character's output of each rule
    b2 = np.empty(4, np.int64)
    b3 = np.empty(4, np.int64)
    p2 = p3 = p4 = np.int64(-1)
    j = 0
    i = 0
    while i <= n:  # position n flushes the pipeline (-1: end of text)
        if p2 != -1 and p3 != -1 and p4 != -1:
            # the fast path: while p3 is not ".,-" rules 2-4 cannot match, so they are a three-character
            # delay line (out <- p4 <- p3 <- p2 <- next), and rule 1's padding goes through it too
            while i < n and p3 != _DOT and p3 != _COMMA and p3 != _DASH:
                c = np.int64(src[i])
                k = kind[c] if c < 128 else 0
                if k == 2:
                    break
                if k == 1:
                    if p2 in (_DOT, _COMMA, _DASH):
                        break
                    out[j] = p4
                    out[j + 1] = p3
                    out[j + 2] = p2
                    j += 3
                    p4 = _SP
                    p3 = c
                    p2 = _SP
                else:
                    out[j] = p4
                    j += 1
                    p4 = p3
                    p3 = p2
                    p2 = c
                i += 1
        c = np.int64(src[i]) if i < n else np.int64(-1)
        i += 1
        if c < 0:
            b1[0] = -1
            n1 = 1
        elif c < 128 and padded[c]:
            b1[0] = _SP
            b1[1] = c
            b1[2] = _SP
            n1 = 3
        else:
            b1[0] = c
            n1 = 1
        for x1 in range(n1):
            c2 = b1[x1]
            n2 = 0  # rule 2 on c2
            if p2 != -1:
                if c2 >= 0 and not (_ZERO <= p2 <= _NINE) and (c2 in (_DOT, _COMMA)):
                    b2[0] = p2
                    b2[1] = _SP
                    b2[2] = c2
                    b2[3] = _SP
                    n2 = 4
                    p2 = -1
                else:
                    b2[0] = p2
                    n2 = 1
                    p2 = c2
            else:
                p2 = c2
            if c2 < 0:
                b2[n2] = -1
                n2 += 1
            for x2 in range(n2):
                c3 = b2[x2]
                n3 = 0  # rule 3 on c3
                if p3 != -1:
                    if c3 >= 0 and (p3 in (_DOT, _COMMA)) and not (_ZERO <= c3 <= _NINE):
                        b3[0] = _SP
                        b3[1] = p3
                        b3[2] = _SP
                        b3[3] = c3
                        n3 = 4
                        p3 = -1
                    else:
                        b3[0] = p3
                        n3 = 1
                        p3 = c3
                else:
                    p3 = c3
                if c3 < 0:
                    b3[n3] = -1
                    n3 += 1
                for x3 in range(n3):
                    c4 = b3[x3]
                    if p4 != -1:  # rule 4 on c4
                        if c4 == _DASH and _ZERO <= p4 <= _NINE:
                            out[j] = p4
                            out[j + 1] = _SP
                            out[j + 2] = _DASH
                            out[j + 3] = _SP
                            j += 4
                            p4 = -1
                            continue
                        out[j] = p4
                        j += 1
                    p4 = c4
    return out[:j]


#: A word's entry in :func:`split_ids`' hash table: its hash, then its length and id as ``(length << 32) | id``
#: (16 bytes: four entries a cache line; where it first occurs is kept by id, read only to confirm a match)
_ENTRY = 2


@njit
def _grow(table: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """The hash table twice as large, every entry moved to its slot for the new size (open addressing)."""
    cap = table.size // _ENTRY
    grown = np.full(2 * table.size, -1, np.int64)
    for s in range(cap):
        if table[_ENTRY * s + 1] != -1:
            slot = np.int64(np.uint64(table[_ENTRY * s]) & np.uint64(2 * cap - 1))
            while grown[_ENTRY * slot + 1] != -1:
                slot = (slot + 1) & (2 * cap - 1)
            grown[_ENTRY * slot] = table[_ENTRY * s]
            grown[_ENTRY * slot + 1] = table[_ENTRY * s + 1]
    return grown


@njit
def _hash(text: np.ndarray, i: int, j: int) -> Any:  # pragma: no cover - compiled
    h = np.uint64(1469598103934665603)  # FNV-1a over the code points, as split_ids computes it
    for x in range(i, j):
        h = (h ^ np.uint64(text[x])) * np.uint64(1099511628211)
    return h


@njit
def split_ids(text: np.ndarray, n_lines: int, space: np.ndarray, punct: np.ndarray,
              jiwer: bool) -> tuple[np.ndarray, np.ndarray, int]:  # pragma: no cover - compiled
    """Words of each line (split on ``space``, lines on newline) as ids, equal words equal ids in order of
    first occurrence. The hash table holds each word's hash, length and id in 16 bytes (a probe mostly finds
    its line in cache: 24% faster than 32-byte entries with the first position, on 1M real-text words) and
    grows with the vocabulary (kept at most half full); equal hashes and lengths are confirmed by comparing
    the code points at the word's first occurrence, so ids are exact (a word's length must stay below 2**31
    and the count of distinct words below 2**32: gigabytes of text in one call would be needed to reach them).

    ``punct`` (ASCII flags, or empty for none) splits one leading or trailing punctuation character off
    each word longer than one, as sacrebleu's chrF++ does (a trailing one first).

    ``jiwer``: words as jiwer's ``wer_default`` makes them (runs of two or more whitespace characters become
    one space, the line is stripped, then split on U+0020): a lone whitespace character other than U+0020
    between two word characters stays inside the word; otherwise words are ``str.split()``'s."""
    n = text.size
    split_punct = punct.size > 0
    ids = np.empty((2 * n) // 3 + 2 if split_punct else n // 2 + 1, np.int64)
    first = np.empty(ids.size, np.int64)  # by word id: where the word first occurs
    ends = np.zeros(n_lines, np.int64)
    table = np.full(_ENTRY * 1024, -1, np.int64)
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
                if not (jiwer and d != _SP and d != _NL and j + 1 < n):
                    break
                e = text[j + 1]  # jiwer keeps a lone whitespace character between word characters
                if e == _SP or (e <= 0x3000 and space[e]):  # a line break is whitespace too
                    break
            h = (h ^ np.uint64(d)) * np.uint64(1099511628211)
            j += 1
        cut = -1  # where punctuation splits the word in two
        if split_punct and j - i > 1:
            if text[j - 1] < 128 and punct[text[j - 1]]:
                cut = j - 1
            elif text[i] < 128 and punct[text[i]]:
                cut = i + 1
        a = i
        b = j
        if cut != -1:
            b = cut
            h = _hash(text, a, b)
        while True:  # the word, or its two pieces
            size = b - a
            key = np.int64(h)
            mask = table.size // _ENTRY - 1
            slot = np.int64(h & np.uint64(mask))
            while True:
                e = _ENTRY * slot
                entry = table[e + 1]
                if entry == -1:
                    table[e] = key
                    table[e + 1] = (np.int64(size) << 32) | n_words
                    first[n_words] = a
                    ids[n_tok] = n_words
                    n_words += 1
                    if 2 * n_words > mask + 1:
                        table = _grow(table)
                    break
                if table[e] == key and (entry >> 32) == size:
                    w = entry & 0xFFFFFFFF
                    f = first[w]
                    same = True
                    for x in range(size):
                        if text[f + x] != text[a + x]:
                            same = False
                            break
                    if same:
                        ids[n_tok] = w
                        break
                slot = (slot + 1) & mask
            n_tok += 1
            if b == j:
                break
            a = b
            b = j
            h = _hash(text, a, b)
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


@njit
def fold_for_rouge(points: np.ndarray, ascii_fold: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """In place, ASCII code point ``c`` becomes ``ascii_fold[c]`` and every other one a space; returns the
    non-ASCII code points it met (the caller checks how they lower-case). A table, not branches: text
    alternates letters and separators, which branches mispredict."""
    beyond = np.empty(points.size, np.uint32)
    k = 0
    for i in range(points.size):
        c = points[i]
        if c < 128:
            points[i] = ascii_fold[c]
        else:
            beyond[k] = c
            k += 1
            points[i] = _SP
    return beyond[:k]

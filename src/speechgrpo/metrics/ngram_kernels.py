"""Compiled n-gram counting over a batch of id sequences, and the BLEU and chrF formulas applied per row.

Texts are ranges of one flat id array (see :mod:`speechgrpo.metrics.word_ids`). The n-gram starting
at position ``p`` gets an exact integer key per order: the ids shifted into one int64 when they fit
(``bits * order <= 62``), otherwise consecutive ids are paired and renumbered order by order with
``np.unique`` (exact for any vocabulary). Counting is sparse: per reference set, sorted unique keys
with their (multi-reference maximum) counts; per hypothesis, a small sorted copy of its keys, each
distinct key clipped against a binary search in the reference keys. Memory is O(tokens).
"""

from __future__ import annotations

import numpy as np

from speechgrpo.metrics._formulas import bleu_from_statistics, chrf_from_statistics
from speechgrpo.metrics.jit import njit


@njit
def _shifted_keys(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, order: int,
                  bits: int) -> np.ndarray:  # pragma: no cover - compiled
    keys = np.full((order, ids.size), -1, np.int64)
    for t in range(starts.size):
        s, e = starts[t], ends[t]
        for p in range(s, e):
            k = np.int64(0)
            for n in range(order):
                if p + n >= e:
                    break
                k = (k << bits) | ids[p + n]
                keys[n, p] = k
    return keys


def ngram_keys(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, vocab_size: int, order: int) -> np.ndarray:
    """``keys[n - 1, p]``: exact key of the n-gram starting at ``p`` (-1 where it crosses a text end)."""
    bits = max(1, int(vocab_size).bit_length())
    if bits * order <= 62:
        return _shifted_keys(ids, starts, ends, order, bits)
    keys = np.full((order, ids.size), -1, np.int64)
    keys[0] = ids
    text_end = np.repeat(ends, ends - starts)
    position = np.arange(ids.size)
    for n in range(1, order):
        valid = position + n < text_end
        pairs = keys[n - 1][valid] * vocab_size + ids[position[valid] + n]
        keys[n][valid] = np.unique(pairs, return_inverse=True)[1]
    return keys


@njit
def _sorted_copy(keys: np.ndarray, start: int, count: int, out: np.ndarray) -> None:  # pragma: no cover
    """``out[:count]`` = sorted ``keys[start:start + count]`` (insertion sort when short)."""
    if count > 32:
        out[:count] = np.sort(keys[start:start + count])
        return
    for i in range(count):
        x = keys[start + i]
        j = i - 1
        while j >= 0 and out[j] > x:
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = x


@njit
def _runs(sorted_keys: np.ndarray, count: int, keys_out: np.ndarray, counts_out: np.ndarray) -> int:
    # pragma: no cover - compiled
    """Distinct keys of a sorted array and their multiplicities; returns how many."""
    m = 0
    i = 0
    while i < count:
        j = i + 1
        while j < count and sorted_keys[j] == sorted_keys[i]:
            j += 1
        keys_out[m] = sorted_keys[i]
        counts_out[m] = j - i
        m += 1
        i = j
    return m


@njit
def _clipped_matches(hyp_sorted: np.ndarray, count: int, ref_keys: np.ndarray, ref_counts: np.ndarray,
                     m: int) -> int:  # pragma: no cover - compiled
    """sum over distinct hypothesis keys of min(hyp count, ref count): a merge of two sorted lists."""
    matched = 0
    i = 0
    r = 0
    while i < count and r < m:
        j = i + 1
        while j < count and hyp_sorted[j] == hyp_sorted[i]:
            j += 1
        key = hyp_sorted[i]
        while r < m and ref_keys[r] < key:
            r += 1
        if r < m and ref_keys[r] == key:
            matched += min(j - i, ref_counts[r])
        i = j
    return matched


@njit
def clipped_statistics(keys: np.ndarray, starts: np.ndarray, ends: np.ndarray, pair_hyp: np.ndarray,
                       pair_refset: np.ndarray, refset_ptr: np.ndarray, refset_texts: np.ndarray,
                       order: int) -> np.ndarray:  # pragma: no cover - compiled
    """Per pair ``[hyp_len, closest ref_len, correct_1..N, total_1..N]`` (sacrebleu's BLEU statistics).

    Pairs must be sorted by reference set so that each set's n-grams are merged once.
    """
    n_pairs = pair_hyp.size
    out = np.zeros((n_pairs, 2 + 2 * order), np.int64)
    longest = 1
    for t in range(starts.size):
        longest = max(longest, ends[t] - starts[t])
    scratch = np.empty(longest, np.int64)
    run_keys = np.empty(longest, np.int64)
    run_counts = np.empty(longest, np.int64)
    cap = 16
    ref_keys = np.empty((order, cap), np.int64)
    ref_counts = np.empty((order, cap), np.int64)
    ref_n = np.zeros(order, np.int64)
    ref_lens = np.empty(0, np.int64)
    current = -1
    for q in range(n_pairs):
        rs = pair_refset[q]
        if rs != current:
            current = rs
            a, b = refset_ptr[rs], refset_ptr[rs + 1]
            ref_lens = np.empty(b - a, np.int64)
            total = 0
            for r in range(a, b):
                t = refset_texts[r]
                ref_lens[r - a] = ends[t] - starts[t]
                total += ends[t] - starts[t]
            if total > cap:
                cap = total
                ref_keys = np.empty((order, cap), np.int64)
                ref_counts = np.empty((order, cap), np.int64)
            for n in range(order):
                m = 0
                for r in range(a, b):  # merge references: the maximum count of each n-gram
                    t = refset_texts[r]
                    cnt = ends[t] - starts[t] - n
                    if cnt <= 0:
                        continue
                    _sorted_copy(keys[n], starts[t], cnt, scratch)
                    k = _runs(scratch, cnt, run_keys, run_counts)
                    if m == 0:
                        ref_keys[n, :k] = run_keys[:k]
                        ref_counts[n, :k] = run_counts[:k]
                        m = k
                        continue
                    merged_keys = np.empty(m + k, np.int64)
                    merged_counts = np.empty(m + k, np.int64)
                    i = 0
                    j = 0
                    u = 0
                    while i < m or j < k:
                        if j >= k or (i < m and ref_keys[n, i] < run_keys[j]):
                            merged_keys[u] = ref_keys[n, i]
                            merged_counts[u] = ref_counts[n, i]
                            i += 1
                        elif i >= m or run_keys[j] < ref_keys[n, i]:
                            merged_keys[u] = run_keys[j]
                            merged_counts[u] = run_counts[j]
                            j += 1
                        else:
                            merged_keys[u] = run_keys[j]
                            merged_counts[u] = max(ref_counts[n, i], run_counts[j])
                            i += 1
                            j += 1
                        u += 1
                    ref_keys[n, :u] = merged_keys[:u]
                    ref_counts[n, :u] = merged_counts[:u]
                    m = u
                ref_n[n] = m
        t = pair_hyp[q]
        length = ends[t] - starts[t]
        out[q, 0] = length
        best = -1
        best_diff = -1
        for r in range(ref_lens.size):  # closest reference length, ties to the shorter
            d = abs(length - ref_lens[r])
            if best_diff == -1 or d < best_diff or (d == best_diff and ref_lens[r] < best):
                best_diff = d
                best = ref_lens[r]
        out[q, 1] = best
        for n in range(order):
            cnt = length - n
            if cnt <= 0:
                continue
            out[q, 2 + order + n] = cnt
            _sorted_copy(keys[n], starts[t], cnt, scratch)
            out[q, 2 + n] = _clipped_matches(scratch, cnt, ref_keys[n], ref_counts[n], ref_n[n])
    return out


bleu_score = njit(bleu_from_statistics)
chrf_f_score = njit(chrf_from_statistics)


@njit
def bleu_scores(stats: np.ndarray, order: int, smooth_method: str, smooth_value: float,
                effective_order: bool) -> np.ndarray:  # pragma: no cover - compiled
    """:func:`~speechgrpo.metrics._formulas.bleu_from_statistics` per row of ``[hyp_len, ref_len,
    correct_1..N, total_1..N]``."""
    out = np.empty(stats.shape[0])
    for q in range(stats.shape[0]):
        out[q] = bleu_score(stats[q, 2:2 + order], stats[q, 2 + order:], stats[q, 0], stats[q, 1], smooth_method,
                            smooth_value, effective_order)
    return out


@njit
def _slot(key: np.int64, mask: int) -> int:  # pragma: no cover - compiled
    mixed = np.uint64(key) * np.uint64(11400714819323198485)
    return int(mixed ^ (mixed >> np.uint64(32))) & mask


@njit
def _insert_counts(keys: np.ndarray, start: int, count: int, table_keys: np.ndarray, table_counts: np.ndarray,
                   base: int, mask: int) -> int:  # pragma: no cover - compiled
    """Count ``keys[start:start + count]`` into the open-addressing table at ``base``; return the total."""
    for i in range(count):
        key = keys[start + i]
        slot = _slot(key, mask)
        while True:
            if table_counts[base + slot] == 0:
                table_keys[base + slot] = key
                table_counts[base + slot] = 1
                break
            if table_keys[base + slot] == key:
                table_counts[base + slot] += 1
                break
            slot = (slot + 1) & mask
    return count


@njit
def _span(order_index: int, text: int, char_order: int, starts: np.ndarray,
          lengths: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Start and count of the n-grams of ``order_index`` (characters first, then words) in ``text``."""
    if order_index < char_order:
        return starts[0, text], lengths[0, text] - order_index
    return starts[1, text], lengths[1, text] - (order_index - char_order)


@njit
def chrf_statistics(char_keys: np.ndarray, word_keys: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                    pair_hyp: np.ndarray, pair_refset: np.ndarray, refset_ptr: np.ndarray, refset_texts: np.ndarray,
                    char_order: int, beta: int, eps_smoothing: bool) -> np.ndarray:  # pragma: no cover - compiled
    """Per pair ``[hyp, ref, match]`` counts per order (characters, then words) for the reference with
    the best F score (sacrebleu's chrF statistics). Pairs must be sorted by reference set.

    ``char_keys[o]`` holds the character n-gram keys of order ``o + 1``, ``word_keys[o]`` the word ones
    (see :func:`_span`; ``starts[0]``/``lengths[0]`` index characters, ``[1]`` words). Each reference's n-grams of
    each order go into an open-addressing table once per batch; a hypothesis n-gram matches while its
    running count stays below the reference count, which sums ``min(hyp count, ref count)`` over
    distinct n-grams without sorting.
    """
    n_orders = char_keys.shape[0] + word_keys.shape[0]
    out = np.zeros((pair_hyp.size, 3 * n_orders), np.int64)
    stats = np.empty(3 * n_orders, np.int64)
    table_keys = np.empty(16, np.int64)
    table_counts = np.zeros(16, np.int64)
    used = np.zeros(16, np.int64)
    touched = np.empty(16, np.int64)
    table_base = np.zeros((1, n_orders), np.int64)
    table_mask = np.zeros((1, n_orders), np.int64)
    ref_total = np.zeros((1, n_orders), np.int64)
    current = -1
    for q in range(pair_hyp.size):
        rs = pair_refset[q]
        a, b = refset_ptr[rs], refset_ptr[rs + 1]
        if rs != current:
            current = rs
            table_base = np.zeros((b - a, n_orders), np.int64)
            table_mask = np.zeros((b - a, n_orders), np.int64)
            ref_total = np.zeros((b - a, n_orders), np.int64)
            size = 0
            for r in range(a, b):
                for o in range(n_orders):
                    cap = 4
                    while cap < 2 * lengths[0 if o < char_order else 1, refset_texts[r]]:
                        cap *= 2
                    table_base[r - a, o] = size
                    table_mask[r - a, o] = cap - 1
                    size += cap
            if size > table_keys.size:
                table_keys = np.empty(size, np.int64)
                table_counts = np.zeros(size, np.int64)
                used = np.zeros(size, np.int64)
                touched = np.empty(size, np.int64)
            table_counts[:size] = 0
            for r in range(a, b):
                for o in range(n_orders):
                    s, cnt = _span(o, refset_texts[r], char_order, starts, lengths)
                    if cnt > 0:
                        row = char_keys[o] if o < char_order else word_keys[o - char_order]
                        ref_total[r - a, o] = _insert_counts(row, s, cnt, table_keys, table_counts,
                                                             table_base[r - a, o], table_mask[r - a, o])
        best_f = -1.0
        for r in range(b - a):
            for o in range(n_orders):
                s, cnt = _span(o, pair_hyp[q], char_order, starts, lengths)
                cnt = max(cnt, 0)
                n_ref = ref_total[r, o]
                match = 0
                if cnt > 0 and n_ref > 0:
                    base = table_base[r, o]
                    mask = table_mask[r, o]
                    n_touched = 0
                    row = char_keys[o] if o < char_order else word_keys[o - char_order]
                    for i in range(cnt):
                        key = row[s + i]
                        slot = _slot(key, mask)
                        while table_counts[base + slot] != 0 and table_keys[base + slot] != key:
                            slot = (slot + 1) & mask
                        if table_counts[base + slot] != 0 and used[base + slot] < table_counts[base + slot]:
                            if used[base + slot] == 0:
                                touched[n_touched] = base + slot
                                n_touched += 1
                            used[base + slot] += 1
                            match += 1
                    for i in range(n_touched):
                        used[touched[i]] = 0
                stats[3 * o] = cnt if n_ref > 0 else 0
                stats[3 * o + 1] = n_ref
                stats[3 * o + 2] = match
            f = chrf_f_score(stats, n_orders, beta, eps_smoothing)
            if f > best_f:
                best_f = f
                out[q] = stats
    return out


@njit
def chrf_scores(stats: np.ndarray, n_orders: int, beta: int, eps_smoothing: bool) -> np.ndarray:
    # pragma: no cover - compiled
    out = np.empty(stats.shape[0])
    for q in range(stats.shape[0]):
        out[q] = chrf_f_score(stats[q], n_orders, beta, eps_smoothing)
    return out

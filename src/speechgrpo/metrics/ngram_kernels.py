"""Compiled n-gram counting over a batch of id sequences, and the BLEU and chrF formulas applied per row.

Texts are ranges of one flat id array (see :mod:`speechgrpo.metrics.word_ids`). The n-gram starting
at position ``p`` gets an exact integer key per order: the ids shifted into one int64 when they fit
(``bits * order <= 62``), otherwise consecutive ids are paired and renumbered order by order with
``np.unique`` (exact for any vocabulary). Counting is by hashing: each reference set's n-grams go once
into an open-addressing table with their (multi-reference maximum) counts, and each hypothesis n-gram
is clipped against it with a running count, with no sorting. Memory is O(tokens).
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


def ngram_key_source(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, vocab_size: int,
                     order: int) -> tuple[np.ndarray, int]:
    """How a kernel gets exact n-gram keys: ``(no table, bits)`` when the ids shifted into one int64 give
    exact keys (computed on the fly, nothing stored), else ``(ngram_keys(...), 0)``."""
    bits = max(1, int(vocab_size).bit_length())
    if bits * order <= 62:
        return np.empty((order, 0), np.int64), bits
    return ngram_keys(ids, starts, ends, vocab_size, order), 0


@njit
def _slot(key: np.int64, mask: int) -> int:  # pragma: no cover - compiled
    mixed = np.uint64(key) * np.uint64(11400714819323198485)
    return int(mixed ^ (mixed >> np.uint64(32))) & mask


@njit
def clipped_statistics(keys: np.ndarray, starts: np.ndarray, ends: np.ndarray, pair_hyp: np.ndarray,
                       pair_refset: np.ndarray, refset_ptr: np.ndarray, refset_texts: np.ndarray,
                       order: int) -> np.ndarray:  # pragma: no cover - compiled
    """Per pair ``[hyp_len, closest ref_len, correct_1..N, total_1..N]`` (sacrebleu's BLEU statistics).

    Pairs must be sorted by reference set. Each set's n-grams go once into an open-addressing table per
    order (kept at most half full) holding each n-gram's maximum count over the set's references; a
    hypothesis n-gram matches while its running count (``used``) stays below that maximum, which sums
    ``min(hyp count, max ref count)`` over distinct n-grams without sorting.
    """
    n_pairs = pair_hyp.size
    out = np.zeros((n_pairs, 2 + 2 * order), np.int64)
    longest = 1
    for t in range(starts.size):
        longest = max(longest, ends[t] - starts[t])
    size = 16
    table_keys = np.empty(size, np.int64)
    max_count = np.zeros(size, np.int64)  # 0: an empty slot once a reference has been counted
    count = np.zeros(size, np.int64)  # the current reference's counts, then the hypothesis' (used)
    touched = np.empty(max(size, longest), np.int64)
    base = np.zeros(order, np.int64)
    mask = np.zeros(order, np.int64)
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
            used = 0
            for n in range(order):
                cap = 4
                while cap < 2 * total:
                    cap *= 2
                base[n] = used
                mask[n] = cap - 1
                used += cap
            if used > size:
                size = used
                table_keys = np.empty(size, np.int64)
                max_count = np.zeros(size, np.int64)
                count = np.zeros(size, np.int64)
                touched = np.empty(max(size, longest), np.int64)
            else:
                max_count[:used] = 0
            for r in range(a, b):
                t = refset_texts[r]
                for n in range(order):
                    n_touched = 0
                    for p in range(starts[t], ends[t] - n):
                        key = keys[n, p]
                        slot = _slot(key, mask[n])
                        while True:
                            at = base[n] + slot
                            if max_count[at] == 0 and count[at] == 0:
                                table_keys[at] = key
                                break
                            if table_keys[at] == key:
                                break
                            slot = (slot + 1) & mask[n]
                        if count[at] == 0:
                            touched[n_touched] = at
                            n_touched += 1
                        count[at] += 1
                    for i in range(n_touched):  # the maximum over references
                        at = touched[i]
                        if count[at] > max_count[at]:
                            max_count[at] = count[at]
                        count[at] = 0
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
            if length - n <= 0:
                continue
            out[q, 2 + order + n] = length - n
            n_touched = 0
            matched = 0
            for p in range(starts[t], ends[t] - n):
                key = keys[n, p]
                slot = _slot(key, mask[n])
                while True:
                    at = base[n] + slot
                    if max_count[at] == 0 or table_keys[at] == key:
                        break
                    slot = (slot + 1) & mask[n]
                if count[at] < max_count[at]:
                    if count[at] == 0:
                        touched[n_touched] = at
                        n_touched += 1
                    count[at] += 1
                    matched += 1
            for i in range(n_touched):
                count[touched[i]] = 0
            out[q, 2 + n] = matched
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
def _insert_ngrams(ids: np.ndarray, keys: np.ndarray, bits: int, start: int, length: int, first_order: int,
                   n_orders: int, table_keys: np.ndarray, table_counts: np.ndarray, base: np.ndarray,
                   mask: np.ndarray, totals: np.ndarray) -> None:  # pragma: no cover - compiled
    """Count the 1..``n_orders``-grams of the text ``ids[start:start + length]`` into the open-addressing
    tables of orders ``first_order ..`` (at ``base[o]``, size ``mask[o] + 1``); their totals into ``totals``."""
    for p in range(length):
        k = np.int64(0)
        for n in range(min(n_orders, length - p)):
            o = first_order + n
            k = keys[n, start + p] if bits == 0 else (k << bits) | ids[start + p + n]
            slot = _slot(k, mask[o])
            while True:
                at = base[o] + slot
                if table_counts[at] == 0:
                    table_keys[at] = k
                    table_counts[at] = 1
                    break
                if table_keys[at] == k:
                    table_counts[at] += 1
                    break
                slot = (slot + 1) & mask[o]
            totals[o] += 1


@njit
def _span(order_index: int, text: int, char_order: int, starts: np.ndarray,
          lengths: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Start and count of the n-grams of ``order_index`` (characters first, then words) in ``text``."""
    if order_index < char_order:
        return starts[0, text], lengths[0, text] - order_index
    return starts[1, text], lengths[1, text] - (order_index - char_order)


@njit
def chrf_statistics(char_ids: np.ndarray, char_keys: np.ndarray, char_bits: int, word_ids: np.ndarray,
                    word_keys: np.ndarray, word_bits: int, starts: np.ndarray, lengths: np.ndarray,
                    pair_hyp: np.ndarray, pair_refset: np.ndarray, refset_ptr: np.ndarray, refset_texts: np.ndarray,
                    char_order: int, beta: int, eps_smoothing: bool) -> np.ndarray:  # pragma: no cover - compiled
    """Per pair ``[hyp, ref, match]`` counts per order (characters, then words) for the reference with
    the best F score (sacrebleu's chrF statistics). Pairs must be sorted by reference set.

    Characters and words come as ids with their :func:`ngram_key_source` (``char_keys.shape[0]`` and
    ``word_keys.shape[0]`` are the orders; see :func:`_span`: ``starts[0]``/``lengths[0]`` index characters,
    ``[1]`` words). Each reference's n-grams of
    each order go into an open-addressing table once per batch; a hypothesis n-gram matches while its
    running count stays below the reference count, which sums ``min(hyp count, ref count)`` over
    distinct n-grams without sorting.
    """
    n_orders = char_keys.shape[0] + word_keys.shape[0]
    out = np.zeros((pair_hyp.size, 3 * n_orders), np.int64)
    stats = np.empty(3 * n_orders, np.int64)
    matches = np.zeros(n_orders, np.int64)
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
                t = refset_texts[r]
                _insert_ngrams(char_ids, char_keys, char_bits, starts[0, t], lengths[0, t], 0, char_order,
                               table_keys, table_counts, table_base[r - a], table_mask[r - a], ref_total[r - a])
                _insert_ngrams(word_ids, word_keys, word_bits, starts[1, t], lengths[1, t], char_order,
                               n_orders - char_order, table_keys, table_counts, table_base[r - a],
                               table_mask[r - a], ref_total[r - a])
        best_f = -1.0
        h = pair_hyp[q]
        for r in range(b - a):
            matches[:] = 0
            n_touched = 0
            for kind in range(2):  # characters, then words
                ids = char_ids if kind == 0 else word_ids
                keys = char_keys if kind == 0 else word_keys
                bits = char_bits if kind == 0 else word_bits
                first_order = 0 if kind == 0 else char_order
                kind_orders = char_order if kind == 0 else n_orders - char_order
                start, length = starts[kind, h], lengths[kind, h]
                for p in range(length):
                    k = np.int64(0)
                    for n in range(min(kind_orders, length - p)):
                        o = first_order + n
                        k = keys[n, start + p] if bits == 0 else (k << bits) | ids[start + p + n]
                        if ref_total[r, o] == 0:
                            continue
                        base = table_base[r, o]
                        mask = table_mask[r, o]
                        slot = _slot(k, mask)
                        while table_counts[base + slot] != 0 and table_keys[base + slot] != k:
                            slot = (slot + 1) & mask
                        at = base + slot
                        if table_counts[at] != 0 and used[at] < table_counts[at]:
                            if used[at] == 0:
                                touched[n_touched] = at
                                n_touched += 1
                            used[at] += 1
                            matches[o] += 1
            for i in range(n_touched):
                used[touched[i]] = 0
            for o in range(n_orders):
                cnt = max(_span(o, h, char_order, starts, lengths)[1], 0)
                n_ref = ref_total[r, o]
                stats[3 * o] = cnt if n_ref > 0 else 0
                stats[3 * o + 1] = n_ref
                stats[3 * o + 2] = matches[o] if n_ref > 0 else 0
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

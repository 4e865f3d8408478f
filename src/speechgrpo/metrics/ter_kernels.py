"""sacrebleu's TER shift search (``sacrebleu.metrics.lib_ter``), compiled, over word ids.

The same algorithm step for step, so the numbers are identical: the beam edit distance (beam 25 around
the length-ratio diagonal, Tercom's operation preferences, the trace read back from the last cell), the
alignment from the flipped trace, the shift candidates in sacrebleu's order (``_find_shifted_pairs``:
at most 10 words, at most 50 positions apart), its filters, its ranking (edit-distance gain, then
length, then earliest start, then earliest target) and its limit of 1,000 candidates per segment, with
the same early stop. sacrebleu caches the matrix rows of hypothesis prefixes; a row depends only on the
prefix (all shifted hypotheses have one length, so one beam), so reusing the rows of the common prefix
with the previous hypothesis, as here, gives the same matrix.
"""

from __future__ import annotations

import math

import numpy as np

from speechgrpo.metrics.jit import njit

_MAX_SHIFT_SIZE = 10
_MAX_SHIFT_DIST = 50
_BEAM_WIDTH = 25
_MAX_SHIFT_CANDIDATES = 1000
_INF = 10**16
_NOP, _SUB, _INS, _DEL, _UNDEF = 0, 1, 2, 3, 4


@njit
def _beam_distance(h: np.ndarray, ref: np.ndarray, cost: np.ndarray, op: np.ndarray, done: int,
                   trace: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Edit distance of ``h`` to ``ref`` and its trace (``trace[:n]``, read front to back). Rows
    ``0..done`` of ``cost``/``op`` already hold this prefix's values; cells outside the beam stay at
    infinity (the matrices are made for one hypothesis length)."""
    n_h, n_r = h.size, ref.size
    ratio = n_r / n_h if n_h > 0 else 1.0
    beam = math.ceil(ratio / 2 + _BEAM_WIDTH) if ratio / 2 > _BEAM_WIDTH else _BEAM_WIDTH
    for i in range(done + 1, n_h + 1):
        diagonal = math.floor(i * ratio)
        lo = max(0, diagonal - beam)
        hi = n_r + 1 if i == n_h else min(n_r + 1, diagonal + beam)
        for j in range(lo, hi):
            if j == 0:
                cost[i, 0] = cost[i - 1, 0] + 1
                op[i, 0] = _DEL
                continue
            best = _INF
            best_op = _UNDEF
            if h[i - 1] == ref[j - 1]:
                c, o = cost[i - 1, j - 1], _NOP
            else:
                c, o = cost[i - 1, j - 1] + 1, _SUB
            if best > c:
                best, best_op = c, o
            if best > cost[i - 1, j] + 1:
                best, best_op = cost[i - 1, j] + 1, _DEL
            if best > cost[i, j - 1] + 1:
                best, best_op = cost[i, j - 1] + 1, _INS
            cost[i, j] = best
            op[i, j] = best_op
    n = 0
    i, j = n_h, n_r
    while i > 0 or j > 0:
        o = op[i, j]
        trace[n] = o
        n += 1
        if o in (_SUB, _NOP):
            i -= 1
            j -= 1
        elif o == _INS:
            j -= 1
        elif o == _DEL:
            i -= 1
        else:
            return -1, 0  # sacrebleu raises "unknown operation"
    trace[:n] = trace[:n][::-1].copy()
    return cost[n_h, n_r], n


@njit
def _shifted(words: np.ndarray, start: int, length: int, target: int, out: np.ndarray) -> None:
    # pragma: no cover - compiled
    """sacrebleu's ``_perform_shift`` into ``out``, its list slices clamped to the words as Python clamps
    them (a shift to just after the moved words reads ``words[start + length:length + target]``, which
    can run past the end)."""
    n = words.size
    k = 0
    if target < start:
        parts = ((0, target), (start, start + length), (target, start), (start + length, n))
    elif target > start + length:
        parts = ((0, start), (start + length, target), (start, start + length), (target, n))
    else:
        parts = ((0, start), (start + length, length + target), (start, start + length), (length + target, n))
    for a, b in parts:
        for x in range(min(a, n), min(b, n)):
            out[k] = words[x]
            k += 1


@njit
def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:  # pragma: no cover - compiled
    n = 0
    while n < a.size and a[n] == b[n]:
        n += 1
    return n


@njit
def translation_edit_rate(hyp: np.ndarray, ref: np.ndarray) -> int:  # pragma: no cover - compiled
    """Number of edits (shifts + edit distance) of ``hyp`` against ``ref`` (sacrebleu's
    ``translation_edit_rate``); -1 where sacrebleu would raise."""
    n_h, n_r = hyp.size, ref.size
    if n_r == 0:
        return n_h
    cost = np.full((n_h + 1, n_r + 1), _INF, np.int64)
    op = np.full((n_h + 1, n_r + 1), _UNDEF, np.int8)
    for j in range(n_r + 1):
        cost[0, j] = j
        op[0, j] = _INS
    trace = np.empty(n_h + n_r + 1, np.int8)
    last = np.full(n_h, -1, np.int64)  # the hypothesis whose rows the matrices hold
    words = hyp.copy()
    candidate = np.empty(n_h, np.int64)
    best_words = np.empty(n_h, np.int64)
    align = np.empty(n_r, np.int64)
    ref_err = np.zeros(n_r + 1, np.int64)  # prefix sums
    hyp_err = np.zeros(n_h + 1, np.int64)
    checked = 0
    shifts = 0
    while True:
        # _shift(words): the best shift, or none
        done = _common_prefix(words, last) if n_h > 0 else 0
        pre_score, n_trace = _beam_distance(words, ref, cost, op, done, trace)
        last[:] = words
        if pre_score < 0:
            return -1
        pos_h, pos_r = -1, -1
        for t in range(n_trace):
            o = trace[t]
            if o == _INS:  # flipped: rewriting the reference into the hypothesis
                o = _DEL
            elif o == _DEL:
                o = _INS
            if o in (_NOP, _SUB):
                pos_h += 1
                pos_r += 1
                align[pos_r] = pos_h
                hyp_err[pos_h + 1] = hyp_err[pos_h] + (o == _SUB)
                ref_err[pos_r + 1] = ref_err[pos_r] + (o == _SUB)
            elif o == _INS:
                pos_h += 1
                hyp_err[pos_h + 1] = hyp_err[pos_h] + 1
            else:
                pos_r += 1
                align[pos_r] = pos_h
                ref_err[pos_r + 1] = ref_err[pos_r] + 1
        found = False
        best_score, best_length, best_start, best_idx = 0, 0, 0, 0
        stop = False
        for start_h in range(n_h):
            for start_r in range(n_r):
                if abs(start_r - start_h) > _MAX_SHIFT_DIST:
                    continue
                length = 0
                while words[start_h + length] == ref[start_r + length] and length < _MAX_SHIFT_SIZE:
                    length += 1
                    # a candidate (start_h, start_r, length)
                    if (hyp_err[start_h + length] - hyp_err[start_h] != 0
                            and ref_err[start_r + length] - ref_err[start_r] != 0
                            and not (start_h <= align[start_r] < start_h + length)):
                        prev_idx = -1
                        for offset in range(-1, length):
                            idx = 0 if start_r + offset == -1 else align[start_r + offset] + 1
                            if idx == prev_idx:
                                continue
                            prev_idx = idx
                            _shifted(words, start_h, length, idx, candidate)
                            done = _common_prefix(candidate, last)
                            score, _ = _beam_distance(candidate, ref, cost, op, done, trace)
                            last[:] = candidate
                            if score < 0:
                                return -1
                            gain = pre_score - score
                            checked += 1
                            if (not found or gain > best_score
                                    or (gain == best_score and (length > best_length
                                        or (length == best_length and (-start_h > -best_start
                                            or (start_h == best_start and -idx > -best_idx)))))):
                                found = True
                                best_score, best_length, best_start, best_idx = gain, length, start_h, idx
                                best_words[:] = candidate
                    if checked >= _MAX_SHIFT_CANDIDATES:
                        stop = True
                        break
                    if n_h == start_h + length or n_r == start_r + length:
                        break
                if stop:
                    break
            if stop:
                break
        if checked >= _MAX_SHIFT_CANDIDATES:
            break
        if not found or best_score <= 0:
            break
        shifts += 1
        words[:] = best_words
    done = _common_prefix(words, last) if n_h > 0 else 0
    distance, _ = _beam_distance(words, ref, cost, op, done, trace)
    if distance < 0:
        return -1
    return shifts + distance


@njit
def ter_statistics(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, pair_hyp: np.ndarray,
                   pair_refset: np.ndarray, refset_ptr: np.ndarray, refset_texts: np.ndarray) -> np.ndarray:
    # pragma: no cover - compiled
    """Per pair ``[fewest edits over the references, mean reference length]`` (sacrebleu's TER
    statistics); edits -1 where sacrebleu would raise."""
    out = np.zeros((pair_hyp.size, 2), np.float64)
    for q in range(pair_hyp.size):
        h = pair_hyp[q]
        hyp = ids[starts[h]:ends[h]]
        rs = pair_refset[q]
        best = _INF
        total = 0
        for k in range(refset_ptr[rs], refset_ptr[rs + 1]):
            r = refset_texts[k]
            edits = translation_edit_rate(hyp, ids[starts[r]:ends[r]])
            if edits < 0:
                best = -1
                break
            total += ends[r] - starts[r]
            if edits < best:
                best = edits
        out[q, 0] = best
        out[q, 1] = total / (refset_ptr[rs + 1] - refset_ptr[rs])
    return out

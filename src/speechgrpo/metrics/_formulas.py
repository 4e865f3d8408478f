"""sacrebleu's BLEU and chrF formulas from sufficient statistics: the one copy of each.

The pure-Python metrics call these functions as they are; :mod:`speechgrpo.metrics.ngram_kernels`
compiles the same functions with numba for its batch loops, and token-id BLEU applies them to the
statistics it counts in torch. Both are written operation for operation as sacrebleu's
``BLEU.compute_bleu`` and ``CHRF._compute_f_score`` (scalar libm ``log``/``exp``), so every path gives
sacrebleu's floats. Smoothing is passed by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# sacrebleu's BLEU smoothing methods and their default values (None: the method takes no value)
SMOOTH_DEFAULTS: dict[str, float | None] = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None}


def smooth_value_of(smooth_method: str, smooth_value: float | None) -> float:
    """The value :func:`bleu_from_statistics` takes: the given one, else the method's default (0 if none)."""
    if smooth_method not in SMOOTH_DEFAULTS:
        raise ValueError(f"unknown smooth_method={smooth_method!r}; choose one of {list(SMOOTH_DEFAULTS)}")
    if smooth_value is None:
        return SMOOTH_DEFAULTS[smooth_method] or 0.0
    return float(smooth_value)


def bleu_from_statistics(correct: Sequence[float] | np.ndarray, total: Sequence[float] | np.ndarray, sys_len: int,
                         ref_len: int, smooth_method: str, smooth_value: float, effective_order: bool) -> float:
    """sacrebleu's ``BLEU.compute_bleu`` (0-100): clipped n-gram matches ``correct`` and n-gram counts
    ``total`` per order, hypothesis and closest reference lengths; ``smooth_value`` as from
    :func:`smooth_value_of`. Also compiled by numba, so written with loops and no Python objects."""
    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    order = len(correct)
    matched = False
    for n in range(order):
        if correct[n] != 0:
            matched = True
    if not matched:
        return 0.0
    precisions = [0.0] * order  # a list: numba compiles it, and Python indexes it faster than an array
    smooth_mteval = 1.0
    eff_order = order
    for n in range(1, order + 1):
        hits = float(correct[n - 1])
        count = float(total[n - 1])
        if smooth_method == "add-k" and n > 1:
            hits += smooth_value
            count += smooth_value
        if count == 0:
            break
        if effective_order:
            eff_order = n
        if hits == 0:
            if smooth_method == "exp":
                smooth_mteval *= 2
                precisions[n - 1] = 100.0 / (smooth_mteval * count)
            elif smooth_method == "floor":
                precisions[n - 1] = 100.0 * smooth_value / count
        else:
            precisions[n - 1] = 100.0 * hits / count
    log_sum = 0.0  # sacrebleu: sum([my_log(p) for p in precisions[:eff_order]]), left to right
    for n in range(eff_order):
        log_sum += -9999999999.0 if precisions[n] == 0.0 else math.log(precisions[n])
    return float(bp * math.exp(log_sum / eff_order))


def chrf_from_statistics(stats: Sequence[int] | np.ndarray, n_orders: int, beta: int, eps_smoothing: bool) -> float:
    """sacrebleu's ``CHRF._compute_f_score`` (0-100) from ``[hyp, ref, match]`` counts per order."""
    eps = 1e-16
    score = 0.0
    effective_order = 0
    factor = beta ** 2
    avg_prec, avg_rec = 0.0, 0.0
    for i in range(n_orders):
        n_hyp, n_ref, n_match = stats[3 * i], stats[3 * i + 1], stats[3 * i + 2]
        prec = n_match / n_hyp if n_hyp > 0 else eps
        rec = n_match / n_ref if n_ref > 0 else eps
        denom = factor * prec + rec
        score += ((1 + factor) * prec * rec / denom) if denom > 0 else eps
        if n_hyp > 0 and n_ref > 0:
            avg_prec += prec
            avg_rec += rec
            effective_order += 1
    if eps_smoothing:
        return 100 * score / n_orders
    if effective_order == 0:
        avg_prec = avg_rec = 0.0
    else:
        avg_prec /= effective_order
        avg_rec /= effective_order
    if avg_prec + avg_rec:
        score = (1 + factor) * avg_prec * avg_rec
        score /= (factor * avg_prec) + avg_rec
        return 100 * score
    return 0.0

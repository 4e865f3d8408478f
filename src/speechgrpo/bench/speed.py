"""``speechgrpo bench speed``: pairs per second of each reward and of its reference implementation.

On the same pairs, in the same run:

- ours: one batched ``reward(completions, references)`` call on all pairs;
- reference: one call per pair on one reused reference object, as a per-sample reward would do.

sacrebleu's tokenizer caches are cleared and the garbage collector run before every timed call,
each side is timed ``repeats`` times and the median kept. The exactness check compares our scores
with the reference's mapped onto the reward's [0, 1] scale (``MetricReward.to_reward_scale``).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechgrpo._extras import unavailable_reason
from speechgrpo.bench.reference_implementations import ReferenceFn, clear_caches, compare_scores, reward_spec
from speechgrpo.bench.report import BenchReport, Table, bar_chart, progress
from speechgrpo.rewards import MetricReward, Reward, get_reward

DEFAULT_REWARDS = ("bleu", "chrf", "rougeL", "wer", "bertscore")
#: Pairs used at most for the slow references (the reference BERTScore takes ~50 ms per pair on 2 cores).
DEFAULT_MAX_PAIRS = {"bertscore": 256}
WARM_UP = (["A quick brown fox jumped over lazy dogs.", "Shares fell sharply"],
           ["The fast dark fox leaps above a sleepy hound!", "Stocks dropped steeply on Monday"])

ScoreFn = Callable[[list[str], list[str]], np.ndarray]
"""``ours(hypotheses, references) -> scores``: one batched call."""


@dataclass
class SideBySide:
    """Timings of ours and the reference on the same pairs; scores of the first repeat."""

    pairs: int
    ours_times: list[float] = field(default_factory=list)
    reference_times: list[float] = field(default_factory=list)
    ours_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: Raw reference values, NaN where the reference raised.
    reference_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reference_errors: int = 0
    #: Ours gave different numbers on different repeats.
    unstable: bool = False
    #: Ours called N pairs at a time: wall times by N, timed in the same repeats as the two sides.
    chunked_times: dict[int, list[float]] = field(default_factory=dict)
    #: The chunk sizes whose calls gave other scores than one call on all the pairs.
    chunked_differ: set[int] = field(default_factory=set)

    @property
    def ours_s(self) -> float:
        return statistics.median(self.ours_times)

    @property
    def reference_s(self) -> float:
        return statistics.median(self.reference_times)


def time_reference(reference: ReferenceFn, hyps: Sequence[str], refs: Sequence[str]
                   ) -> tuple[float, list[float], int]:
    """Wall time of one call per pair, the scores, and how many calls raised (scored NaN)."""
    start = time.perf_counter()
    try:
        scores = [reference(h, r) for h, r in zip(hyps, refs, strict=True)]
        return time.perf_counter() - start, scores, 0
    except Exception:  # a reference that crashes on some input: redo with a guard around each call
        pass

    def guarded(h: str, r: str) -> float:
        try:
            return float(reference(h, r))
        except Exception:
            return math.nan

    start = time.perf_counter()
    scores = [guarded(h, r) for h, r in zip(hyps, refs, strict=True)]
    return time.perf_counter() - start, scores, sum(s != s for s in scores)


def time_ours(ours: ScoreFn, hyps: list[str], refs: list[str]) -> tuple[float, np.ndarray]:
    """Wall time of one call of ``ours`` on all the pairs, sacrebleu's tokenizer caches cleared first (in
    training every step brings new completions), and its scores."""
    clear_caches()
    gc.collect()
    start = time.perf_counter()
    scores = np.asarray(ours(hyps, refs), dtype=np.float64)
    return time.perf_counter() - start, scores


def side_by_side(ours: ScoreFn, reference: ReferenceFn, hyps: list[str], refs: list[str], repeats: int,
                 tick: Callable[[], object] | None = None, chunked: Mapping[int, ScoreFn] | None = None
                 ) -> SideBySide:
    """Time ``ours`` (one batched call) against ``reference`` (one call per pair), ``repeats`` times each,
    and each of ``chunked`` (ours called N pairs at a time) within the same repeats, so that a slow spell of
    a shared machine falls on every side alike.

    A warm-up outside the timings (lazy imports, model loading, compiled kernels, WordNet's lazily
    loaded tables) runs both on the first pair and on two pairs with unmatched words.
    """
    chunked = chunked or {}
    warm_hyps, warm_refs = [hyps[0], *WARM_UP[0]], [refs[0], *WARM_UP[1]]
    for fn in [ours, *chunked.values()]:
        fn(warm_hyps, warm_refs)
    for h, r in zip(warm_hyps, warm_refs, strict=True):
        with contextlib.suppress(Exception):
            reference(h, r)
    result = SideBySide(len(hyps))
    for repeat in range(repeats):
        seconds, scores = time_ours(ours, hyps, refs)
        result.ours_times.append(seconds)

        clear_caches()
        gc.collect()
        elapsed, reference_scores, errors = time_reference(reference, hyps, refs)
        result.reference_times.append(elapsed)
        if repeat == 0:
            result.ours_scores = scores
            result.reference_scores = np.array(reference_scores, dtype=np.float64)
            result.reference_errors = errors
        elif not np.array_equal(scores, result.ours_scores, equal_nan=True):
            result.unstable = True
        for size, fn in chunked.items():
            seconds, scores = time_ours(fn, hyps, refs)
            result.chunked_times.setdefault(size, []).append(seconds)
            if not np.array_equal(scores, result.ours_scores, equal_nan=True):
                result.chunked_differ.add(size)
        if tick is not None:
            tick()
    return result


def parse_max_pairs(text: str, option: str = "--max-pairs") -> dict[str, int]:
    """``"bertscore=256,meteor=512"`` -> ``{"bertscore": 256, "meteor": 512}``, keyed by reward name
    (``chrf++`` gives ``chrfpp``); errors name ``option``."""
    sizes: dict[str, int] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        try:
            size = int(value)
        except ValueError:
            size = 0
        if not sep or size < 1:
            raise ValueError(f"{option}: expected NAME=PAIRS with PAIRS >= 1, got {item.strip()!r}")
        sizes[reward_spec(name.strip()).reward_name] = size
    return sizes


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """One line: CPU, usable cores, metric engine."""
    from speechgrpo.metrics.jit import compiled_available

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    engine = "compiled (numba)" if compiled_available() else "pure Python"
    text = f"{cpu_model()}, {cores} usable cores, engine {engine}"
    torch = sys.modules.get("torch")
    if torch is not None:
        text += f", torch threads {torch.get_num_threads()}"
    return text


def _batched(reward: Reward, size: int | None = None) -> ScoreFn:
    """One reward call on all the pairs, or one call per ``size`` pairs (as trainers that score in chunks)."""
    if size is None:
        return lambda hyps, refs: reward(hyps, refs).scores
    return lambda hyps, refs: np.concatenate([reward(hyps[i:i + size], refs[i:i + size]).scores
                                              for i in range(0, len(hyps), size)])


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,8,64"`` -> ``[1, 8, 64]``: the call sizes ``--batch-sizes`` times beside the whole batch."""
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"--batch-sizes: expected positive integers separated by ',', got {item!r}")
        sizes.append(int(item))
    return sorted(set(sizes))


def run_speed(hyps: list[str], refs: list[str], rewards: Sequence[str], repeats: int = 3,
              max_pairs: dict[str, int] | None = None, data_note: str = "", show_progress: bool = True,
              batch_sizes: Sequence[int] = ()) -> BenchReport:
    """Time every reward of ``rewards`` against its reference on the pairs; one table row per reward. With
    ``batch_sizes``, ours is also timed called that many pairs at a time (``speedup_b<N>`` columns): a
    trainer that scores one sample per call (verl's default manager) pays the per-call cost."""
    if repeats < 1:
        raise ValueError("--repeats must be at least 1")
    if not hyps:
        raise ValueError("no pairs to time")
    specs = [reward_spec(name) for name in rewards]
    caps = DEFAULT_MAX_PAIRS if max_pairs is None else max_pairs
    rows: list[dict[str, Any]] = []
    notes = [data_note] if data_note else []
    bar = progress(range(len(specs) * repeats), len(specs) * repeats, "bench speed", show_progress)
    for spec in specs:
        name = spec.reward_name
        n = min(len(hyps), caps.get(name, len(hyps)))
        try:  # ours and the reference both need the reward's extra (BERTScore: torch, bert-score, the encoder)
            reward = get_reward(name)
            reference = spec.reference()
        except ImportError as err:
            notes.append(f"{name}: left out, {unavailable_reason(err)}")
            for _ in range(repeats):
                next(bar, None)
            continue
        assert isinstance(reward, MetricReward)
        if n < len(hyps):
            notes.append(f"{name}: first {n:,} of {len(hyps):,} pairs (--max-pairs {name}={n})")
        timing = side_by_side(_batched(reward), reference, hyps[:n], refs[:n], repeats, tick=lambda: next(bar, None),
                              chunked={size: _batched(reward, size) for size in batch_sizes})
        expected = reward.to_reward_scale(timing.reference_scores)
        mismatches, max_diff = compare_scores(timing.ours_scores.tolist(), expected.tolist(), spec.tolerance)
        if timing.unstable:
            notes.append(f"{name}: ours gave different scores on different repeats")
        chunked = {}
        for size in batch_sizes:
            seconds = statistics.median(timing.chunked_times[size])
            chunked[f"speedup_b{size}"] = timing.reference_s / seconds if seconds > 0 else math.inf
            if size in timing.chunked_differ:
                notes.append(f"{name}: calls of {size} pairs gave other scores than one call on all of them")
        rows.append({
            "reward": name, "pairs": n, "ours_s": timing.ours_s, "reference_s": timing.reference_s,
            "ours_pairs_per_s": n / timing.ours_s if timing.ours_s > 0 else math.inf,
            "reference_pairs_per_s": n / timing.reference_s if timing.reference_s > 0 else math.inf,
            "speedup": timing.reference_s / timing.ours_s if timing.ours_s > 0 else math.inf, **chunked,
            "mismatches": mismatches, "max_abs_diff": max_diff, "tolerance": spec.tolerance,
            "reference_errors": timing.reference_errors,
        })
    for _ in bar:  # close the progress bar
        pass
    if not rows:
        raise ValueError("none of the rewards could run here: " + "; ".join(n for n in notes if "left out" in n))
    timed = {row["reward"] for row in rows}
    notes += [
        f"median of {repeats} runs; sacrebleu tokenizer caches cleared before every timed run",
        "ours = one batched reward call on all pairs; reference = one call per pair (references below)",
        *([f"speedup_b<N>: reference time / ours called with N pairs at a time (N = {', '.join(map(str, batch_sizes))}"
           "; 1 is verl's default per-sample manager)"] if batch_sizes else []),
        "mismatches = pairs whose reward differs from the reference's value on the reward's scale "
        "(tolerance 0: identical floats); max_abs_diff = largest |difference|",
        "direction: *_s lower is faster, *_pairs_per_s and speedup higher is faster; mismatches, max_abs_diff and "
        "reference_errors: 0 is exact; values are compared on the reward scale (wer, cer, ter as 1 - min(rate, 1))",
        *(f"{spec.reward_name}: {spec.reference_text}" for spec in specs if spec.reward_name in timed),
    ]
    table = Table("speed", "Reward speed against the reference implementation", "reward", rows, formats={
        "ours_s": "{:.4f}", "reference_s": "{:.4f}", "ours_pairs_per_s": "{:,.0f}",
        "reference_pairs_per_s": "{:,.0f}", "speedup": "{:.2f}x", "max_abs_diff": "{:.3g}", "tolerance": "{:g}",
        **{f"speedup_b{size}": "{:.2f}x" for size in batch_sizes},
    })
    labels = [r["reward"] for r in rows]
    ratios = [float(r["speedup"]) for r in rows]

    def draw(path: Path) -> None:
        bar_chart(path, labels, ratios, "speedup (reference time / ours), log scale",
                  "speechgrpo reward vs reference, same pairs", log=True, reference_line=1.0)

    return BenchReport("speed", [table], notes, meta={"machine": machine(), "repeats": repeats},
                       plots={"speed.png": draw})

"""Paired bootstrap confidence intervals for the difference of two systems on one test set.

Koehn (2004)'s test, as sacrebleu's ``--paired-bs``, extended to several runs per system (seeds x
sampled passes): each resample draws test examples with replacement, scores every run of both systems on
the drawn examples, and takes the difference of the run means. Corpus BLEU is recomputed from summed
sufficient statistics on every resample; per-sample metrics are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from speechgrpo.metrics import BLEU
from speechgrpo.train.evaluation import corpus_bleu_metric


@dataclass(frozen=True)
class Interval:
    """``difference`` (A - B on the full test set) with its ``low``-``high`` bootstrap interval."""

    difference: float
    low: float
    high: float
    level: float

    def __str__(self) -> str:
        return f"{self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


class RunScores:
    """Per-example material of one system's runs on one test set: BLEU statistics ``(runs, n, k)`` or
    per-sample scores ``(runs, n)``, and the run-mean score of any subset of examples."""

    def __init__(self, values: np.ndarray, bleu: BLEU | None = None) -> None:
        self.values = values
        self.bleu = bleu

    @classmethod
    def of_bleu(cls, answers: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> RunScores:
        """``answers[run][example]`` scored by corpus BLEU."""
        bleu = corpus_bleu_metric()
        pairs = [bleu.validate(run, references) for run in answers]
        return cls(np.stack([bleu.statistics(p) for p in pairs]), bleu)

    @classmethod
    def of_samples(cls, scores: Sequence[Sequence[float]] | Sequence[np.ndarray] | np.ndarray) -> RunScores:
        """``scores[run][example]``, a per-sample metric."""
        return cls(np.asarray(scores, dtype=np.float64))

    def mean(self, indices: np.ndarray | None = None) -> float:
        chosen = self.values if indices is None else self.values[:, indices]
        if self.bleu is None:
            return float(chosen.mean())
        totals = chosen.sum(axis=1)
        return float(np.mean([self.bleu.score_from_statistics(row) for row in totals]))


def paired_bootstrap(a: RunScores, b: RunScores, resamples: int = 1000, level: float = 0.95,
                     seed: int = 0) -> Interval:
    """The ``level`` percentile interval of mean(A) - mean(B) over ``resamples`` paired resamples."""
    n = a.values.shape[1]
    if b.values.shape[1] != n:
        raise ValueError(f"the two systems are scored on {n} and {b.values.shape[1]} examples; a paired test needs "
                         "the same test set")
    if n == 0:
        raise ValueError("no test examples")
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for r in range(resamples):
        indices = np.asarray(rng.integers(0, n, size=n))
        differences[r] = a.mean(indices) - b.mean(indices)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return Interval(a.mean() - b.mean(), float(low), float(high), level)

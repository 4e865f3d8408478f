"""The paired bootstrap behind the demo's GRPO - SFT intervals."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu

from speechgrpo.train.demo_report import moving_average
from speechgrpo.train.significance import RunScores, paired_bootstrap

REFS = ["Anna lives in Rome.", "Ben has a red car.", "Carl works at the bank.", "Dora is twenty years old.",
        "Emil plays chess every Monday.", "Fay bought two books.", "Gus has a cat called Rex.", "Hal speaks Greek."]
GOOD = ["Anna lives in Rome.", "Ben has a red car.", "Carl works at the bank.", "Dora is twenty.",
        "Emil plays chess on Monday.", "Fay bought two books.", "Gus has a cat named Rex.", "Hal speaks Greek."]
BAD = ["Anna lives in Paris.", "Ben has a car.", "Carl works.", "Dora is old.", "Emil plays.", "Fay bought pens.",
       "Gus has a dog.", "Hal speaks."]


def test_bleu_runs_are_corpus_bleu_of_each_run_averaged() -> None:
    scores = RunScores.of_bleu([GOOD, BAD], [(r,) for r in REFS])
    expected = np.mean([sacrebleu.corpus_bleu(GOOD, [REFS]).score, sacrebleu.corpus_bleu(BAD, [REFS]).score])
    assert scores.mean() == pytest.approx(expected, abs=1e-9)
    subset = np.array([0, 0, 3, 5])
    chosen = [REFS[i] for i in subset]
    expected = np.mean([sacrebleu.corpus_bleu([GOOD[i] for i in subset], [chosen]).score,
                        sacrebleu.corpus_bleu([BAD[i] for i in subset], [chosen]).score])
    assert scores.mean(subset) == pytest.approx(expected, abs=1e-9)


def test_interval_excludes_zero_for_a_clearly_better_system_and_is_zero_for_identical_ones() -> None:
    refs = [(r,) for r in REFS] * 10
    good = RunScores.of_bleu([GOOD * 10], refs)
    bad = RunScores.of_bleu([BAD * 10], refs)
    better = paired_bootstrap(good, bad, resamples=200)
    assert better.low > 0 and better.low <= better.difference <= better.high
    worse = paired_bootstrap(bad, good, resamples=200)
    assert worse.high < 0 and worse.difference == pytest.approx(-better.difference)
    same = paired_bootstrap(good, good, resamples=50)
    assert same.difference == same.low == same.high == 0.0


def test_per_sample_interval_matches_a_direct_bootstrap_of_the_mean_difference() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, (3, 40)), rng.normal(0.0, 1.0, (2, 40))
    interval = paired_bootstrap(RunScores.of_samples(a), RunScores.of_samples(b), resamples=300, seed=4)
    draws = np.random.default_rng(4)
    direct = []
    for _ in range(300):
        idx = draws.integers(0, 40, size=40)
        direct.append(a[:, idx].mean() - b[:, idx].mean())
    assert (interval.low, interval.high) == pytest.approx(tuple(np.percentile(direct, [2.5, 97.5])))
    assert interval.difference == pytest.approx(a.mean() - b.mean())


def test_unpaired_or_empty_sets_are_refused() -> None:
    with pytest.raises(ValueError, match="same test set"):
        paired_bootstrap(RunScores.of_samples([[1.0, 2.0]]), RunScores.of_samples([[1.0]]))
    with pytest.raises(ValueError, match="no test examples"):
        paired_bootstrap(RunScores.of_samples(np.zeros((1, 0))), RunScores.of_samples(np.zeros((1, 0))))


def test_moving_average_is_a_trailing_mean() -> None:
    assert moving_average([1, 2, 3, 4, 5], 2).tolist() == [1.0, 1.5, 2.5, 3.5, 4.5]
    assert moving_average([4, 0, 2], 10).tolist() == [4.0, 2.0, 2.0]

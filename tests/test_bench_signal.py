"""The statistics of ``speechgrpo bench signal``, checked against straightforward computations (scipy, numpy)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from speechgrpo.bench.signal import (
    group_indices,
    pearson,
    run_signal,
    split_specs,
    spread,
    within_group_kendall,
    within_group_pearson,
)
from speechgrpo.data.groups_file import Group
from speechgrpo.rewards import get_reward


def random_groups(seed: int, n_groups: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Scores of 3 rewards on groups of 1-9 samples with many ties and some constant groups; shuffled order."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 10, n_groups)
    group_ids = np.repeat(np.arange(n_groups), sizes)
    scores = rng.integers(0, 4, (3, group_ids.size)).astype(float) / 4  # few levels: ties within groups
    scores[1, group_ids % 7 == 0] = 0.5  # reward 1 constant in some groups
    order = rng.permutation(group_ids.size)
    return scores[:, order], group_ids[order]


def scipy_within_group_tau(a: np.ndarray, b: np.ndarray, group_ids: np.ndarray) -> tuple[float, int]:
    taus = []
    for g in np.unique(group_ids):
        x, y = a[group_ids == g], b[group_ids == g]
        if len(x) < 2:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = stats.kendalltau(x, y).statistic  # tau-b; NaN when either side is constant
        if not math.isnan(tau):
            taus.append(tau)
    return (float(np.mean(taus)) if taus else math.nan), len(taus)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kendall_matches_scipy_per_group(seed: int) -> None:
    scores, group_ids = random_groups(seed)
    tau, used = within_group_kendall(scores, group_indices(group_ids))
    for a in range(3):
        for b in range(3):
            expected, count = scipy_within_group_tau(scores[a], scores[b], group_ids)
            assert used[a, b] == count
            assert tau[a, b] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert np.allclose(tau, tau.T, equal_nan=True)


def test_kendall_is_nan_without_a_usable_group() -> None:
    scores = np.array([[1.0, 1.0, 2.0, 2.0], [0.0, 1.0, 3.0, 3.0]])
    tau, used = within_group_kendall(scores, group_indices(np.array([0, 0, 1, 1])))
    assert used[0, 1] == 0 and math.isnan(tau[0, 1])
    assert used[1, 1] == 1 and tau[1, 1] == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_pearson_matches_numpy(seed: int) -> None:
    scores, group_ids = random_groups(seed)
    lengths = np.random.default_rng(seed + 10).integers(1, 6, group_ids.size).astype(float)
    assert pearson(scores[0], lengths) == pytest.approx(np.corrcoef(scores[0], lengths)[0, 1], rel=1e-12)
    per_group = []
    for g in np.unique(group_ids):
        x, y = scores[0][group_ids == g], lengths[group_ids == g]
        if len(x) > 1 and x.std() > 0 and y.std() > 0:
            per_group.append(np.corrcoef(x, y)[0, 1])
    mean, used = within_group_pearson(scores[0], lengths, group_indices(group_ids))
    assert used == len(per_group) and mean == pytest.approx(np.mean(per_group), rel=1e-12)
    assert math.isnan(pearson(np.ones(4), np.arange(4.0)))


def test_spread_counts_constant_groups() -> None:
    scores, group_ids = random_groups(3)
    zero, mean_std = spread(scores[1], group_indices(group_ids))
    per_group = [scores[1][group_ids == g] for g in np.unique(group_ids)]
    assert zero == pytest.approx(np.mean([np.ptp(x) == 0 for x in per_group]))
    assert mean_std == pytest.approx(np.mean([x.std() for x in per_group]), abs=1e-15)


def test_group_indices_keep_first_appearance_order() -> None:
    assert [list(i) for i in group_indices(np.array([5, 2, 5, 9, 2]))] == [[0, 2], [1, 4], [3]]


def test_split_specs() -> None:
    assert split_specs("bleu,chrf , wer") == ["bleu", "chrf", "wer"]
    assert split_specs("gate(script(scripts='LATIN,X'), bleu); 0.5*chrf + 0.5*wer,bleu") == [
        "gate(script(scripts='LATIN,X'), bleu)", "0.5*chrf + 0.5*wer", "bleu"]
    with pytest.raises(ValueError, match="no reward specs"):
        split_specs(" , ")


GROUPS = [
    Group("a", ("the cat sat on the mat",), ["the cat sat on the mat", "a cat sat", "the dog sat on a mat",
                                             "cat", "the cat sat on the mat"], [False, False, False, False, True]),
    Group("b", ("ein Hund bellt",), ["ein Hund bellt laut", "Hund", "eine Katze", "ein Hund"], [False] * 4),
    Group("c", ("yes",), ["yes", "yes", "yes"], [False] * 3),  # no signal
]


def test_run_signal_against_direct_computation() -> None:
    report = run_signal(GROUPS, ["bleu", "wer"], target="chrf", show_progress=False)
    frame = report.table("signal").frame
    assert list(frame.index) == ["bleu", "wer", "chrf"]  # the target is added
    on_policy = [(g, [c for c, off in zip(g.completions, g.off_policy, strict=True) if not off]) for g in GROUPS]
    per_group = {name: [get_reward(name)(cs, [g.references] * len(cs)).scores for g, cs in on_policy]
                 for name in ["bleu", "wer", "chrf"]}
    lengths = [np.array([len(c.split()) for c in cs], dtype=float) for _, cs in on_policy]
    for name, groups in per_group.items():
        flat = np.concatenate(groups)
        row = frame.loc[name]
        assert row["mean"] == pytest.approx(flat.mean())
        assert row["zero_var_groups"] == pytest.approx(1 / 3)
        assert row["group_std"] == pytest.approx(np.mean([s.std() for s in groups]))
        assert row["length_r"] == pytest.approx(np.corrcoef(flat, np.concatenate(lengths))[0, 1])
        within = [np.corrcoef(s, n)[0, 1] for s, n in zip(groups, lengths, strict=True) if s.std() and n.std()]
        assert row["length_r_within"] == pytest.approx(np.mean(within)) and row["length_groups"] == len(within)
        taus = [stats.kendalltau(s, t).statistic for s, t in zip(groups, per_group["chrf"], strict=True)
                if np.ptp(s) and np.ptp(t)]
        assert row["tau_target"] == pytest.approx(np.mean(taus)) and row["tau_target_groups"] == len(taus)
        assert row["off_policy_mean"] == 1.0  # the injected reference scores the maximum
    agreement = report.table("agreement").frame
    assert agreement.loc["bleu", "chrf"] == pytest.approx(frame.loc["bleu", "tau_target"])
    assert report.table("agreement_groups").frame.loc["chrf", "chrf"] == 2  # groups where chrf varies


def test_off_policy_samples_can_be_included() -> None:
    excluded = run_signal(GROUPS, ["bleu"], show_progress=False).table("signal").frame
    included = run_signal(GROUPS, ["bleu"], include_off_policy=True, show_progress=False).table("signal").frame
    assert included.loc["bleu", "mean"] > excluded.loc["bleu", "mean"]
    assert "tau_target" not in excluded.columns
    no_off = run_signal(GROUPS[1:], ["bleu"], show_progress=False).table("signal").frame
    assert "off_policy_mean" not in no_off.columns


def test_group_normalized_rewards_run_on_the_real_groups_without_a_warning() -> None:
    """The warm-up call passes the groups too: no "no group_ids given" warning from inside the bench; the notes
    say a gdpo mean is a z-score's, not on [0, 1]."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = run_signal(GROUPS, ["gdpo(0.5*bleu + 0.5*chrf)"], show_progress=False)
    assert abs(report.table("signal").frame.loc["gdpo(0.5*bleu + 0.5*chrf)", "mean"]) < 0.5
    assert any("gdpo(...) gives within-group z-scores" in note for note in report.notes)


def test_all_off_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="every completion is off-policy"):
        run_signal([Group("x", ("a",), ["a"], [True])], ["bleu"], source="f.jsonl", show_progress=False)


def test_the_timed_call_comes_after_the_same_call_untimed_and_cleared_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up scores the whole batch, as the timed call does (a smaller one takes another path, the few-pairs
    path below the batch engine's threshold, and leaves the engine's kernel loading inside the timing); then the
    text caches are cleared, so the timed call does not find the warm-up's references and tokens cached."""
    import speechgrpo.bench.signal as signal
    from speechgrpo.rewards import FunctionReward, registry

    events: list[int | str] = []

    def counted(completions: list[str], references: list[tuple[str, ...]]) -> list[float]:
        events.append(len(completions))
        return [float(len(c) > 10) for c in completions]

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_reward("counted", lambda **options: FunctionReward(counted, **options), "call sizes")
    monkeypatch.setattr(signal, "clear_caches", lambda: events.append("cleared"))
    run_signal(GROUPS, ["counted"], show_progress=False)
    total = sum(len(group.completions) for group in GROUPS)
    assert events == [total, "cleared", total]

"""Group advantages: each preset against its framework's formula written out here independently
(from the frameworks' source as quoted in the project notes), plus properties over random inputs."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speechgrpo.advantages import ADVANTAGE_PRESETS, AdvantageConfig, group_advantages
from speechgrpo.advantages.group_advantages import MAX_ABS_REWARD

G = 8


def tied_rewards(rng: np.random.Generator, n_groups: int, group_size: int = G) -> np.ndarray:
    """Rewards rounded to one decimal (many ties), with every fourth group constant."""
    rewards = np.round(rng.random(n_groups * group_size), 1)
    for g in range(0, n_groups, 4):
        rewards[g * group_size:(g + 1) * group_size] = rewards[g * group_size]
    return rewards


# -- the frameworks' formulas, written as they do ----------------------------------------------------
def trl_group(rewards: torch.Tensor, n: int) -> torch.Tensor:
    mean = rewards.view(-1, n).mean(dim=1).repeat_interleave(n)
    std = rewards.view(-1, n).std(dim=1).repeat_interleave(n)
    return (rewards - mean) / (std + 1e-4)


def trl_batch(rewards: torch.Tensor, n: int) -> torch.Tensor:
    mean = rewards.view(-1, n).mean(dim=1).repeat_interleave(n)
    return (rewards - mean) / (rewards.std() + 1e-4)


def trl_gdpo(rewards: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    z = torch.stack([trl_group(rewards[:, k], n) for k in range(rewards.shape[1])], dim=1)
    summed = (z * weights).nansum(dim=1)
    return (summed - summed.mean()) / (summed.std() + 1e-4)


def verl_grpo(scores: torch.Tensor, index: np.ndarray, epsilon: float = 1e-6, by_std: bool = True) -> torch.Tensor:
    id2score: dict[object, list[torch.Tensor]] = defaultdict(list)
    for i in range(len(scores)):
        id2score[index[i]].append(scores[i])
    id2mean, id2std = {}, {}
    for idx, values in id2score.items():
        stacked = torch.stack(values)
        id2mean[idx], id2std[idx] = torch.mean(stacked), torch.std(stacked)
    out = scores.clone()
    for i in range(len(scores)):
        out[i] = (scores[i] - id2mean[index[i]]) / (id2std[index[i]] + epsilon) if by_std else (
            scores[i] - id2mean[index[i]])
    return out


def openrlhf(rewards: torch.Tensor, n: int, estimator: str) -> torch.Tensor:
    r = rewards.reshape(-1, n)
    if estimator == "group_norm":
        r = (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True) + 1e-9)
    elif estimator == "rloo":
        baseline = (r.sum(-1, keepdim=True) - r) / (n - 1)
        r = r - baseline
    elif estimator in ("dr_grpo", "reinforce_baseline"):
        r = r - r.mean(-1, keepdim=True)
    return r.reshape(-1).clamp(-10, 10)


def openrlhf_token_whiten(advantages: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    tokens = torch.cat([advantages[i].repeat(length) for i, length in enumerate(lengths)])
    mean = tokens.mean()
    var = ((tokens - mean) ** 2).mean()
    return (advantages - mean) * var.clamp(min=1e-8).rsqrt()


@pytest.mark.parametrize("seed", range(5))
def test_trl_presets_match_trl(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rewards = tied_rewards(rng, 64)
    t = torch.tensor(rewards)
    np.testing.assert_allclose(group_advantages(rewards, G, preset="trl").advantages, trl_group(t, G), atol=1e-9)
    np.testing.assert_allclose(group_advantages(rewards, G, preset="trl_batch").advantages, trl_batch(t, G),
                               atol=1e-9)
    np.testing.assert_allclose(group_advantages(rewards, G, preset="dr_grpo").advantages,
                               verl_grpo(t, np.arange(len(t)) // G, by_std=False), atol=1e-12)
    columns = np.stack([rewards, np.round(rng.random(len(rewards)), 2), rng.random(len(rewards))], axis=1)
    weights = [1.0, 0.5, 2.0]
    np.testing.assert_allclose(
        group_advantages(columns, G, preset="trl_gdpo", reward_weights=weights).advantages,
        trl_gdpo(torch.tensor(columns), torch.tensor(weights, dtype=torch.float64), G), atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_verl_preset_matches_verl_on_string_uids_in_any_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rewards = tied_rewards(rng, 40)
    uids = np.array([f"uid-{g}" for g in np.arange(len(rewards)) // G], dtype=object)
    order = rng.permutation(len(rewards))
    rewards, uids = rewards[order], uids[order]
    expected = verl_grpo(torch.tensor(rewards), uids)
    np.testing.assert_allclose(group_advantages(rewards, uids, preset="verl").advantages, expected, atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_openrlhf_presets_match_openrlhf(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rewards = tied_rewards(rng, 32)
    t = torch.tensor(rewards)
    np.testing.assert_allclose(group_advantages(rewards, G, preset="openrlhf").advantages,
                               openrlhf(t, G, "group_norm"), atol=1e-9)
    np.testing.assert_allclose(group_advantages(rewards, G, preset="rloo").advantages, openrlhf(t, G, "rloo"),
                               atol=1e-12)
    lengths = rng.integers(1, 50, len(rewards)).tolist()
    np.testing.assert_allclose(
        group_advantages(rewards, G, preset="reinforce_pp_baseline", token_counts=lengths).advantages,
        openrlhf_token_whiten(openrlhf(t, G, "reinforce_baseline"), lengths), atol=1e-9)
    np.testing.assert_allclose(group_advantages(rewards, G, preset="reinforce_pp", token_counts=lengths).advantages,
                               openrlhf_token_whiten(t.clamp(-10, 10), lengths), atol=1e-9)


def test_openrlhf_clamp_applies_after_normalization() -> None:
    # An excluded off-policy sample far above a tight on-policy group gets a huge z-score: clamped to 10.
    rewards = np.array([0.50, 0.51, 0.49, 1.0])
    out = group_advantages(rewards, 4, preset="openrlhf", off_policy=[0, 0, 0, 1], off_policy_in_stats=False)
    assert out.advantages[3] == 10.0
    assert out.stats["frac_clipped"] == 0.25


def test_paper_preset_is_the_z_score_over_the_mixed_group() -> None:
    rng = np.random.default_rng(7)
    rewards = np.round(rng.random((16, G)), 2)
    rewards[:, -1] = 1.0  # the reference, BLEU(y, y) = 1, last in each group
    off = np.zeros_like(rewards, dtype=bool)
    off[:, -1] = True
    out = group_advantages(rewards.ravel(), G, preset="paper", off_policy=off.ravel())
    np.testing.assert_allclose(out.advantages, trl_group(torch.tensor(rewards.ravel()), G), atol=1e-9)
    assert (out.advantages.reshape(16, G)[:, -1] > 0).all()


def test_off_policy_excluded_from_stats_uses_on_policy_mean_and_std() -> None:
    rng = np.random.default_rng(3)
    rewards = rng.random((10, G))
    out = group_advantages(rewards.ravel(), G, off_policy=np.tile(np.arange(G) == 0, 10),
                           off_policy_in_stats=False).advantages.reshape(10, G)
    on = rewards[:, 1:]
    expected = (rewards - on.mean(1, keepdims=True)) / on.std(1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def luffy_grpo_split(scores: np.ndarray, index: list[int], on_policy: np.ndarray, use_std: bool) -> np.ndarray:
    """LUFFY's compute_grpo_outcome_advantage_split (verl mix_src), written out from its source: mean and
    unbiased std of each prompt's on-policy scores (one on-policy score: mean 0, std 1; a std of 0 becomes 1),
    then (score - mean) / (std + 1e-6), or score - mean without the std."""
    by_prompt: dict[int, list[float]] = defaultdict(list)
    for score, prompt, on in zip(scores, index, on_policy, strict=True):
        if on:
            by_prompt[prompt].append(float(score))
    mean, std = {}, {}
    for prompt, values in by_prompt.items():
        mean[prompt], std[prompt] = ((0.0, 1.0) if len(values) == 1 else
                                     (float(np.mean(values)), float(np.std(values, ddof=1))))
        std[prompt] = std[prompt] or 1.0
    return np.array([(s - mean[p]) / (std[p] + 1e-6) if use_std else s - mean[p]
                     for s, p in zip(scores, index, strict=True)])


@pytest.mark.parametrize("use_std", [False, True])
def test_luffy_preset_and_the_excluded_reference_follow_luffys_grpo_split(use_std: bool) -> None:
    """Every group with G-1 = 7 on-policy samples and the reference; flat groups included (all failed, all
    right), where the reference outside the statistics keeps its signal: r_ref - mean, not 0."""
    rng = np.random.default_rng(5)
    rewards = rng.random((12, G)).round(1)
    rewards[0, 1:] = 0.0  # every sample failed; the reference (column 0) scores
    rewards[0, 0] = 1.0
    rewards[1] = 0.5  # nothing to tell apart
    off = np.tile(np.arange(G) == 0, 12)
    index = list(np.repeat(np.arange(12), G))
    options = {"preset": "luffy"} if not use_std else {"std_unbiased": True, "epsilon": 1e-6,
                                                       "off_policy_in_stats": False}
    out = group_advantages(rewards.ravel(), index, off_policy=off, **options).advantages
    expected = luffy_grpo_split(rewards.ravel(), index, ~off, use_std)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert out[0] == pytest.approx(1.0 / (1 + 1e-6) if use_std else 1.0)  # the all-failed group's reference


def test_leaf_floor_and_zero_variance_groups() -> None:
    rewards = np.array([0.4, 0.5, 0.6, 0.7, 0.7, 0.7])
    out = group_advantages(rewards, 3, preset="leaf")
    np.testing.assert_allclose(out.advantages[:3], (rewards[:3] - 0.5) * 3)  # std 0.08 < 1/3: divided by 1/3
    assert out.advantages[3:].tolist() == [0.0, 0.0, 0.0]
    assert out.keep.tolist() == [True] * 3 + [False] * 3
    assert out.stats["frac_zero_std_groups"] == 0.5


def test_missing_rewards_are_left_out_and_get_zero() -> None:
    rewards = np.array([0.1, np.nan, 0.5, 0.9, np.nan, np.nan])
    out = group_advantages(rewards, 3, preset="trl")
    expected = trl_group(torch.tensor([0.1, 0.5], dtype=torch.float64), 2)
    np.testing.assert_allclose(out.advantages[[0, 2]], expected)
    assert out.advantages[[1, 3, 4, 5]].tolist() == [0.0] * 4  # group 2 has one scored sample: no signal
    assert out.stats["frac_missing"] == 0.5


def test_sum_then_normalize_treats_missing_columns_as_zero_like_trl_nansum() -> None:
    rewards = np.array([[0.2, np.nan], [0.4, 0.5], [np.nan, np.nan], [0.9, 0.1]])
    out = group_advantages(rewards, 4, preset="trl", reward_weights=[1.0, 2.0])
    summed = torch.tensor([0.2, 1.4, 1.1], dtype=torch.float64)
    np.testing.assert_allclose(out.advantages[[0, 1, 3]], trl_group(summed, 3), atol=1e-9)
    assert out.advantages[2] == 0.0


def test_leave_one_out_singletons_and_batch_scale() -> None:
    out = group_advantages([0.3, 0.9, 0.5], [0, 0, 1], preset="rloo")
    np.testing.assert_allclose(out.advantages, [-0.6, 0.6, 0.0])
    rewards = np.array([0.1, 0.3, 0.8, 0.8])
    out = group_advantages(rewards, 2, scale="batch")
    np.testing.assert_allclose(out.advantages, [-0.1 / rewards.std(), 0.1 / rewards.std(), 0, 0])


def test_torch_matches_numpy_on_device_and_dtype() -> None:
    rng = np.random.default_rng(1)
    rewards = tied_rewards(rng, 30)
    ids = rng.integers(0, 12, len(rewards))
    off = rng.random(len(rewards)) < 0.1
    for name in ADVANTAGE_PRESETS:
        expected = group_advantages(rewards, ids, preset=name, off_policy=off)
        got = group_advantages(torch.tensor(rewards, dtype=torch.float32), torch.tensor(ids), preset=name,
                               off_policy=torch.tensor(off))
        assert got.advantages.dtype == torch.float32 and got.keep.dtype == torch.bool
        np.testing.assert_allclose(got.advantages.numpy(), expected.advantages, atol=1e-5, err_msg=name)
        assert got.keep.tolist() == expected.keep.tolist()
        assert got.stats.keys() == expected.stats.keys()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rewards": [0.1, float("inf")], "groups": 2}, r"rewards\[1\] = inf"),
    ({"rewards": [0.1, 2e12], "groups": 2}, r"rewards\[1\]"),
    ({"rewards": [[0.1, 0.2, 0.3]], "groups": 1, "reward_weights": [1.0]}, "reward_weights has 1 entries"),
    ({"rewards": [0.1, 0.2, 0.3], "groups": 2}, "does not divide"),
    ({"rewards": [0.1, 0.2, 0.3], "groups": [0, 1]}, "groups has shape"),
    ({"rewards": [0.1, 0.2], "groups": 2, "off_policy": [True]}, "off_policy has shape"),
    ({"rewards": [0.1, 0.2], "groups": 2, "whiten": True, "token_counts": [1, -1]}, "token_counts"),
    ({"rewards": [0.1, 0.2], "groups": 2, "preset": "trll"}, "unknown advantage preset 'trll'"),
    ({"rewards": [0.1, 0.2], "groups": 2, "center": "median"}, "center must be one of"),
    ({"rewards": [0.1, 0.2], "groups": 2, "epsilon": -1.0}, "epsilon must be"),
])
def test_bad_input_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        group_advantages(**kwargs)  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------------------
reward_values = st.floats(-1e6, 1e6, allow_nan=False)
ragged = st.lists(st.tuples(st.integers(0, 9), reward_values), min_size=1, max_size=60)


def per_group_loop(rewards: np.ndarray, ids: np.ndarray, config: AdvantageConfig) -> np.ndarray:
    out = np.zeros_like(rewards)
    for g in np.unique(ids):
        members = ids == g
        r = rewards[members]
        std = r.std(ddof=1) if config.std_unbiased and len(r) > 1 else r.std()
        if len(r) < 2 or std < config.zero_std_tol:
            continue
        out[members] = (r - r.mean()) / (max(std, config.std_floor) + config.epsilon)
    return out


@settings(max_examples=200, deadline=None)
@given(ragged, st.sampled_from(["trl", "verl", "openrlhf", "leaf", "paper"]))
def test_ragged_unsorted_groups_equal_the_per_group_loop(samples: list[tuple[int, float]], preset: str) -> None:
    ids = np.array([g for g, _ in samples])
    rewards = np.array([r for _, r in samples])
    config = ADVANTAGE_PRESETS[preset]
    expected = np.clip(per_group_loop(rewards, ids, config), -(config.clip or np.inf), config.clip or np.inf)
    np.testing.assert_allclose(group_advantages(rewards, ids, preset=preset).advantages, expected,
                               rtol=1e-9, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(ragged, st.floats(-1e3, 1e3), st.floats(1e-2, 1e2))
def test_z_scores_are_shift_and_scale_invariant(samples: list[tuple[int, float]], shift: float, scale: float) -> None:
    ids = np.array([g for g, _ in samples])
    rewards = np.round(np.array([r for _, r in samples]) / 1e6, 3)  # on [-1, 1]: shifts cannot swamp the spread
    base = group_advantages(rewards, ids).advantages
    np.testing.assert_allclose(group_advantages(rewards + shift, ids).advantages, base, atol=1e-6)
    np.testing.assert_allclose(group_advantages(rewards * scale, ids).advantages, base, atol=1e-6)
    centered = group_advantages(rewards, ids, preset="dr_grpo").advantages
    np.testing.assert_allclose(group_advantages(rewards * scale, ids, preset="dr_grpo").advantages, centered * scale,
                               rtol=1e-9, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.one_of(reward_values, st.just(float("nan"))),
                          st.booleans(), st.integers(0, 500)), min_size=1, max_size=50),
       st.sampled_from(sorted(ADVANTAGE_PRESETS)), st.booleans())
def test_no_nan_or_inf_for_any_input(samples: list[tuple[int, float, bool, int]], preset: str,
                                     off_in_stats: bool) -> None:
    ids, rewards, off, tokens = (np.array(column) for column in zip(*samples, strict=True))
    out = group_advantages(rewards, ids, preset=preset, off_policy=off, token_counts=tokens,
                           off_policy_in_stats=off_in_stats)
    assert np.isfinite(out.advantages).all()
    assert all(np.isfinite(v) for v in out.stats.values())
    assert (out.advantages[np.isnan(rewards)] == 0).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=12), st.floats(-5, 5))
def test_zero_variance_groups_give_exactly_zero(sizes: list[int], value: float) -> None:
    ids = np.repeat(np.arange(len(sizes)), sizes)
    rewards = np.full(len(ids), value) + np.where(ids % 2 == 0, 0.0, ids * 1e-3 * (np.arange(len(ids)) % 2))
    for preset in ("trl", "verl", "openrlhf", "dr_grpo", "rloo", "paper", "leaf"):
        out = group_advantages(rewards, ids, preset=preset)
        flat = np.isin(ids, [g for g in range(len(sizes)) if np.ptp(rewards[ids == g]) == 0])
        assert (out.advantages[flat] == 0.0).all(), preset
        assert not out.keep[flat].any()


def test_reward_limit_is_documented_value() -> None:
    assert MAX_ABS_REWARD == 1e12
    assert np.isfinite(group_advantages([MAX_ABS_REWARD, -MAX_ABS_REWARD] * 4, 8).advantages).all()


@pytest.mark.parametrize("preset", ["dr_grpo", "rloo", "trl"])
def test_excluded_sample_alone_in_its_group_has_no_baseline(preset: str) -> None:
    out = group_advantages([0.2, 0.6, 0.9], [0, 0, 1], preset=preset, off_policy=[False, False, True],
                           off_policy_in_stats=False)
    assert out.advantages[2] == 0.0


def test_the_presets_table_says_which_presets_divide_by_the_std() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "advantages_and_losses.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| (yes|no)[^|]* \|", text, re.M))
    assert set(rows) == set(ADVANTAGE_PRESETS)
    for name, config in ADVANTAGE_PRESETS.items():
        assert (rows[name] == "yes") == (config.scale != "none"), name


def test_group_ids_of_any_hashable_type_and_a_clear_error_otherwise() -> None:
    by_string = group_advantages([1.0, 2.0, 3.0, 5.0], groups=["q", "p", "q", "p"])
    by_int = group_advantages([1.0, 2.0, 3.0, 5.0], groups=[1, 0, 1, 0])
    np.testing.assert_array_equal(by_string.advantages, by_int.advantages)
    with pytest.raises(TypeError, match="group ids must be hashable"):
        group_advantages([1.0, 2.0], groups=np.array([{}, {}], dtype=object))


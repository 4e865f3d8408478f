"""``speechgrpo bench signal``: how much learning signal each reward gives GRPO on a batch of groups.

GRPO's advantages are computed within a group, so every statistic here is taken within groups:

- ``zero_var_groups``: fraction of groups whose scores are all equal (every advantage 0: no gradient);
- ``group_std``: mean within-group standard deviation (population std, ddof=0);
- ``length_r`` / ``length_r_within``: Pearson correlation of the reward with the completion length in
  words (whitespace split), over all samples and averaged over groups (advantages are affine in the
  rewards within a group, so the within-group version is the length bias the policy gradient sees);
- Kendall tau-b (``scipy.stats.kendalltau``'s default) between the rankings two rewards give the
  completions of a group, averaged over the groups where neither reward is constant (tau is
  undefined there) -- for every pair of rewards, and against a target metric.

Off-policy samples (MP-GRPO's injected references) are left out of the statistics by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from speechgrpo._extras import unavailable_reason
from speechgrpo._group_ids import dense_ids
from speechgrpo.bench.reference_implementations import clear_caches
from speechgrpo.bench.report import BenchReport, Table, heat_map, progress
from speechgrpo.data.groups_file import Group, flatten

DEFAULT_REWARDS = ("bleu", "chrf", "chrfpp", "ter", "rouge1", "rouge2", "rougeL", "meteor", "wer", "cer",
                   "exact_match", "token_f1", "bertscore")


def split_specs(text: str) -> list[str]:
    """Reward specs separated by top-level commas or semicolons (not inside parentheses or quotes)."""
    specs: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char in ",;" and depth == 0:
            specs.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    specs.append("".join(current).strip())
    specs = [s for s in specs if s]
    if not specs:
        raise ValueError(f"no reward specs in {text!r}")
    return list(dict.fromkeys(specs))


def group_indices(group_ids: np.ndarray) -> list[np.ndarray]:
    """Sample indices of every group, groups in order of first appearance."""
    ids = dense_ids(group_ids)
    if not ids.size:
        return []
    return np.split(np.argsort(ids, kind="stable"), np.cumsum(np.bincount(ids))[:-1])  # one sort, not a scan a group


def is_constant(values: np.ndarray) -> bool:
    return bool(values.size == 0 or values.max() == values.min())


def spread(scores: np.ndarray, groups: Sequence[np.ndarray]) -> tuple[float, float]:
    """(fraction of groups whose scores are all equal, mean within-group std with ddof=0)."""
    constant = [is_constant(scores[idx]) for idx in groups]
    stds = [0.0 if c else float(scores[idx].std()) for c, idx in zip(constant, groups, strict=True)]
    return float(np.mean(constant)), float(np.mean(stds))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant."""
    if x.size < 2 or is_constant(x) or is_constant(y):
        return float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    return float((xc @ yc) / np.sqrt((xc @ xc) * (yc @ yc)))


def within_group_pearson(x: np.ndarray, y: np.ndarray, groups: Sequence[np.ndarray]) -> tuple[float, int]:
    """(mean of the per-group Pearson correlations, groups used: those where neither side is constant)."""
    values = [pearson(x[idx], y[idx]) for idx in groups]
    used = [v for v in values if v == v]
    return (float(np.mean(used)) if used else float("nan")), len(used)


@cache
def _pairs(size: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(size, 1)
    return i, j


def within_group_kendall(scores: np.ndarray, groups: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Kendall tau-b between every pair of rows of ``scores`` (rewards x samples), per group, averaged.

    Returns ``(tau, used)``, both rewards x rewards: the mean tau-b over the groups where both rewards
    vary, and the number of those groups (NaN where there is none). Per group, with ``s_r`` the signs
    of the score differences over all pairs of completions, ``tau_b(a, b) = s_a . s_b /
    sqrt(#nonzero(s_a) #nonzero(s_b))`` -- concordant minus discordant pairs over the geometric mean of
    the pairs untied in each ranking, which is scipy's tau-b.
    """
    n_rewards = scores.shape[0]
    total = np.zeros((n_rewards, n_rewards))
    used = np.zeros((n_rewards, n_rewards), dtype=np.int64)
    for idx in groups:
        if idx.size < 2:
            continue
        i, j = _pairs(idx.size)
        values = scores[:, idx]
        signs = np.sign(values[:, j] - values[:, i])
        untied = np.count_nonzero(signs, axis=1).astype(np.float64)
        denominator = np.sqrt(np.outer(untied, untied))
        valid = denominator > 0
        total[valid] += (signs @ signs.T)[valid] / denominator[valid]
        used += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(used > 0, total / np.maximum(used, 1), np.nan)
    return tau, used


def _leave_out(spec: str, err: BaseException, target: str | None, notes: list[str]) -> None:
    """Note a reward that cannot run here (missing extra, model or data), or fail if it is the target."""
    reason = unavailable_reason(err)
    if spec == target:
        raise ValueError(f"the target reward {spec!r} cannot run here: {reason}") from err
    notes.append(f"{spec}: left out, {reason}")


def run_signal(groups: Sequence[Group], specs: Sequence[str], target: str | None = None,
               include_off_policy: bool = False, source: str = "", show_progress: bool = True) -> BenchReport:
    """Score the groups with every reward spec and compute the signal statistics and rank agreement.

    A reward whose optional dependencies are missing here is left out with a note naming the extra
    to install (the target is needed, so it fails instead). A target missing from ``specs`` is scored
    too and added to the tables.
    """
    from speechgrpo.rewards import parse_reward

    specs = list(dict.fromkeys(specs))
    if target is not None and target not in specs:
        specs.append(target)
    notes: list[str] = []
    rewards = {}
    for spec in specs:  # a bad spec fails here, before any scoring
        try:
            rewards[spec] = parse_reward(spec)
        except ImportError as err:
            _leave_out(spec, err, target, notes)
    batch = flatten(groups)
    keep = np.ones(len(batch.completions), dtype=bool) if include_off_policy else ~batch.off_policy
    if not keep.any():
        raise ValueError(f"{source or 'the data'}: every completion is off-policy; "
                         "pass --include-off-policy to use them")
    kept_groups = group_indices(batch.group_ids[keep])
    lengths = np.array([len(c.split()) for c in batch.completions], dtype=np.float64)[keep]
    scored: dict[str, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    for spec in progress(list(rewards), len(rewards), "bench signal", show_progress):
        reward = rewards[spec]
        try:
            score = partial(reward, batch.completions, batch.references, group_ids=batch.group_ids,
                            off_policy=batch.off_policy)
            # the same call untimed first (model loading; a smaller batch would take the few-pairs path and leave
            # the batch engine's kernels to load inside the timing), then the caches of its texts cleared, as
            # every training step brings new completions
            score()
            clear_caches()
            start = time.perf_counter()
            result = score()
            seconds = time.perf_counter() - start
        except (ImportError, LookupError, OSError) as err:
            _leave_out(spec, err, target, notes)
            continue
        scores = result.scores[keep]
        scored[spec] = scores
        zero_var, group_std = spread(scores, kept_groups)
        length_within, length_groups = within_group_pearson(scores, lengths, kept_groups)
        off = result.scores[batch.off_policy]
        rows.append({
            "reward": spec, "mean": float(scores.mean()), "std": float(scores.std()),
            "zero_var_groups": zero_var, "group_std": group_std, "length_r": pearson(scores, lengths),
            "length_r_within": length_within, "length_groups": length_groups,
            "off_policy_mean": float(off.mean()) if off.size else float("nan"), "ms": 1000 * seconds,
        })
    if not rows:
        raise ValueError("none of the rewards could run here")
    names = list(scored)
    tau, used = within_group_kendall(np.stack([scored[n] for n in names]), kept_groups)
    position = {name: i for i, name in enumerate(names)}
    for row in rows:  # display order: the target's agreement before off_policy_mean and ms
        tail = {"off_policy_mean": row.pop("off_policy_mean"), "ms": row.pop("ms")}
        if target is not None:
            i, j = position[row["reward"]], position[target]
            row.update(tau_target=float(tau[i, j]), tau_target_groups=int(used[i, j]))
        if not batch.off_policy.any():
            del tail["off_policy_mean"]
        row.update(tail)

    n_off = int(batch.off_policy.sum())
    off_text = ("none are off-policy" if not n_off else
                f"{n_off} off-policy {'included' if include_off_policy else 'left out of the statistics'}")
    notes = [
        f"data: {source or 'groups'}: {len(groups)} groups, {len(batch.completions)} completions ({off_text}); "
        f"statistics over {int(keep.sum())} completions in {len(kept_groups)} groups",
        "direction: mean and std are on each reward's own scale, higher is better: [0, 1] for the metrics "
        "(wer, cer and ter are 1 - min(rate, 1), not error rates) and their weighted sums; gdpo(...) gives "
        "within-group z-scores, centred on 0 in every group; zero_var_groups: lower is better (a group whose "
        "completions all score the same gives GRPO no signal); group_std: higher is more signal; length_r, "
        "length_r_within: nearer 0 is less length bias; agreement (tau): higher is closer to the other reward; "
        "ms: lower is faster",
        "zero_var_groups: fraction of groups whose scores are all equal; group_std: mean within-group std (ddof=0)",
        "length_r: Pearson r of reward vs completion length in words over all samples; length_r_within: mean "
        "of the per-group Pearson r over the length_groups groups where neither reward nor length is constant",
        "agreement: mean within-group Kendall tau-b (scipy's default variant) over the groups where neither "
        "reward is constant; agreement_groups: how many groups that is (diagonal: groups where the reward varies)",
        *([f"tau_target: agreement with the target {target!r} (tau_target_groups: groups used)"]
          if target is not None else []),
        *(["off_policy_mean: mean score of the off-policy samples"] if n_off else []),
        "ms: time of one batched reward call on every completion, after the same call untimed (model "
        "loading, compiled kernels) and with the text caches cleared (sacrebleu's tokenizer, references)",
        *notes,
    ]
    formats = {"length_groups": "{:d}", "tau_target_groups": "{:d}", "ms": "{:.1f}"}
    def matrix(values: np.ndarray, cast: Callable[[Any], Any]) -> list[dict[str, Any]]:
        return [{"reward": a, **{b: cast(values[i, j]) for j, b in enumerate(names)}} for i, a in enumerate(names)]

    tables = [
        Table("signal", "Learning signal per reward", "reward", rows, formats),
        Table("agreement", "Within-group rank agreement (mean Kendall tau-b)", "reward", matrix(tau, float),
              default_format="{:.2f}"),
        Table("agreement_groups", "Groups used for each agreement value", "reward", matrix(used, int)),
    ]

    def draw(path: Path) -> None:
        heat_map(path, names, tau, "within-group Kendall tau-b (mean over groups)")

    meta = {"data": source or "groups", "groups": len(groups), "completions": len(batch.completions),
            "off_policy": n_off, "include_off_policy": include_off_policy, "target": target}
    return BenchReport("signal", tables, notes, meta, plots={"agreement.png": draw})

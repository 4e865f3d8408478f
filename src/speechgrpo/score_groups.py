"""``speechgrpo score``: score a batch of GRPO groups with every reward.

For each reward it reports the mean and spread of the scores, how many groups give GRPO no signal
(all completions scored equally, so every advantage is 0), the mean within-group spread, the score
of the off-policy samples (MP-GRPO's injected references) and the time the batch took.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from speechgrpo.group_data import FlatBatch, Group, example_groups, flatten
from speechgrpo.rewards import parse_reward

DEFAULT_REWARDS = (
    "bleu", "chrf", "chrfpp", "ter", "rouge1", "rouge2", "rougeL", "meteor", "wer", "cer", "exact_match",
    "token_f1", "bertscore", "0.7*bleu + 0.3*bertscore", "gdpo(0.5*bleu + 0.5*chrf)",
    "gate(script(scripts='LATIN'), bleu)", "overlong(bleu, max_length=12, cache_length=4)",
)


def group_spread(scores: np.ndarray, group_ids: np.ndarray, tol: float = 1e-8) -> tuple[float, float]:
    """(fraction of groups with zero spread, mean within-group std)."""
    stds = np.array([scores[group_ids == g].std() for g in np.unique(group_ids)])
    return float(np.mean(stds < tol)), float(stds.mean())


def score_table(batch: FlatBatch, specs: Sequence[str]) -> pd.DataFrame:
    """One row per reward spec; a reward that cannot run here gets its error in the ``note`` column."""
    rows = []
    for spec in specs:
        row: dict[str, object] = {"reward": spec}
        try:
            reward = parse_reward(spec)
            # warm-up outside the timing: model loading, and numba's kernel compilation on a first run
            reward(batch.completions[:2], batch.references[:2], off_policy=batch.off_policy[:2])
            start = time.perf_counter()
            result = reward(batch.completions, batch.references, group_ids=batch.group_ids,
                            off_policy=batch.off_policy)
            seconds = time.perf_counter() - start
        except (ImportError, LookupError, OSError, ValueError) as err:
            row["note"] = f"unavailable: {str(err).splitlines()[0]}"
            rows.append(row)
            continue
        zero_frac, mean_std = group_spread(result.scores, batch.group_ids)
        off = result.scores[batch.off_policy]
        row.update({
            "range": f"{reward.bounds[0]:g}..{reward.bounds[1]:g}",
            "mean": result.scores.mean(), "std": result.scores.std(),
            "zero-var groups": zero_frac, "group std": mean_std,
            "off-policy": off.mean() if off.size else np.nan,
            "ms": 1000 * seconds, "note": "",
        })
        rows.append(row)
    return pd.DataFrame(rows).set_index("reward")


def group_view(group: Group, specs: Sequence[str]) -> pd.DataFrame:
    """Per-completion scores of one group (what GRPO sees for one prompt)."""
    table = pd.DataFrame({"completion": group.completions})
    for spec in specs:
        result = parse_reward(spec)([*group.completions], [group.references] * len(group.completions))
        table[spec] = result.scores
    return table


def score_groups(groups: Sequence[Group] | None = None, specs: Sequence[str] = DEFAULT_REWARDS) -> pd.DataFrame:
    groups = list(groups) if groups is not None else example_groups()
    batch = flatten(groups)
    print(f"Scoring {len(batch.completions)} completions in {len(groups)} groups "
          f"({int(batch.off_policy.sum())} off-policy) with {len(specs)} rewards "
          "(ms: the whole batch, after a warm-up call that loads models and compiled kernels).\n")
    table = score_table(batch, specs)
    with pd.option_context("display.max_columns", 20, "display.width", 200, "display.max_colwidth", 60,
                           "display.float_format", "{:.3f}".format):
        print(table.to_string(na_rep="-"))
        shown = groups[3] if len(groups) > 3 else groups[0]
        print(f"\nGroup {shown.id!r}, reference: {shown.references[0]!r}")
        print(group_view(shown, ("bleu", "chrf", "wer", "rougeL")).to_string())
    return table

"""Speed of ``speechgrpo.advantages.group_advantages`` against a naive per-group Python loop, in the same run.

Why: a GRPO step needs one advantage per completion; a trainer-side loop over groups is the obvious way to
write it and costs Python time per group. This times the vectorised segment-sum path on the three inputs
a trainer hands it, with preset ``"trl"`` ((r - mean_g) / (unbiased std_g + 1e-4), 0 for zero-std groups):

- numpy: ``group_advantages(rewards, group_size, preset="trl")`` on a float64 array;
- torch: the same on a float64 tensor on ``--device`` (skipped with a message if torch is missing);
- ragged: the rewards shuffled, with one group id per sample (the ``np.unique`` path), numpy;
- naive (the anchor): for each group slice, numpy mean and ``std(ddof=1)``, ``(r - mean) / (std + 1e-4)``,
  zeros where ``std < 1e-8``.

Rewards are uniform in [0, 1) with every tenth group made constant (zero-std groups). Each method gets an
untimed warm-up call, then the best of ``--repeat`` runs is kept; every method must agree with the naive
loop to ``max |diff| < 1e-9`` (exit status 1 otherwise).

    .venv/bin/python benchmarks/advantages.py                     # 1,000,000 rewards, groups of 8
    .venv/bin/python benchmarks/advantages.py --n 100000 --markdown advantages.md
    .venv/bin/python benchmarks/advantages.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from common import format_table, machine_info, report

from speechgrpo.advantages import group_advantages

PRESET = "trl"
EPSILON = 1e-4  # the "trl" preset's epsilon
ZERO_STD_TOL = 1e-8  # AdvantageConfig.zero_std_tol default
TOLERANCE = 1e-9


@dataclass
class Row:
    name: str
    seconds: float
    max_diff: float

    @property
    def ok(self) -> bool:
        return self.max_diff < TOLERANCE


def naive_advantages(rewards: np.ndarray, group_size: int) -> np.ndarray:
    """One Python iteration per group, as a trainer-side loop would do it."""
    out = np.zeros_like(rewards)
    for start in range(0, len(rewards), group_size):
        group = rewards[start:start + group_size]
        std = float(group.std(ddof=1))
        if std >= ZERO_STD_TOL:
            out[start:start + group_size] = (group - group.mean()) / (std + EPSILON)
    return out


def make_rewards(n: int, group_size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rewards = rng.random(n).reshape(-1, group_size)
    rewards[::10] = rewards[::10, :1]  # every tenth group: all members equal
    return rewards.reshape(-1)


def best_time(fn: Callable[[], Any], repeat: int, sync: Callable[[], None]) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls after one untimed warm-up call, and the last result."""
    result = fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, result


def table(rows: list[Row], anchor: float, n: int, markdown: bool) -> str:
    headers = ["method", "best s", "rewards/s", "vs naive", "max |diff|", "agrees"]
    body = [[r.name, f"{r.seconds:.4f}", f"{n / r.seconds:,.0f}", f"{anchor / r.seconds:,.1f}x",
             f"{r.max_diff:.1e}", "yes" if r.ok else "NO"] for r in rows]
    return format_table(headers, body, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="rewards (default 1,000,000)")
    parser.add_argument("--group-size", type=int, default=8, help="samples per group (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device for the torch row (default cpu)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the results as Markdown to PATH")
    args = parser.parse_args(argv)
    if args.n % args.group_size:
        raise SystemExit(f"--n {args.n} is not a multiple of --group-size {args.group_size}")
    torch: Any
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device available")

    machine = machine_info()
    rewards = make_rewards(args.n, args.group_size, args.seed)
    order = np.random.default_rng(args.seed + 1).permutation(args.n)
    shuffled, ids = rewards[order], (np.arange(args.n) // args.group_size)[order]

    def no_sync() -> None:
        pass

    print(f"naive loop over {args.n // args.group_size:,} groups ...", file=sys.stderr, flush=True)
    anchor, expected = best_time(lambda: naive_advantages(rewards, args.group_size), args.repeat, no_sync)
    rows = [Row("naive loop (anchor)", anchor, 0.0)]

    def add(name: str, fn: Callable[[], Any], sync: Callable[[], None], expect: np.ndarray) -> None:
        seconds, result = best_time(fn, args.repeat, sync)
        values = np.asarray(result.advantages.cpu()) if hasattr(result.advantages, "cpu") else result.advantages
        rows.append(Row(name, seconds, float(np.abs(values - expect).max(initial=0.0))))

    add("group_advantages numpy", lambda: group_advantages(rewards, args.group_size, preset=PRESET), no_sync,
        expected)
    notes = []
    if torch is None:
        notes.append("torch row skipped: torch is not installed")
        print(notes[-1], file=sys.stderr)
    else:
        device = torch.device(args.device)
        tensor = torch.from_numpy(rewards).to(device)
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else no_sync
        machine["torch device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        add(f"group_advantages torch ({device})",
            lambda: group_advantages(tensor, args.group_size, preset=PRESET), sync, expected)
    add("group_advantages ragged ids (numpy, shuffled)", lambda: group_advantages(shuffled, ids, preset=PRESET),
        no_sync, expected[order])

    notes += [
        f"{args.n:,} float64 rewards, groups of {args.group_size}, uniform [0, 1) with every tenth group constant "
        f"(seed {args.seed}); preset {PRESET!r}: (r - mean_g) / (unbiased std_g + {EPSILON:g}), 0 if std < "
        f"{ZERO_STD_TOL:g}",
        f"best of {args.repeat} runs after one untimed warm-up call; vs naive = naive time / method time",
        "ragged: rewards permuted, one group id per sample; compared with the naive result permuted the same way",
        f"agrees: max |diff| against the naive loop < {TOLERANCE:g}",
    ]
    command = "benchmarks/advantages.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report("speechgrpo group advantages speed", command, machine,
           lambda md: table(rows, anchor, args.n, markdown=md), notes, [], None, args.markdown)
    failed = [r.name for r in rows if not r.ok]
    print(f"agreement with the naive loop (max |diff| < {TOLERANCE:g}): "
          + (f"FAILED for {', '.join(failed)}" if failed else "all methods agree"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One pair per call: what each entry point costs a trainer that scores one sample at a time.

verl's default reward manager calls ``compute_score`` once per response, OpenRLHF (v0.9.1+) calls a reward
file's ``reward_func`` with one sample, and an ms-swift ORM may get a batch of one. Each entry point is timed
over the same pairs, one call per pair, against the reference implementation called the same way (sacrebleu's
``sentence_score`` on a reused object, ``jiwer.wer``, rouge-score's ``score``):

- ``get_reward``: ``get_reward(name)([h], [r])``;
- ``verl``: ``speechgrpo.grpo_adapters.verl.compute_score(source, h, r, reward=name)``;
- ``openrlhf``: ``reward_func([prompt + h], [prompt], [r])`` of a file written by ``write_reward_file``;
- ``swift``: an instance of ``swift_orm(name)`` called as ``orm([h], solution=[r])``.

Pairs are the real-text corpus of ``speechgrpo bench speed`` (German manual pages, groups sharing a
reference, as GRPO's completions do). Caches (sacrebleu's tokenizer caches, speechgrpo's reference caches)
are cleared before every timed run; sides are interleaved within each repeat and the median kept.

Run from the repository root::

    .venv/bin/python benchmarks/per_call.py
    .venv/bin/python benchmarks/per_call.py --rewards bleu,wer --groups 64 --repeats 7 --markdown per_call.md
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import clear_caches, format_machine, format_table, machine_info

from speechgrpo.bench.corpus import corpus_pairs
from speechgrpo.bench.reference_implementations import reward_spec
from speechgrpo.grpo_adapters.openrlhf import write_reward_file
from speechgrpo.grpo_adapters.swift import swift_orm
from speechgrpo.grpo_adapters.verl import compute_score
from speechgrpo.rewards import get_reward

PROMPT = ("<|start_of_role|>user<|end_of_role|>Translate the speech.<|end_of_text|>"
          "<|start_of_role|>assistant<|end_of_role|>")
SIDES = ("reference", "get_reward", "verl", "openrlhf", "swift")


def openrlhf_function(spec: str, folder: Path) -> Callable[..., object]:
    """``reward_func`` of the reward file OpenRLHF would load for ``spec``."""
    path = write_reward_file(folder / f"reward_{spec}.py", spec)
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    function: Callable[..., object] = module.reward_func
    return function


def calls(name: str, hyps: list[str], refs: list[str], folder: Path) -> dict[str, Callable[[], object]]:
    """Each side as a function scoring every pair with one call per pair."""
    reference = reward_spec(name).reference()
    reward = get_reward(name)
    reward_func = openrlhf_function(name, folder)
    orm = swift_orm(name)()
    pairs = list(zip(hyps, refs, strict=True))
    return {
        "reference": lambda: [reference(h, r) for h, r in pairs],
        "get_reward": lambda: [reward([h], [r]) for h, r in pairs],
        "verl": lambda: [compute_score("speechgrpo", h, r, reward=name) for h, r in pairs],
        "openrlhf": lambda: [reward_func([PROMPT + h], [PROMPT], [r]) for h, r in pairs],
        "swift": lambda: [orm([h], solution=[r]) for h, r in pairs],
    }


def time_sides(sides: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each side over ``repeats`` rounds, sides interleaved within a round, caches cold."""
    for side in sides.values():  # untimed: imports, first compilation, lazy tables
        side()
    times: dict[str, list[float]] = {key: [] for key in sides}
    for _ in range(repeats):
        for key, side in sides.items():
            clear_caches()
            gc.collect()
            start = time.perf_counter()
            side()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rewards", default="bleu,chrf,wer,cer,rougeL")
    parser.add_argument("--groups", type=int, default=128, help="references (each shared by --group-size pairs)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", help="also write the results as Markdown to this file")
    args = parser.parse_args(argv)
    hyps, refs, description = corpus_pairs("auto", args.groups, args.group_size, args.seed, "news")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in [n.strip() for n in args.rewards.split(",") if n.strip()]:
            medians = time_sides(calls(name, hyps, refs, Path(folder)), args.repeats)
            per_call = {key: value / len(hyps) * 1e6 for key, value in medians.items()}
            rows.append([name, f"{per_call['reference']:.1f}",
                         *[f"{per_call[key]:.1f} ({per_call[key] / per_call['reference']:.2f}x)" for key in SIDES[1:]]])
            print(" | ".join(rows[-1]), file=sys.stderr)
    headers = ["reward", "reference (us/call)", *[f"{key} (us/call, x reference)" for key in SIDES[1:]]]
    settings = (f"{description}; one pair per call, {len(hyps):,} calls per side, median of {args.repeats} "
                "interleaved rounds, caches cleared before each. References: "
                + "; ".join(f"{name}: `{reward_spec(name).reference_text}`"
                            for name in [n.strip() for n in args.rewards.split(",") if n.strip()]))
    command = "benchmarks/per_call.py " + " ".join(argv if argv is not None else sys.argv[1:])
    info = machine_info()
    print(format_machine(info, markdown=False), f"command: {command}", settings,
          format_table(headers, rows, markdown=False), sep="\n\n")
    if args.markdown:
        Path(args.markdown).write_text("\n\n".join([f"Command: `.venv/bin/python {command.strip()}`",
                                                    format_machine(info, markdown=True), settings,
                                                    format_table(headers, rows, markdown=True)]) + "\n",
                                       encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

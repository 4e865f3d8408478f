"""The ``speechgrpo bench`` command and its subcommands.

Every subcommand is one ``_add_<name>(commands)`` function that builds its parser (with
:func:`add_output_options`) and sets ``run`` to a function returning a :class:`BenchReport`; adding
one means writing that function and listing it in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from speechgrpo.bench.report import BenchReport

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--out``, ``--json`` and ``--no-progress``, shared by every bench subcommand."""
    parser.add_argument("--out", metavar="DIR", help="write the tables (CSV, Markdown, JSON) and PNG plots here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (ours, and transformers' model-loading bar)")


def quiet_library_progress_bars() -> None:
    """Turn off the bars that transformers (model loading) and datasets draw, where installed."""
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    with contextlib.suppress(ImportError):
        from datasets.utils import logging as datasets_logging

        datasets_logging.disable_progress_bar()


def _runner(build: Callable[[argparse.Namespace], BenchReport]) -> Callable[[argparse.Namespace], int]:
    """Wrap ``build(args) -> BenchReport`` into a command that prints and writes the report."""

    def run(args: argparse.Namespace) -> int:
        from speechgrpo.bench.report import emit

        if args.no_progress:
            quiet_library_progress_bars()
        emit(build(args), args.out, args.json)
        return 0

    return run


# --- speed ------------------------------------------------------------------------------------------------

def _speed(args: argparse.Namespace) -> BenchReport:
    from speechgrpo.bench.corpus import corpus_pairs, file_pairs
    from speechgrpo.bench.signal import split_specs
    from speechgrpo.bench.speed import parse_batch_sizes, parse_max_pairs, run_speed
    from speechgrpo.data.groups_file import read_groups

    rewards = split_specs(args.rewards)
    max_pairs = parse_max_pairs(args.max_pairs)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    if args.torch_threads < 0:
        raise ValueError("--torch-threads must be 0 (torch's default) or more")
    if args.torch_threads and "bertscore" in rewards:
        with contextlib.suppress(ImportError):  # without torch, run_speed leaves BERTScore out with a note
            import torch

            torch.set_num_threads(args.torch_threads)
    if args.data:
        hyps, refs, note = file_pairs(read_groups(args.data), args.data)
    else:
        hyps, refs, note = corpus_pairs(args.corpus, args.groups, args.group_size, args.seed, args.style)
    return run_speed(hyps, refs, rewards, args.repeats, max_pairs, note, show_progress=not args.no_progress,
                     batch_sizes=batch_sizes)


def _add_speed(commands: Commands) -> None:
    from speechgrpo.bench.corpus import CORPORA, STYLES
    from speechgrpo.bench.reference_implementations import REWARD_SPECS
    from speechgrpo.bench.speed import DEFAULT_MAX_PAIRS, DEFAULT_REWARDS

    caps = ",".join(f"{k}={v}" for k, v in DEFAULT_MAX_PAIRS.items())
    parser = commands.add_parser(
        "speed", help="pairs/s of each reward and of its reference implementation, with an exactness check",
        description="Time each reward (one batched call) and its reference implementation (one call per pair) "
                    "on the same pairs, report pairs/s, the speedup and how many scores differ.")
    parser.add_argument("--rewards", default=",".join(DEFAULT_REWARDS),
                        help=f"comma-separated, from {', '.join(REWARD_SPECS)} (default {','.join(DEFAULT_REWARDS)})")
    parser.add_argument("--data", help="groups JSONL file (default: the --corpus pairs)")
    parser.add_argument("--corpus", default="auto", choices=CORPORA,
                        help="manpages: real German text from the machine's manual pages (Debian "
                             "manpages-de + groff) with MT-like hypotheses; generated: made-up text (its small "
                             "vocabulary overstates the speedups); auto (default): manpages where available")
    parser.add_argument("--groups", type=int, default=256, help="references (default 256)")
    parser.add_argument("--group-size", type=int, default=8, help="hypotheses per reference (default 8)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the pairs (default 1234)")
    parser.add_argument("--style", default="news", choices=STYLES,
                        help="lengths: news (one sentence: manpages 15-30 words, generated 8-30), long (3-5 "
                             "sentences) or short (1-6-word answers)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side; the median is kept (default 3)")
    parser.add_argument("--max-pairs", default=caps,
                        help=f"NAME=PAIRS,...: time at most PAIRS pairs for these rewards (default {caps!r}; "
                             "'' for no cap)")
    parser.add_argument("--batch-sizes", default="", metavar="N,N,...",
                        help="also time ours called N pairs at a time, e.g. 1,8,64 (1: verl's per-sample "
                             "manager); the whole batch is always timed")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch.set_num_threads for BERTScore, both sides (default 1; 0: torch's default)")
    add_output_options(parser)
    parser.set_defaults(run=_runner(_speed))


# --- signal -----------------------------------------------------------------------------------------------

def _signal(args: argparse.Namespace) -> BenchReport:
    from speechgrpo.bench.signal import DEFAULT_REWARDS, run_signal, split_specs
    from speechgrpo.data.groups_file import example_groups, read_groups

    groups = read_groups(args.data) if args.data else example_groups()
    specs = split_specs(args.rewards) if args.rewards else list(DEFAULT_REWARDS)
    return run_signal(groups, specs, target=args.target, include_off_policy=args.include_off_policy,
                      source=args.data or "bundled example groups",
                      show_progress=not args.no_progress)


def _add_signal(commands: Commands) -> None:
    from speechgrpo.bench.signal import DEFAULT_REWARDS

    parser = commands.add_parser(
        "signal", help="learning signal of each reward on a batch of groups, and within-group rank agreement",
        description="Per reward: zero-variance groups, within-group spread, correlation with completion length; "
                    "within-group Kendall tau-b between every pair of rewards and against a target. Input: a "
                    "groups JSONL file, one prompt per line: {\"id\": ..., \"prompt\": ..., \"references\": "
                    "[...], \"completions\": [...], \"off_policy\": [false, ...]} (id, prompt and off_policy "
                    "optional). Each reward scores the batch twice: an untimed call (model loading, compiled "
                    "kernels), then the call timed for the ms column, with the text caches cleared in between.")
    parser.add_argument("--data", help="groups JSONL file (default: the bundled example groups)")
    parser.add_argument("--rewards", help="reward specs separated by ',' or ';', e.g. \"bleu, 0.5*chrf + 0.5*wer\" "
                                          f"(default: {','.join(DEFAULT_REWARDS)}); those whose extras are missing "
                                          "are left out, with a note")
    parser.add_argument("--target", help="reward spec to rank-compare every reward with (added if not in --rewards)")
    parser.add_argument("--include-off-policy", action="store_true",
                        help="keep the off-policy completions (MP-GRPO's injected references) in the statistics")
    add_output_options(parser)
    parser.set_defaults(run=_runner(_signal))


# --- train ------------------------------------------------------------------------------------------------

def _train(args: argparse.Namespace) -> BenchReport:
    import dataclasses

    from speechgrpo.bench.ablation import run_ablation
    from speechgrpo.bench.signal import split_specs
    from speechgrpo.train.pipeline import load_pipeline_config

    config = dataclasses.replace(load_pipeline_config(args.config), output_dir=args.demo_dir)
    return run_ablation(config, split_specs(args.rewards), args.task, steps=args.steps,
                        show_progress=not args.no_progress)


def _add_train(commands: Commands) -> None:
    from speechgrpo.bench.ablation import ABLATION_STEPS, DEFAULT_REWARDS

    parser = commands.add_parser(
        "train", help="the paper's reward ablation: GRPO with each reward from one base, evaluated on all metrics",
        description="From the demo's base model (built first if --demo-dir has none), train GRPO once per reward on "
                    "one task of the bundled data and evaluate every run on BLEU, BERTScore, ROUGE-1/2/L and "
                    "METEOR with their average, as in the paper's Table 3.")
    parser.add_argument("--task", default="sqa", help="task to train and evaluate on (default sqa)")
    parser.add_argument("--rewards", default=",".join(DEFAULT_REWARDS),
                        help=f"reward specs separated by ',' or ';' (default {','.join(DEFAULT_REWARDS)})")
    parser.add_argument("--config", help="demo YAML config (PipelineConfig fields; default: the demo's defaults)")
    parser.add_argument("--demo-dir", default="demo_output",
                        help="the demo's output folder: its data and base model are reused (default demo_output)")
    parser.add_argument("--steps", type=int, default=ABLATION_STEPS,
                        help=f"GRPO steps per reward and seed (default {ABLATION_STEPS})")
    add_output_options(parser)
    parser.set_defaults(run=_runner(_train), extra="train")


#: Each function registers one ``bench`` subcommand.
SUBCOMMANDS: list[Callable[[Commands], None]] = [_add_speed, _add_signal, _add_train]


def add_cli(subparsers: Commands) -> None:
    """Register ``bench`` and its subcommands."""
    bench = subparsers.add_parser("bench", help="compare rewards: speed against the references, GRPO signal, "
                                  "and a training ablation",
                                  description="Compare rewards: 'speed' (against the reference implementations), "
                                  "'signal' (what each reward gives GRPO on groups of completions) and 'train' (the "
                                  "paper's reward ablation). Each subcommand's --help describes its input and output; "
                                  "measured results are in docs/bench.md of the source repository.")
    commands = bench.add_subparsers(dest="bench_command", required=True, metavar="SUBCOMMAND")
    for register in SUBCOMMANDS:
        register(commands)

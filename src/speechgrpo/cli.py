"""The ``speechgrpo`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from speechgrpo._extras import install_hint, missing_extra
from speechgrpo.bench.cli import add_cli as add_bench_cli
from speechgrpo.data import add_cli as add_data_cli
from speechgrpo.grpo_adapters import openrlhf, reward_server, swift
from speechgrpo.train.cli import add_cli as add_train_cli


def _setup_wordnet(args: argparse.Namespace) -> int:
    from speechgrpo.metrics.wordnet import DEBIAN_WORDNET, default_data_dir, install_wordnet

    target = install_wordnet(Path(args.target) if args.target else None, Path(args.source or DEBIAN_WORDNET))
    if args.target and target != default_data_dir():
        print(f"WordNet for NLTK written to {target}; set SPEECHGRPO_NLTK_DATA={target} (or NLTK_DATA) "
              "so that METEOR finds it")
    else:
        print(f"WordNet for NLTK written to {target} (speechgrpo's METEOR finds it there)")
    return 0


def _rewards(args: argparse.Namespace) -> int:
    from speechgrpo.rewards import available_rewards

    for name, info in sorted(available_rewards().items()):
        print(f"{name:12s} {info.description}")
    return 0


def _module_path(args: argparse.Namespace) -> int:
    if args.framework == "verl":
        if args.name:
            raise ValueError("module-path verl takes no name")
        from speechgrpo.grpo_adapters.verl import module_path

        print(module_path())
        return 0
    from speechgrpo.grpo_adapters.hf_evaluate import available_modules
    from speechgrpo.grpo_adapters.hf_evaluate import module_path as evaluate_module_path

    if not args.name:
        raise ValueError(f"module-path evaluate needs a metric name: {', '.join(available_modules())}")
    print(evaluate_module_path(args.name))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="speechgrpo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    wordnet = commands.add_parser("setup-wordnet", help="convert Debian's WordNet for NLTK's METEOR")
    wordnet.add_argument("--target", help="nltk_data folder to write (default: ~/.cache/speechgrpo/nltk_data)")
    wordnet.add_argument("--source", help="WordNet database folder (default: /usr/share/wordnet)")
    wordnet.set_defaults(run=_setup_wordnet)
    rewards = commands.add_parser("rewards", help="list the registered rewards")
    rewards.set_defaults(run=_rewards)
    paths = commands.add_parser("module-path", help="print the path of an adapter module: verl's "
                                "custom_reward_function.path, or an evaluate.load() module")
    paths.add_argument("framework", choices=["verl", "evaluate"])
    paths.add_argument("name", nargs="?", help="metric name for evaluate (bleu, chrf, ...)")
    paths.set_defaults(run=_module_path)
    openrlhf.add_cli(commands)
    reward_server.add_cli(commands)
    swift.add_cli(commands)
    add_data_cli(commands)
    add_train_cli(commands)
    add_bench_cli(commands)
    args = parser.parse_args(argv)
    command = " ".join(filter(None, (args.command, getattr(args, "bench_command", None),
                                     getattr(args, "data_command", None))))
    try:
        code: int = args.run(args)
    except ModuleNotFoundError as err:
        extra = missing_extra(err)
        if extra is None:  # not an optional package: a real error, with its traceback
            raise
        extra = getattr(args, "extra", None) or extra
        print(f"speechgrpo {command}: needs the {extra!r} extra: {install_hint(extra)} (missing module "
              f"{err.name!r})", file=sys.stderr)
        return 2
    except (OSError, ValueError, LookupError, ImportError) as err:
        print(f"speechgrpo {command}: {err}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

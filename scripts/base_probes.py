"""Write the probe sets that docs/demo.md uses to judge a base recipe's reading stage before a build is
spent on it. Score a reading stage's language model on them with `speechgrpo eval` (the passage is given
as text, so no hearing stage is needed):

- ``sqa_dev_text.jsonl``: the demo's 100 spoken-QA dev examples as text (the passage before the prompt);
- ``sqa_heldout_text.jsonl``: ``--heldout`` spoken-QA examples of the base's own train split (its
  examples ``--start`` onwards, as text). A base reads only the passages of that split's first examples
  (6,000 in attempts 12-15; check ``passages`` in the recipe) and never its questions or answers, so
  these are unseen; ten times the dev set, for a less noisy comparison;
- ``qa_other_heldout_text.jsonl``: ``--heldout`` other-domain QA examples drawn with another seed, none
  with a prompt of the given reading manifests (``--exclude``).

    python scripts/base_probes.py --out build/probes --exclude build/demo_base12/data/text.jsonl
    speechgrpo eval --model build/demo_base12/text/final --manifest build/probes/sqa_heldout_text.jsonl \\
        --metrics bleu --seeds 1 --output build/probes/attempt12.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechgrpo.data import read_manifest, synthetic_examples, write_manifest
from speechgrpo.train.base_model import BaseConfig, read_versions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the three manifests")
    parser.add_argument("--start", type=int, default=20_000, help="first held-out spoken-QA train example")
    parser.add_argument("--heldout", type=int, default=1_000, help="examples per held-out set")
    parser.add_argument("--other-seed", type=int, default=12_345, help="seed of the other-domain QA draw")
    parser.add_argument("--exclude", type=Path, nargs="*", default=[],
                        help="reading manifests whose prompts the other-domain set must not hold")
    args = parser.parse_args(argv)
    config = BaseConfig()  # seed, tasks, difficulty, voices and held-out sizes: the demo's
    splits = synthetic_examples(config.seed, {"train": args.start + args.heldout, **config.held_out},
                                tasks=("sqa",), difficulty=config.difficulty, voices=config.voices)
    train = [e for e in splits["train"] if e.task == "sqa"]
    if len(train) < args.start + args.heldout:
        raise SystemExit(f"the train split holds {len(train)} spoken-QA examples, fewer than "
                         f"--start + --heldout = {args.start + args.heldout}")
    seen = {e.prompt for path in args.exclude for e in read_manifest(path)}
    drawn = synthetic_examples(args.other_seed, {"train": 2 * args.heldout}, tasks=("qa_other",),
                               difficulty=config.difficulty, voices=config.voices)["train"]
    other = [e for e in read_versions(drawn) if e.prompt not in seen][:args.heldout]
    if len(other) < args.heldout:
        raise SystemExit(f"only {len(other)} other-domain QA examples are not in --exclude")
    args.out.mkdir(parents=True, exist_ok=True)
    sets = {"sqa_dev_text": read_versions([e for e in splits["dev"] if e.task == "sqa"]),
            "sqa_heldout_text": read_versions(train[args.start:args.start + args.heldout]),
            "qa_other_heldout_text": other}
    for name, examples in sets.items():
        print(f"{write_manifest(args.out / f'{name}.jsonl', examples)}: {len(examples)} examples")


if __name__ == "__main__":
    main()

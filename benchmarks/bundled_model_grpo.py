"""GRPO on the bundled speech LLM: samples/s, generated tokens/s and the reward's share of the step time.

Runs ``--steps`` GRPO steps (the first is a warm-up and is not counted) of the reference trainer from the
bundled base model on the demo's spoken tasks, once per reward, and reports per reward: completions/s,
generated tokens/s, the share of the step spent in generation, and the share spent computing the reward
(target: < 5%). Run ``speechgrpo demo`` first for the data (or point ``--demo-dir`` at its output).

    .venv/bin/python benchmarks/bundled_model_grpo.py
    .venv/bin/python benchmarks/bundled_model_grpo.py --rewards "bleu;bertscore" --steps 8 --markdown grpo.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from statistics import median

from common import format_table, machine_info

HEADERS = ["reward", "step s", "completions/s", "tokens/s", "generation share", "reward share"]


def run(reward: str, args: argparse.Namespace, work: Path) -> list[str]:
    from speechgrpo.models.loading import bundled_base
    from speechgrpo.train import TrainConfig
    from speechgrpo.train.trainer import train

    data = Path(args.demo_dir) / "stage_data"
    config = TrainConfig(model=str(bundled_base()), train_manifests=[str(data / "sqa_train.jsonl"),
                                                                     str(data / "ast_train.jsonl")],
                         output_dir=str(work / reward),
                         stage="grpo", steps=args.steps, prompts_per_step=args.prompts,
                         num_generations=args.generations, max_new_tokens=args.max_new_tokens,
                         micro_batch_size=args.prompts * args.generations, reward=reward, learning_rate=2e-4,
                         checkpoint_every=10**6)
    train(config, show_progress=False)
    rows = [json.loads(line) for line in (work / reward / "metrics.jsonl").read_text().splitlines()][1:]
    step = median(r["step_time_s"] for r in rows)
    completions = args.prompts * args.generations
    return [reward, f"{step:.2f}", f"{completions / step:.1f}",
            f"{completions * median(r['completion_length'] for r in rows) / step:.0f}",
            f"{median(r['generation_s'] / r['step_time_s'] for r in rows):.1%}",
            f"{median(r['reward_share'] for r in rows):.2%}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-dir", default="demo_output", help="output folder of `speechgrpo demo` (its data)")
    parser.add_argument("--rewards", default="bleu;0.7*bleu + 0.3*bertscore;meteor",
                        help="reward specs separated by ';'")
    parser.add_argument("--steps", type=int, default=6, help="GRPO steps per reward (the first is not counted)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--markdown", help="also write the table here")
    args = parser.parse_args()
    if not (Path(args.demo_dir) / "stage_data" / "sqa_train.jsonl").is_file():
        print(f"{args.demo_dir}: no demo data; run `speechgrpo demo` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(spec.strip(), args, Path(tmp)) for spec in args.rewards.split(";") if spec.strip()]
    setting = (f"{args.prompts} prompts x {args.generations} completions per step, at most {args.max_new_tokens} "
               f"new tokens; medians over {args.steps - 1} steps")
    print("\n".join(f"{key + ':':15s}{value}" for key, value in machine_info().items()))
    print(setting)
    print(format_table(HEADERS, rows, markdown=False))
    if args.markdown:
        Path(args.markdown).write_text(f"{setting}\n\n{format_table(HEADERS, rows, markdown=True)}\n",
                                       encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

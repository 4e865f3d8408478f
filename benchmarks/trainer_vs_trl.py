"""GRPO step throughput of speechgrpo's reference trainer against ``trl.GRPOTrainer``, in the same run.

Same tiny text causal LM (built from a config), same prompts and references, same GRPO settings: G
completions per prompt at temperature 1, the same number of new tokens, no KL (TRL's default beta=0),
token-level loss, one optimizer step per generation batch, chrF reward. Each trainer runs ``--steps``
steps; the first is a warm-up and is not timed. Reported: completions/s and generated tokens/s of each,
and the ratio ours / TRL (> 1: ours is faster).

    .venv/bin/python benchmarks/trainer_vs_trl.py
    .venv/bin/python benchmarks/trainer_vs_trl.py --prompts 8 --generations 8 --max-new-tokens 32 --steps 6
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import format_table, machine_info
from tiny_lm import WORDS, build_tiny_lm

from speechgrpo.data import Example, write_manifest


def prompts(n: int) -> list[tuple[str, str]]:
    return [(" ".join(WORDS[(3 * i + j) % len(WORDS)] for j in range(4)),
             " ".join(WORDS[(5 * i + j) % len(WORDS)] for j in range(3))) for i in range(n)]


def run_ours(model: Path, pairs: list[tuple[str, str]], args: argparse.Namespace, work: Path) -> tuple[float, float]:
    from speechgrpo.train import TrainConfig
    from speechgrpo.train.trainer import train

    manifest = write_manifest(work / "train.jsonl", [Example(f"p{i}", None, p, (r,), "text")
                                                      for i, (p, r) in enumerate(pairs)])
    config = TrainConfig(model=str(model), train_manifests=[str(manifest)], output_dir=str(work / "ours"),
                         stage="grpo", steps=args.steps, prompts_per_step=args.prompts,
                         num_generations=args.generations, max_new_tokens=args.max_new_tokens,
                         micro_batch_size=args.prompts * args.generations, beta=0.0, reward="chrf",
                         loss_preset="trl", advantage_preset="trl", learning_rate=1e-4,
                         checkpoint_every=10**6)
    train(config, show_progress=False)
    rows = [json.loads(line) for line in (work / "ours" / "metrics.jsonl").read_text().splitlines()][1:]
    completions = args.prompts * args.generations
    return (completions / mean(r["step_time_s"] for r in rows),
            completions * mean(r["completion_length"] for r in rows) / mean(r["step_time_s"] for r in rows))


def run_trl(model: Path, pairs: list[tuple[str, str]], args: argparse.Namespace, work: Path) -> tuple[float, float]:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from speechgrpo.grpo_adapters.trl import trl_reward

    dataset = Dataset.from_dict({"prompt": [p for p, _ in pairs], "reference": [r for _, r in pairs]})
    config = GRPOConfig(output_dir=str(work / "trl"), use_cpu=True, bf16=False, gradient_checkpointing=False,
                        max_steps=args.steps, per_device_train_batch_size=args.prompts * args.generations,
                        num_generations=args.generations, max_completion_length=args.max_new_tokens,
                        temperature=1.0, top_p=1.0, top_k=0, learning_rate=1e-4, beta=0.0, loss_type="dapo",
                        logging_steps=1, report_to="none", save_strategy="no", seed=0)
    trainer = GRPOTrainer(model=str(model), reward_funcs=[trl_reward("chrf")], args=config, train_dataset=dataset)
    trainer.train()
    rows = [h for h in trainer.state.log_history if "step_time" in h][1:]
    completions = args.prompts * args.generations
    step = mean(r["step_time"] for r in rows)
    return completions / step, completions * mean(r["completions/mean_length"] for r in rows) / step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step (default 4)")
    parser.add_argument("--generations", type=int, default=8, help="G (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6, help="steps per trainer, the first untimed (default 6)")
    args = parser.parse_args()
    print("\n".join(f"{key + ':':15s}{value}" for key, value in machine_info().items()))
    pairs = prompts(64)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_tiny_lm(work / "model")
        ours = run_ours(model, pairs, args, work)
        trl = run_trl(model, pairs, args, work)
    rows = [["speechgrpo", f"{ours[0]:.1f}", f"{ours[1]:.0f}", f"{ours[0] / trl[0]:.2f}x"],
            ["trl.GRPOTrainer", f"{trl[0]:.1f}", f"{trl[1]:.0f}", "1.00x"]]
    print(format_table(["trainer", "completions/s", "tokens/s", "vs TRL"], rows, markdown=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

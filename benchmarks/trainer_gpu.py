"""The reference trainer at the published sizes on a GPU: step time, generation throughput, peak memory.

Random-weight Granite Speech 3.3 2B and Qwen2-Audio-7B-Instruct built from their published configs
(``tests/published_models.py``: dimensions, chat templates, special tokens; a 500-token vocabulary with the
published embedding size, so the text is meaningless but the compute per token is real) are trained for a
few GRPO steps through ``speechgrpo.train`` with the settings a user would pick on one GPU: LoRA r 64 on
the LM, bf16 autocast over float32 weights, gradient checkpointing, the reference = the model with its
adapter off. Prompts are white-noise clips of ``--audio-seconds``.

Reported per family (steps after the first, median): step time, generation tokens per second (completion
tokens / generation time), completions per second, and the peak GPU memory of the whole run.

Run from the repository root (one H200 took the published sizes)::

    .venv/bin/python benchmarks/trainer_gpu.py --markdown trainer_gpu.md
    .venv/bin/python benchmarks/trainer_gpu.py --size test --device cpu --steps 2   # a smoke run on a CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import published_models
from common import format_machine, format_table, machine_info

from speechgrpo.data import Example, write_manifest, write_wav
from speechgrpo.train import TrainConfig
from speechgrpo.train.trainer import train


def run(family: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    model = published_models.build(family, work / family, published_size=args.size == "published", device=args.device,
                                   dtype=torch.bfloat16 if args.device == "cuda" else torch.float32)
    rng = np.random.default_rng(0)
    examples = []
    for i in range(args.prompts * args.steps):
        write_wav(work / f"{i}.wav", rng.normal(0, 0.1, int(16_000 * args.audio_seconds)).astype(np.float32))
        examples.append(Example(id=f"a{i}", audio=f"{i}.wav", prompt="What does the speaker say?",
                                references=("the dog ran into the park",), task="sqa", root=work))
    manifest = write_manifest(work / "train.jsonl", examples)
    out = work / f"{family}-run"
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    train(TrainConfig(model=str(model), train_manifests=[str(manifest)], output_dir=str(out), stage="grpo",
                      steps=args.steps, prompts_per_step=args.prompts, num_generations=args.generations,
                      max_new_tokens=args.max_new_tokens, micro_batch_size=args.micro_batch,
                      lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank,
                      mixed_precision="bf16", gradient_checkpointing=True, reward="bleu",
                      learning_rate=5e-6, checkpoint_every=10_000), show_progress=False)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:] or []
    completions = args.prompts * args.generations
    result = {
        "step_s": median(r["step_time_s"] for r in rows),
        "generation_tokens_per_s": median(r["completion_length"] * completions / r["generation_s"] for r in rows),
        "completions_per_s": median(r["samples_per_s"] for r in rows),
        "completion_length": median(r["completion_length"] for r in rows),
        "wall_s": wall,
    }
    if args.device == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="granite_speech,qwen2_audio")
    parser.add_argument("--size", choices=["published", "test"], default="published")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps (the first is not timed)")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--generations", type=int, default=8, help="completions per prompt (G)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=8, help="completions per forward/backward")
    parser.add_argument("--audio-seconds", type=float, default=10.0)
    parser.add_argument("--lora-rank", type=int, default=64)
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the first step is not timed)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            results[family] = run(family, args, Path(tmp))
    headers = ["model", "step (s)", "generation tok/s", "completions/s", "mean length", "peak GiB", "wall (s)"]
    table = [[family, f"{r['step_s']:.2f}", f"{r['generation_tokens_per_s']:.0f}", f"{r['completions_per_s']:.2f}",
              f"{r['completion_length']:.1f}", f"{r['peak_gib']:.1f}" if "peak_gib" in r else "-", f"{r['wall_s']:.0f}"]
             for family, r in results.items()]
    settings = (f"size {args.size}, {args.prompts} prompts x G={args.generations}, {args.max_new_tokens} new tokens, "
                f"{args.audio_seconds:g} s audio, LoRA r {args.lora_rank}, bf16 autocast, gradient checkpointing, "
                f"micro-batch {args.micro_batch}")
    info = machine_info()
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    print(format_machine(info, markdown=False), settings, format_table(headers, table, markdown=False), sep="\n\n")
    if args.markdown:
        Path(args.markdown).write_text("\n\n".join([format_machine(info, markdown=True), settings,
                                                    format_table(headers, table, markdown=True)]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

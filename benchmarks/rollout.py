"""GRPO step cost per rollout engine (``rollout_engine: hf`` against ``vllm``): step time, generation throughput
and peak memory of the reference trainer on Qwen2-Audio and Granite Speech built from their published configs.

Each (model, engine) pair trains in a fresh process (``--steps`` GRPO steps, the first not counted), so peak
memory is its own: the process's peak RSS on a CPU, ``torch.cuda.max_memory_reserved`` on a GPU (vLLM's weights
and KV cache included: it allocates through torch in the training process). Prompts are white-noise clips of
``--audio-seconds``; Granite Speech is in its published layout (the audio adapter beside the weights).

Sizes: ``test`` (the tiny published-config models of the tests, any machine) or ``published`` (Granite Speech 3.3
2B and Qwen2-Audio-7B dimensions with random weights: a GPU). vLLM must be importable: on a CPU run it with the
environment ``make setup-vllm`` builds::

    .venv-vllm/bin/python benchmarks/rollout.py --markdown rollout.md                        # CPU, test size
    python benchmarks/rollout.py --size published --device cuda --markdown rollout_gpu.md    # a GPU with vllm
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))


def worker(family: str, engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """One training run in this process; its measurements."""
    import numpy as np
    import published_models
    import torch

    from speechgrpo.data import Example, write_manifest, write_wav
    from speechgrpo.train import TrainConfig
    from speechgrpo.train.trainer import train

    work = Path(args.work)
    gpu = args.device == "cuda"
    model = published_models.build(family, work / "model", published_size=args.size == "published",
                                   device=args.device, dtype=torch.bfloat16 if gpu else torch.float32,
                                   shipped_adapter=family == "granite_speech")
    rng = np.random.default_rng(0)
    examples = []
    for i in range(args.prompts * args.steps):
        write_wav(work / f"{i}.wav", rng.normal(0, 0.1, int(16_000 * args.audio_seconds)).astype(np.float32))
        examples.append(Example(id=f"a{i}", audio=f"{i}.wav", prompt="What does the speaker say?",
                                references=("the dog ran into the park",), task="sqa", root=work))
    manifest = write_manifest(work / "train.jsonl", examples)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    settings: dict[str, Any] = {"rollout_engine": engine}
    if engine == "vllm":
        settings["vllm_max_model_length"] = args.max_model_length
        if gpu:
            settings["vllm_gpu_memory_utilization"] = args.gpu_memory_utilization
    started = time.perf_counter()
    train(TrainConfig(model=str(model), train_manifests=[str(manifest)], output_dir=str(work / "run"), stage="grpo",
                      steps=args.steps, prompts_per_step=args.prompts, num_generations=args.generations,
                      max_new_tokens=args.max_new_tokens, micro_batch_size=args.micro_batch,
                      lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank if args.lora_rank else None,
                      mixed_precision="bf16" if gpu else "no", gradient_checkpointing=gpu, reward="bleu",
                      learning_rate=5e-6, checkpoint_every=10_000, **settings), show_progress=False)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()][1:]
    completions = args.prompts * args.generations
    result = {
        "step_s": median(r["step_time_s"] for r in rows),
        "generation_s": median(r["generation_s"] for r in rows),
        "generation_tokens_per_s": median(r["completion_length"] * completions / r["generation_s"] for r in rows),
        "completion_length": median(r["completion_length"] for r in rows),
        "logp_gap_max": max((r.get("sampling_logp_diff_max", 0.0) for r in rows), default=0.0),
        "wall_s": wall,
        "peak_gib": (torch.cuda.max_memory_reserved() if gpu else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                     * 1024) / 2**30,
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="granite_speech,qwen2_audio")
    parser.add_argument("--engines", default="hf,vllm")
    parser.add_argument("--size", choices=["test", "published"], default="test")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps (the first is not timed)")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--generations", type=int, default=8, help="completions per prompt (G)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--micro-batch", type=int, default=8, help="completions per forward/backward")
    parser.add_argument("--audio-seconds", type=float, default=4.0)
    parser.add_argument("--lora-rank", type=int, default=0, help="0: train every weight")
    parser.add_argument("--max-model-length", type=int, default=4096, help="vLLM's context")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3, help="vLLM's share of the GPU")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    parser.add_argument("--worker", nargs=2, metavar=("FAMILY", "ENGINE"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the first step is not timed)")
    if args.worker:
        print("RESULT " + json.dumps(worker(*args.worker, args)))
        return 0

    from common import table_report

    results: dict[tuple[str, str], dict[str, Any]] = {}
    for family in args.families.split(","):
        for engine in args.engines.split(","):
            with tempfile.TemporaryDirectory() as work:
                command = [sys.executable, __file__, *sys.argv[1:], "--worker", family, engine, "--work", work]
                done = subprocess.run(command, capture_output=True, text=True,
                                      env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get(
                                          "VLLM_CPU_KVCACHE_SPACE", "1")})
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                print(f"{family} / {engine} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
                return 1
            results[family, engine] = json.loads(lines[-1][len("RESULT "):])
    headers = ["model", "engine", "step (s)", "generation (s)", "gen tok/s", "mean length", "peak GiB",
               "max |logp gap|", "step vs hf", "gen tok/s vs hf"]
    table = []
    for (family, engine), r in results.items():
        base = results.get((family, "hf"))
        table.append([family, engine, f"{r['step_s']:.3f}", f"{r['generation_s']:.3f}",
                      f"{r['generation_tokens_per_s']:.0f}", f"{r['completion_length']:.1f}", f"{r['peak_gib']:.2f}",
                      f"{r['logp_gap_max']:.1e}" if engine != "hf" else "-",
                      f"{base['step_s'] / r['step_s']:.2f}x" if base else "-",
                      f"{r['generation_tokens_per_s'] / base['generation_tokens_per_s']:.2f}x" if base else "-"])
    settings = (f"size {args.size} on {args.device}, {args.prompts} prompts x G={args.generations}, up to "
                f"{args.max_new_tokens} new tokens, {args.audio_seconds:g} s audio, "
                f"{'LoRA r ' + str(args.lora_rank) if args.lora_rank else 'all weights'}, "
                f"micro-batch {args.micro_batch}, {args.steps - 1} timed steps (median); "
                "'vs hf': hf's step time over this engine's (above 1: faster)")
    table_report(settings, headers, table, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak memory of one GRPO micro-batch (forward + backward of the policy loss), before and after the
selective log-softmax and the shared-prompt scoring.

The model is Qwen2-Audio from its published config at test width with its real 156,032-token vocabulary, so the
logits are what they are at 7B: ``--completions`` x ``--tokens`` x 156,032 floats (1.0 GiB in float32 at 8 x 200).
Three variants, each in a fresh process (its peak RSS on a CPU, ``torch.cuda.max_memory_allocated`` on a GPU,
minus the same reading after loading the model and encoding the prompt):

- ``before``: the trainer before this change, written out here as the baseline: float32 logits divided by the
  temperature, ``log_softmax``-style log-probs through autograd (copies for the division, the clamp and
  ``logsumexp``), the entropy statistic with its gradient graph, every completion scored as a full
  [prompt + completion] row;
- ``selective``: speechgrpo's chunked selective log-probs and the entropy without gradient, full rows;
- ``after``: the same, with each prompt scored once and its completions sharing its keys and values.

    .venv/bin/python benchmarks/logprob_memory.py --markdown logprob_memory.md
    python benchmarks/logprob_memory.py --device cuda --completions 8 --tokens 200
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
VARIANTS = ("before", "selective", "after")
QWEN_VOCABULARY = 156_032


def _peak(device: str) -> float:
    import torch

    if device == "cuda":
        return float(torch.cuda.max_memory_allocated())
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _old_finite(logits: Any, temperature: float) -> Any:
    import torch

    logits = logits.float() / temperature
    if torch.isnan(logits).any():
        raise ValueError("logits contain NaN")
    finfo = torch.finfo(logits.dtype)
    return logits.clamp(min=finfo.min / 2, max=finfo.max / 2)


def _old_log_probs(logits: Any, ids: Any) -> Any:
    import torch

    logits = _old_finite(logits, 1.0)
    picked = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return (picked - torch.logsumexp(logits, dim=-1)).clamp(max=0.0)


def _old_entropy(logits: Any) -> Any:
    import torch

    logits = _old_finite(logits, 1.0)
    return torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(-1)


def worker(variant: str, args: argparse.Namespace) -> dict[str, float]:
    import numpy as np
    import published_models
    import torch

    from speechgrpo.losses import policy_loss
    from speechgrpo.models import Completions, SpeechPrompt
    from speechgrpo.models.loading import load_speech_lm
    from speechgrpo.train.trainer import score

    config = published_models.qwen2_audio_config

    def real_vocabulary(tokenizer: Any) -> dict[str, Any]:
        values = config(tokenizer)
        values["vocab_size"] = values["text_config"]["vocab_size"] = QWEN_VOCABULARY
        return values

    published_models.qwen2_audio_config = real_vocabulary
    directory = published_models.build("qwen2_audio", Path(args.work) / "model")
    model = load_speech_lm(directory, device=args.device)
    model.module.train()
    if variant != "after":  # full [prompt + completion] rows, as the trainer scored before
        model._checkpointed_training = lambda: True  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    prompts = [SpeechPrompt(rng.normal(0, 0.1, int(16_000 * args.audio_seconds)).astype(np.float32),
                            "What does the speaker say?")]
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 400, (args.completions, args.tokens), generator=generator).to(args.device)
    mask = torch.ones_like(ids, dtype=torch.bool)
    part = Completions(ids, mask, [""] * args.completions,
                       torch.zeros(args.completions, dtype=torch.long, device=args.device))
    advantages = torch.randn(args.completions, generator=generator).to(args.device)
    model.encode_prompts(prompts)  # processor and features warm
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline = _peak(args.device)
    if variant == "before":
        batch = model.encode_prompts(prompts)
        logits = model.completion_logits(batch, part).float() / args.temperature
        log_probs = torch.where(mask, _old_log_probs(logits, ids), 0.0)
        out = policy_loss(log_probs, None, advantages, mask, preset="dapo")
        _old_entropy(logits)  # the statistic's graph, built and dropped as before
    else:
        log_probs, logits = score(model, prompts, part, args.temperature)
        out = policy_loss(log_probs, None, advantages, mask, logits=logits, temperature=args.temperature,
                          preset="dapo")
    out.loss.backward()
    if args.device == "cuda":
        torch.cuda.synchronize()
    return {"peak_gib": (_peak(args.device) - baseline) / 2**30, "loss": float(out.loss)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--completions", type=int, default=8, help="completions in the micro-batch (one prompt)")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per completion")
    parser.add_argument("--audio-seconds", type=float, default=10.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args)))
        return 0

    from common import table_report

    results = {}
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory() as work:
            done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--worker", variant, "--work", work],
                                  capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            print(f"{variant} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        results[variant] = json.loads(lines[-1][len("RESULT "):])
    losses = {round(r["loss"], 5) for r in results.values()}
    if len(losses) != 1:
        print(f"the variants disagree on the loss: {results}", file=sys.stderr)
        return 1
    logits_gib = args.completions * args.tokens * QWEN_VOCABULARY * 4 / 2**30
    headers = ["variant", "peak GiB", "x one float32 logits tensor", "before / this"]
    table = [[name, f"{r['peak_gib']:.2f}", f"{r['peak_gib'] / logits_gib:.1f}",
              f"{results['before']['peak_gib'] / max(r['peak_gib'], 1e-9):.2f}x"]
             for name, r in results.items()]
    settings = (f"Qwen2-Audio (published config, test width, vocabulary {QWEN_VOCABULARY:,}) on {args.device}: one "
                f"micro-batch of {args.completions} completions x {args.tokens} tokens of one {args.audio_seconds:g} s "
                f"prompt, forward + backward; one float32 logits tensor = {logits_gib:.2f} GiB; same loss in every "
                f"variant ({losses.pop()})")
    table_report(settings, headers, table, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The toy sizes of the demo tests, and a session fixture that builds a tiny base with `speechgrpo build-base`
(about 40 s on 2 CPU cores)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from speechgrpo.cli import main

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

TOY_BASE = ["asr_clips=32", "passages=8", "translation_clips=8", "qa_examples=16", "mt_examples=16", "read_asr=16",
            "tokenizer_examples=1000", "held_out={dev: 4, test: 4}", "text={steps: 3, prompts_per_step: 8}",
            "ctc={steps: 4, eval_every: 2, prompts_per_step: 8}"]
TOY: dict[str, Any] = {
    "sizes": {"train": 24, "dev": 4, "test": 4},
    "sft": {"steps": 2, "prompts_per_step": 4, "eval_every": 1},
    "grpo": {"steps": 2, "prompts_per_step": 2, "num_generations": 4, "max_new_tokens": 12, "micro_batch_size": 16,
             "eval_every": 1},
    "search": {"sft": [5e-4, 1e-3], "grpo": [2e-4]},
    "eval_passes": 2, "eval_max_new_tokens": 12, "eval_metrics": ["bleu", "rougeL"], "dev_examples": 4,
    "examples_shown": 1, "bootstrap_resamples": 50,
}


def build_toy_base(out: Path) -> Path:
    """A base with the toy demo's held-out splits, built by the CLI; returns its model folder."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    assert main(["build-base", "--no-progress", f"output_dir={out}", *TOY_BASE]) == 0
    return out / "model"

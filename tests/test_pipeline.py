"""The demo pipeline end to end at a toy size (synthesis, base, SFT, GRPO, MP-GRPO, evaluation, report)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from speechgrpo.train.pipeline import PipelineConfig, run_pipeline


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_pipeline_runs_every_stage_and_writes_the_report(tmp_path: Path) -> None:
    config = PipelineConfig(
        output_dir=str(tmp_path), sizes={"train": 24, "dev": 4, "test": 6}, base_steps=4,
        base={"learning_rate": 2e-3, "prompts_per_step": 8, "micro_batch_size": 16},
        sft={"steps": 2, "learning_rate": 5e-4, "prompts_per_step": 4, "micro_batch_size": 16},
        grpo={"steps": 2, "learning_rate": 2e-4, "prompts_per_step": 2, "num_generations": 4,
              "max_new_tokens": 12, "micro_batch_size": 16},
        eval_seeds=1, eval_max_new_tokens=12)
    results = run_pipeline(config)
    table = pd.read_csv(results / "results.csv")
    assert set(table["model"]) == {"base", "sft", "grpo", "mp_grpo"}
    assert set(table["task"]) == {"sqa", "ast"} and set(table["decoding"]) == {"sampled", "greedy"}
    for name in ("results.md", "reward_curves.png", "metrics_sqa.png", "metrics_ast.png"):
        assert (results / name).is_file(), name

"""`speechgrpo demo` end to end at a toy size: synthesis, base (with CTC), SFT, GRPO, MP-GRPO, evaluation,
report. About two minutes on 2 CPU cores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from speechgrpo.cli import main
from speechgrpo.train.pipeline import PipelineConfig, initial_model, load_pipeline_config

TOY = {
    "sizes": {"train": 24, "dev": 4, "test": 6}, "base_steps": 4, "base_asr_repeats": 1,
    "base": {"learning_rate": 2e-3, "prompts_per_step": 8, "micro_batch_size": 16, "ctc_weight": 1.0},
    "sft": {"steps": 2, "learning_rate": 5e-4, "prompts_per_step": 4, "micro_batch_size": 16},
    "grpo": {"steps": 2, "learning_rate": 2e-4, "prompts_per_step": 2, "num_generations": 4, "max_new_tokens": 12,
             "micro_batch_size": 16},
    "eval_seeds": 1, "eval_max_new_tokens": 12, "examples_shown": 2,
}


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(TOY))
    config = load_pipeline_config(path, seed=3, tasks=["sqa"])
    assert config.seed == 3 and config.tasks == ("sqa",) and config.base_steps == 4
    with pytest.raises(ValueError, match="unknown demo config keys"):
        load_pipeline_config(path, base_step=3)
    with pytest.raises(ValueError, match="base_steps must be an integer"):
        load_pipeline_config(path, base_steps="many")
    merged = load_pipeline_config(None, grpo={"steps": 7}, sizes={"test": 9})
    assert merged.grpo == {**PipelineConfig().grpo, "steps": 7}
    assert merged.sizes == {**PipelineConfig().sizes, "test": 9}
    from_file = load_pipeline_config(path, grpo={"steps": 7}).grpo  # defaults < file < overrides
    assert from_file == {**PipelineConfig().grpo, **TOY["grpo"], "steps": 7}  # type: ignore[dict-item]


def test_initial_model_is_drawn_from_the_seed() -> None:
    import torch

    texts = ["What colour is the car?", "The car is red."]

    def weights(seed: int) -> list[torch.Tensor]:
        return [p.detach().clone() for p in initial_model(PipelineConfig(seed=seed), texts).module.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(weights(1), weights(1), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights(1), weights(2), strict=True))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_demo_runs_every_stage_and_writes_the_report(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(TOY))
    assert main(["demo", "--config", str(path), f"output_dir={tmp_path / 'out'}"]) == 0
    results = tmp_path / "out" / "results"
    table = pd.read_csv(results / "results.csv")
    assert set(table["model"]) == {"base", "sft", "grpo", "mp_grpo"}
    assert set(table["task"]) == {"sqa", "ast"} and set(table["decoding"]) == {"sampled", "greedy"}
    assert {"bleu", "bertscore", "rouge1", "rouge2", "rougeL", "meteor", "avg"} <= set(table.columns)
    for name in ("results.md", "summary.json", "reward_curves.png", "metrics_sqa.png", "metrics_ast.png"):
        assert (results / name).is_file(), name
    summary = json.loads((results / "summary.json").read_text())
    assert summary["base_asr_wer"] >= 0 and set(summary["seconds"]) >= {"synthesis", "base", "grpo", "total"}
    report = (results / "results.md").read_text()
    assert "Greedy WER on the ASR test clips" in report and report.count("- reference:") == 4
    base_log = [json.loads(line) for line in (tmp_path / "out" / "runs" / "base" / "metrics.jsonl").open()]
    assert len(base_log) == 4 and all("ctc_loss" in row for row in base_log)

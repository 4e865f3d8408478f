"""`speechgrpo bench train`: the reward ablation at a toy size (about a minute on 2 CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from toy_demo import TOY, needs_espeak

from speechgrpo.bench.ablation import run_name, sft_steps_for
from speechgrpo.cli import main


def test_run_names_are_folder_safe() -> None:
    assert run_name("bleu") == "grpo_bleu"
    assert run_name("0.7*bleu + 0.3*chrf") == "grpo_0.7xbleu_0.3xchrf"


def test_sft_gets_as_many_sequences_as_grpo_samples() -> None:
    grpo = {"steps": 60, "prompts_per_step": 4, "num_generations": 8}
    assert sft_steps_for(grpo, {"prompts_per_step": 16}) == 60 * 4 * 8 // 16
    assert sft_steps_for({**grpo, "num_iterations": 2}, {"prompts_per_step": 16}) == 30 * 4 * 8 // 16
    assert sft_steps_for({**grpo, "steps": 1}, {"prompts_per_step": 64}) == 1


def test_bad_task_and_reward_fail_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["bench", "train", "--task", "asr", "--demo-dir", str(out)]) == 2
    assert "unknown task 'asr'" in capsys.readouterr().err
    assert main(["bench", "train", "--rewards", "bleu,blue", "--demo-dir", str(out)]) == 2
    assert "blue" in capsys.readouterr().err
    assert not out.exists()


@needs_espeak
def test_ablation_trains_every_reward_and_seed_and_sft_with_the_same_compute(
        toy_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "demo.yaml"
    # the demo's tasks stay those the base was built for (its held-out splits depend on them)
    config.write_text(yaml.safe_dump({**TOY, "base": str(toy_base), "seeds": [0, 1], "eval_passes": 1}))
    report = tmp_path / "report"
    assert main(["bench", "train", "--task", "sqa", "--rewards", "bleu,0.5*rougeL + 0.5*meteor", "--config",
                 str(config), "--demo-dir", str(tmp_path / "demo"), "--steps", "2", "--out", str(report), "--json",
                 "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    sampled = printed["tables"]["ablation_sampled"]
    assert [row["trained with"] for row in sampled] == ["base", "bleu", "0.5*rougeL + 0.5*meteor",
                                                        "SFT (same compute)"]
    assert set(sampled[0]) == {"trained with", "bleu", "bertscore", "rouge1", "rouge2", "rougeL", "meteor", "avg",
                               "words"}
    table = pd.read_csv(report / "ablation_sampled.csv", index_col=0)
    assert table.loc["bleu", "avg"] == pytest.approx(table.loc["bleu"].drop(["avg", "words"]).mean())
    compute = pd.read_csv(report / "ablation_compute.csv", index_col=0)
    assert compute.loc["bleu", "completions"] == 2 * 2 * 4  # steps x prompts x generations
    assert compute.loc["SFT (same compute)", "prompts_seen"] == 2 * 2 * 4  # trains on as many sequences
    for name in ("train.md", "train.json", "training_curves.png", "ablation_metrics.png", "ablation_std.csv"):
        assert (report / name).is_file(), name
    runs = tmp_path / "demo" / "ablation" / "sqa"
    assert sorted(p.name for p in runs.iterdir()) == [
        "answers", "grpo_0.5xrougeL_0.5xmeteor-seed0", "grpo_0.5xrougeL_0.5xmeteor-seed1", "grpo_bleu-seed0",
        "grpo_bleu-seed1", "sft_same_compute-seed0", "sft_same_compute-seed1"]
    assert len((runs / "grpo_bleu-seed0" / "metrics.jsonl").read_text().splitlines()) == 2
    selected = json.loads((runs / "grpo_0.5xrougeL_0.5xmeteor-seed0" / "run.json").read_text())
    assert selected["best_metric"] == "reward"  # a run is kept at its best dev score by its own reward
    assert json.loads((runs / "grpo_bleu-seed0" / "run.json").read_text())["best_metric"] == "bleu"
    for run in ("grpo_bleu-seed0", "sft_same_compute-seed0"):  # fixed steps: the demo's patience does not apply
        assert json.loads((runs / run / "run.json").read_text())["patience"] == 0

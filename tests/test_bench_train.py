"""`speechgrpo bench train`: the reward ablation at a toy size (about a minute on 2 CPU cores)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_pipeline import TOY

from speechgrpo.bench.ablation import run_name
from speechgrpo.cli import main


def test_run_names_are_folder_safe() -> None:
    assert run_name("bleu") == "grpo_bleu"
    assert run_name("0.7*bleu + 0.3*chrf") == "grpo_0.7xbleu_0.3xchrf"


def test_bad_task_and_reward_fail_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["bench", "train", "--task", "asr", "--demo-dir", str(out)]) == 2
    assert "unknown task 'asr'" in capsys.readouterr().err
    assert main(["bench", "train", "--rewards", "bleu,blue", "--demo-dir", str(out)]) == 2
    assert "blue" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_ablation_trains_one_run_per_reward_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump({**TOY, "tasks": ["sqa"]}))
    report = tmp_path / "report"
    assert main(["bench", "train", "--task", "sqa", "--rewards", "bleu,0.5*rougeL + 0.5*meteor", "--config",
                 str(config), "--demo-dir", str(tmp_path / "demo"), "--steps", "2", "--out", str(report), "--json",
                 "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    sampled = printed["tables"]["ablation_sampled"]
    assert [row["trained with"] for row in sampled] == ["base", "bleu", "0.5*rougeL + 0.5*meteor"]
    assert set(sampled[0]) == {"trained with", "bleu", "bertscore", "rouge1", "rouge2", "rougeL", "meteor", "avg"}
    table = pd.read_csv(report / "ablation_greedy.csv", index_col=0)
    assert table.loc["bleu", "avg"] == pytest.approx(table.loc["bleu"].drop("avg").mean())
    for name in ("train.md", "train.json", "training_curves.png", "ablation_metrics.png"):
        assert (report / name).is_file(), name
    runs = tmp_path / "demo" / "ablation" / "sqa"
    assert sorted(p.name for p in runs.iterdir()) == ["grpo_0.5xrougeL_0.5xmeteor", "grpo_bleu"]
    assert len((runs / "grpo_bleu" / "metrics.jsonl").read_text().splitlines()) == 2

"""``speechgrpo bench train``: the paper's reward ablation (its Table 3) on the bundled spoken task.

From one base model (the demo's: synthesized data and base stage, reused when ``--demo-dir`` already
holds them), GRPO runs once per reward on one task's training examples with the demo's GRPO settings,
and every run is evaluated on that task's test set with all the paper's metrics (sampled decoding at
T=0.9/top-p 0.9 over the demo's seeds, and greedy), plus their average, as in the paper's table.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechgrpo.bench.report import BenchReport, Table
from speechgrpo.data import read_manifest, write_manifest
from speechgrpo.train.pipeline import PipelineConfig, evaluate_on_tasks, prepare_base, run_stage

DEFAULT_REWARDS = ("bleu", "meteor", "rouge1", "rouge2", "rougeL", "bertscore")
METRICS = ("bleu", "bertscore", "rouge1", "rouge2", "rougeL", "meteor")


def run_name(reward: str) -> str:
    """A folder name for a reward spec: ``0.7*bleu + 0.3*chrf`` -> ``grpo_0.7xbleu_0.3xchrf``."""
    return "grpo_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", reward.replace("*", "x")).strip("_")


def run_ablation(config: PipelineConfig, rewards: Sequence[str], task: str, steps: int | None = None,
                 show_progress: bool = True) -> BenchReport:
    """Train GRPO with each reward from the shared base and evaluate every run on ``task``."""
    from speechgrpo.rewards import parse_reward

    if task not in config.tasks:
        raise ValueError(f"unknown task {task!r}; the demo's tasks are {', '.join(config.tasks)}")
    if not rewards:
        raise ValueError("no rewards given")
    for spec in rewards:
        parse_reward(spec)  # a typo fails here, before any training
    names = [run_name(spec) for spec in rewards]
    if len(set(names)) != len(names):
        raise ValueError(f"rewards give the same run name twice: {', '.join(rewards)}")

    prepared = prepare_base(config, show_progress)
    out = Path(config.output_dir)
    manifest = write_manifest(out / "stage_data" / f"tasks_{task}.jsonl",
                              [e for e in read_manifest(prepared.task_manifest) if e.task == task])
    runs = out / "ablation" / task
    settings = {**config.grpo, **({"steps": steps} if steps is not None else {})}
    models = {"base": prepared.base}
    for spec, name in zip(rewards, names, strict=True):
        models[spec] = run_stage(name, "grpo", prepared.base, [manifest], runs, settings, config.seed, spec,
                                 show_progress=show_progress)
    test = read_manifest(prepared.manifests["test"])
    rows, _ = evaluate_on_tasks(models, test, dataclasses.replace(config, tasks=(task,), examples_shown=0))
    return ablation_report(rows, runs, dict(zip(rewards, names, strict=True)), task, settings, config)


def ablation_report(rows: list[dict[str, Any]], runs: Path, run_names: dict[str, str], task: str,
                    settings: dict[str, Any], config: PipelineConfig) -> BenchReport:
    """Tables (sampled and greedy; one row per training reward, the base first), notes and plots."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    tables = []
    for decoding, title in (("sampled", f"{task}: GRPO with each reward, sampled decoding (T=0.9, top-p 0.9, "
                                        f"mean of {config.eval_seeds} seeds)"),
                            ("greedy", f"{task}: GRPO with each reward, greedy decoding")):
        part = frame[frame["decoding"] == decoding].set_index("model")[list(METRICS)]
        part = part.assign(avg=part.mean(axis=1))
        part.index.name = "trained with"
        tables.append(Table(f"ablation_{decoding}", title, part, default_format="{:.2f}"))
    sampled = tables[0].frame.drop(index="base")
    notes = [f"best average: {sampled['avg'].idxmax()} ({sampled['avg'].max():.2f})"]
    notes += [f"best {metric}: {sampled[metric].idxmax()} ({sampled[metric].max():.2f})" for metric in METRICS]
    notes.append("scores on 0-100; BLEU is corpus BLEU, the others per-example means against the best reference")
    curves = {spec: [json.loads(line) for line in (runs / name / "metrics.jsonl").read_text().splitlines()]
              for spec, name in run_names.items()}
    meta = {"task": task, "base": str(Path(config.output_dir) / "runs" / "base" / "final"),
            "grpo": ", ".join(f"{k}={v}" for k, v in settings.items()), "runs": str(runs)}
    return BenchReport("train", tables, notes, meta,
                       plots={"training_curves.png": lambda path: plot_curves(curves, path),
                              "ablation_metrics.png": lambda path: plot_metrics(tables[0].frame, task, path)})


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Mean on-policy reward per step of each run (each in its own reward's units, all on [0, 1])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for spec, rows in curves.items():
        ax.plot([r["step"] for r in rows], [r["reward_mean"] for r in rows], label=spec)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward of the samples (its own reward)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_metrics(frame: Any, task: str, path: Path) -> None:
    """Grouped bars: every evaluation metric (x) for every training reward (colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    frame.T.plot.bar(ax=ax)
    ax.set_ylabel("score (0-100)")
    ax.set_title(f"{task}: evaluation metric (x) by training reward (colour), sampled decoding")
    ax.legend(title="trained with", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

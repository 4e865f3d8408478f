"""``speechgrpo bench train``: the paper's reward ablation (its Table 3) on the bundled spoken task.

From the demo's base model, GRPO runs once per reward and training seed on one task's training examples
with the demo's GRPO settings (the task's tuned learning rate), validated on dev and kept at its best
dev checkpoint by its own reward (corpus BLEU for ``bleu``); SFT is added with the same compute (as many
trained sequences as GRPO generates completions). Every run is evaluated on the task's test set with all
the paper's metrics (T 0.9, top-p 0.9, the demo's passes) and their average; the table gives the mean
over seeds, a second one the std.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechgrpo.bench.report import BenchReport, Table
from speechgrpo.rewards.spec import spec_slug
from speechgrpo.train.config import PAPER_METRICS, Stage
from speechgrpo.train.pipeline import (
    PipelineConfig,
    evaluate_run,
    method_settings,
    prepare_data,
    resolve_base,
    train_run,
)

DEFAULT_REWARDS = ("bleu", "meteor", "rouge1", "rouge2", "rougeL", "bertscore", "0.5*bleu + 0.5*bertscore")
SFT_ROW = "SFT (same compute)"
#: GRPO steps per run of ``bench train`` (half the demo's 200: seven rewards x three seeds fit in 90
#: minutes on 2 cores); the demo's GRPO row is the BLEU reward at the full budget
ABLATION_STEPS = 100


def run_name(reward: str) -> str:
    """A folder name for a reward spec: ``0.7*bleu + 0.3*chrf`` -> ``grpo_0.7xbleu_0.3xchrf``."""
    return "grpo_" + spec_slug(reward)


def sft_steps_for(grpo: dict[str, Any], sft: dict[str, Any]) -> int:
    """SFT steps that train on as many sequences as GRPO samples completions."""
    rollouts = math.ceil(grpo["steps"] / grpo.get("num_iterations", 1))
    completions = rollouts * grpo["prompts_per_step"] * grpo["num_generations"]
    return max(1, math.ceil(int(completions) / int(sft["prompts_per_step"])))


def run_ablation(config: PipelineConfig, rewards: Sequence[str], task: str, steps: int = ABLATION_STEPS,
                 show_progress: bool = True) -> BenchReport:
    """Train GRPO with each reward (every seed) for ``steps`` and SFT with GRPO's compute from the shared
    base, and evaluate every run on ``task``. Every run trains its fixed steps (no patience, no quick
    budgets), so that SFT sees exactly as many sequences as each GRPO run samples."""
    from speechgrpo.data import read_manifest
    from speechgrpo.rewards import parse_reward
    from speechgrpo.train.demo_report import score_table

    if task not in config.tasks:
        raise ValueError(f"unknown task {task!r}; the demo's tasks are {', '.join(config.tasks)}")
    if not rewards:
        raise ValueError("no rewards given")
    for spec in rewards:
        parse_reward(spec)  # a typo fails here, before any training
    names = [run_name(spec) for spec in rewards]
    if len(set(names)) != len(names):
        raise ValueError(f"rewards give the same run name twice: {', '.join(rewards)}")

    base = resolve_base(config, show_progress)
    manifests = prepare_data(config, show_progress)
    out = Path(config.output_dir)
    runs = out / "ablation" / task
    grpo = {**method_settings("grpo", config, task, None), "steps": steps, "patience": 0}
    sft = {**method_settings("sft", config, task, None), "steps": sft_steps_for(grpo, config.sft), "patience": 0}
    test = read_manifest(manifests[f"{task}_test"])
    answers = {(task, "base", 0): evaluate_run(base, test, config, runs / "answers" / "base.json")}
    records: list[dict[str, Any]] = []
    jobs: list[tuple[str, str, Stage, dict[str, Any]]] = [(spec, name, "grpo", grpo)
                                                          for spec, name in zip(rewards, names, strict=True)]
    jobs.append((SFT_ROW, "sft_same_compute", "sft", sft))
    for seed in config.training_seeds:
        for spec, name, stage, settings in jobs:
            run_config = dataclasses.replace(config, reward=spec if stage == "grpo" else config.reward)
            run = train_run(runs / f"{name}-seed{seed}", stage, base, manifests[f"{task}_train"],
                            manifests[f"{task}_dev"], settings, run_config, seed, show_progress)
            answers[(task, spec, seed)] = evaluate_run(run.model, test, config,
                                                       runs / "answers" / f"{name}-seed{seed}.json")
            records.append({"reward": spec, "name": name, **run.record})
    rows, _ = score_table(answers, {task: test}, PAPER_METRICS)
    return ablation_report(rows, records, task, grpo, sft["steps"], config)


def ablation_report(rows: list[dict[str, Any]], records: list[dict[str, Any]], task: str, grpo: dict[str, Any],
                    sft_steps: int, config: PipelineConfig) -> BenchReport:
    """Mean and std over seeds (one row per training reward, the base first), compute, notes and plots."""
    import pandas as pd

    frame = pd.DataFrame(rows).rename(columns={"method": "trained with"})
    order = list(dict.fromkeys(frame["trained with"]))
    columns = [*PAPER_METRICS, "avg", "words"]
    mean = frame.groupby("trained with", sort=False)[columns].mean().reindex(order)
    std = frame.groupby("trained with", sort=False)[columns].std(ddof=1).reindex(order)
    compute = pd.DataFrame(records).groupby("reward", sort=False)[["prompts_seen", "completions", "wall_s"]].mean()
    compute.index.name = "trained with"
    seeds = config.training_seeds
    tables = [Table.from_frame("ablation_sampled", f"{task}: test scores by training reward, sampled decoding (T 0.9, "
                               f"top-p 0.9, {config.eval_passes} passes), mean over seeds {seeds}", mean,
                               default_format="{:.2f}"),
              Table.from_frame("ablation_std", f"{task}: std over seeds {seeds}", std, default_format="{:.2f}"),
              Table.from_frame("ablation_compute", f"{task}: compute per run (mean over seeds)", compute,
                               default_format="{:.0f}")]
    trained = mean.drop(index="base")
    notes = [f"best average: {trained['avg'].idxmax()} ({trained['avg'].max():.2f})"]
    notes += [f"best {metric}: {trained[metric].idxmax()} ({trained[metric].max():.2f})" for metric in PAPER_METRICS]
    notes += ["scores on 0-100; BLEU is corpus BLEU, the others per-example means; words: mean answer length",
              f"{SFT_ROW}: {sft_steps} SFT steps of {config.sft['prompts_per_step']} examples = as many sequences as "
              "each GRPO run samples"]
    curves = {r["reward"]: [json.loads(line) for line in (Path(r["model"]).parent / "metrics.jsonl").read_text(
        encoding="utf-8").splitlines()] for r in records if r["stage"] != "sft" and r["seed"] == seeds[0]}
    meta = {"task": task, "grpo": ", ".join(f"{k}={v}" for k, v in grpo.items()), "seeds": str(seeds),
            "runs": str(Path(config.output_dir) / "ablation" / task)}
    return BenchReport("train", tables, notes, meta,
                       plots={"training_curves.png": lambda path: plot_curves(curves, path),
                              "ablation_metrics.png": lambda path: plot_metrics(mean[list(PAPER_METRICS)], task, path)})


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Mean on-policy reward per step of each run (each in its own reward's units, all on [0, 1])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for spec, rows in curves.items():
        ax.plot([r["step"] for r in rows], [r["reward_mean"] for r in rows], label=spec)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward of the samples (its own reward)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the curves, not over them
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_metrics(frame: Any, task: str, path: Path) -> None:
    """Grouped bars: every evaluation metric (x) for every training reward (colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    frame.T.plot.bar(ax=ax)
    ax.set_ylabel("score (0-100)")
    ax.set_title(f"{task}: evaluation metric (x) by training reward (colour), sampled decoding")
    ax.legend(title="trained with", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""The main job (``speechgrpo demo``): the paper's comparison, end to end on the bundled spoken task.

1. synthesize the spoken task with espeak-ng (spoken QA, English->German speech translation, ASR);
2. build the bundled small speech LLM and train a base model: ASR plus the text versions of the tasks
   (the passage or sentence as text), so that it hears and knows the answer formats;
3. from the same base: SFT, GRPO and MP-GRPO on the spoken tasks, with the paper's recipe;
4. evaluate base, SFT, GRPO and MP-GRPO with the paper's decoding (T=0.9, top-p 0.9, several seeds) and
   greedy, on BLEU, BERTScore, ROUGE-1/2/L and METEOR;
5. write ``results.md`` / ``results.csv`` and PNG plots (reward curves, metric bars).

Sizes and steps come from :class:`PipelineConfig` (YAML); the defaults fit a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from speechgrpo.data import Example, build_synthetic, read_manifest, write_manifest
from speechgrpo.train.config import TrainConfig


@dataclass
class PipelineConfig:
    """The demo's knobs: data sizes per task and split, model size, steps and rates of each stage."""

    output_dir: str = "demo_output"
    seed: int = 0
    tasks: tuple[str, ...] = ("sqa", "ast")
    sizes: dict[str, int] = field(default_factory=lambda: {"train": 300, "dev": 20, "test": 40})
    model: dict[str, Any] = field(default_factory=dict)  # TinySpeechLMConfig fields
    base_steps: int = 300
    base: dict[str, Any] = field(default_factory=lambda: {"learning_rate": 2e-3, "prompts_per_step": 16,
                                                          "micro_batch_size": 16})
    sft: dict[str, Any] = field(default_factory=lambda: {"steps": 60, "learning_rate": 5e-4, "prompts_per_step": 8,
                                                         "micro_batch_size": 16})
    grpo: dict[str, Any] = field(default_factory=lambda: {"steps": 30, "learning_rate": 2e-4, "prompts_per_step": 4,
                                                          "num_generations": 8, "max_new_tokens": 32,
                                                          "micro_batch_size": 16})
    reward: str = "bleu"
    eval_seeds: int = 3
    eval_max_new_tokens: int = 32


def load_pipeline_config(path: str | Path | None = None, **overrides: Any) -> PipelineConfig:
    values: dict[str, Any] = {}
    if path is not None:
        values.update(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    if set(values) - known:
        raise ValueError(f"unknown demo config keys {sorted(set(values) - known)}; known: {sorted(known)}")
    if "tasks" in values:
        values["tasks"] = tuple(values["tasks"])
    return PipelineConfig(**values)


def text_versions(examples: list[Example]) -> list[Example]:
    """The tasks without audio: the spoken passage/sentence given as text in the prompt."""
    out = []
    for e in examples:
        transcript = e.meta.get("transcript")
        if e.task in ("sqa", "ast") and transcript:
            out.append(dataclasses.replace(e, id=f"{e.id}-text", audio=None, prompt=f"{transcript}\n{e.prompt}",
                                           task=f"{e.task}_text"))
    return out


def run_stage(name: str, stage: str, model: Path, manifests: list[Path], out: Path, settings: dict[str, Any],
              seed: int, reward: str, steps: int | None = None) -> Path:
    from speechgrpo.train.trainer import train

    values = {"steps": steps, **settings} if steps is not None else dict(settings)
    config = TrainConfig(model=str(model), train_manifests=[str(m) for m in manifests], output_dir=str(out / name),
                         stage=stage, seed=seed, reward=reward, **values)  # type: ignore[arg-type]
    print(f"\n== {name}: {stage}, {config.steps} steps ==", flush=True)
    return train(config)


def run_pipeline(config: PipelineConfig) -> Path:
    """Run every stage (each resumes if its output exists) and return the results folder."""
    from speechgrpo.models import TinySpeechLM, TinySpeechLMConfig
    from speechgrpo.models.word_tokenizer import build_tokenizer
    from speechgrpo.train.evaluation import EvalConfig, evaluate_model
    from speechgrpo.train.trainer import read_examples

    started = time.perf_counter()
    out = Path(config.output_dir)
    data = out / "data"
    tasks = (*config.tasks, "asr")
    manifests = build_synthetic(data, seed=config.seed, sizes=config.sizes, tasks=tasks)
    train_examples = read_manifest(manifests["train"])
    by_task = {task: [e for e in train_examples if e.task == task] for task in tasks}
    stage_data = out / "stage_data"
    base_manifest = write_manifest(stage_data / "base.jsonl",
                                   by_task["asr"] + text_versions(train_examples))
    task_manifest = write_manifest(stage_data / "tasks.jsonl", [e for t in config.tasks for e in by_task[t]])

    initial = out / "models" / "initial"
    if not (initial / "config.json").is_file():
        texts = [t for e in read_examples([str(p) for p in manifests.values()])
                 for t in (e.prompt, *e.references, str(e.meta.get("transcript", "")))]
        model = TinySpeechLM.create(TinySpeechLMConfig(**config.model), build_tokenizer(texts))
        model.save(initial)
    runs = out / "runs"
    base = run_stage("base", "sft", initial, [base_manifest], runs, config.base, config.seed, config.reward,
                     steps=config.base_steps)
    finals = {"base": base}
    finals["sft"] = run_stage("sft", "sft", base, [task_manifest], runs, config.sft, config.seed, config.reward)
    finals["grpo"] = run_stage("grpo", "grpo", base, [task_manifest], runs, config.grpo, config.seed, config.reward)
    finals["mp_grpo"] = run_stage("mp_grpo", "mp_grpo", base, [task_manifest], runs, config.grpo, config.seed,
                                  config.reward)

    test = [e for e in read_manifest(manifests["test"]) if e.task in config.tasks]
    eval_config = EvalConfig(seeds=tuple(range(config.eval_seeds)), max_new_tokens=config.eval_max_new_tokens)
    rows = []
    for name, path in finals.items():
        model = TinySpeechLM.load(path)
        for task in config.tasks:
            examples = [e for e in test if e.task == task]
            print(f"evaluating {name} on {task} ({len(examples)} examples)", flush=True)
            result = evaluate_model(model, examples, eval_config)
            for decoding in ("sampled", "greedy"):
                rows.append({"model": name, "task": task, "decoding": decoding, **result[decoding]})
    results = out / "results"
    write_results(rows, runs, results, time.perf_counter() - started)
    return results


def write_results(rows: list[dict[str, Any]], runs: Path, results: Path, seconds: float) -> None:
    """``results.csv``, ``results.md`` and the plots."""
    import pandas as pd

    results.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    metrics = [c for c in table.columns if c not in ("model", "task", "decoding")]
    table["avg"] = table[metrics].mean(axis=1)
    table.to_csv(results / "results.csv", index=False, float_format="%.2f")
    lines = [f"# Results (bundled task; {seconds / 60:.1f} min end to end)", ""]
    for (task, decoding), part in table.groupby(["task", "decoding"], sort=False):
        lines += [f"## {task}, {decoding} decoding", "", part.drop(columns=["task", "decoding"]).to_markdown(
            index=False, floatfmt=".2f"), ""]
    (results / "results.md").write_text("\n".join(lines), encoding="utf-8")
    plot_results(table, runs, results)
    print("\n".join(lines), flush=True)


def plot_results(table: Any, runs: Path, results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("grpo", "mp_grpo"):
        path = runs / name / "metrics.jsonl"
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            ax.plot([r["step"] for r in rows], [r["reward_mean"] for r in rows], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward (on-policy samples)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(results / "reward_curves.png", dpi=120)
    plt.close(fig)
    sampled = table[table["decoding"] == "sampled"]
    for task, part in sampled.groupby("task"):
        fig, ax = plt.subplots(figsize=(7, 4))
        part.set_index("model").drop(columns=["task", "decoding"]).T.plot.bar(ax=ax)
        ax.set_ylabel("score (0-100)")
        ax.set_title(f"{task}: sampled decoding (T=0.9, top-p 0.9)")
        fig.tight_layout()
        fig.savefig(results / f"metrics_{task}.png", dpi=120)
        plt.close(fig)

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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from speechgrpo.data import Example, build_synthetic, read_manifest, write_manifest
from speechgrpo.train.config import TrainConfig, check_numbers

if TYPE_CHECKING:
    from speechgrpo.models import TinySpeechLM


@dataclass
class PipelineConfig:
    """The demo's knobs: data (sizes per task and split, difficulty, voices), model size, and the steps and
    rates of each stage. The defaults fit a 2-core CPU in about 15 minutes."""

    output_dir: str = "demo_output"
    seed: int = 0
    tasks: tuple[str, ...] = ("sqa", "ast")
    sizes: dict[str, int] = field(default_factory=lambda: {"train": 800, "dev": 20, "test": 50})
    difficulty: int = 1
    # espeak-ng voices; a few, so that the from-scratch model learns to hear within the CPU budget
    # (None: the 88 of speechgrpo.data.synthetic.tts.DEFAULT_VOICES, for larger budgets)
    voices: list[str] | None = field(default_factory=lambda: ["en-us+m1", "en-us+f2", "en-gb+m3", "en-gb+f4"])
    model: dict[str, Any] = field(default_factory=dict)  # TinySpeechLMConfig fields
    base_steps: int = 700
    base_asr_repeats: int = 2  # each ASR clip appears this many times in the base mix (with the text tasks)
    base: dict[str, Any] = field(default_factory=lambda: {
        "learning_rate": 2e-3, "warmup_steps": 50, "lr_schedule": "cosine", "ctc_weight": 1.0,
        "prompts_per_step": 16, "micro_batch_size": 16})
    sft: dict[str, Any] = field(default_factory=lambda: {"steps": 100, "learning_rate": 5e-4, "prompts_per_step": 16,
                                                         "micro_batch_size": 16})
    grpo: dict[str, Any] = field(default_factory=lambda: {"steps": 50, "learning_rate": 2e-4, "prompts_per_step": 4,
                                                          "num_generations": 8, "max_new_tokens": 32,
                                                          "micro_batch_size": 32, "save_rollouts": True})
    reward: str = "bleu"
    eval_seeds: int = 3
    eval_max_new_tokens: int = 32
    examples_shown: int = 3  # test examples per task with every model's greedy answer in results.md

    def __post_init__(self) -> None:
        check_numbers(self)


def load_pipeline_config(path: str | Path | None = None, **overrides: Any) -> PipelineConfig:
    """The defaults, then the YAML file, then ``overrides``. Mapping fields (``sizes``, ``model``, ``base``,
    ``sft``, ``grpo``) are merged key by key: ``grpo: {steps: 100}`` keeps the other GRPO settings."""
    values: dict[str, Any] = {}
    layers = [yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {} if path is not None else {},
              {k: v for k, v in overrides.items() if v is not None}]
    defaults = PipelineConfig()
    for layer in layers:
        if not isinstance(layer, dict):
            raise ValueError(f"{path}: a demo config must be a YAML mapping, got {type(layer).__name__}")
        for key, value in layer.items():
            default = values.get(key, getattr(defaults, key, None))
            values[key] = {**default, **value} if isinstance(default, dict) and isinstance(value, dict) else value
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
              seed: int, reward: str, steps: int | None = None, show_progress: bool = True) -> Path:
    from speechgrpo.train.trainer import train

    values = {"steps": steps, **settings} if steps is not None else dict(settings)
    config = TrainConfig(model=str(model), train_manifests=[str(m) for m in manifests], output_dir=str(out / name),
                         stage=stage, seed=seed, reward=reward, **values)  # type: ignore[arg-type]
    print(f"\n== {name}: {stage}, {config.steps} steps ==", file=sys.stderr, flush=True)
    return train(config, show_progress=show_progress)


@dataclass
class Prepared:
    """What every comparison starts from: the synthesized manifests, the spoken-task training manifest
    and the trained base model."""

    manifests: dict[str, Path]
    task_manifest: Path
    base: Path
    seconds: dict[str, float]


def initial_model(config: PipelineConfig, texts: list[str]) -> TinySpeechLM:
    """The untrained bundled model, its tokenizer built from ``texts``, its weights drawn from ``config.seed``."""
    import torch

    from speechgrpo.models import TinySpeechLM, TinySpeechLMConfig
    from speechgrpo.models.word_tokenizer import build_tokenizer

    torch.manual_seed(config.seed)
    return TinySpeechLM.create(TinySpeechLMConfig(**config.model), build_tokenizer(texts))


def prepare_base(config: PipelineConfig, show_progress: bool = True) -> Prepared:
    """Synthesize the data and train the base model (both skipped or resumed when already there)."""
    from speechgrpo.data.synthetic.tts import DEFAULT_VOICES
    from speechgrpo.train.trainer import read_examples

    started = time.perf_counter()
    out = Path(config.output_dir)
    tasks = (*config.tasks, "asr")
    manifests = build_synthetic(out / "data", seed=config.seed, sizes=config.sizes, tasks=tasks,
                                difficulty=config.difficulty, voices=config.voices or DEFAULT_VOICES,
                                progress=show_progress)
    seconds = {"synthesis": time.perf_counter() - started}
    train_examples = read_manifest(manifests["train"])
    by_task = {task: [e for e in train_examples if e.task == task] for task in tasks}
    stage_data = out / "stage_data"
    asr = [dataclasses.replace(e, id=f"{e.id}-{k}") for k in range(config.base_asr_repeats) for e in by_task["asr"]]
    base_manifest = write_manifest(stage_data / "base.jsonl", asr + text_versions(train_examples))
    task_manifest = write_manifest(stage_data / "tasks.jsonl", [e for t in config.tasks for e in by_task[t]])

    initial = out / "models" / "initial"
    if not (initial / "config.json").is_file():
        texts = [t for e in read_examples([str(p) for p in manifests.values()])
                 for t in (e.prompt, *e.references, str(e.meta.get("transcript", "")))]
        initial_model(config, texts).save(initial)
    stage_started = time.perf_counter()
    base = run_stage("base", "sft", initial, [base_manifest], out / "runs", config.base, config.seed, config.reward,
                     steps=config.base_steps, show_progress=show_progress)
    seconds["base"] = time.perf_counter() - stage_started
    return Prepared(manifests, task_manifest, base, seconds)


def evaluate_on_tasks(models: dict[str, Path], test: list[Example], config: PipelineConfig,
                      ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Score rows (model, task, decoding, metrics...) of every model on every task of ``config``, and the
    greedy answers of each model on the first ``examples_shown`` test examples of each task."""
    from speechgrpo.data import AudioCache
    from speechgrpo.models import SamplingConfig, TinySpeechLM
    from speechgrpo.train.evaluation import EvalConfig, evaluate_model, generate_answers

    eval_config = EvalConfig(seeds=tuple(range(config.eval_seeds)), max_new_tokens=config.eval_max_new_tokens)
    rows, shown = [], []
    for name, path in models.items():
        model = TinySpeechLM.load(path)
        for task in config.tasks:
            examples = [e for e in test if e.task == task]
            print(f"evaluating {name} on {task} ({len(examples)} examples)", file=sys.stderr, flush=True)
            result = evaluate_model(model, examples, eval_config)
            for decoding in ("sampled", "greedy"):
                rows.append({"model": name, "task": task, "decoding": decoding, **result[decoding]})
            first = examples[:config.examples_shown]
            answers = generate_answers(model, first, SamplingConfig(config.eval_max_new_tokens, greedy=True), 0, 16,
                                       AudioCache())
            shown += [{"task": task, "id": e.id, "model": name, "answer": answer}
                      for e, answer in zip(first, answers, strict=True)]
    return rows, shown


def run_pipeline(config: PipelineConfig) -> Path:
    """Run every stage (each resumes if its output exists) and return the results folder."""
    from speechgrpo.models import TinySpeechLM
    from speechgrpo.train.evaluation import EvalConfig, evaluate_model

    started = time.perf_counter()
    prepared = prepare_base(config)
    seconds = prepared.seconds
    runs = Path(config.output_dir) / "runs"
    finals = {"base": prepared.base}
    for name, stage, settings in (("sft", "sft", config.sft), ("grpo", "grpo", config.grpo),
                                  ("mp_grpo", "mp_grpo", config.grpo)):
        stage_started = time.perf_counter()
        finals[name] = run_stage(name, stage, prepared.base, [prepared.task_manifest], runs, settings, config.seed,
                                 config.reward)
        seconds[name] = time.perf_counter() - stage_started

    evaluation_started = time.perf_counter()
    test = read_manifest(prepared.manifests["test"])
    rows, shown = evaluate_on_tasks(finals, test, config)
    hearing = evaluate_model(TinySpeechLM.load(prepared.base), [e for e in test if e.task == "asr"],
                             EvalConfig(seeds=(), max_new_tokens=config.eval_max_new_tokens, metrics=("wer",)))
    seconds["evaluation"] = time.perf_counter() - evaluation_started
    seconds["total"] = time.perf_counter() - started
    results = Path(config.output_dir) / "results"
    summary = {"base_asr_wer": hearing["greedy"]["wer"], "seconds": seconds}
    write_results(rows, shown, {e.id: e for e in test}, summary, runs, results)
    return results


def write_results(rows: list[dict[str, Any]], shown: list[dict[str, str]], test: dict[str, Example],
                  summary: dict[str, Any], runs: Path, results: Path) -> None:
    """``results.csv``, ``results.md``, ``summary.json`` and the plots."""
    import pandas as pd

    results.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    metrics = [c for c in table.columns if c not in ("model", "task", "decoding")]
    table["avg"] = table[metrics].mean(axis=1)
    table.to_csv(results / "results.csv", index=False, float_format="%.2f")
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    seconds = summary["seconds"]
    timing = ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items() if k != "total")
    lines = [f"# Results on the bundled task ({seconds['total'] / 60:.1f} min end to end)", "",
             f"Minutes per stage: {timing}.", "",
             f"Can the base model hear? Greedy WER on the ASR test clips: {summary['base_asr_wer']:.1f}%.", ""]
    for (task, decoding), part in table.groupby(["task", "decoding"], sort=False):
        lines += [f"## {task}, {decoding} decoding", "", part.drop(columns=["task", "decoding"]).to_markdown(
            index=False, floatfmt=".2f"), ""]
    lines += ["## Greedy answers on the first test examples", ""]
    for example_id, answers in pd.DataFrame(shown).groupby("id", sort=False):
        example = test[example_id]
        lines += [f"**{example_id}** ({example.task}): {example.meta.get('transcript', '')} / *{example.prompt}*",
                  "", f"- reference: {example.references[0]}"]
        lines += [f"- {row.model}: {row.answer}" for row in answers.itertuples()]
        lines.append("")
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

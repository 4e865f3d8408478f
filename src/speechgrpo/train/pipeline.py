"""The main job (``speechgrpo demo``): the paper's comparison (its Tables 1-2) in miniature, per task.

1. synthesize the spoken task with espeak-ng (spoken QA and English->German speech translation, plus
   ASR clips to check the base hears);
2. take the base model: the bundled checkpoint (``speechgrpo build-base``), or one built here
   (``base: scratch``); it hears and answers text questions, but has seen no spoken-QA or spoken
   translation example, as Granite Speech before the paper's training;
3. per task, as separate runs: SFT, GRPO, MP-GRPO and SFT->GRPO from the base (MP-GRPO with LUFFY's
   shaping and SFT given GRPO's compute too in the full protocol), each validated on dev during training
   until its dev score stops rising, its best-dev checkpoint kept; the full protocol first searches the
   learning rates on dev, then trains every seed; the quick one trains the full run's first seed for its
   best-dev steps;
4. evaluate every model on test with the paper's decoding (T 0.9, top-p 0.9, mean of several passes),
   with completion lengths and each run's compute, and a paired bootstrap interval for each method
   minus SFT;
5. write ``results.md`` / ``results.csv`` / ``summary.json`` and PNG plots.

Each run resumes or is skipped when its output exists. Sizes, steps and rates come from
:class:`PipelineConfig` (YAML); the defaults fit a 2-core CPU (quick: ~8 min, full: ~64 min).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechgrpo.data import Example, build_synthetic, read_manifest, write_manifest
from speechgrpo.train.base_model import DEMO_VOICES
from speechgrpo.train.config import PAPER_METRICS, Stage, TrainConfig, check_numbers, load_layered

PROTOCOLS = ("quick", "full")
METHODS = ("base", "sft", "grpo", "sft_compute", "mp_grpo", "mp_grpo_luffy", "sft_grpo")
# the trainer stage and settings group of each trained method
_STAGES: dict[str, tuple[Stage, str]] = {
    "sft": ("sft", "sft"), "grpo": ("grpo", "grpo"), "sft_compute": ("sft", "sft"), "mp_grpo": ("mp_grpo", "grpo"),
    "mp_grpo_luffy": ("mp_grpo", "grpo"), "sft_grpo": ("grpo", "grpo")}
LUFFY_SHAPING = 0.1  # LUFFY's policy shaping gamma on off-policy tokens
_BUDGETED = ("base", "base_config", "seed", "sizes", "difficulty", "voices", "sft", "grpo", "tuned", "reward",
             "dev_examples")
# the quick run's steps per task and method: the first-seed best-dev steps of the full run of docs/demo.md
# (code of commit 5376071 with this bundled base, summary.json's best_steps), so that its runs end at the
# checkpoints that run selected; they hold for that run's settings only: with any of _BUDGETED changed, a
# quick run trains by the stopping rule
QUICK_BUDGETS: dict[str, dict[str, int]] = {
    "sqa": {"sft": 275, "grpo": 150, "sft_compute": 550, "mp_grpo": 325, "mp_grpo_luffy": 375, "sft_grpo": 425},
    "ast": {"sft": 25, "grpo": 50, "sft_compute": 375, "mp_grpo": 50, "mp_grpo_luffy": 50, "sft_grpo": 50}}
# the bundled base that run started from (model_fingerprint): a rebuilt bundled base voids QUICK_BUDGETS
QUICK_BUDGETS_BASE = "871fe273d596e1952f55c4db80a2b89214aa759654b2bf6af0710d1590b5243a"


@dataclass
class PipelineConfig:
    """The demo's knobs. ``protocol: quick`` trains one seed with the ``tuned`` learning rates (what the
    last full run chose); ``full`` searches them on dev (``search``), trains every seed of ``seeds`` and
    adds MP-GRPO with LUFFY's shaping."""

    output_dir: str = "demo_output"
    protocol: str = "quick"
    base: str = "bundled"  # bundled | scratch (speechgrpo build-base here) | a folder built by build-base
    base_config: dict[str, Any] = field(default_factory=dict)  # BaseConfig fields, for base: scratch
    seed: int = 0  # the data's seed; the base's held-out splits must be the same
    seeds: list[int] | None = None  # training seeds (None: [0] quick, [0, 1, 2] full)
    tasks: tuple[str, ...] = ("sqa", "ast")
    sizes: dict[str, int] = field(default_factory=lambda: {"train": 1000, "dev": 100, "test": 200})
    difficulty: int = 1
    voices: list[str] = field(default_factory=lambda: list(DEMO_VOICES))
    # None: every method in full; quick leaves out sft_compute (SFT trained on as many sequences as the same
    # seed's GRPO run generated, without patience: the paper's compute-matched SFT) and mp_grpo_luffy, to fit
    # 20 minutes on 2 cores (docs/demo.md)
    methods: list[str] | None = None
    # each run stops when `patience` validations in a row bring no better dev score, or at `steps` (its cap);
    # the caps give GRPO as many prompts as SFT (400 x 16 = 1,600 x 4)
    sft: dict[str, Any] = field(default_factory=lambda: {
        "steps": 400, "patience": 4, "prompts_per_step": 16, "micro_batch_size": 16, "eval_every": 25,
        "eval_batch_size": 50, "max_new_tokens": 48})
    grpo: dict[str, Any] = field(default_factory=lambda: {
        "steps": 1600, "patience": 6, "prompts_per_step": 4, "num_generations": 8, "max_new_tokens": 32,
        "micro_batch_size": 32, "eval_every": 25, "eval_batch_size": 50, "save_rollouts": True})
    # learning rates chosen on dev by the last full run, per task and settings group (quick uses them; the
    # full protocol searches `search`)
    tuned: dict[str, dict[str, float]] = field(default_factory=lambda: {
        "sqa": {"sft": 2e-4, "grpo": 2e-4}, "ast": {"sft": 2e-4, "grpo": 2e-4}})
    # the GRPO grid is cut to one rate to fit the full protocol in 100 minutes on 2 cores (docs/demo.md)
    search: dict[str, list[float]] = field(default_factory=lambda: {"sft": [2e-4, 5e-4, 1e-3], "grpo": [2e-4]})
    # quick protocol: steps per task and method trained without patience (None: QUICK_BUDGETS, the last full
    # run's first-seed best-dev steps: with a constant learning rate and the same seed and data order its runs
    # end at the checkpoints that run selected; with other settings, none); given, they replace QUICK_BUDGETS
    # whole, and a method or task not listed trains by its group's steps and patience ({}: the stopping rule)
    budgets: dict[str, dict[str, int]] | None = None
    reward: str = "bleu"
    dev_examples: int = 100  # validation during training on the first N dev examples of the task
    eval_passes: int = 3  # sampled passes at T 0.9, top-p 0.9 on test, averaged
    eval_metrics: tuple[str, ...] = PAPER_METRICS
    eval_max_new_tokens: int = 48
    bootstrap_resamples: int = 1000
    examples_shown: int = 3  # test examples per task with every model's greedy answer in results.md

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        unknown = [m for m in self.methods or () if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
        if self.methods is not None and "sft_grpo" in self.methods and "sft" not in self.methods:
            raise ValueError("sft_grpo starts from the sft run: methods must include sft")
        if self.methods is not None and "sft_compute" in self.methods and "grpo" not in self.methods:
            raise ValueError("sft_compute trains on as many sequences as the grpo run generated: methods must "
                             "include grpo")
        if self.budgets is not None and not (isinstance(self.budgets, dict)
                                             and all(isinstance(v, dict) for v in self.budgets.values())):
            raise ValueError(f"budgets must map tasks to {{method: steps}}, got {self.budgets!r}")
        extra = [t for t in self.budgets or {} if t not in self.tasks]
        if extra:
            raise ValueError(f"budgets name task(s) {', '.join(map(repr, extra))}; the tasks are "
                             f"{', '.join(self.tasks)}")
        for task, steps in (self.budgets or {}).items():
            bad = {m: n for m, n in steps.items() if m not in METHODS[1:] or isinstance(n, bool)
                   or not isinstance(n, int) or n < 1}
            if bad:
                raise ValueError(f"budgets[{task!r}] must map methods ({', '.join(METHODS[1:])}) to steps >= 1, "
                                 f"got {bad}")
        if self.budgets is not None and self.protocol != "quick":
            raise ValueError("budgets are the quick protocol's fixed steps; the full protocol trains each run until "
                             "its dev score stops rising (remove budgets)")
        missing = [t for t in self.tasks if self.protocol == "quick" and t not in self.tuned]
        if missing:
            raise ValueError(f"tuned has no learning rates for task(s) {', '.join(missing)}; run the full protocol "
                             "or give them")

    @property
    def training_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else ([0] if self.protocol == "quick" else [0, 1, 2])

    @property
    def step_budgets(self) -> dict[str, dict[str, int]]:
        """The fixed steps per task and method: the quick protocol's, none in the full protocol."""
        if self.protocol != "quick":
            return {}
        if self.budgets is not None:
            return self.budgets
        return {} if self.unbudgeted_changes else QUICK_BUDGETS

    @property
    def unbudgeted_changes(self) -> list[str]:
        """The settings that differ from those of the full run QUICK_BUDGETS come from."""
        defaults = PipelineConfig()
        changed = [name for name in _BUDGETED if getattr(self, name) != getattr(defaults, name)]
        if self.base == "bundled" and _bundled_fingerprint() != QUICK_BUDGETS_BASE:
            changed.append("the bundled base")
        return changed + (["seeds"] if self.training_seeds != [0] else [])

    @property
    def method_list(self) -> list[str]:
        if self.methods is not None:
            return ["base", *[m for m in METHODS[1:] if m in self.methods]]
        cut = ("sft_compute", "mp_grpo_luffy") if self.protocol == "quick" else ()
        return [m for m in METHODS if m not in cut]


def load_pipeline_config(path: str | Path | None = None, **overrides: Any) -> PipelineConfig:
    """The defaults, then the YAML file, then ``overrides``; mapping fields (``sizes``, ``sft``, ``grpo``,
    ``tuned``, ``search``, ``budgets``, ``base_config``) merged key by key."""
    return load_layered(PipelineConfig, path, overrides, "demo config")


# -- the base ------------------------------------------------------------------------------------------------
def base_config_for(config: PipelineConfig) -> Any:
    """The :class:`~speechgrpo.train.base_model.BaseConfig` whose held-out splits are this demo's."""
    from speechgrpo.train.base_model import BaseConfig

    return BaseConfig(**{"seed": config.seed, "tasks": (*config.tasks, "asr"), "difficulty": config.difficulty,
                         "held_out": {"dev": config.sizes["dev"], "test": config.sizes["test"]},
                         "voices": list(config.voices), **config.base_config,
                         "output_dir": str(Path(config.output_dir) / "base")})


def check_held_out(record: dict[str, Any], config: PipelineConfig, where: Path) -> None:
    """Refuse a base built with other held-out splits: its training data may hold this demo's dev/test."""
    built = record["config"]
    wanted = base_config_for(config)
    keys = ("seed", "difficulty", "held_out", "voices")
    differ = [k for k in keys if built[k] != getattr(wanted, k)] + ([] if list(built["tasks"]) == list(wanted.tasks)
                                                                     else ["tasks"])
    if differ:
        needed = {k: list(wanted.tasks) if k == "tasks" else getattr(wanted, k) for k in differ}
        raise ValueError(f"the base model {where} was built with other held-out splits ({', '.join(differ)}: "
                         f"built with { {k: built[k] for k in differ} }, this demo has {needed}), so its training "
                         "data may contain this demo's dev or test items; use the same settings or `base: scratch` "
                         "(speechgrpo demo --from-scratch)")


def resolve_base(config: PipelineConfig, show_progress: bool = True) -> Path:
    from speechgrpo.models.loading import bundled_base
    from speechgrpo.train.base_model import build_base, read_build_record

    if config.base == "scratch":
        built = Path(config.output_dir) / "base" / "model"
        return built if (built / "build.json").is_file() else build_base(base_config_for(config), show_progress)
    path = bundled_base() if config.base == "bundled" else Path(config.base)
    check_held_out(read_build_record(path), config, path)
    return path


# -- one training run ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """A finished run: its best-dev model and its compute."""

    model: Path
    record: dict[str, Any]


def train_run(out: Path, stage: Stage, start: Path, train_manifest: Path, dev_manifest: Path,
              settings: dict[str, Any], config: PipelineConfig, seed: int, show_progress: bool) -> Run:
    """Train (or reuse) one run with validation on dev; the model is its best-dev checkpoint, chosen by
    corpus BLEU when the reward is ``bleu``, else by the run's own reward on dev."""
    from speechgrpo.train.trainer import train

    train_config = TrainConfig(model=str(start), train_manifests=[str(train_manifest)], output_dir=str(out),
                               stage=stage, seed=seed, reward=config.reward, eval_manifests=[str(dev_manifest)],
                               eval_max_examples=config.dev_examples, eval_metrics=["bleu"],
                               checkpoint_every=10_000, **settings)
    wanted = json.loads(json.dumps(dataclasses.asdict(train_config)))
    done = out / "run.json"
    if done.is_file():  # reused only when it was trained with exactly these settings
        record = json.loads(done.read_text(encoding="utf-8"))
        made = record.get("train_config", {})
        changed = sorted(k for k in wanted.keys() | made.keys() if wanted.get(k) != made.get(k))
        if changed:
            raise ValueError(f"{out} was trained with other settings ({', '.join(changed)}); remove the folder "
                             f"to retrain it, or use another output_dir")
        return Run(Path(record["model"]), record)
    print(f"\n== {out.name}: {stage} from {start}, {train_config.steps} steps ==", file=sys.stderr, flush=True)
    started = time.perf_counter()
    final = train(train_config, show_progress=show_progress)
    seconds = time.perf_counter() - started
    best = json.loads((out / "best" / "best.json").read_text(encoding="utf-8"))
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    validations = sum(1 for row in log if "eval_bleu" in row)
    trained = log[-1]["step"]  # the cap, or the step where patience stopped the run
    generations = train_config.num_generations if stage != "sft" else 0
    rollouts = -(-trained // train_config.num_iterations) if stage != "sft" else 0
    record = {
        "model": str(out / "best"), "final": str(final), "stage": stage, "start": str(start), "seed": seed,
        "learning_rate": train_config.learning_rate, "steps": train_config.steps, "steps_trained": trained,
        "stopped_early": bool(log[-1].get("stopped_early")), "patience": train_config.patience,
        "best_step": best["step"], "best_metric": best["metric"], "best_dev": best["value"],
        "prompts_seen": (rollouts if stage != "sft" else trained) * train_config.prompts_per_step,
        "completions": rollouts * train_config.prompts_per_step * generations,
        "validation_generations": validations * min(config.dev_examples, len(read_manifest(dev_manifest))),
        "wall_s": round(seconds, 1), "train_config": wanted,
    }
    done.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return Run(out / "best", record)


def method_settings(method: str, config: PipelineConfig, task: str, learning_rate: float | None,
                    grpo_run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trainer settings of ``method`` on ``task``: its group's settings with the chosen learning rate,
    or the quick run's fixed steps (``step_budgets``) without patience. Otherwise ``sft_compute`` (SFT given
    GRPO's compute) takes ``grpo_run``, the same seed's GRPO record: as many training sequences as that run
    generated and scored, every step trained (no patience)."""
    group = _STAGES[method][1]
    settings = {**getattr(config, group)}
    settings["learning_rate"] = learning_rate if learning_rate is not None else config.tuned[task][group]
    if method == "mp_grpo_luffy":
        settings["off_policy_shaping"] = LUFFY_SHAPING
    budget = config.step_budgets.get(task, {}).get(method)
    if budget is not None:  # fixed steps (by default the full run's best-dev step)
        settings.update(steps=budget, patience=0)
    elif method == "sft_compute":
        if grpo_run is None:
            raise ValueError("sft_compute needs the same seed's grpo run (its completions set the budget)")
        settings["steps"] = max(1, -(-grpo_run["completions"] // settings["prompts_per_step"]))
        settings["patience"] = 0
    return settings


# -- evaluation ----------------------------------------------------------------------------------------------
def evaluate_run(model_dir: Path, examples: list[Example], config: PipelineConfig, path: Path) -> list[list[str]]:
    """The sampled answers of ``eval_passes`` passes (seeds 0..passes-1, the same for every model, so runs
    are paired), cached in ``path`` with the model's fingerprint and the decoding settings: a cache made
    by another model or other settings is regenerated."""
    key = {"model": model_fingerprint(model_dir), "passes": config.eval_passes,
           "max_new_tokens": config.eval_max_new_tokens, "examples": [e.id for e in examples],
           "random_streams": "per example"}
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(cached, dict) and cached.get("key") == key:
            answers: list[list[str]] = cached["answers"]
            return answers
    from speechgrpo.data import AudioCache
    from speechgrpo.models import SamplingConfig, TinySpeechLM
    from speechgrpo.train.evaluation import EvalConfig, generate_answers

    model = TinySpeechLM.load(model_dir)
    defaults = EvalConfig()
    sampling = SamplingConfig(config.eval_max_new_tokens, defaults.temperature, defaults.top_p)
    audio = AudioCache()
    answers = [generate_answers(model, examples, sampling, seed, defaults.batch_size, audio)
               for seed in range(config.eval_passes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "answers": answers}, ensure_ascii=False) + "\n", encoding="utf-8")
    return answers


@functools.cache
def _bundled_fingerprint() -> str:
    """The bundled base's :func:`model_fingerprint`, read once per process (it is asked for every run)."""
    from speechgrpo.models.loading import bundled_base

    return model_fingerprint(bundled_base())


def model_fingerprint(model_dir: Path) -> str:
    """SHA-256 over the names and bytes of the files of a saved model (its weights, config, tokenizer)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(model_dir).iterdir() if p.is_file() and p.name != "best.json"):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def greedy_answers(model_dir: Path, examples: list[Example], max_new_tokens: int) -> list[str]:
    from speechgrpo.data import AudioCache
    from speechgrpo.models import SamplingConfig, TinySpeechLM
    from speechgrpo.train.evaluation import generate_answers

    return generate_answers(TinySpeechLM.load(model_dir), examples, SamplingConfig(max_new_tokens, greedy=True), 0,
                            16, AudioCache())


# -- the whole job -------------------------------------------------------------------------------------------
def prepare_data(config: PipelineConfig, show_progress: bool = True) -> dict[str, Path]:
    """Synthesize the demo's data and write one manifest per task and split: ``{"sqa_train": path, ...}``."""
    out = Path(config.output_dir)
    manifests = build_synthetic(out / "data", seed=config.seed, sizes=config.sizes, tasks=(*config.tasks, "asr"),
                                difficulty=config.difficulty, voices=config.voices, progress=show_progress)
    per_task: dict[str, Path] = {}
    for split, path in manifests.items():
        examples = read_manifest(path)
        for task in (*config.tasks, "asr"):
            per_task[f"{task}_{split}"] = write_manifest(out / "stage_data" / f"{task}_{split}.jsonl",
                                                         [e for e in examples if e.task == task])
    return per_task


def search_folder(config: PipelineConfig, task: str, group: str, rate: float) -> Path:
    return Path(config.output_dir) / "search" / task / f"{group}-lr{rate:g}"


def run_folder(config: PipelineConfig, task: str, method: str, seed: int, rate: float) -> Path:
    """Where a method's run for a seed lives. In the full protocol, SFT and GRPO at the first seed are the
    search's runs at the chosen rate: the same settings and seed, so training them again would repeat them."""
    if config.protocol == "full" and method in ("sft", "grpo") and seed == config.training_seeds[0]:
        return search_folder(config, task, method, rate)
    return Path(config.output_dir) / "runs" / task / f"{method}-seed{seed}"


def search_learning_rates(task: str, base: Path, manifests: dict[str, Path], config: PipelineConfig,
                          show_progress: bool) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Each settings group's learning rate with the best best-dev BLEU (first training seed), and the rows."""
    chosen: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    seed = config.training_seeds[0]
    for group in ("sft", "grpo"):
        best: tuple[float, float] | None = None
        for rate in config.search[group]:
            run = train_run(search_folder(config, task, group, rate), group, base,
                            manifests[f"{task}_train"], manifests[f"{task}_dev"],
                            method_settings(group, config, task, rate), config, seed, show_progress)
            rows.append({"task": task, "method": group, **{k: run.record[k] for k in (
                "learning_rate", "best_step", "best_dev", "wall_s")}})
            if best is None or run.record["best_dev"] > best[1]:
                best = (rate, run.record["best_dev"])
        assert best is not None
        chosen[group] = best[0]
    return chosen, rows


def run_pipeline(config: PipelineConfig, show_progress: bool = True) -> Path:
    """Run every stage (each resumes or is skipped when done) and return the results folder."""
    from speechgrpo.train.base_model import asr_wer, read_build_record
    from speechgrpo.train.demo_report import write_results

    started = time.perf_counter()
    seconds: dict[str, float] = {}
    out = Path(config.output_dir)
    base = resolve_base(config, show_progress)  # first: a base built for other splits fails before any work
    if config.protocol == "quick" and config.budgets is None and config.unbudgeted_changes:
        changed = ", ".join(config.unbudgeted_changes)
        print(f"quick protocol: QUICK_BUDGETS hold for the default settings only ({changed} changed here), "
              "so every run trains by the stopping rule (give `budgets` for fixed steps)",
              file=sys.stderr, flush=True)
    seconds["base"] = time.perf_counter() - started
    stage_started = time.perf_counter()
    manifests = prepare_data(config, show_progress)
    seconds["synthesis"] = time.perf_counter() - stage_started
    test_asr = read_manifest(manifests["asr_test"])
    hearing = {"base_asr_test_wer": asr_wer(base, test_asr), "asr_test_clips": len(test_asr),
               "build": read_build_record(base)}

    runs: list[dict[str, Any]] = []
    search_rows: list[dict[str, Any]] = []
    chosen: dict[str, dict[str, float]] = {}
    answers: dict[tuple[str, str, int], list[list[str]]] = {}
    shown: list[dict[str, str]] = []
    tests: dict[str, list[Example]] = {}
    for task in config.tasks:
        task_started = time.perf_counter()
        test = tests[task] = read_manifest(manifests[f"{task}_test"])
        if config.protocol == "full":
            chosen[task], rows = search_learning_rates(task, base, manifests, config, show_progress)
            search_rows += rows
        else:
            chosen[task] = dict(config.tuned[task])
        models: dict[tuple[str, int], Path] = {}
        records: dict[tuple[str, int], dict[str, Any]] = {}
        for seed in config.training_seeds:
            for method in config.method_list[1:]:
                stage, group = _STAGES[method]
                start = models[("sft", seed)] if method == "sft_grpo" else base
                settings = method_settings(method, config, task, chosen[task][group], records.get(("grpo", seed)))
                run = train_run(run_folder(config, task, method, seed, chosen[task][group]), stage, start,
                                manifests[f"{task}_train"], manifests[f"{task}_dev"], settings, config, seed,
                                show_progress)
                models[(method, seed)] = run.model
                records[(method, seed)] = run.record
                runs.append({"task": task, "method": method, **run.record})
        print(f"\n== evaluating on {task} ({len(test)} test examples, {config.eval_passes} passes) ==",
              file=sys.stderr, flush=True)
        answers[(task, "base", 0)] = evaluate_run(base, test, config, out / "answers" / task / "base.json")
        for (method, seed), model in models.items():
            answers[(task, method, seed)] = evaluate_run(model, test, config,
                                                         out / "answers" / task / f"{method}-seed{seed}.json")
        first = test[:config.examples_shown]
        first_seed = config.training_seeds[0]
        for method in config.method_list:
            model = base if method == "base" else models[(method, first_seed)]
            for example, answer in zip(first, greedy_answers(model, first, config.eval_max_new_tokens), strict=True):
                shown.append({"task": task, "id": example.id, "model": method, "answer": answer})
        seconds[task] = time.perf_counter() - task_started
    seconds["total"] = time.perf_counter() - started
    seed0 = config.training_seeds[0]
    seed0_runs = [r for r in runs if r["seed"] == seed0]
    stopped = {t: {r["method"]: r["steps_trained"] for r in seed0_runs if r["task"] == t} for t in config.tasks}
    best = {t: {r["method"]: r["best_step"] for r in seed0_runs if r["task"] == t} for t in config.tasks}
    summary = {"protocol": config.protocol, "seeds": config.training_seeds, "learning_rates": chosen,
               "stopping_steps": stopped, "best_steps": best,  # best_steps: what `budgets` takes for the quick run
               "hearing": hearing, "seconds": {k: round(v, 1) for k, v in seconds.items()},
               "config": dataclasses.asdict(config)}
    return write_results(answers, tests, runs, search_rows, shown, summary, config, out / "results")

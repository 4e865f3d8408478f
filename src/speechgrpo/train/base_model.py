"""The demo's base model: a small speech LLM that hears, trained from scratch on the synthetic task, and
the checkpoint of it that ships with the package.

Granite Speech answered LibriSQA at 27.7 BLEU before any spoken-QA training, because it could hear and
its LLM could answer. The bundled model gets there in two stages, measured to be what the time buys on a
2-core CPU (``docs/demo.md``):

1. **Hearing** (``ctc``): the audio encoder alone, trained with CTC on many fresh ASR clips. Training
   the whole model on few clips memorizes them (greedy WER 75-84% on unseen clips after 800 clips x 2);
   CTC on 8,000 clips reaches 25% CTC-greedy WER, the decoder then only has to read what it hears.
2. **Answering** (``joint``): the whole model with cross-entropy (plus CTC) on the ASR clips, on the
   *text* versions of spoken QA and translation (passage or sentence given as text), the skills an
   LLM brings, and on spoken translation from another domain (English questions, two-clause statements
   and negated or future one-clause statements, a third of the demo's vocabulary left out:
   :mod:`speechgrpo.data.synthetic.other_domain`), as Granite Speech had been trained on speech
   translation but not on CoVoST2. No spoken-QA example and none of the demo's spoken translations is
   seen. The best dev ASR WER checkpoint is kept.

The dev and test splits are the demo's own (same seed, tasks, difficulty and sizes): the generator draws
test, then dev, then train, and never repeats a passage or sentence across splits, so no dev or test
item is in the base's training data. ``build.json`` records the settings, times and WERs; the demo
refuses a base whose held-out splits differ from its own.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speechgrpo.data import Example, read_manifest, synthesize_examples, synthetic_examples, write_manifest
from speechgrpo.train.config import check_numbers, load_layered

if TYPE_CHECKING:
    from speechgrpo.models.word_tokenizer import WordTokenizer

DEMO_VOICES = ["en-us+m1", "en-us+f2", "en-gb+m3", "en-gb+f4"]


@dataclass
class BaseConfig:
    """How the base is built. ``held_out`` (dev and test sizes per task), ``seed``, ``tasks`` and
    ``difficulty`` must match the demo's, so that its dev and test items are the ones held out here."""

    output_dir: str = "demo_base"
    seed: int = 0
    tasks: tuple[str, ...] = ("sqa", "ast", "asr")
    difficulty: int = 1
    held_out: dict[str, int] = field(default_factory=lambda: {"dev": 100, "test": 200})
    asr_clips: int = 32_000  # fresh training clips for the hearing stage (the train split's ASR items)
    joint_asr_clips: int = 24_000  # the first N of them in the answering stage, beside the text examples
    text_examples: int = 9_000  # text-only SQA and AST examples per task in the answering stage
    translation_clips: int = 12_000  # spoken translations of another domain (ast_other) in the answering stage
    voices: list[str] = field(default_factory=lambda: list(DEMO_VOICES))
    model: dict[str, Any] = field(default_factory=dict)  # TinySpeechLMConfig fields
    tokenizer_examples: int = 20_000  # generated examples per task (all difficulties) the vocabulary is read from
    ctc: dict[str, Any] = field(default_factory=lambda: {
        "steps": 9_000, "learning_rate": 2e-3, "warmup_steps": 50, "lr_schedule": "cosine", "ce_weight": 0.0,
        "ctc_weight": 1.0, "prompts_per_step": 16, "micro_batch_size": 16})
    joint: dict[str, Any] = field(default_factory=lambda: {
        "steps": 10_000, "learning_rate": 1e-3, "warmup_steps": 50, "lr_schedule": "cosine", "ctc_weight": 1.0,
        "prompts_per_step": 16, "micro_batch_size": 16, "eval_every": 500})
    eval_max_new_tokens: int = 48

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.joint_asr_clips > self.asr_clips:
            raise ValueError(f"joint_asr_clips ({self.joint_asr_clips}) cannot exceed asr_clips ({self.asr_clips})")
        if set(self.held_out) != {"dev", "test"}:
            raise ValueError(f"held_out must give the dev and test sizes, got {self.held_out}")
        if "asr" not in self.tasks:
            raise ValueError("the base is trained on ASR: tasks must include 'asr'")


def load_base_config(path: str | Path | None = None, **overrides: Any) -> BaseConfig:
    """The defaults, then the YAML file, then ``overrides`` (mappings merged key by key)."""
    return load_layered(BaseConfig, path, overrides, "base config")


def read_build_record(model_dir: str | Path) -> dict[str, Any]:
    """``build.json`` of a base built by :func:`build_base` (settings, times, WERs)."""
    path = Path(model_dir) / "build.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {model_dir} was not built by `speechgrpo build-base`")
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record


def vocabulary_texts(config: BaseConfig) -> list[str]:
    """Texts whose words make the tokenizer: a large generated sample of every task at every difficulty
    (prompts, transcripts, references), so that any demo build at these settings is covered."""
    from speechgrpo.data import PROMPTS, corpus_texts

    texts: list[str] = []
    for difficulty in (1, 2, 3):
        splits = synthetic_examples(config.seed + 1000 + difficulty, {"train": config.tokenizer_examples},
                                    tasks=("sqa", "ast", "asr", "ast_other"), difficulty=difficulty,
                                    voices=config.voices)
        texts += corpus_texts(splits["train"])
    texts += [p.format(question="") for prompts in PROMPTS.values() for p in prompts]
    return texts


def base_tokenizer(config: BaseConfig, examples: list[Example]) -> WordTokenizer:
    """The word-level tokenizer of :func:`vocabulary_texts`; where it misses a word of the build's own
    ``examples`` (a small ``tokenizer_examples``), their texts are added, so the base never trains on ``<unk>``."""
    from speechgrpo.data import corpus_texts
    from speechgrpo.models.word_tokenizer import build_tokenizer

    texts = vocabulary_texts(config)
    tokenizer = build_tokenizer(texts)
    own = corpus_texts(examples)
    if any(tokenizer.unknown_words(text) for text in own):
        tokenizer = build_tokenizer([*texts, *own])
    return tokenizer


def translation_overlap(translations: list[Example], demo_test: list[Example]) -> dict[str, Any]:
    """How much of the demo's translation test the base's spoken translations cover: the share of the test
    references' German word types (and of their word tokens) that occur in the translations' references."""
    from speechgrpo.data.synthetic.benchmark import words

    seen = {w for e in translations for reference in e.references for w in words(reference)}
    tokens = [w for e in demo_test for w in words(e.references[0])]
    types = set(tokens)
    return {"test_word_types": len(types), "types_covered": round(len(types & seen) / max(1, len(types)), 4),
            "tokens_covered": round(sum(w in seen for w in tokens) / max(1, len(tokens)), 4)}


def asr_wer(model_dir: str | Path, examples: list[Example], max_new_tokens: int = 48) -> float:
    """Greedy ASR word error rate (%) of a model on ASR examples."""
    from speechgrpo.models import TinySpeechLM
    from speechgrpo.train.evaluation import EvalConfig, evaluate_model

    model = TinySpeechLM.load(model_dir)
    result = evaluate_model(model, examples, EvalConfig(seeds=(), max_new_tokens=max_new_tokens, metrics=("wer",)))
    return float(result.scores["greedy"]["wer"])


def build_base(config: BaseConfig, show_progress: bool = True) -> Path:
    """Build the base in ``config.output_dir`` (each stage resumes if interrupted) and return the model
    folder ``<output_dir>/model`` (config, weights, tokenizer and ``build.json``)."""
    import torch

    from speechgrpo.data.synthetic.tts import espeak_version
    from speechgrpo.models import TinySpeechLM, TinySpeechLMConfig
    from speechgrpo.train.config import TrainConfig
    from speechgrpo.train.pipeline import text_versions
    from speechgrpo.train.trainer import train

    started = time.perf_counter()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "base_config.json"  # a resumed build must be the same build: its data is on disk
    wanted = json.loads(json.dumps(dataclasses.asdict(config)))
    built = json.loads(settings.read_text(encoding="utf-8")) if settings.is_file() else wanted
    if built != wanted:
        changed = sorted(k for k in wanted if built.get(k) != wanted[k])
        raise ValueError(f"{out} holds a build with other settings ({', '.join(changed)}); resume it with its "
                         f"own settings ({settings}) or use another output_dir")
    settings.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")
    timing = out / "seconds.json"  # each step's time when it ran, kept across resumed invocations
    seconds: dict[str, float] = json.loads(timing.read_text(encoding="utf-8")) if timing.is_file() else {}

    def took(name: str, since: float) -> None:
        seconds[name] = time.perf_counter() - since
        timing.write_text(json.dumps(seconds, indent=2) + "\n", encoding="utf-8")
    sizes = {"train": max(config.asr_clips, config.text_examples), **config.held_out}
    splits = synthetic_examples(config.seed, sizes, tasks=config.tasks, difficulty=config.difficulty,
                                voices=config.voices)
    asr_train = [e for e in splits["train"] if e.task == "asr"][:config.asr_clips]
    asr_dev = [e for e in splits["dev"] if e.task == "asr"]
    asr_test = [e for e in splits["test"] if e.task == "asr"]
    translations = synthetic_examples(config.seed, {"train": config.translation_clips}, tasks=("ast_other",),
                                   difficulty=config.difficulty, voices=config.voices)["train"]
    data = out / "data"
    manifests: dict[str, Path] = {}
    synthesized = False
    for name, examples in (("asr_train", asr_train), ("asr_dev", asr_dev), ("asr_test", asr_test),
                           ("ast_other_train", translations)):
        manifests[name] = data / f"{name}.jsonl"
        if not manifests[name].is_file():
            synthesized = True
            write_manifest(manifests[name], synthesize_examples(examples, data, progress=show_progress,
                                                                desc=f"espeak-ng {name}"))
    text = [e for task in ("sqa", "ast") if task in config.tasks
            for e in [x for x in splits["train"] if x.task == task][:config.text_examples]]
    joint_asr = read_manifest(manifests["asr_train"])[:config.joint_asr_clips]
    joint_manifest = write_manifest(data / "joint.jsonl", joint_asr + text_versions(text)
                                    + read_manifest(manifests["ast_other_train"]))
    if synthesized:
        took("synthesis", started)

    initial = out / "initial"
    if not (initial / "config.json").is_file():
        stage_started = time.perf_counter()
        torch.manual_seed(config.seed)
        tokenizer = base_tokenizer(config, asr_train + asr_dev + asr_test + text + translations)
        TinySpeechLM.create(TinySpeechLMConfig(**config.model), tokenizer).save(initial)
        took("tokenizer", stage_started)

    def stage(name: str, start: Path, manifest: Path, settings: dict[str, Any]) -> Path:
        stage_started = time.perf_counter()
        values = dict(settings)
        if values.get("eval_every"):  # validation on the dev clips, the best WER kept
            values.update(eval_manifests=[str(manifests["asr_dev"])], eval_metrics=["wer"], best_metric="wer")
        train_config = TrainConfig(model=str(start), train_manifests=[str(manifest)], output_dir=str(out / name),
                                   stage="sft", seed=config.seed, max_new_tokens=config.eval_max_new_tokens,
                                   checkpoint_every=500, **values)
        print(f"\n== base, {name}: {train_config.steps} steps ==", file=sys.stderr, flush=True)
        done = (out / name / "final" / "config.json").is_file()
        final = train(train_config, show_progress=show_progress)
        if not done:
            took(name, stage_started)
        best = out / name / "best"
        return best if (best / "config.json").is_file() else final

    hearing = stage("ctc", initial, manifests["asr_train"], config.ctc)
    answering = stage("joint", hearing, joint_manifest, config.joint)

    model_dir = out / "model"
    TinySpeechLM.load(answering).save(model_dir)
    evaluation_started = time.perf_counter()
    dev_wer = asr_wer(model_dir, read_manifest(manifests["asr_dev"]), config.eval_max_new_tokens)
    test_wer = asr_wer(model_dir, read_manifest(manifests["asr_test"]), config.eval_max_new_tokens)
    took("evaluation", evaluation_started)
    seconds["total"] = sum(seconds.values())
    model = TinySpeechLM.load(model_dir)

    def log(name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (out / name / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]

    ctc_log, joint_log = log("ctc"), log("joint")
    curves = {"ctc_loss_per_500_steps": [round(float(np.mean([r["ctc_loss"] for r in ctc_log[i:i + 500]])), 3)
                                         for i in range(0, len(ctc_log), 500)],
              "joint_dev_wer": [[r["step"], round(r["eval_wer"], 2)] for r in joint_log if "eval_wer" in r]}
    record = {"config": dataclasses.asdict(config), "tts": espeak_version(),
              "parameters": sum(p.numel() for p in model.net().parameters()),
              "vocabulary": model.tokenizer.vocab_size, "asr_train_hours": round(
                  sum(e.duration or 0.0 for e in read_manifest(manifests["asr_train"])) / 3600, 2),
              "translation_hours": round(
                  sum(e.duration or 0.0 for e in read_manifest(manifests["ast_other_train"])) / 3600, 2),
              "translation_vocabulary": translation_overlap(
                  translations, [e for e in splits["test"] if e.task == "ast"]),
              "dev_wer": round(dev_wer, 2), "test_wer": round(test_wer, 2),
              "dev_clips": len(asr_dev), "test_clips": len(asr_test),
              "seconds": {k: round(v, 1) for k, v in seconds.items()}, "curves": curves}
    (model_dir / "build.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2), flush=True)
    return model_dir

"""The demo's base model: a small speech LLM that hears, trained from scratch, and the checkpoint of it that
ships with the package.

Granite Speech answered LibriSQA at 27.7 BLEU before any spoken-QA training, because its LLM had learnt
question answering and translation in general (not LibriSQA's answers or CoVoST2's sentences) and its
speech side let that LLM hear. The bundled base is built the same way, in two stages measured to be what
the time buys on a 2-core CPU (``docs/demo.md``, the base's attempts 1-11):

1. **Reading** (``text``): the language model on text only. Question answering of another domain
   (:mod:`speechgrpo.data.synthetic.other_domain_qa`: its own passages and questions, answered by
   restating the question), text translation of another domain over the whole lexicon (``mt_other``),
   the text of the other domain's spoken translations (``ast_other``), and transcripts to repeat (ASR
   sentences and whole passages of the demo's domain). None of the demo's QA or translation pairs.
2. **Hearing** (``ctc``): the audio encoder, projector and a CTC output layer of their own
   (``ctc_posteriors``), the language model frozen, CTC only, on every heard clip: ASR sentences, whole
   spoken passages (transcribed, no question asked) and the other domain's spoken translations (their
   English transcripts). The language model reads each spoken word (CTC compression) as its
   posterior-weighted word embedding, LegoSLM's way of joining a CTC encoder to an LLM, so it answers
   speech as it answers text without being trained on audio. Validated on the dev ASR clips (sampled WER
   through the language model), the best kept.

No spoken-QA example and none of the demo's spoken translations is seen. The dev and test splits are the
demo's own (same seed, tasks, difficulty and sizes): the generator draws test, then dev, then train, and
never repeats a passage, translated sentence or ASR sentence across splits, and the other domain's
examples that hold a held-out sentence are left out (:func:`other_domain`), so no dev or test item is in
the base's training data (the spoken passages are the demo's SQA train passages, which may share a fact
sentence with a held-out passage, as the demo's own SFT data does).
``build.json`` records the settings, times and WERs; the demo refuses a base whose held-out splits differ
from its own.
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
from speechgrpo.data.synthetic.benchmark import split_sentences
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
    asr_clips: int = 40_000  # ASR sentences heard (the train split's ASR items)
    passages: int = 6_000  # whole spoken passages of the demo's SQA train split, transcribed: heard and read
    translation_clips: int = 12_000  # spoken translations of another domain (ast_other): heard and read as text
    qa_examples: int = 15_000  # question answering of another domain (qa_other), read
    mt_examples: int = 12_000  # text translation of another domain over the whole lexicon (mt_other), read
    read_asr: int = 9_000  # the first N ASR sentences' transcripts, read (a transcript to repeat)
    voices: list[str] = field(default_factory=lambda: list(DEMO_VOICES))
    model: dict[str, Any] = field(default_factory=lambda: {"ctc_compress": True, "ctc_posteriors": True})
    tokenizer_examples: int = 20_000  # generated examples per task (all difficulties) the vocabulary is read from
    text: dict[str, Any] = field(default_factory=lambda: {
        "steps": 10_000, "learning_rate": 1e-3, "warmup_steps": 50, "lr_schedule": "cosine",
        "prompts_per_step": 16, "micro_batch_size": 16,
        # the reading stage's training seed (``seed`` draws the data): the best of 0-2 on the held-out
        # spoken-QA probe (scripts/base_probes.py; docs/demo.md, attempt 16)
        "seed": 2})
    ctc: dict[str, Any] = field(default_factory=lambda: {
        "steps": 14_000, "learning_rate": 2e-3, "warmup_steps": 50, "lr_schedule": "cosine", "ce_weight": 0.0,
        "ctc_weight": 1.0, "prompts_per_step": 16, "micro_batch_size": 16, "eval_every": 2_000, "freeze": ["lm."]})
    eval_max_new_tokens: int = 48

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.read_asr > self.asr_clips:
            raise ValueError(f"read_asr ({self.read_asr}) cannot exceed asr_clips ({self.asr_clips})")
        if set(self.held_out) != {"dev", "test"}:
            raise ValueError(f"held_out must give the dev and test sizes, got {self.held_out}")
        if "asr" not in self.tasks:
            raise ValueError("the base is trained on ASR: tasks must include 'asr'")
        if self.passages and "sqa" not in self.tasks:
            raise ValueError(f"passages ({self.passages}) are the spoken-QA train split's: tasks must include 'sqa'")
        if self.text.get("eval_every"):
            raise ValueError("text.eval_every: the reading stage has no trained audio side to validate on the dev "
                             "ASR clips (the hearing stage is validated)")


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


def read_versions(examples: list[Example]) -> list[Example]:
    """The examples as text: the spoken (or given) passage or sentence written before the prompt, no audio."""
    out = []
    for e in examples:
        transcript = e.meta.get("transcript")
        if not transcript:
            raise ValueError(f"example {e.id} has no transcript to give as text")
        out.append(dataclasses.replace(e, id=f"{e.id}-text", audio=None, prompt=f"{transcript}\n{e.prompt}",
                                       task=f"{e.task}_text"))
    return out


def spoken_passages(examples: list[Example], seed: int) -> list[Example]:
    """Spoken-QA examples as ASR of their whole passage (its audio, an ASR prompt, the passage as reference):
    no question is asked."""
    from speechgrpo.data import PROMPTS, pick_prompt

    out = []
    for i, e in enumerate(examples):
        uid = f"passage-{e.split}-{i:05d}"
        meta = {k: e.meta[k] for k in ("transcript", "voice", "speed", "pitch")} | {"source": "passage"}
        out.append(dataclasses.replace(e, id=uid, audio=f"audio/{e.split}/{uid}.wav", task="asr", meta=meta,
                                       prompt=pick_prompt(PROMPTS["asr"], uid, seed),
                                       references=(str(e.meta["transcript"]),)))
    return out


def _sentences(example: Example) -> set[str]:
    return {s for text in (str(example.meta.get("transcript") or ""), *example.references)
            for s in split_sentences(text)}


def other_domain(config: BaseConfig, splits: dict[str, list[Example]]) -> tuple[list[Example], ...]:
    """The other domain's spoken translations, text QA and text translations (``translation_clips``,
    ``qa_examples``, ``mt_examples`` of them). Their generators write their own register, but a short
    statement can still be one of the demo's (*A baker was lazy.*, an AST test source, in a QA passage), so
    an example holding any sentence of the held-out ``splits`` (dev and test) is left out."""
    held_out = {s for split in ("dev", "test") for e in splits[split] for s in _sentences(e)}
    wanted = {"ast_other": config.translation_clips, "qa_other": config.qa_examples, "mt_other": config.mt_examples}
    most = max(wanted.values())
    drawn = synthetic_examples(config.seed, {"train": most + most // 50 + 10}, tasks=tuple(wanted),
                               difficulty=config.difficulty, voices=config.voices)["train"]
    kept = {task: [e for e in drawn if e.task == task and not _sentences(e) & held_out][:n]
            for task, n in wanted.items()}
    short = {task: len(kept[task]) for task, n in wanted.items() if len(kept[task]) < n}
    if short:
        raise ValueError(f"only {short} other-domain examples hold no held-out sentence (wanted {wanted})")
    return tuple(kept.values())


def build_base(config: BaseConfig, show_progress: bool = True) -> Path:
    """Build the base in ``config.output_dir`` (each stage resumes if interrupted) and return the model
    folder ``<output_dir>/model`` (config, weights, tokenizer and ``build.json``)."""
    import torch

    from speechgrpo.data.synthetic.tts import espeak_version
    from speechgrpo.models import TinySpeechLM, TinySpeechLMConfig
    from speechgrpo.train.config import TrainConfig
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

    def took(name: str, spent: float) -> None:
        seconds[name] = spent
        timing.write_text(json.dumps(seconds, indent=2) + "\n", encoding="utf-8")
    sizes = {"train": max(config.asr_clips, config.passages), **config.held_out}
    splits = synthetic_examples(config.seed, sizes, tasks=config.tasks, difficulty=config.difficulty,
                                voices=config.voices)
    asr_train = [e for e in splits["train"] if e.task == "asr"][:config.asr_clips]
    asr_dev = [e for e in splits["dev"] if e.task == "asr"]
    asr_test = [e for e in splits["test"] if e.task == "asr"]
    passages = spoken_passages([e for e in splits["train"] if e.task == "sqa"][:config.passages], config.seed)
    translations, qa, mt = other_domain(config, splits)
    data = out / "data"
    manifests: dict[str, Path] = {}
    synthesized = False
    for name, examples in (("asr_train", asr_train), ("asr_dev", asr_dev), ("asr_test", asr_test),
                           ("passages_train", passages), ("ast_other_train", translations)):
        manifests[name] = data / f"{name}.jsonl"
        if not manifests[name].is_file():
            synthesized = True
            write_manifest(manifests[name], synthesize_examples(examples, data, progress=show_progress,
                                                                desc=f"espeak-ng {name}"))
    heard = [read_manifest(manifests[name]) for name in ("asr_train", "passages_train", "ast_other_train")]
    text_manifest = write_manifest(data / "text.jsonl", read_versions(
        qa + mt + asr_train[:config.read_asr] + passages + translations))
    hearing_manifest = write_manifest(data / "heard.jsonl", [e for rows in heard for e in rows])
    if synthesized:
        took("synthesis", time.perf_counter() - started)

    initial = out / "initial"
    if not (initial / "config.json").is_file():
        stage_started = time.perf_counter()
        torch.manual_seed(config.seed)
        tokenizer = base_tokenizer(config, asr_train + asr_dev + asr_test + passages + translations + qa + mt)
        TinySpeechLM.create(TinySpeechLMConfig(**config.model), tokenizer).save(initial)
        took("tokenizer", time.perf_counter() - stage_started)

    def stage(name: str, start: Path, manifest: Path, settings: dict[str, Any]) -> Path:
        values = dict(settings)
        seed = values.pop("seed", config.seed)  # a stage may train with its own seed; the data are config.seed's
        if values.get("eval_every"):  # validation on the dev clips, the best WER kept
            values.update(eval_manifests=[str(manifests["asr_dev"])], eval_metrics=["wer"], best_metric="wer")
        train_config = TrainConfig(model=str(start), train_manifests=[str(manifest)], output_dir=str(out / name),
                                   stage="sft", seed=seed, max_new_tokens=config.eval_max_new_tokens,
                                   checkpoint_every=500, **values)
        print(f"\n== base, {name}: {train_config.steps} steps ==", file=sys.stderr, flush=True)
        done = (out / name / "final" / "config.json").is_file()
        stage_started = time.perf_counter()
        final = train(train_config, show_progress=show_progress)
        if not done:  # the training loop's time, summed over the runs an interrupted stage took
            last = json.loads((out / name / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])
            if "elapsed_s" not in last:  # its last row predates elapsed_s: only this process's time is known
                print(f"base, {name}: its time in seconds.json is this run's only (its log predates elapsed_s)",
                      file=sys.stderr, flush=True)
            took(name, float(last.get("elapsed_s", time.perf_counter() - stage_started)))
        best = out / name / "best"
        return best if (best / "config.json").is_file() else final

    reading = stage("text", initial, text_manifest, config.text)
    hearing = stage("ctc", reading, hearing_manifest, config.ctc)

    model_dir = out / "model"
    TinySpeechLM.load(hearing).save(model_dir)
    evaluation_started = time.perf_counter()
    dev_wer = asr_wer(model_dir, read_manifest(manifests["asr_dev"]), config.eval_max_new_tokens)
    test_wer = asr_wer(model_dir, read_manifest(manifests["asr_test"]), config.eval_max_new_tokens)
    took("evaluation", time.perf_counter() - evaluation_started)
    seconds["total"] = sum(seconds.values())
    model = TinySpeechLM.load(model_dir)

    def log(name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (out / name / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]

    def per_500(rows: list[dict[str, Any]], key: str) -> list[float]:
        return [round(float(np.mean([r[key] for r in rows[i:i + 500]])), 3)
                for i in range(0, len(rows), 500)]

    text_log, ctc_log = log("text"), log("ctc")
    curves = {"text_loss_per_500_steps": per_500(text_log, "loss"),
              "ctc_loss_per_500_steps": per_500(ctc_log, "ctc_loss"),
              "ctc_dev_wer": [[r["step"], round(r["eval_wer"], 2)] for r in ctc_log if "eval_wer" in r]}
    record = {"config": dataclasses.asdict(config), "tts": espeak_version(),
              "parameters": sum(p.numel() for p in model.net().parameters()),
              "vocabulary": model.tokenizer.vocab_size, "asr_train_hours": round(
                  sum(e.duration or 0.0 for e in heard[0]) / 3600, 2),
              "passage_hours": round(sum(e.duration or 0.0 for e in heard[1]) / 3600, 2),
              "translation_hours": round(sum(e.duration or 0.0 for e in heard[2]) / 3600, 2),
              "translation_vocabulary": translation_overlap(
                  translations, [e for e in splits["test"] if e.task == "ast"]),
              "dev_wer": round(dev_wer, 2), "test_wer": round(test_wer, 2),
              "dev_clips": len(asr_dev), "test_clips": len(asr_test),
              "seconds": {k: round(v, 1) for k, v in seconds.items()}, "curves": curves}
    (model_dir / "build.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2), flush=True)
    return model_dir

"""The synthetic spoken benchmark: spoken QA, English->German speech translation and ASR, spoken by
espeak-ng with varied voices, written as manifests.

Layout of a built folder::

    train.jsonl dev.jsonl test.jsonl     manifests (all tasks; filter on ``task``)
    audio/<split>/<id>.wav               16 kHz mono 16-bit PCM
    stats.json                           build settings, sizes, lengths, vocabularies, baselines

Everything is drawn from ``random.Random`` seeded by (seed, task, split), so the same arguments give
byte-identical manifests and audio. Splits are generated test first, then dev, then train, and a
candidate whose passage (SQA) or sentence (AST, ASR, and the sentences of SQA passages) already
appears in an earlier split is redrawn: no passage or sentence is shared between splits, and the test
set does not change when the training size does.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from speechgrpo.data.audio import SAMPLE_RATE, write_wav
from speechgrpo.data.manifest import Example, corpus_texts, write_manifest
from speechgrpo.data.prompts import PROMPTS
from speechgrpo.data.synthetic import lexicon
from speechgrpo.data.synthetic.english_german import sample_sentence
from speechgrpo.data.synthetic.other_domain import Question, sample_other_domain
from speechgrpo.data.synthetic.other_domain_qa import sample_other_qa
from speechgrpo.data.synthetic.spoken_qa import JOBS, sample_passage
from speechgrpo.data.synthetic.tts import (
    DEFAULT_VOICES,
    PITCH,
    SPEED_WPM,
    Voice,
    espeak_binary,
    espeak_version,
    sample_voice,
)
from speechgrpo.data.synthetic.tts import synthesize as tts_synthesize

SPLITS = ("train", "dev", "test")
TASKS = ("sqa", "ast", "asr")
DEFAULT_SIZES: dict[str, int] = {"train": 2000, "dev": 200, "test": 200}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+")


class SyntheticError(RuntimeError):
    """The requested data set cannot be generated (e.g. more distinct items than the grammar yields)."""


def words(text: str) -> list[str]:
    """Lower-cased word tokens (for lengths and vocabulary sizes)."""
    return _WORD.findall(text.lower())


def _sqa(rng: random.Random, difficulty: int) -> tuple[str, dict[str, Any], list[str], list[str]]:
    passage = sample_passage(rng, difficulty)
    qa = rng.choice(passage.qas)
    meta = {"transcript": passage.text, "question": qa.question, "fact": qa.fact, "short_answer": qa.short,
            "people": len(passage.people), "sentences": len(passage.sentences)}
    return passage.text, meta, [qa.answer], [passage.text]


def _ast(rng: random.Random, difficulty: int) -> tuple[str, dict[str, Any], list[str], list[str]]:
    sentence = sample_sentence(rng, difficulty)
    english = sentence.english
    meta = {"transcript": english, "structure": sentence.connective or "simple", "tense": sentence.first.tense}
    return english, meta, [sentence.german], [english]


def _asr(rng: random.Random, difficulty: int) -> tuple[str, dict[str, Any], list[str], list[str]]:
    if rng.random() < 0.5:
        text, source = sample_sentence(rng, difficulty).english, "ast"
    else:
        sentences = sample_passage(rng, difficulty).sentences
        start = rng.randrange(len(sentences))
        text, source = " ".join(sentences[start:start + rng.choice([1, 1, 2])]), "sqa"
    return text, {"transcript": text, "source": source}, [text], sorted({text, *split_sentences(text)})


def _ast_other(rng: random.Random, difficulty: int) -> tuple[str, dict[str, Any], list[str], list[str]]:
    """Spoken translation of another domain (the base's, not the demo's): see :mod:`.other_domain`."""
    item = sample_other_domain(rng)
    english = item.english
    if isinstance(item, Question):
        structure, tense = "question", item.clause.tense
    else:
        said = item.second if item.connective == "that" and item.second is not None else item.first
        structure = item.connective or ("negated" if item.first.negated else "future")
        tense = said.tense
    return english, {"transcript": english, "structure": structure, "tense": tense}, [item.german], [english]


def _mt_other(rng: random.Random, difficulty: int) -> tuple[str, dict[str, Any], list[str], list[str]]:
    """Text translation of another domain: ``ast_other``'s register over the whole lexicon (no audio)."""
    item = sample_other_domain(rng, reserve=False)
    return item.english, {"transcript": item.english}, [item.german], [item.english]


def _qa_other(rng: random.Random, difficulty: int) -> tuple[str, dict[str, Any], list[str], list[str]]:
    """Text question answering of another domain (no audio): see :mod:`.other_domain_qa`."""
    qa = sample_other_qa(rng)
    return qa.passage, {"transcript": qa.passage, "question": qa.question, "focus": qa.focus}, [qa.answer], \
        [qa.passage]


_GENERATORS: dict[str, Callable[[random.Random, int], tuple[str, dict[str, Any], list[str], list[str]]]] = {
    "sqa": _sqa, "ast": _ast, "asr": _asr, "ast_other": _ast_other, "mt_other": _mt_other, "qa_other": _qa_other,
}


def synthetic_examples(seed: int = 0, sizes: Mapping[str, int] | None = None, *, tasks: Sequence[str] = TASKS,
                       difficulty: int = 2, voices: Sequence[str] = DEFAULT_VOICES,
                       speed: tuple[int, int] = SPEED_WPM, pitch: tuple[int, int] = PITCH) -> dict[str, list[Example]]:
    """The text side of the benchmark, without audio: ``{split: examples}`` with ``sizes[split]`` examples
    per task. ``audio`` names the file :func:`build_synthetic` writes; ``meta`` holds the transcript and
    the voice. Use it with :func:`~speechgrpo.data.manifest.corpus_texts` to train a tokenizer first."""
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    unknown = [t for t in tasks if t not in _GENERATORS]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(_GENERATORS)}")
    if any(s not in SPLITS for s in sizes) or any(n < 0 for n in sizes.values()):
        raise ValueError(f"sizes must map {', '.join(SPLITS)} to non-negative counts, got {sizes}")
    seen: dict[str, dict[str, str]] = {"passage": {}, "sentence": {}}
    out: dict[str, list[Example]] = {}
    for split in ("test", "dev", "train"):
        examples: list[Example] = []
        for task in tasks:
            rng = random.Random(f"speechgrpo-synthetic:{seed}:{task}:{split}")
            namespace = "passage" if task in ("sqa", "qa_other") else "sentence"
            count, attempts = 0, 0
            while count < sizes.get(split, 0):
                attempts += 1
                if attempts > 100 * sizes[split] + 1000:
                    raise SyntheticError(f"could only draw {count} distinct {task} items for {split} at difficulty "
                                         f"{difficulty}; ask for fewer or raise the difficulty")
                spoken, meta, references, keys = _GENERATORS[task](rng, difficulty)
                if any(key in seen[namespace] for key in keys):
                    continue
                voice = sample_voice(rng, voices, speed, pitch)
                uid = f"{task}-{split}-{count:05d}"
                prompt_fields = {"question": meta["question"]} if "question" in meta else {}
                prompt = rng.choice(PROMPTS[task]).format(**prompt_fields)
                for key in keys:
                    seen[namespace][key] = split
                if task == "sqa":
                    for sentence in split_sentences(spoken):
                        seen["sentence"].setdefault(sentence, split)
                meta = {**meta, "voice": voice.name, "speed": voice.speed, "pitch": voice.pitch}
                examples.append(Example(id=uid, audio=f"audio/{split}/{uid}.wav", prompt=prompt,
                                        references=tuple(references), task=task, split=split, meta=meta))
                count += 1
        out[split] = examples
    return {split: out[split] for split in SPLITS if split in out}


def split_sentences(passage: str) -> list[str]:
    """The sentences of a passage (split after ``.``, ``?``, ``!``)."""
    return [s for s in re.split(r"(?<=[.?!])\s+", passage.strip()) if s]


def _synthesize_one(example: Example, out_dir: Path, binary: str) -> float:
    meta = example.meta
    voice = Voice(str(meta["voice"]), int(meta["speed"]), int(meta["pitch"]))
    audio = tts_synthesize(str(meta["transcript"]), voice, SAMPLE_RATE, binary)
    path = out_dir / str(example.audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, audio, SAMPLE_RATE)
    return round(len(audio) / SAMPLE_RATE, 3)


def synthesize_examples(examples: Sequence[Example], out_dir: str | Path, *, jobs: int = 2,
                        progress: bool = True, desc: str = "espeak-ng") -> list[Example]:
    """Speak every example (``meta`` transcript and voice) into ``out_dir / example.audio`` with ``jobs``
    espeak-ng processes at a time; returns the examples with ``duration`` and ``root`` set."""
    binary = espeak_binary()
    root = Path(out_dir)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results: Iterable[float] = pool.map(lambda e: _synthesize_one(e, root, binary), examples)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(examples), desc=desc, unit="utt")
        durations = list(results)
    return [replace(e, duration=d, root=root) for e, d in zip(examples, durations, strict=True)]


def build_synthetic(out_dir: str | Path, *, seed: int = 0, sizes: Mapping[str, int] | None = None,
                    tasks: Sequence[str] = TASKS, difficulty: int = 2, voices: Sequence[str] = DEFAULT_VOICES,
                    speed: tuple[int, int] = SPEED_WPM, pitch: tuple[int, int] = PITCH, jobs: int = 2,
                    progress: bool = True) -> dict[str, Path]:
    """Build the benchmark in ``out_dir`` (see the module docstring) and return ``{split: manifest path}``.

    ``sizes`` counts examples per task and split (default 2000/200/200). ``difficulty`` 1-3 sets passage
    length and number of people (SQA) and sentence complexity (AST, ASR). Needs espeak-ng.
    """
    espeak_binary()
    out = Path(out_dir)
    splits = synthetic_examples(seed, sizes, tasks=tasks, difficulty=difficulty, voices=voices, speed=speed,
                                pitch=pitch)
    paths: dict[str, Path] = {}
    built: dict[str, list[Example]] = {}
    for split, examples in splits.items():
        built[split] = synthesize_examples(examples, out, jobs=jobs, progress=progress, desc=f"espeak-ng {split}")
        paths[split] = write_manifest(out / f"{split}.jsonl", built[split])
        keep = {e.audio_path.name for e in built[split]}
        for stale in sorted((out / "audio" / split).glob("*-*-*.wav")):
            if stale.name not in keep:  # left over from an earlier, larger build
                stale.unlink()
    config = {"seed": seed, "sizes": dict(DEFAULT_SIZES if sizes is None else sizes),
              "tasks": list(tasks), "difficulty": difficulty, "voices": list(voices), "speed_wpm": list(speed),
              "pitch": list(pitch), "sample_rate": SAMPLE_RATE, "tts": espeak_version()}
    stats = {"config": config, **dataset_stats(built)}
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0


def _question_template(example: Example) -> str:
    question = str(example.meta.get("question", ""))
    for name in lexicon.NAMES:
        question = re.sub(rf"\b{name}\b", "<name>", question)
    return question


def question_only_baseline(train: Sequence[Example], test: Sequence[Example]) -> float:
    """Exact-match accuracy on ``test`` SQA short answers of answering each question (names masked) with
    its most frequent short answer in ``train``: how far the questions alone give the answers away."""
    answers: dict[str, Counter[str]] = {}
    for example in train:
        if example.task == "sqa":
            answers.setdefault(_question_template(example), Counter())[str(example.meta["short_answer"])] += 1
    scored = [e for e in test if e.task == "sqa"]
    if not scored:
        return 0.0
    hits = sum(1 for e in scored if (c := answers.get(_question_template(e))) and c.most_common(1)[0][0]
               == e.meta["short_answer"])
    return round(hits / len(scored), 4)


def dataset_stats(splits: Mapping[str, Sequence[Example]]) -> dict[str, Any]:
    """Counts, audio hours, mean lengths in words, vocabulary sizes, SQA fact mix and the question-only
    baseline, AST structure and tense mix (the content of ``stats.json`` besides the settings)."""
    per_split: dict[str, dict[str, Any]] = {}
    vocab: dict[str, set[str]] = {"english_transcripts": set(), "german_references": set(), "sqa_answers": set(),
                                  "prompts": set()}
    facts: Counter[str] = Counter()
    structures: Counter[str] = Counter()
    tenses: Counter[str] = Counter()
    people: list[float] = []
    source_lengths: list[int] = []
    for split, examples in splits.items():
        per_split[split] = {}
        for task in sorted({e.task for e in examples}):
            rows = [e for e in examples if e.task == task]
            durations = [e.duration or 0.0 for e in rows]
            transcripts = [words(str(e.meta.get("transcript", ""))) for e in rows]
            per_split[split][task] = {
                "count": len(rows), "hours": round(sum(durations) / 3600, 3),
                "mean_audio_seconds": _mean(durations), "max_audio_seconds": round(max(durations, default=0.0), 2),
                "mean_transcript_words": _mean([len(t) for t in transcripts]),
                "mean_reference_words": _mean([len(words(e.references[0])) for e in rows]),
                "mean_prompt_words": _mean([len(words(e.prompt)) for e in rows]),
            }
            for example, transcript in zip(rows, transcripts, strict=True):
                vocab["english_transcripts"].update(transcript)
                vocab["prompts"].update(words(example.prompt))
                if task == "ast":
                    vocab["german_references"].update(words(example.references[0]))
                    structures[str(example.meta.get("structure"))] += 1
                    tenses[str(example.meta.get("tense"))] += 1
                    source_lengths.append(len(transcript))
                if task == "sqa":
                    vocab["sqa_answers"].update(w for r in example.references for w in words(r))
                    facts[str(example.meta.get("fact"))] += 1
                    people.append(float(example.meta.get("people", 1)))
    all_examples = [e for rows in splits.values() for e in rows]
    stats: dict[str, Any] = {
        "splits": per_split,
        "vocabulary": {**{k: len(v) for k, v in vocab.items()},
                       "all_text": len({w for t in corpus_texts(all_examples) for w in words(t)}) if all_examples
                       else 0},
        "lexicon": {"nouns": len(lexicon.NOUNS), "adjectives": len(lexicon.ADJECTIVES), "verbs": len(lexicon.VERBS),
                    "place_phrases": len(lexicon.PLACES), "adverbs": len(lexicon.ADVERBS),
                    "names": len(lexicon.NAMES), "cities": len(lexicon.CITIES), "jobs": len(JOBS),
                    "english_word_forms": len(lexicon.english_vocabulary())},
    }
    if facts:
        stats["sqa"] = {"facts": dict(sorted(facts.items())), "mean_people": _mean(people)}
        if splits.get("train") and splits.get("test"):
            stats["sqa"]["question_only_baseline_test"] = question_only_baseline(splits["train"], splits["test"])
    if structures:
        stats["ast"] = {"structures": dict(sorted(structures.items())), "tenses": dict(sorted(tenses.items())),
                        "mean_source_words": _mean(source_lengths), "max_source_words": max(source_lengths)}
    return stats


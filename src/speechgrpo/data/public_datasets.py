"""Readers for local copies of the paper's public datasets, into manifest :class:`Example` rows.

Nothing is downloaded: point the readers at copies you already have.

**LibriSQA Part I** (https://huggingface.co/datasets/ZihanZhao/LibriSQA) holds question/answer metafiles
over LibriSpeech audio (train: ``train-clean-360``, test: ``test-clean``; https://www.openslr.org/12)::

    LibriSQA/LibriSQA-PartI/LibriSQA-PartI-train.json     (older copies: ...-training.json)
    LibriSQA/LibriSQA-PartI/LibriSQA-PartI-test.json
    LibriSpeech/train-clean-360/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    LibriSpeech/test-clean/...

Each record has ``speech_path`` (path of the LibriSpeech file), ``question``, ``answer``, ``text`` (the
transcript) and ``duration`` (seconds). The metafile may be a JSON array, an object holding the array
under ``data``, or JSON Lines. ``speech_path`` is resolved against the LibriSpeech root from the first
split folder it names (``.../LibriSpeech/train-clean-360/...`` and ``train-clean-360/...`` both work),
``.flac``/``.wav`` interchangeably; failing that, from the utterance id in the file name.

**CoVoST 2 En->De** (https://github.com/facebookresearch/covost) pairs Common Voice English clips with
German translations::

    covost_v2.en_de.train.tsv   covost_v2.en_de.dev.tsv   covost_v2.en_de.test.tsv
    <Common Voice>/en/clips/common_voice_en_<n>.mp3

The TSV files (as written by CoVoST's ``get_covost_splits.py``: tab-separated, header row, no quoting,
backslash escapes) have the columns ``path`` (clip file name), ``sentence`` (English transcript),
``translation`` (German) and ``client_id``. MP3 decoding needs libsndfile >= 1.1 (the soundfile >= 0.12
wheels bundle 1.2); with an older system libsndfile, convert the clips to WAV or FLAC once (e.g.
``ffmpeg -i x.mp3 -ar 16000 -ac 1 x.wav``) and pass ``audio_suffix=".wav"``.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from speechgrpo.data.manifest import Example, write_manifest
from speechgrpo.data.prompts import ASR_PROMPTS, AST_PROMPTS, SQA_PROMPTS, pick_prompt

LIBRISPEECH_SPLITS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
                      "test-clean", "test-other")
_UTTERANCE = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_LIBRISQA_KEYS = {
    "audio": ("speech_path", "audio_path", "audio", "path", "file"),
    "question": ("question", "Question", "query"),
    "answer": ("answer", "Answer", "answers", "response"),
    "text": ("text", "transcript", "sentence"),
    "duration": ("duration", "length"),
}
COVOST_COLUMNS = ("path", "sentence", "translation", "client_id")


class DatasetError(ValueError):
    """A local dataset copy that does not have the expected layout; the message names the file and record."""


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, record) pairs of a JSON array / ``{"data": [...]}`` / JSON Lines file."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}:{number}: neither a JSON document nor JSON Lines "
                                   f"({err.msg} at column {err.colno})") from err
        return
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    elif isinstance(data, dict):  # JSON Lines with a single record
        data = [data]
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON array of records (or {{'data': [...]}} or JSON Lines)")
    for index, record in enumerate(data):
        yield f"{path}: record {index}", record


def _field(record: dict[str, Any], name: str, where: str, required: bool = True) -> Any:
    for key in _LIBRISQA_KEYS[name]:
        if record.get(key) is not None:
            return record[key]
    if required:
        raise DatasetError(f"{where}: no {name} field (looked for {', '.join(_LIBRISQA_KEYS[name])}; "
                           f"the record has {', '.join(sorted(record)) or 'no keys'})")
    return None


def resolve_librispeech_path(speech_path: str, librispeech_root: str | Path) -> Path | None:
    """The existing LibriSpeech file that ``speech_path`` (as written in a LibriSQA record) names, or None."""
    root = Path(librispeech_root)
    bases = [root / "LibriSpeech", root] if (root / "LibriSpeech").is_dir() else [root]
    raw = Path(speech_path.strip())
    candidates = [raw] if raw.is_absolute() else [base / raw for base in bases]
    parts = raw.parts
    for i, part in enumerate(parts):
        if part in LIBRISPEECH_SPLITS:
            candidates += [base / Path(*parts[i:]) for base in bases]
            break
    match = _UTTERANCE.match(raw.stem)
    if match:
        speaker, chapter = match.group(1), match.group(2)
        candidates += [base / split / speaker / chapter / raw.name for base in bases for split in LIBRISPEECH_SPLITS]
    for candidate in candidates:
        for suffix in dict.fromkeys((candidate.suffix, ".flac", ".wav")):
            path = candidate.with_suffix(suffix) if suffix else candidate
            if path.is_file():
                return path
    return None


def read_librisqa(metafile: str | Path, librispeech_root: str | Path, *, split: str | None = None,
                  task: str = "sqa", prompts: Sequence[str] | None = None, seed: int = 0,
                  missing: str = "error") -> list[Example]:
    """LibriSQA Part I records as examples with absolute audio paths.

    ``task="sqa"``: the prompt is a template filled with the question, the reference is the answer.
    ``task="asr"``: the prompt is a transcription instruction, the reference the LibriSpeech transcript.
    ``missing="skip"`` drops records whose audio file is not found instead of raising.
    """
    if task not in ("sqa", "asr"):
        raise ValueError(f"task must be 'sqa' or 'asr', got {task!r}")
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    templates = tuple(prompts) if prompts is not None else (SQA_PROMPTS if task == "sqa" else ASR_PROMPTS)
    metafile = Path(metafile)
    examples: list[Example] = []
    used: dict[str, int] = {}
    for where, record in _records(metafile):
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(record).__name__}")
        speech_path = _field(record, "audio", where)
        question, answer = _field(record, "question", where), _field(record, "answer", where)
        transcript = _field(record, "text", where, required=task == "asr")
        duration = _field(record, "duration", where, required=False)
        for name, value in (("audio path", speech_path), ("question", question), ("answer", answer)):
            if not isinstance(value, str) or not value.strip():
                raise DatasetError(f"{where}: the {name} must be a non-empty string, got {value!r}")
        audio = resolve_librispeech_path(speech_path, librispeech_root)
        if audio is None:
            if missing == "skip":
                continue
            raise DatasetError(f"{where}: audio {speech_path!r} not found under {librispeech_root} "
                               f"(expected <root>/[LibriSpeech/]<split>/<speaker>/<chapter>/<utterance>.flac)")
        stem = audio.stem
        used[stem] = used.get(stem, 0) + 1
        uid = stem if used[stem] == 1 else f"{stem}-{used[stem]}"
        prompt = pick_prompt(templates, uid, seed, question=question.strip())
        references = (answer.strip(),) if task == "sqa" else (str(transcript).strip(),)
        meta: dict[str, Any] = {"source": "librisqa", "speech_path": speech_path, "question": question.strip()}
        if isinstance(transcript, str):
            meta["transcript"] = transcript.strip()
        examples.append(Example(id=uid, audio=str(audio.resolve()), prompt=prompt, references=references,
                                task=task, split=split, meta=meta,
                                duration=float(duration) if isinstance(duration, (int, float)) else None))
    return examples


def find_librisqa_metafile(librisqa_dir: str | Path, split: str) -> Path:
    """``LibriSQA-PartI-<split>.json`` (``training`` accepted for ``train``) in ``librisqa_dir`` or its
    ``LibriSQA-PartI`` folder."""
    root = Path(librisqa_dir)
    names = [f"LibriSQA-PartI-{split}.json"] + (["LibriSQA-PartI-training.json"] if split == "train" else [])
    for folder in (root, root / "LibriSQA-PartI"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise DatasetError(f"{root}: no {' or '.join(names)} here or in {root / 'LibriSQA-PartI'}")


def split_by_audio(examples: Sequence[Example], fraction: float, seed: int = 0) -> tuple[list[Example],
                                                                                         list[Example]]:
    """(rest, held_out): about ``fraction`` of the audio files, with all their questions, held out.

    The paper validates on 20% of the LibriSQA training set; grouping by audio keeps a passage's
    questions on one side.
    """
    audios = sorted({str(e.audio) for e in examples})
    random.Random(seed).shuffle(audios)
    held = set(audios[:round(fraction * len(audios))])
    return [e for e in examples if str(e.audio) not in held], [e for e in examples if str(e.audio) in held]


def librisqa_manifests(librisqa_dir: str | Path, librispeech_root: str | Path, out_dir: str | Path, *,
                       dev_fraction: float = 0.2, seed: int = 0, missing: str = "error") -> dict[str, Path]:
    """Write ``train/dev/test.jsonl`` for LibriSQA Part I (dev: ``dev_fraction`` of the training audio)."""
    train = read_librisqa(find_librisqa_metafile(librisqa_dir, "train"), librispeech_root, seed=seed,
                          missing=missing)
    test = read_librisqa(find_librisqa_metafile(librisqa_dir, "test"), librispeech_root, split="test", seed=seed,
                         missing=missing)
    rest, dev = split_by_audio(train, dev_fraction, seed)
    out = Path(out_dir)
    splits = {"train": rest, "dev": dev, "test": test}
    return {name: write_manifest(out / f"{name}.jsonl", [replace(e, split=name) for e in rows])
            for name, rows in splits.items()}


def read_covost2(tsv_path: str | Path, clips_dir: str | Path, *, split: str | None = None, task: str = "ast",
                 prompts: Sequence[str] | None = None, seed: int = 0, audio_suffix: str | None = None,
                 missing: str = "error") -> list[Example]:
    """CoVoST 2 rows as examples with absolute audio paths.

    ``task="ast"``: the reference is the translation; ``task="asr"``: the English transcript.
    ``audio_suffix`` replaces the clip's extension (for clips converted from MP3). ``missing="skip"``
    drops rows whose clip is not in ``clips_dir``; ``missing="ignore"`` does not look (fast on a
    network disk).
    """
    if task not in ("ast", "asr"):
        raise ValueError(f"task must be 'ast' or 'asr', got {task!r}")
    if missing not in ("error", "skip", "ignore"):
        raise ValueError(f"missing must be 'error', 'skip' or 'ignore', got {missing!r}")
    templates = tuple(prompts) if prompts is not None else (AST_PROMPTS if task == "ast" else ASR_PROMPTS)
    tsv_path, clips = Path(tsv_path), Path(clips_dir).resolve()
    examples: list[Example] = []
    with tsv_path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{tsv_path}: empty file (expected a header row: {', '.join(COVOST_COLUMNS)})")
        absent = [c for c in COVOST_COLUMNS[:3] if c not in header]
        if absent:
            raise DatasetError(f"{tsv_path}:1: missing column(s) {', '.join(absent)} in the header "
                               f"(found: {', '.join(header)}; expected: {', '.join(COVOST_COLUMNS)})")
        index = {name: header.index(name) for name in COVOST_COLUMNS if name in header}
        for row in reader:
            where = f"{tsv_path}:{reader.line_num}"
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DatasetError(f"{where}: {len(row)} fields, the header has {len(header)}")
            name, sentence, translation = (row[index[c]].strip() for c in COVOST_COLUMNS[:3])
            for column, value in (("path", name), ("sentence", sentence), ("translation", translation)):
                if not value:
                    raise DatasetError(f"{where}: empty '{column}'")
            audio = clips / name
            if audio_suffix is not None:
                audio = audio.with_suffix(audio_suffix)
            if missing != "ignore" and not audio.is_file():
                if missing == "skip":
                    continue
                raise DatasetError(f"{where}: clip {audio} not found")
            uid = Path(name).stem
            meta: dict[str, Any] = {"source": "covost2", "transcript": sentence}
            if "client_id" in index:
                meta["client_id"] = row[index["client_id"]]
            references = (translation,) if task == "ast" else (sentence,)
            examples.append(Example(id=uid, audio=str(audio), prompt=pick_prompt(templates, uid, seed),
                                    references=references, task=task, split=split, meta=meta))
    return examples


def covost2_manifests(tsv_dir: str | Path, clips_dir: str | Path, out_dir: str | Path, *, source: str = "en",
                      target: str = "de", task: str = "ast", seed: int = 0, audio_suffix: str | None = None,
                      missing: str = "error") -> dict[str, Path]:
    """Write ``train/dev/test.jsonl`` from ``covost_v2.<source>_<target>.<split>.tsv`` in ``tsv_dir``."""
    paths = {}
    for split in ("train", "dev", "test"):
        tsv = Path(tsv_dir) / f"covost_v2.{source}_{target}.{split}.tsv"
        if not tsv.is_file():
            raise DatasetError(f"{tsv}: not found (run CoVoST's get_covost_splits.py --version 2 first)")
        rows = read_covost2(tsv, clips_dir, split=split, task=task, seed=seed, audio_suffix=audio_suffix,
                            missing=missing)
        if not rows:
            raise DatasetError(f"{tsv}: no rows with audio")
        paths[split] = write_manifest(Path(out_dir) / f"{split}.jsonl", rows)
    return paths

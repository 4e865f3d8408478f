"""Speech task manifests as JSON Lines: one example (audio, text prompt, references) per line.

Each line is an object with

    id          non-empty string, unique in the file
    audio       path of the audio file, relative to the manifest's folder or absolute
    prompt      string: the instruction or question the model reads besides the audio
    references  non-empty list of strings (a single string is accepted): the accepted outputs, best first
    task        non-empty string: "sqa", "ast", "asr" or a task of your own
    split       optional string ("train", "dev", "test", ...)
    duration    optional number: seconds of audio
    meta        optional object: anything else (transcript, question, voice, source row, ...)

Other keys are rejected, so that a misspelt field is an error rather than silently dropped.
Errors name the file, the line number and the field.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speechgrpo.data._jsonl import RecordCheck, jsonl_records
from speechgrpo.data.audio import SAMPLE_RATE, audio_duration, load_audio

if TYPE_CHECKING:
    from speechgrpo.models import SpeechPrompt

FIELDS = ("id", "task", "split", "audio", "duration", "prompt", "references", "meta")


class ManifestError(ValueError):
    """A malformed manifest; the message names the file, line and field."""


@dataclass(frozen=True)
class Example:
    """One manifest row. ``root`` is the folder a relative ``audio`` path is resolved against (the
    manifest's folder after :func:`read_manifest`; ``None``: the current directory). ``audio`` is ``None``
    for a text-only prompt (e.g. the text versions of the tasks that a base model learns from). ``source``
    names the manifest line (for error messages)."""

    id: str
    audio: str | None
    prompt: str
    references: tuple[str, ...]
    task: str
    split: str | None = None
    duration: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    root: Path | None = field(default=None, compare=False, repr=False)
    source: str | None = field(default=None, compare=False, repr=False)  # "<manifest>:<line>" it was read from

    @property
    def audio_path(self) -> Path:
        """The audio file's path (``audio`` joined to ``root`` when relative)."""
        if self.audio is None:
            raise ValueError(f"example {self.id!r} is text-only (audio is null)")
        path = Path(self.audio)
        return path if path.is_absolute() or self.root is None else self.root / path

    def load_audio(self, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """The audio as mono float32 at ``sample_rate`` Hz."""
        return load_audio(self.audio_path, sample_rate)

    def audio_seconds(self) -> float:
        """The audio's length: ``duration`` when the manifest gives it, else read from the file's header."""
        return self.duration if self.duration is not None else audio_duration(self.audio_path)

    def record(self, manifest_dir: Path | None = None) -> dict[str, Any]:
        """The JSON object of this row; ``audio`` relative to ``manifest_dir`` when the file lies under it."""
        audio = self.audio
        if manifest_dir is not None and audio is not None:
            resolved = Path(os.path.abspath(self.audio_path))
            base = Path(os.path.abspath(manifest_dir))
            audio = resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else str(resolved)
        row: dict[str, Any] = {"id": self.id, "task": self.task}
        if self.split is not None:
            row["split"] = self.split
        row["audio"] = audio
        if self.duration is not None:
            row["duration"] = self.duration
        row["prompt"] = self.prompt
        row["references"] = list(self.references)
        if self.meta:
            row["meta"] = dict(self.meta)
        return row


class AudioCache:
    """Model inputs of examples, their decoded 16 kHz audio kept for the ``size`` most recently used
    clips (a GRPO run revisits its prompts every epoch; a large corpus does not fit in memory)."""

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self._audio: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._audio)

    def prompt(self, example: Example) -> SpeechPrompt:
        """The model input of ``example``: its audio (``None`` if text-only) and its prompt text."""
        from speechgrpo.models import SpeechPrompt

        if example.audio is None:
            return SpeechPrompt(None, example.prompt)
        key = str(example.audio_path)
        if key in self._audio:
            self._audio.move_to_end(key)
        else:
            self._audio[key] = example.load_audio()
            if len(self._audio) > self.size:
                self._audio.popitem(last=False)
        return SpeechPrompt(self._audio[key], example.prompt)


def parse_example(record: Any, where: str, root: Path | None = None) -> Example:
    """Validate one decoded JSON row (``where`` prefixes error messages, e.g. ``file:line``)."""
    check = RecordCheck(ManifestError, where)
    record = check.object(record)
    unknown = sorted(set(record) - set(FIELDS))
    check(not unknown, f"unknown field '{unknown[0] if unknown else ''}' (fields: {', '.join(FIELDS)}; "
                       "put anything else under 'meta')")
    for key in ("id", "task"):
        value = record.get(key)
        check(isinstance(value, str) and value.strip() != "", f"'{key}' must be a non-empty string")
    audio = record.get("audio")
    check(audio is None or (isinstance(audio, str) and audio.strip() != ""),
          "'audio' must be a non-empty string, or null for a text-only prompt")
    check(isinstance(record.get("prompt"), str), "'prompt' must be a string")
    references = check.references(record)
    split = record.get("split")
    check(split is None or isinstance(split, str), "'split' must be a string")
    duration = record.get("duration")
    check(duration is None or (isinstance(duration, (int, float)) and not isinstance(duration, bool)
                               and duration >= 0), "'duration' must be a non-negative number (seconds)")
    meta = record.get("meta", {})
    check(isinstance(meta, dict), "'meta' must be an object")
    return Example(id=record["id"], audio=audio, prompt=record["prompt"], references=references,
                   task=record["task"], split=split, duration=None if duration is None else float(duration),
                   meta=meta, root=root, source=where)


def read_manifest(path: str | Path) -> list[Example]:
    """Read a manifest (blank lines skipped); relative audio paths resolve against the manifest's folder."""
    path = Path(path)
    root = path.parent
    examples: list[Example] = []
    first_line: dict[str, int] = {}
    for number, where, record in jsonl_records(path, ManifestError):
        example = parse_example(record, where, root)
        RecordCheck(ManifestError, where)(example.id not in first_line,
                                          f"'id' {example.id!r} already used on line {first_line.get(example.id)}")
        first_line[example.id] = number
        examples.append(example)
    if not examples:
        raise ManifestError(f"{path}: no examples found")
    return examples


def write_manifest(path: str | Path, examples: Iterable[Example]) -> Path:
    """Write ``examples`` to ``path`` (overwritten; folders created) and return the path.

    Audio files under the manifest's folder are written relative to it (the folder can be moved as a
    whole); others as absolute paths. Keys keep a fixed order, so equal inputs give identical bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    lines = []
    for example in examples:
        if example.id in seen:
            raise ManifestError(f"{path}: duplicate id {example.id!r}")
        seen.add(example.id)
        lines.append(json.dumps(example.record(path.parent), ensure_ascii=False))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def corpus_texts(examples: Iterable[Example]) -> list[str]:
    """Every text of ``examples`` a tokenizer should cover: prompts, references and ``meta["transcript"]``.

    Distinct strings in first-seen order (for training a tokenizer on a task's own text).
    """
    texts: dict[str, None] = {}
    for example in examples:
        texts[example.prompt] = None
        for ref in example.references:
            texts[ref] = None
        transcript = example.meta.get("transcript")
        if isinstance(transcript, str):
            texts[transcript] = None
    texts.pop("", None)
    return list(texts)

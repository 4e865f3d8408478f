"""The training and dev manifests checked against the model before anything loads, every problem at once.

A run should not find a missing clip at its first validation, nor train silently on what its model cannot
read. Before the model's weights load, every example of ``train_manifests`` and ``eval_manifests`` is checked
against what the checkpoint accepts (:meth:`speechgrpo.models.SpeechLM.input_limits`, read from its folder):

- its audio file exists and libsndfile reads its header, and its length (the manifest's ``duration``, else the
  header's) is within the model's limits; ``max_audio_seconds`` drops longer clips, with a count;
- no reference is empty (``allow_empty_references`` accepts them);
- every word of its prompt and references is in the model's vocabulary (a word-level one, as the bundled
  model's, turns the others into ``<unk>``, which decoding drops): refused with the words and their counts,
  or accepted by ``allow_unknown_words`` with a warning giving their share;
- every reference decodes back to itself after tokenization (the tokenizer's own normalization, e.g. NFC and
  collapsed spaces, aside), since the model can only write what its tokenizer decodes; a prompt is only read.

The problems come together, the first :data:`SHOWN` with their manifest lines, in one error.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from speechgrpo.data import Example
from speechgrpo.data.audio import AudioError
from speechgrpo.models.loading import model_path, speech_lm_class
from speechgrpo.models.speech_lm import InputLimits

SHOWN = 20  # problems listed in the error (with the count of the others)


@dataclass
class _Findings:
    problems: list[str] = field(default_factory=list)
    unknown: Counter[str] = field(default_factory=Counter)
    first_seen: dict[str, str] = field(default_factory=dict)
    words: int = 0


def model_input_limits(model: str | Path) -> InputLimits:
    """:meth:`SpeechLM.input_limits` of the checkpoint folder ``model``, by its ``config.json``'s model type."""
    model = model_path(model)
    config = model / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{model} is not a local model directory (no config.json)")
    model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    return speech_lm_class(model_type).input_limits(model)


def check_inputs(manifests: dict[str, list[Example]], limits: InputLimits, max_audio_seconds: float | None,
                 allow_empty_references: bool, allow_unknown_words: bool) -> dict[str, list[Example]]:
    """Each set of examples (e.g. ``{"train_manifests": [...], "eval_manifests": [...]}``) with the clips over
    ``max_audio_seconds`` dropped; raises ``ValueError`` listing every problem (module docstring)."""
    findings = _Findings()
    kept: dict[str, list[Example]] = {}
    for what, examples in manifests.items():
        kept[what] = []
        dropped = 0
        for example in examples:
            if _audio_problem(example, limits, max_audio_seconds, findings) == "drop":
                dropped += 1
                continue
            _text_problems(example, limits, allow_empty_references, findings)
            kept[what].append(example)
        if dropped:
            print(f"{what}: dropped {dropped} of {len(examples)} examples with audio over {max_audio_seconds:g} s "
                  "(max_audio_seconds)", file=sys.stderr)
        if examples and not kept[what]:
            findings.problems.append(f"{what}: no example left under max_audio_seconds {max_audio_seconds}")
    if findings.unknown:
        share = sum(findings.unknown.values()) / max(findings.words, 1)
        listed = ", ".join(f"{word!r} x{count} ({findings.first_seen[word]})"
                           for word, count in findings.unknown.most_common(SHOWN))
        summary = (f"{len(findings.unknown)} words outside the model's vocabulary ({sum(findings.unknown.values())} "
                   f"occurrences, {share:.1%} of the words), which it reads and writes as <unk>: {listed}")
        if allow_unknown_words:
            print(f"warning: {summary}", file=sys.stderr)
        else:
            findings.problems.append(summary + "; allow_unknown_words: true trains on them anyway")
    if findings.problems:
        more = len(findings.problems) - SHOWN
        raise ValueError(f"{len(findings.problems)} problems in the manifests, found before training:\n  "
                         + "\n  ".join(findings.problems[:SHOWN]) + (f"\n  ... and {more} more" if more > 0 else ""))
    return kept


def _audio_problem(example: Example, limits: InputLimits, max_audio_seconds: float | None,
                   findings: _Findings) -> str | None:
    if example.audio is None:
        return None
    try:
        seconds = example.audio_seconds()
    except AudioError as err:
        findings.problems.append(f"{example.source}: {err}")
        return "problem"
    if max_audio_seconds is not None and seconds > max_audio_seconds:
        return "drop"
    if limits.max_audio_seconds is not None and seconds > limits.max_audio_seconds:
        findings.problems.append(f"{example.source}: {seconds:.1f} s of audio, over the {limits.max_audio_seconds:g} s "
                                 "the model takes (max_audio_seconds drops longer clips)")
        return "problem"
    if seconds < limits.min_audio_seconds:
        findings.problems.append(f"{example.source}: {seconds:.2f} s of audio, under the "
                                 f"{limits.min_audio_seconds:g} s the model needs")
        return "problem"
    return None


def _text_problems(example: Example, limits: InputLimits, allow_empty_references: bool,
                   findings: _Findings) -> None:
    if not allow_empty_references:
        empty = [i for i, reference in enumerate(example.references) if not reference.strip()]
        if empty:
            findings.problems.append(f"{example.source}: reference {empty[0]} is empty "
                                     "(allow_empty_references: true accepts it)")
    if limits.tokenize is None:
        return
    for is_reference, text in ((False, example.prompt), *((True, r) for r in example.references)):
        if not text.strip():
            continue
        decoded, pieces = limits.tokenize(text)
        unknown = [piece for piece in pieces if piece]  # a lone space token is a round-trip problem, below
        findings.words += len(text.split())
        for word in unknown:
            findings.unknown[word] += 1
            findings.first_seen.setdefault(word, str(example.source))
        # the model writes references as its tokenizer decodes them; a prompt is only read
        if is_reference and not unknown and decoded != limits.normalize(text):
            findings.problems.append(f"{example.source}: {text!r} does not survive tokenization: it decodes as "
                                     f"{decoded!r}")

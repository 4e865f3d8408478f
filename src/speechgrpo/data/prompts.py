"""Text prompts per task, varied as in the paper ("Listen to the audio and answer the following question:
...", "listen to the speech and translate it into German."), and a stable choice of one per example."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

SQA_PROMPTS: tuple[str, ...] = (
    "Listen to the audio and answer the following question: {question}",
    "Listen to the audio and answer the question: {question}",
    "Answer the question about the spoken passage: {question}",
    "Based on what you hear, answer in a full sentence: {question}",
    "{question} Answer using the information in the audio.",
)
AST_PROMPTS: tuple[str, ...] = (
    "Translate the speech into German.",
    "Listen to the speech and translate it into German.",
    "Translate the English audio into German.",
    "What is the German translation of what the speaker says?",
    "Give a German translation of the spoken sentence.",
)
ASR_PROMPTS: tuple[str, ...] = (
    "Transcribe the audio.",
    "Write down what the speaker says.",
    "Transcribe the speech into text.",
    "What is said in the audio? Write it down exactly.",
    "Give a transcript of the recording.",
)
#: the base's other-domain tasks (``ast_other`` spoken translation, ``mt_other`` text translation,
#: ``qa_other`` text QA) are asked as the demo's translation and QA are
PROMPTS: dict[str, tuple[str, ...]] = {"sqa": SQA_PROMPTS, "ast": AST_PROMPTS, "asr": ASR_PROMPTS,
                                       "ast_other": AST_PROMPTS, "mt_other": AST_PROMPTS, "qa_other": SQA_PROMPTS}


def pick_prompt(templates: Sequence[str], key: str, seed: int = 0, **fields: str) -> str:
    """The template chosen for ``key`` (a stable hash of key and seed, the same on every run and
    platform), filled with ``fields`` (``question=...`` for SQA templates)."""
    if not templates:
        raise ValueError("no prompt templates given")
    index = zlib.crc32(f"{seed}:{key}".encode()) % len(templates)
    return templates[index].format(**fields)

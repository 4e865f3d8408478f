"""A text-only causal LM (any ``AutoModelForCausalLM`` checkpoint) behind the :class:`SpeechLM` interface.

Prompts must have ``audio=None``. It runs the same generation and scoring code as the speech models, so
the trainer can be compared with TRL's GRPOTrainer on the same tiny text model. Prompt text is tokenized
as TRL does: through the tokenizer's chat template when it has one (no extra special tokens), otherwise
as plain text with the tokenizer's special tokens (e.g. BOS).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechgrpo.models.hf_speech_lm import HFSpeechLM
from speechgrpo.models.speech_lm import SpeechPrompt


class CausalLM(HFSpeechLM):
    """``CausalLM(model, tokenizer)`` from a transformers causal LM and its tokenizer, or
    ``CausalLM.load(local_dir)``."""

    model_class = AutoModelForCausalLM

    def _messages(self, prompt: SpeechPrompt) -> list[dict[str, Any]]:
        return [{"role": "user", "content": prompt.text}]

    def _render(self, messages: list[dict[str, Any]]) -> str:
        if self.tokenizer.chat_template:
            return super()._render(messages)
        text: str = messages[0]["content"]
        return text

    def _process(self, texts: list[str], audios: list[np.ndarray]) -> Mapping[str, torch.Tensor]:
        outputs: Mapping[str, torch.Tensor] = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self.tokenizer.chat_template)
        return outputs

    @classmethod
    def _load_processor(cls, directory: Path) -> Any:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)

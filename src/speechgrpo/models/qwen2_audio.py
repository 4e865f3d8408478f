"""Qwen2-Audio (``Qwen2AudioForConditionalGeneration``) behind the :class:`SpeechLM` interface.

The processor turns each audio into 128-bin Whisper log-mels padded to the 30 s window (``input_features``
``(n_audio, 128, 3000)`` with ``feature_attention_mask``) and expands the chat template's ``<|AUDIO|>`` into
one token per encoder output frame (about 25 per second). Audio longer than 30 s is rejected rather than
truncated. Prompts without audio are plain text turns.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

from speechgrpo.models.hf_speech_lm import HFSpeechLM
from speechgrpo.models.speech_lm import SAMPLE_RATE, SpeechPrompt


class Qwen2AudioLM(HFSpeechLM):
    """``Qwen2AudioLM(model, processor)`` from a ``Qwen2AudioForConditionalGeneration`` and its
    ``Qwen2AudioProcessor``, or ``Qwen2AudioLM.load(local_dir)``.

    The user turn is ``[{"type": "audio", "audio": None}, {"type": "text", "text": ...}]`` rendered by the
    processor's chat template (Qwen2-Audio-7B-Instruct's template writes ``Audio 1: <|audio_bos|><|AUDIO|>
    <|audio_eos|>``, after its default system turn).
    """

    model_class = Qwen2AudioForConditionalGeneration
    audio_feature_keys = ("input_features", "feature_attention_mask")
    language_model_path = "model.language_model"
    max_audio_seconds = 30.0
    published_prefixes = (("model.language_model.", "language_model.model."), ("model.audio_tower.", "audio_tower."),
                          ("model.multi_modal_projector.", "multi_modal_projector."),
                          ("lm_head.", "language_model.lm_head."))

    def _messages(self, prompt: SpeechPrompt) -> list[dict[str, Any]]:
        # An "audio" key: the published chat_template.json tests `'audio' in content` (a part with only "type" is
        # dropped); the audio itself goes to the processor, not through the template.
        audio = [{"type": "audio", "audio": None}] if prompt.audio is not None else []
        return [{"role": "user", "content": [*audio, {"type": "text", "text": prompt.text}]}]

    def _process(self, texts: list[str], audios: list[np.ndarray]) -> Mapping[str, torch.Tensor]:
        outputs: Mapping[str, torch.Tensor] = self.processor(
            text=texts, audio=audios or None, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding=True,
            add_special_tokens=False)
        return outputs

    @classmethod
    def _load_processor(cls, directory: Path) -> Qwen2AudioProcessor:
        return Qwen2AudioProcessor.from_pretrained(directory, local_files_only=True)

"""Granite Speech (``GraniteSpeechForConditionalGeneration``) behind the :class:`SpeechLM` interface.

Features come from :class:`TorchGraniteSpeechFeatureExtractor` (transformers' extractor needs torchaudio):
stacked 80-bin log-mels ``(n_audio, frames, 160)``, zero-padded to the longest audio of the batch, and
``input_features_mask`` over the projector's outputs (3 audio tokens per 15 encoder frames, about 10 per
second). The conformer encoder sees the zero padding (it has no attention mask), so a short audio's
embeddings depend slightly on the longest audio in its batch; that is transformers' batching, kept as is.

Released Granite Speech checkpoints carry a LoRA adapter on the language model that transformers loads with
the model and enables only for inputs with audio. This class does the same for scoring forwards; a batch
that mixes audio and text-only prompts is then refused (the adapter is on or off for the whole forward).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, GraniteSpeechForConditionalGeneration, GraniteSpeechProcessor

from speechgrpo.models.granite_features import TorchGraniteSpeechFeatureExtractor
from speechgrpo.models.hf_speech_lm import HFSpeechLM
from speechgrpo.models.speech_lm import PromptBatch, SpeechPrompt


class GraniteSpeechLM(HFSpeechLM):
    """``GraniteSpeechLM(model, processor)`` from a ``GraniteSpeechForConditionalGeneration`` and a
    ``GraniteSpeechProcessor`` (with the torch feature extractor), or ``GraniteSpeechLM.load(local_dir)``.

    The user turn is the string ``"<|audio|>" + text`` (text alone without audio), rendered by the chat
    template, as in the Granite Speech model cards.
    """

    model_class = GraniteSpeechForConditionalGeneration
    audio_feature_keys = ("input_features", "input_features_mask")
    language_model_path = "model.language_model"

    def encode_prompts(self, prompts: Sequence[SpeechPrompt]) -> PromptBatch:
        batch = super().encode_prompts(prompts)
        has_audio = batch.extra["audio_row"] >= 0
        if self._has_builtin_adapter() and bool(has_audio.any()) and not bool(has_audio.all()):
            raise ValueError("this Granite Speech model has a built-in audio LoRA adapter (on with audio, off "
                             "without): a batch cannot mix prompts with and without audio")
        return batch

    def _messages(self, prompt: SpeechPrompt) -> list[dict[str, Any]]:
        audio = self.processor.audio_token if prompt.audio is not None else ""
        return [{"role": "user", "content": audio + prompt.text}]

    def _process(self, texts: list[str], audios: list[np.ndarray]) -> Mapping[str, torch.Tensor]:
        outputs: Mapping[str, torch.Tensor] = self.processor(
            text=texts, audio=[torch.from_numpy(a) for a in audios] or None, return_tensors="pt",
            add_special_tokens=False)
        return outputs

    def _before_forward(self, has_audio: bool) -> None:
        if self._has_builtin_adapter():
            model: Any = self.unwrapped()
            if has_audio:
                model.enable_adapters()
            else:
                model.disable_adapters()

    def check_lora(self) -> None:
        if self._has_builtin_adapter():
            raise ValueError("this Granite Speech checkpoint carries its built-in audio LoRA adapter, which "
                             "transformers switches on and off per batch; a second, trained LoRA on top of it is "
                             "not supported: train all weights (lora_rank: 0) or start from a checkpoint whose "
                             "built-in adapter is merged")

    def _has_builtin_adapter(self) -> bool:
        return bool(getattr(self.unwrapped(), "_hf_peft_config_loaded", False))

    @classmethod
    def _load_processor(cls, directory: Path) -> Any:
        # GraniteSpeechProcessor.from_pretrained would build transformers' torchaudio-based extractor.
        processor_class: Any = GraniteSpeechProcessor  # untyped constructor
        return processor_class(
            audio_processor=TorchGraniteSpeechFeatureExtractor.from_pretrained(directory, local_files_only=True),
            tokenizer=AutoTokenizer.from_pretrained(directory, local_files_only=True))

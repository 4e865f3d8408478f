"""Granite Speech (``GraniteSpeechForConditionalGeneration``) behind the :class:`SpeechLM` interface.

Features come from :class:`TorchGraniteSpeechFeatureExtractor` (transformers' extractor needs torchaudio):
stacked 80-bin log-mels ``(n_audio, frames, 160)``, zero-padded to the longest audio of the batch, and
``input_features_mask`` over the projector's outputs (3 audio tokens per 15 encoder frames, about 10 per
second). The conformer encoder sees the zero padding (it has no attention mask), so a short audio's
embeddings depend slightly on the longest audio in its batch; that is transformers' batching, kept as is.

**The shipped audio adapter.** Granite Speech 3.3 checkpoints carry a LoRA adapter on the language model
beside their weights (``adapter_config.json``, ``adapter_model.safetensors``, ``has_lora_adapter: true``)
that the model applies to every prompt with audio. transformers loads it through peft, frozen, and
switches it per call. This class instead merges it into the weights at load (every prompt a speech task
trains on carries audio, so the adapter is always on): the weights train as usual (full fine-tuning, or a
new LoRA on the merged language model), log-probs and samples are those of the model with its adapter,
and peft is not needed. A merged model is marked (``speechgrpo_audio_adapter_merged`` in its config) and
refuses text-only prompts, which the published model answers without the adapter.

**Logits.** The Granite language model divides its logits by ``text_config.logits_scaling`` (8 in the 2B
and 8B configs); transformers' Granite Speech forward does not (see ``HFSpeechLM``), so the division is
added where it is missing.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoTokenizer,
    GraniteSpeechConfig,
    GraniteSpeechForConditionalGeneration,
    GraniteSpeechProcessor,
)

from speechgrpo.models.granite_features import TorchGraniteSpeechFeatureExtractor
from speechgrpo.models.hf_speech_lm import HFSpeechLM, published_to_module_name
from speechgrpo.models.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, merge_peft_adapter
from speechgrpo.models.speech_lm import PromptBatch, SpeechPrompt

MERGED_FLAG = "speechgrpo_audio_adapter_merged"  # config attribute of a model whose shipped adapter is merged


class GraniteSpeechLM(HFSpeechLM):
    """``GraniteSpeechLM(model, processor)`` from a ``GraniteSpeechForConditionalGeneration`` and a
    ``GraniteSpeechProcessor`` (with the torch feature extractor), or ``GraniteSpeechLM.load(local_dir)``.

    The user turn is the string ``"<|audio|>" + text`` (text alone without audio), rendered by the chat
    template, as in the Granite Speech model cards.
    """

    model_class = GraniteSpeechForConditionalGeneration
    audio_feature_keys = ("input_features", "input_features_mask")
    audio_encoder_masks_padding = False  # its conformer attends over (and convolves) the padded frames
    language_model_path = "model.language_model"

    published_prefixes = (("model.language_model.", "language_model.model."), ("model.encoder.", "encoder."),
                          ("model.projector.", "projector."), ("lm_head.", "language_model.lm_head."))

    @property
    def audio_adapter_merged(self) -> bool:
        """Whether the checkpoint's shipped audio adapter is merged into these weights."""
        return bool(getattr(self.unwrapped().config, MERGED_FLAG, False))

    def encode_prompts(self, prompts: Sequence[SpeechPrompt]) -> PromptBatch:
        if self.audio_adapter_merged:
            text_only = [i for i, p in enumerate(prompts) if p.audio is None]
            if text_only:
                raise ValueError(f"prompt {text_only[0]} has no audio, but this Granite Speech model's audio LoRA "
                                 "adapter is merged into its weights: the published model answers text-only "
                                 "prompts without it, so give every prompt audio")
        return super().encode_prompts(prompts)

    def _messages(self, prompt: SpeechPrompt) -> list[dict[str, Any]]:
        audio = self.processor.audio_token if prompt.audio is not None else ""
        return [{"role": "user", "content": audio + prompt.text}]

    def _process(self, texts: list[str], audios: list[np.ndarray]) -> Mapping[str, torch.Tensor]:
        outputs: Mapping[str, torch.Tensor] = self.processor(
            text=texts, audio=[torch.from_numpy(a) for a in audios] or None, return_tensors="pt",
            add_special_tokens=False)
        return outputs

    @classmethod
    def _load_model(cls, directory: Path, dtype: torch.dtype) -> Any:
        """The checkpoint's weights, with its shipped audio adapter (if any) merged in (module docstring)."""
        config: Any = GraniteSpeechConfig.from_pretrained(directory, local_files_only=True)
        shipped = (directory / ADAPTER_CONFIG).is_file()
        if not config.has_lora_adapter:
            if shipped:
                raise ValueError(f"{directory} holds {ADAPTER_CONFIG} but its config.json says has_lora_adapter: "
                                 "false; remove one or the other")
            return super()._load_model(directory, dtype)
        if not shipped:
            raise FileNotFoundError(f"{directory}: config.json says has_lora_adapter: true but there is no "
                                    f"{ADAPTER_CONFIG} (an incomplete copy of the checkpoint?)")
        config.has_lora_adapter = False
        with _without_adapter_files(directory) as weights_only:  # transformers would attach it through peft
            model = GraniteSpeechForConditionalGeneration.from_pretrained(weights_only, config=config, dtype=dtype,
                                                                          local_files_only=True)
        merge_peft_adapter(model, directory, functools.partial(published_to_module_name, cls.published_prefixes))
        setattr(model.config, MERGED_FLAG, True)
        return model

    @classmethod
    def _load_processor(cls, directory: Path) -> Any:
        # GraniteSpeechProcessor.from_pretrained would build transformers' torchaudio-based extractor.
        processor_class: Any = GraniteSpeechProcessor  # untyped constructor
        return processor_class(
            audio_processor=TorchGraniteSpeechFeatureExtractor.from_pretrained(directory, local_files_only=True),
            tokenizer=AutoTokenizer.from_pretrained(directory, local_files_only=True))


@contextmanager
def _without_adapter_files(directory: Path) -> Iterator[Path]:
    """A temporary folder that links every file of ``directory`` but the adapter's."""
    with tempfile.TemporaryDirectory(prefix="granite-weights-") as view:
        for entry in directory.iterdir():
            if entry.name not in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
                (Path(view) / entry.name).symlink_to(entry.resolve())
        yield Path(view)

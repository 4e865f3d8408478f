"""The bundled speech LLM behind :class:`SpeechLM`: small enough to train from scratch on a 2-core CPU.

Prompts become ``[<bos>, audio tokens, prompt words, <sep>]`` (the network is in
:mod:`speechgrpo.models.tiny_speech_net`, features in :mod:`~speechgrpo.models.log_mel`, the word-level
tokenizer in :mod:`~speechgrpo.models.word_tokenizer`), answers end with ``<eos>``. Generation is a
KV-cached loop over the decoder written here rather than ``transformers``' ``generate``, so that a
``torch.Generator`` makes sampling reproducible without touching the global RNG, and so that the
left-padded layout, the positions and the masks are the very ones :meth:`completion_logits` uses:
the log-probs generation reports equal those of the training forward (up to float rounding).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from speechgrpo.models._cache import cache_kwarg
from speechgrpo.models.log_mel import FeatureCache
from speechgrpo.models.lora import LORA_DIRECTORY, base_state_dict, has_lora, load_adapter, save_adapter
from speechgrpo.models.sampling import check_streams, sample_tokens
from speechgrpo.models.speech_lm import (
    Completions,
    InputLimits,
    PromptBatch,
    RandomStreams,
    SamplingConfig,
    SpeechLM,
    SpeechPrompt,
)
from speechgrpo.models.tiny_speech_net import TinySpeechLMConfig, TinySpeechNet
from speechgrpo.models.word_tokenizer import WordTokenizer

__all__ = ["MODEL_TYPE", "TinySpeechLM", "TinySpeechLMConfig"]

MODEL_TYPE = "speechgrpo_tiny"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"


def _pad(rows: Sequence[Sequence[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(len(rows), longest)`` ids and their lengths."""
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
    ids = torch.full((len(rows), int(lengths.max()) if rows else 0), value, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return ids, lengths


class TinySpeechLM(SpeechLM):
    """:class:`TinySpeechNet` with its tokenizer; ``module`` is the net (the trainer may wrap it)."""

    has_ctc_head = True
    language_model_path = "lm"

    def __init__(self, module: TinySpeechNet, tokenizer: WordTokenizer, config: TinySpeechLMConfig) -> None:
        self.module: torch.nn.Module = module
        self.tokenizer = tokenizer
        self.config = config
        self.features = FeatureCache()  # log-mel features of the clips seen last
        self.stop_token_ids = [tokenizer.eos_id]

    @classmethod
    def create(cls, config: TinySpeechLMConfig, tokenizer: WordTokenizer, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> TinySpeechLM:
        """A randomly initialized model (seed with ``torch.manual_seed`` for a reproducible one)."""
        net = TinySpeechNet(config, tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
        return cls(net.to(device=device, dtype=dtype), tokenizer, config)

    def net(self) -> TinySpeechNet:
        """The unwrapped module with its type."""
        module = self.unwrapped()
        assert isinstance(module, TinySpeechNet)
        return module

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unwrapped().parameters()).dtype

    @classmethod
    def input_limits(cls, directory: str | Path) -> InputLimits:
        """Audio up to the LM's positions less 512 for the prompt words and the answer, at one audio token per
        ``frames_per_token`` x 40 ms (longer audio runs past the positions it was trained on); text through the
        word-level vocabulary, whose missing words become ``<unk>`` (dropped by decoding)."""
        directory = Path(directory)
        config = json.loads((directory / CONFIG_FILE).read_text())
        defaults = TinySpeechLMConfig()
        positions = config.get("max_positions", defaults.max_positions)
        seconds_per_token = 0.04 * config.get("frames_per_token", defaults.frames_per_token)
        words = WordTokenizer.load(directory / TOKENIZER_FILE)

        def tokenize(text: str) -> tuple[str, list[str]]:
            return words.decode(words.encode(text)), words.unknown_words(text)

        normalizer = words.tokenizer.normalizer
        return InputLimits(0.0, (positions - 512) * seconds_per_token, tokenize,
                           normalizer.normalize_str if normalizer is not None else str)

    def encode_prompts(self, prompts: Sequence[SpeechPrompt]) -> PromptBatch:
        """Log-mel features (zero frames for a text-only prompt) and ``prompt words + <sep>`` ids."""
        if not prompts:
            raise ValueError("no prompts")
        with torch.autocast(self.device.type, enabled=False):  # features in float32 under a trainer's autocast
            features = [self.features(p.audio, self.config.n_mels) if p.audio is not None
                        else torch.zeros(0, self.config.n_mels) for p in prompts]
        feature_lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
        width = max(1, int(feature_lengths.max()))  # convolutions need one frame even for text-only batches
        padded = torch.stack([F.pad(f, (0, 0, 0, width - len(f))) for f in features])
        prompt_ids, prompt_lengths = _pad([[*self.tokenizer.encode(p.text), self.tokenizer.sep_id] for p in prompts],
                                          self.tokenizer.pad_id)
        device = self.device
        inputs = {"features": padded.to(device=device, dtype=self.dtype), "feature_lengths": feature_lengths.to(device),
                  "prompt_ids": prompt_ids.to(device), "prompt_lengths": prompt_lengths.to(device)}
        return PromptBatch(inputs=inputs, size=len(prompts))

    def generate(self, batch: PromptBatch, num_samples: int, sampling: SamplingConfig,
                 generator: RandomStreams = None) -> Completions:
        return self.generate_with_log_probs(batch, num_samples, sampling, generator)[0]

    @torch.no_grad()
    def generate_with_log_probs(self, batch: PromptBatch, num_samples: int, sampling: SamplingConfig,
                                generator: RandomStreams = None) -> tuple[Completions, torch.Tensor]:
        """:meth:`generate`, plus each sampled token's log-prob ``(n, length)`` (0 at padding) under
        ``softmax(logits / temperature)`` before top-p (temperature 1 when greedy): the policy's
        log-probs as :meth:`completion_log_probs` computes them, for free."""
        from transformers import DynamicCache

        from speechgrpo.losses import token_log_probs

        check_streams(generator, batch.size)
        net = self.net()
        embeds, mask = net.prefix(**batch.inputs)
        index = torch.arange(batch.size, device=embeds.device).repeat_interleave(num_samples)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=net.lm.config)
        cache_kwargs: dict[str, Any] = {cache_kwarg(): cache, "use_cache": True}
        # each prompt's prefix runs once; its cache is copied to the prompt's samples
        hidden = net.lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                              **cache_kwargs).last_hidden_state[index, -1]
        cache.batch_select_indices(index)
        mask, next_position = mask[index], positions[index, -1:] + 1
        temperature = 1.0 if sampling.greedy else sampling.temperature
        done = torch.zeros(len(index), dtype=torch.bool, device=embeds.device)
        tokens: list[torch.Tensor] = []
        alive: list[torch.Tensor] = []
        log_probs: list[torch.Tensor] = []
        for _ in range(sampling.max_new_tokens):
            logits = net.lm.lm_head(hidden).float()
            token = sample_tokens(logits, sampling, index, generator).masked_fill(done, self.tokenizer.pad_id)
            tokens.append(token)
            alive.append(~done)
            log_probs.append(torch.where(done, 0.0, token_log_probs(logits, token, temperature)))
            done = done | (token == self.tokenizer.eos_id)
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            hidden = net.lm.model(inputs_embeds=net.embed_tokens(token[:, None]), attention_mask=mask,
                                  position_ids=next_position, **cache_kwargs).last_hidden_state[:, -1]
            next_position = next_position + 1
        n = len(index)
        ids = torch.stack(tokens, dim=1) if tokens else torch.zeros(n, 0, dtype=torch.long, device=embeds.device)
        token_mask = torch.stack(alive, dim=1) if alive else torch.zeros(n, 0, dtype=torch.bool, device=ids.device)
        scores = torch.stack(log_probs, dim=1) if log_probs else torch.zeros(n, 0, device=ids.device)
        completions = Completions(ids=ids, mask=token_mask, texts=self._decode(ids, token_mask), prompt_index=index)
        return completions, scores

    def _decode(self, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
        return [self.tokenizer.decode([t for t in row[keep].tolist() if t != self.tokenizer.eos_id])
                for row, keep in zip(ids, mask, strict=True)]

    def encode_completions(self, texts: Sequence[str], prompt_index: torch.Tensor) -> Completions:
        """Answer words + ``<eos>``, right-padded with ``<pad>``."""
        if len(texts) != len(prompt_index):
            raise ValueError(f"{len(texts)} texts but {len(prompt_index)} prompt indices")
        ids, lengths = _pad([[*self.tokenizer.encode(t), self.tokenizer.eos_id] for t in texts], self.tokenizer.pad_id)
        device = self.device
        mask = torch.arange(ids.shape[1]) < lengths[:, None]
        return Completions(ids=ids.to(device), mask=mask.to(device), texts=list(texts),
                           prompt_index=prompt_index.to(device=device, dtype=torch.long))

    def completion_logits(self, batch: PromptBatch, completions: Completions) -> torch.Tensor:
        device = self.device
        logits: torch.Tensor = self.module(
            **batch.inputs, prompt_index=completions.prompt_index.to(device),
            completion_ids=completions.ids.to(device), completion_mask=completions.mask.to(device))
        return logits

    def transcript_ctc_losses(self, batch: PromptBatch, transcripts: Sequence[str]) -> torch.Tensor:
        if len(transcripts) != batch.size:
            raise ValueError(f"{len(transcripts)} transcripts for {batch.size} prompts")
        ids, lengths = _pad([self.tokenizer.encode(t) for t in transcripts], self.tokenizer.pad_id)
        device = self.device
        losses: torch.Tensor = self.module(**batch.inputs, transcript_ids=ids.to(device),
                                           transcript_lengths=lengths.to(device))
        return losses

    def save(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """``config.json`` (with ``model_type``), ``model.safetensors`` and ``tokenizer.json``."""
        from safetensors.torch import save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"model_type": MODEL_TYPE, **asdict(self.config)}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        net = self.net()
        if has_lora(net) or state_dict is not None:  # the base weights as a plain net: they load without peft
            plain = TinySpeechNet(self.config, self.tokenizer.vocab_size, self.tokenizer.pad_id, self.tokenizer.bos_id,
                                  self.tokenizer.eos_id).to(self.dtype)
            plain.load_state_dict({k: v.cpu() for k, v in base_state_dict(net, state_dict).items()})
            save_model(plain, str(directory / WEIGHTS_FILE))
        else:
            save_model(net, str(directory / WEIGHTS_FILE))
        if has_lora(net):
            save_adapter(net, self.lora, directory / LORA_DIRECTORY, state_dict)
        self.tokenizer.save(directory / TOKENIZER_FILE)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> TinySpeechLM:
        from safetensors.torch import load_model

        directory = Path(directory)
        config = json.loads((directory / CONFIG_FILE).read_text())
        if config.pop("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise ValueError(f"{directory} does not hold a {MODEL_TYPE} model")
        model = cls.create(TinySpeechLMConfig(**config), WordTokenizer.load(directory / TOKENIZER_FILE))
        load_model(model.net(), str(directory / WEIGHTS_FILE))
        model.module.to(device=device, dtype=dtype)
        if (directory / LORA_DIRECTORY).is_dir():
            model.module, model.lora = load_adapter(model.module, directory / LORA_DIRECTORY)
        return model

"""The :class:`SpeechLM` logic shared by the transformers-based models.

A subclass says how to turn one prompt into chat messages (:meth:`HFSpeechLM._messages`), how to run its
processor (:meth:`HFSpeechLM._process`), which processor outputs are per-audio tensors
(``audio_feature_keys``), where the language model sits inside the model (``language_model_path``, for
LoRA: :mod:`speechgrpo.models.lora`), and how to load its processor. Everything else (chat templating,
left padding, sampling, scoring, saving) is here.

Batches may mix prompts with and without audio: the processor gets the audios of the prompts that have one,
and ``PromptBatch.extra["audio_row"]`` maps each prompt to its row in the per-audio tensors (-1: none).

Each prompt's audio is encoded once per call, not once per completion: :meth:`HFSpeechLM.prompt_embeddings`
runs the model's own forward up to its language model (``language_model_path``), which gives the prompt's
token embeddings with the audio embeddings merged into the placeholders, and generation and scoring feed
those embeddings, repeated per completion, to the language model (``inputs_embeds``). Scoring is one
forward of ``[prompt (left-padded) + completion (right-padded)]`` through ``self.module`` with an explicit
``position_ids = cumsum(attention_mask) - 1``, which is what ``generate`` uses, so the log-probs of sampled
tokens equal the ones the sampler used and the ones of a forward without padding.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from transformers import DynamicCache, GenerationConfig, GenerationMixin, LogitsProcessor, LogitsProcessorList

from speechgrpo.models._cache import cache_kwarg
from speechgrpo.models.lora import LORA_DIRECTORY, base_state_dict, has_lora, load_adapter, save_adapter
from speechgrpo.models.sampling import check_streams, sample_tokens
from speechgrpo.models.speech_lm import (
    SAMPLE_RATE,
    Completions,
    InputLimits,
    PromptBatch,
    RandomStreams,
    SamplingConfig,
    SpeechLM,
    SpeechPrompt,
)

Self = TypeVar("Self", bound="HFSpeechLM")


class HFSpeechLM(SpeechLM):
    """A transformers model (``module``) with its processor or tokenizer behind the :class:`SpeechLM` interface.

    ``processor`` is a transformers processor with a ``tokenizer`` attribute, or a tokenizer (text-only models).
    The tokenizer must define an EOS token (appended to encoded completions; generation also stops at the
    ids in the model's ``generation_config.eos_token_id``).
    """

    model_class: ClassVar[Any]  # the transformers class that loads the checkpoint
    audio_feature_keys: ClassVar[tuple[str, ...]] = ()  # processor outputs indexed by audio (dim 0)
    # (module path prefix in transformers 5, prefix in the published checkpoint files): the names vLLM loads
    published_prefixes: ClassVar[tuple[tuple[str, str], ...]] = ()
    min_audio_seconds: ClassVar[float] = 0.1  # shorter audio yields 0-1 audio tokens, which the models mishandle
    max_audio_seconds: ClassVar[float | None] = None  # longer audio is rejected (not silently truncated)
    # False where the audio encoder has no padding mask (padded frames change a clip's embeddings): each prompt
    # is then encoded alone, so that its embeddings do not depend on the other clips of its batch
    audio_encoder_masks_padding: ClassVar[bool] = True

    def __init__(self, model: Any, processor: Any) -> None:
        self.module = model
        self.processor = processor
        self.tokenizer: Any = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; set tokenizer.eos_token")
        self.eos_token_id: int = self.tokenizer.eos_token_id
        self.pad_token_id: int = (self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
                                  else self.eos_token_id)
        self.stop_token_ids = sorted({self.eos_token_id, *_as_ids(model.generation_config.eos_token_id)})
        # Keeping only the logits that score completions saves a (n, prompt length, vocab) tensor.
        self._logits_to_keep = "logits_to_keep" in inspect.signature(type(model).forward).parameters
        self.logits_divisor = _apply_logits_scaling(model, {self.pad_token_id, self.eos_token_id})
        self.placeholder_id = _audio_placeholder(model)
        if self.placeholder_id is not None:  # sampled, it would break the scoring forward's audio merge
            _ban_token(model, self.placeholder_id)

    # -- model-specific hooks -----------------------------------------------------------------------------------
    @abstractmethod
    def _messages(self, prompt: SpeechPrompt) -> list[dict[str, Any]]:
        """The chat messages of one prompt (a single user turn)."""

    @abstractmethod
    def _process(self, texts: list[str], audios: list[np.ndarray]) -> Mapping[str, torch.Tensor]:
        """Templated prompt texts and the prompts' audios (in prompt order) -> model input tensors."""

    @classmethod
    @abstractmethod
    def _load_processor(cls, directory: Path) -> Any:
        """The processor or tokenizer saved in ``directory``."""

    @classmethod
    def _load_model(cls, directory: Path, dtype: torch.dtype) -> Any:
        """The transformers model saved in ``directory`` (local files only)."""
        return cls.model_class.from_pretrained(directory, dtype=dtype, local_files_only=True)

    # -- the checkpoint layout other engines read ---------------------------------------------------------------
    def published_state_dict(self, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The weights (``state``, default the module's own, without a LoRA adapter) under the names of the
        published checkpoint files, which vLLM loads; tied weights appear under each of their names."""
        state = self.unwrapped().state_dict() if state is None else state
        return {module_to_published_name(self.published_prefixes, name): value for name, value in state.items()}

    # -- SpeechLM ---------------------------------------------------------------------------------------------------
    def encode_prompts(self, prompts: Sequence[SpeechPrompt]) -> PromptBatch:
        if not prompts:
            raise ValueError("no prompts")
        audios = [self.checked_audio(p.audio) for p in prompts if p.audio is not None]
        texts = [self.prompt_text(p) for p in prompts]
        with torch.autocast(self.device.type, enabled=False):  # features in float32 under a trainer's autocast
            processed = self._process(texts, audios)
        inputs = {key: value for key, value in processed.items() if isinstance(value, torch.Tensor)}
        dtype = next(self.unwrapped().parameters()).dtype
        inputs = {key: value.to(self.device, dtype if value.is_floating_point() else value.dtype)
                  for key, value in inputs.items()}
        has_audio = torch.tensor([p.audio is not None for p in prompts], device=self.device)
        audio_row = torch.where(has_audio, has_audio.long().cumsum(0) - 1, -1)
        extra: dict[str, Any] = {"audio_row": audio_row}
        if not self.audio_encoder_masks_padding and len(audios) > 1:
            extra["alone"] = [self.encode_prompts([p]) if p.audio is not None else None for p in prompts]
        return PromptBatch(inputs, len(prompts), extra=extra)

    def prompt_embeddings(self, batch: PromptBatch) -> torch.Tensor:
        """``(batch.size, prompt length, hidden)``: the prompts' token embeddings with each audio's embeddings
        in its placeholders, computed by the model's own forward, stopped where it calls its language model
        (so the merge is transformers' own, for every family). Gradients flow when enabled. Where the encoder
        does not mask padding (``audio_encoder_masks_padding``), each audio prompt runs alone and its embeddings
        fill its left-padded row."""
        model: Any = self.unwrapped()
        if not bool((batch.extra["audio_row"] >= 0).any()):
            embeddings: torch.Tensor = model.get_input_embeddings()(batch.inputs["input_ids"])
            return embeddings
        if "alone" in batch.extra:
            rows = list(model.get_input_embeddings()(batch.inputs["input_ids"]).unbind(0))
            for i, alone in enumerate(batch.extra["alone"]):
                if alone is not None:
                    length = alone.inputs["input_ids"].shape[1]
                    if not torch.equal(alone.inputs["input_ids"][0], batch.inputs["input_ids"][i, -length:]):
                        raise RuntimeError(f"prompt {i} tokenizes differently alone and in its batch")
                    rows[i] = torch.cat([rows[i][:-length], self.prompt_embeddings(alone)[0]])
            return torch.stack(rows)
        captured: dict[str, torch.Tensor] = {}

        def capture(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
            captured["embeddings"] = kwargs["inputs_embeds"]
            raise _Captured

        handle = model.get_submodule(self.language_model_path).register_forward_pre_hook(capture, with_kwargs=True)
        try:
            model(**batch.inputs, use_cache=False)
        except _Captured:
            pass
        finally:
            handle.remove()
        return captured["embeddings"]

    def generate(self, batch: PromptBatch, num_samples: int, sampling: SamplingConfig,
                 generator: RandomStreams = None) -> Completions:
        """Samples from ``softmax(logits / temperature)`` restricted to top-p, nothing else: the checkpoint's
        own decoding defaults (top-k, repetition penalty, ...) are ignored, as an RL policy must. The draw is
        speechgrpo's (:func:`~speechgrpo.models.sampling.sample_tokens`, one uniform per row from
        ``generator``), run as a logits processor under transformers' greedy search."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        check_streams(generator, batch.size)
        model: Any = self.unwrapped()
        copies = 1 if sampling.greedy else num_samples  # greedy samples are identical: decode once
        with torch.no_grad():
            embeddings = self.prompt_embeddings(batch).repeat_interleave(copies, dim=0)
        inputs = {"inputs_embeds": embeddings,
                  "attention_mask": batch.inputs["attention_mask"].repeat_interleave(copies, dim=0)}
        options: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "do_sample": False,
                                   "eos_token_id": self.stop_token_ids, "pad_token_id": self.pad_token_id,
                                   "use_cache": True}
        if not sampling.greedy:
            prompt_of_row = torch.arange(batch.size).repeat_interleave(copies)
            options["logits_processor"] = LogitsProcessorList([_Sampler(sampling, prompt_of_row, generator)])
        checkpoint_defaults = model.generation_config
        model.generation_config = _blank_generation_config()
        try:
            # GenerationMixin's own generate: a model's override (Granite Speech's switches a peft adapter,
            # which speechgrpo merges at load) is not needed on embeddings
            new = GenerationMixin.generate(model, **inputs, **options)  # only the new tokens (inputs_embeds)
        finally:
            model.generation_config = checkpoint_defaults
        is_stop = torch.isin(new, torch.tensor(self.stop_token_ids, device=new.device))
        mask = (is_stop.long().cumsum(1) - is_stop.long()) == 0  # up to and including the first stop token
        length = int(mask.sum(1).max()) if len(new) else 0
        ids, mask = new.masked_fill(~mask, self.pad_token_id)[:, :length], mask[:, :length]
        texts = self.tokenizer.batch_decode([row[keep] for row, keep in zip(ids, mask, strict=True)],
                                            skip_special_tokens=True)
        prompt_index = torch.arange(batch.size, device=ids.device).repeat_interleave(num_samples)
        if copies != num_samples:
            ids, mask = ids.repeat_interleave(num_samples, 0), mask.repeat_interleave(num_samples, 0)
            texts = [text for text in texts for _ in range(num_samples)]
        return Completions(ids, mask, texts, prompt_index)

    def encode_completions(self, texts: Sequence[str], prompt_index: torch.Tensor) -> Completions:
        if len(texts) != len(prompt_index):
            raise ValueError(f"{len(texts)} texts but {len(prompt_index)} prompt indices")
        rows = [[*self.tokenizer(text, add_special_tokens=False)["input_ids"], self.eos_token_id] for text in texts]
        length = max((len(row) for row in rows), default=0)
        ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = True
        device = prompt_index.device
        return Completions(ids.to(device), mask.to(device), list(texts), prompt_index)

    def completion_logits(self, batch: PromptBatch, completions: Completions) -> torch.Tensor:
        """Each prompt runs once and the completions that answer it share its keys and values (gradients
        flow through them); the completions then run on that cache, through ``self.module``. With G
        completions per prompt this is the same forward on a fraction of the tokens (the audio prompt is most
        of a row). With gradient checkpointing in training (transformers drops the cache there) it is one
        forward of ``[prompt + completion]`` rows instead; both give the same logits (tested)."""
        device = batch.inputs["input_ids"].device
        index = completions.prompt_index.to(device)
        ids, mask = completions.ids.to(device), completions.mask.to(device)
        model: Any = self.unwrapped()
        prompt_mask = batch.inputs["attention_mask"]
        prompts = self.prompt_embeddings(batch)
        completion_inputs = model.get_input_embeddings()(ids[:, :-1]).to(prompts.dtype)
        attention_mask = torch.cat([prompt_mask[index], mask[:, :-1].long()], dim=1)
        positions = (attention_mask.cumsum(1) - 1).masked_fill(attention_mask == 0, 0)
        width = prompt_mask.shape[1]
        if self._checkpointed_training():
            inputs: dict[str, Any] = {"inputs_embeds": torch.cat([prompts[index], completion_inputs], dim=1),
                                      "attention_mask": attention_mask, "position_ids": positions, "use_cache": False}
            if self._logits_to_keep:
                inputs["logits_to_keep"] = ids.shape[1]
            full: torch.Tensor = self.module(**inputs).logits
            return full if full.shape[1] == ids.shape[1] else full[:, -ids.shape[1]:]  # no slice: no copy backward
        cache_name = cache_kwarg()
        cache = DynamicCache(config=model.config.get_text_config())
        prefix = model.get_decoder()(  # the language model without its output layer
            inputs_embeds=prompts, attention_mask=prompt_mask,
            position_ids=(prompt_mask.cumsum(1) - 1).masked_fill(prompt_mask == 0, 0), use_cache=True,
            **{cache_name: cache}).last_hidden_state
        first: torch.Tensor = model.get_output_embeddings()(prefix[index, -1:])  # predicts each first token
        if ids.shape[1] <= 1:
            return first[:, :ids.shape[1]]
        cache.batch_select_indices(index)
        rest: torch.Tensor = self.module(inputs_embeds=completion_inputs, attention_mask=attention_mask,
                                         position_ids=positions[:, width:], use_cache=True,
                                         **{cache_name: cache}).logits
        return torch.cat([first, rest], dim=1)

    def _checkpointed_training(self) -> bool:
        """Whether a layer recomputes its activations in the backward pass (gradient checkpointing) and the
        model is in training mode: transformers turns the key-value cache off there."""
        model: Any = self.unwrapped()
        return bool(model.training) and any(getattr(m, "gradient_checkpointing", False) for m in model.modules())

    def save(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """``save_pretrained`` of model and processor. A LoRA model writes its base weights in the usual
        layout (loadable without peft) and the adapter under ``lora_adapter/`` (:mod:`speechgrpo.models.lora`)."""
        directory = Path(directory)
        model: Any = self.unwrapped()
        if has_lora(model):
            model.save_pretrained(directory, state_dict=base_state_dict(model, state_dict))
            save_adapter(model, self.lora, directory / LORA_DIRECTORY, state_dict)
        else:
            model.save_pretrained(directory, state_dict=state_dict)
        self.processor.save_pretrained(directory)

    @classmethod
    def load(cls: type[Self], directory: str | Path, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> Self:
        """Load from a local directory only (never the Hub). A ``lora_adapter/`` subdirectory is attached
        as a trainable adapter."""
        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory} has no config.json (a local checkpoint directory is required)")
        model = cls._load_model(directory, dtype).to(device)
        lora = None
        if (directory / LORA_DIRECTORY).is_dir():
            model, lora = load_adapter(model, directory / LORA_DIRECTORY)
        loaded = cls(model, cls._load_processor(directory))
        loaded.lora = lora
        return loaded

    # -- helpers ----------------------------------------------------------------------------------------------------
    def _render(self, messages: list[dict[str, Any]]) -> str:
        """The chat template (the processor's, else the tokenizer's) with the assistant turn opened."""
        owner = self.processor if getattr(self.processor, "chat_template", None) else self.tokenizer
        if not getattr(owner, "chat_template", None):
            raise ValueError(f"{type(self).__name__}: neither the processor nor the tokenizer has a chat template")
        text: str = owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return text

    @classmethod
    def input_limits(cls, directory: str | Path) -> InputLimits:
        """The class's audio limits; the checkpoint's tokenizer (loaded alone) for the text round trip, and the
        pieces it maps to its unknown token, if it has one."""
        processor = cls._load_processor(Path(directory))
        tokenizer: Any = getattr(processor, "tokenizer", processor)

        def tokenize(text: str) -> tuple[str, list[str]]:
            encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=tokenizer.is_fast)
            ids = encoded["input_ids"]
            unknown = ([text[start:end] for token, (start, end) in zip(ids, encoded["offset_mapping"], strict=True)
                        if token == tokenizer.unk_token_id] if tokenizer.is_fast else [])
            return tokenizer.decode(ids), unknown

        return InputLimits(cls.min_audio_seconds, cls.max_audio_seconds, tokenize)

    def prompt_text(self, prompt: SpeechPrompt) -> str:
        """The prompt as the model reads it: its chat messages through the chat template, the assistant turn
        opened (the audio placeholder not yet expanded)."""
        return self._render(self._messages(prompt))

    def checked_audio(self, audio: np.ndarray) -> np.ndarray:
        """1-D, finite float32, within the model's length limits. The sample rate cannot be checked here: the
        caller must pass :data:`SAMPLE_RATE` (16 kHz) audio; other rates silently give wrong features."""
        if not self.audio_feature_keys:
            raise ValueError(f"{type(self).__name__} is a text-only model: prompts must have audio=None")
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio must be a 1-D (mono) array, got shape {audio.shape}")
        if audio.size < self.min_audio_seconds * SAMPLE_RATE:
            raise ValueError(f"audio is {audio.size / SAMPLE_RATE:.3f} s; {type(self).__name__} needs at least "
                             f"{self.min_audio_seconds:g} s")
        if not np.isfinite(audio).all():
            raise ValueError("audio has NaN or infinite samples")
        if self.max_audio_seconds is not None and audio.size > self.max_audio_seconds * SAMPLE_RATE:
            raise ValueError(f"audio is {audio.size / SAMPLE_RATE:.1f} s; {type(self).__name__} takes at most "
                             f"{self.max_audio_seconds:g} s")
        return audio


class _Captured(Exception):
    """Stops a forward once the language model's input embeddings are known (see prompt_embeddings)."""


def _blank_generation_config() -> Any:
    config_class: Any = GenerationConfig  # untyped constructor
    return config_class()


def _as_ids(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)


class _Sampler(LogitsProcessor):
    """Draws each row's next token (:func:`~speechgrpo.models.sampling.sample_tokens`) and leaves it the only
    finite score, so that greedy search takes it."""

    def __init__(self, sampling: SamplingConfig, prompt_of_row: torch.Tensor, streams: RandomStreams) -> None:
        self.sampling, self.prompt_of_row, self.streams = sampling, prompt_of_row, streams

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tokens = sample_tokens(scores, self.sampling, self.prompt_of_row, self.streams)
        chosen = torch.full_like(scores, float("-inf")).scatter(1, tokens[:, None], 0.0)
        return chosen  # type: ignore[return-value]


def module_to_published_name(prefixes: Sequence[tuple[str, str]], name: str) -> str:
    """A transformers-5 parameter name as the published checkpoint files spell it (``prefixes``: (module
    prefix, published prefix) pairs; names no pair matches are unchanged)."""
    for module_prefix, published_prefix in prefixes:
        if name.startswith(module_prefix):
            return published_prefix + name[len(module_prefix):]
    return name


def published_to_module_name(prefixes: Sequence[tuple[str, str]], name: str) -> str:
    """The inverse of :func:`module_to_published_name`."""
    for module_prefix, published_prefix in prefixes:
        if name.startswith(published_prefix):
            return module_prefix + name[len(published_prefix):]
    return name


def _audio_placeholder(model: Any) -> int | None:
    """The token id that marks where audio embeddings go (``None`` for a text-only model)."""
    value = getattr(model.config, "audio_token_id", getattr(model.config, "audio_token_index", None))
    return None if value is None else int(value)


def _ban_token(model: Any, token_id: int) -> None:
    """The token's logit is -inf in every forward (sampling, scoring, reference): the policy never emits it, and
    the log-probs the trainer computes are those of the distribution it samples from."""
    head = model.get_output_embeddings()
    index = torch.tensor([token_id])

    def ban(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        # in place and outside autograd: no copy of the logits, forward or backward; the gradient is the same,
        # 0 at the banned token, where every softmax gives probability 0
        with torch.no_grad():
            output.index_fill_(-1, index.to(output.device), float("-inf"))
        return output

    head.register_forward_hook(ban)


def _apply_logits_scaling(model: Any, avoid_ids: set[int]) -> float:
    """Divide the model's logits by its text config's ``logits_scaling`` where its forward does not.

    Granite language models define their logits as ``lm_head(h) / logits_scaling`` (``GraniteForCausalLM``
    and vLLM divide); transformers' ``GraniteSpeechForConditionalGeneration`` (5.19-5.25) returns
    ``lm_head(h)``, 8x too sharp for the published configs. One forward of one token tells which case this
    model is in: where the logits equal the output layer's, a hook on that layer divides them (so
    ``generate`` and every scoring forward see the model's own logits). Returns the divisor added (1.0: none).
    """
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    scaling = float(getattr(text_config, "logits_scaling", 1.0) or 1.0)
    head = model.get_output_embeddings()
    if scaling == 1.0 or head is None:
        return 1.0
    seen: dict[str, torch.Tensor] = {}
    probe = head.register_forward_hook(lambda _m, _i, output: seen.__setitem__("head", output))
    device = next(model.parameters()).device
    # a plain token: a padding id's embedding may be all zeros, an audio placeholder needs audio
    placeholder = _audio_placeholder(model)
    avoid = avoid_ids | ({placeholder} if placeholder is not None else set())
    token = next(i for i in range(len(avoid) + 1) if i not in avoid)
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([[token]], device=device), use_cache=False).logits
    finally:
        probe.remove()
    raw = seen["head"].to(logits.dtype)
    if not bool(raw.abs().max() > 0):
        raise RuntimeError(f"{type(model).__name__}: all-zero logits for token {token}; cannot tell whether its "
                           "forward applies logits_scaling")
    if torch.allclose(logits * scaling, raw, rtol=1e-3, atol=0.0):
        return 1.0  # the forward divides already
    if not torch.equal(logits, raw):
        raise RuntimeError(f"{type(model).__name__}: its logits are neither the output layer's nor those divided by "
                           f"logits_scaling {scaling:g}; cannot tell how to apply it")
    head.register_forward_hook(lambda _m, _i, output: output / scaling)
    return scaling

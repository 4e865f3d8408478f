"""The one interface the trainer uses for every speech LLM (audio + text prompt -> text).

A GRPO step needs four things from a model: turn prompts into model inputs, sample several completions
per prompt, score given completions token by token (policy, old policy, reference, and off-policy
references for MP-GRPO), and save/load. Implementations wrap Granite Speech and Qwen2-Audio through
transformers, and the small bundled model that trains from scratch on a CPU.

Conventions:
- Audio is mono float32 at :data:`SAMPLE_RATE` (16 kHz); ``None`` for a text-only prompt.
- Completions are token ids *after* the prompt, ending with the EOS token when the model stopped;
  ``mask`` is true on completion tokens (EOS included: the policy must learn to stop) and false on padding.
- ``module`` is the trainable ``torch.nn.Module``. The trainer may replace it by a wrapped version
  (``accelerate`` / DDP); implementations run gradient-carrying forwards through ``self.module(...)``, and
  generation and ``save`` through :meth:`unwrapped`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class SpeechPrompt:
    """One prompt: the audio (16 kHz mono float32, or ``None``) and the text instruction or question."""

    audio: np.ndarray | None
    text: str


@dataclass
class PromptBatch:
    """Model inputs for a batch of prompts, on the model's device (model-specific tensors in ``inputs``)."""

    inputs: dict[str, torch.Tensor]
    size: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completions:
    """Token ids after the prompt, ``(n, length)`` right-padded, with their mask and decoded texts.

    ``prompt_index[i]`` is the prompt row that completion ``i`` answers (generation lays a prompt's samples
    next to each other: ``[p0, p0, ..., p1, p1, ...]``).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    texts: list[str]
    prompt_index: torch.Tensor

    def __len__(self) -> int:
        return len(self.texts)

    def stopped(self, stop_token_ids: Sequence[int]) -> torch.Tensor:
        """Bool per row: whether it ends with one of ``stop_token_ids`` (a row without one was cut at the
        length limit)."""
        lengths = self.mask.sum(1)
        last = self.ids.gather(1, (lengths - 1).clamp(min=0)[:, None])[:, 0]
        return (lengths > 0) & torch.isin(last, torch.tensor(list(stop_token_ids), device=self.ids.device))


@dataclass(frozen=True)
class InputLimits:
    """The audio lengths a model takes (seconds; ``None``: no upper limit; clips outside are refused, never
    truncated) and how it tokenizes text: ``tokenize(text)`` gives what decoding the text's tokens returns
    and the words the vocabulary lacks (a word-level vocabulary drops them), or ``None`` where there is
    nothing to check."""

    min_audio_seconds: float = 0.0
    max_audio_seconds: float | None = None
    tokenize: Callable[[str], tuple[str, list[str]]] | None = None
    normalize: Callable[[str], str] = str  # the text a perfect round trip gives back (e.g. NFC, spaces collapsed)


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings; ``greedy=True`` ignores temperature and top-p."""

    max_new_tokens: int = 200
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False


#: the random source of sampling: one generator for the whole batch (rows in order), one per prompt (a
#: prompt's samples then do not depend on the rest of its batch), or ``None`` (torch's global RNG)
RandomStreams = torch.Generator | Sequence[torch.Generator] | None


class SpeechLM(ABC):
    """A speech LLM as the trainer and the evaluator use it."""

    module: torch.nn.Module
    has_ctc_head: bool = False  # True where transcript_ctc_losses is implemented
    # module path of the language model inside ``module``: where LoRA goes ("" = anywhere) and, for the
    # transformers models, the module whose input is the merged text + audio embeddings
    language_model_path: str = ""
    lora: Any = None  # peft LoraConfig of the injected adapter (see speechgrpo.models.lora), or None
    stop_token_ids: list[int]  # generation ends at these (the end-of-turn token); completions end with one

    @property
    def device(self) -> torch.device:
        return next(self.unwrapped().parameters()).device

    def unwrapped(self) -> torch.nn.Module:
        """``module`` without a DDP / accelerate wrapper (for generation and saving)."""
        module = self.module
        while hasattr(module, "module") and isinstance(module.module, torch.nn.Module):
            module = module.module
        return module

    @abstractmethod
    def encode_prompts(self, prompts: Sequence[SpeechPrompt]) -> PromptBatch:
        """Audio features and templated, tokenized prompt text, on the model's device."""

    @abstractmethod
    def generate(self, batch: PromptBatch, num_samples: int, sampling: SamplingConfig,
                 generator: RandomStreams = None) -> Completions:
        """``num_samples`` completions per prompt (KV-cached decoding), prompt by prompt in order; the
        uniforms of the draws come from ``generator`` (see :mod:`speechgrpo.models.sampling`)."""

    @abstractmethod
    def encode_completions(self, texts: Sequence[str], prompt_index: torch.Tensor) -> Completions:
        """Tokenize given completions (SFT targets, MP-GRPO references), EOS appended, as :class:`Completions`."""

    @abstractmethod
    def completion_logits(self, batch: PromptBatch, completions: Completions) -> torch.Tensor:
        """Next-token logits at each completion position, ``(n, length, vocab)``, through ``self.module``
        (so gradients flow and a DDP wrapper sees the forward)."""

    def apply_lora(self, rank: int, alpha: float | None = None, dropout: float = 0.0,
                   target_modules: Sequence[str] | None = None) -> None:
        """Inject a LoRA adapter (rank ``rank``, scale ``alpha / rank``; alpha defaults to ``2 * rank``) into
        the language model's ``target_modules`` (default: its attention and MLP projections) and freeze
        every other weight. Call it before the trainer wraps ``module``."""
        from speechgrpo.models.lora import DEFAULT_LORA_TARGETS, inject_lora, lora_config

        if self.unwrapped() is not self.module:
            raise ValueError("apply LoRA before wrapping the module (DDP / accelerate)")
        self.check_lora()
        config = lora_config(rank, alpha, dropout, target_modules or DEFAULT_LORA_TARGETS, self.language_model_path)
        self.module = inject_lora(self.module, config)
        self.lora = config

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass instead of storing them: transformers' own gradient
        checkpointing on every transformers model inside ``module`` that supports it (Granite Speech: its
        language model; the bundled model: its Llama decoder)."""
        from transformers import PreTrainedModel

        models: list[Any] = [m for m in self.unwrapped().modules()
                             if isinstance(m, PreTrainedModel) and m.supports_gradient_checkpointing]
        if not models:
            raise ValueError(f"{type(self).__name__} does not support gradient checkpointing")
        for model in models:
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x's name
                model.activation_checkpointing_enable({"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def check_lora(self) -> None:  # noqa: B027  (a hook: most models take LoRA as they are)
        """Raise where this model cannot take speechgrpo's LoRA adapter."""

    @classmethod
    def input_limits(cls, directory: str | Path) -> InputLimits:
        """What the checkpoint in ``directory`` accepts, read without loading its weights: the trainer checks
        its manifests against it before anything loads."""
        return InputLimits()

    def reference_mode(self) -> Any:
        """A context in which the model is its reference policy: the adapter off (LoRA models only)."""
        from speechgrpo.models.lora import adapter_disabled

        if self.lora is None:
            raise ValueError("the model has no LoRA adapter: its reference policy is a separate copy")
        return adapter_disabled(self.unwrapped())

    def completion_log_probs(self, batch: PromptBatch, completions: Completions,
                             temperature: float = 1.0) -> torch.Tensor:
        """Per-token log-probs of the completion tokens, ``(n, length)``; 0 at padding."""
        from speechgrpo.losses import token_log_probs

        logits = self.completion_logits(batch, completions)
        log_probs = token_log_probs(logits, completions.ids, temperature=temperature)
        return torch.where(completions.mask, log_probs, 0.0)

    def transcript_ctc_losses(self, batch: PromptBatch, transcripts: Sequence[str]) -> torch.Tensor:
        """Per-prompt CTC loss ``(batch.size,)`` of each prompt audio's transcript, through ``self.module``
        (0 where there is no audio or the transcript is empty): the auxiliary loss that makes a from-scratch
        speech LLM hear (``TrainConfig.ctc_weight``)."""
        raise ValueError(f"{type(self).__name__} has no CTC head; set ctc_weight: 0")

    @abstractmethod
    def save(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write weights, config and tokenizer/processor so that :meth:`load` restores the same model.
        ``state_dict`` replaces the module's own (the full weights gathered from a sharded run)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> SpeechLM:
        """Load a model saved by :meth:`save` (or a compatible local checkpoint)."""

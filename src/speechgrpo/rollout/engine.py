"""The sampling interface of the trainer: who turns prompts into G completions each.

A :class:`RolloutEngine` samples; the trainer scores what it sampled with its own forward (the loss uses the
trainer's log-probs, as TRL does) and calls :meth:`RolloutEngine.sync` after every optimizer step, so the
engine samples from the current policy. Two implementations: :class:`~speechgrpo.rollout.hf_engine.HFEngine`
(the model's own KV-cached generation) and :class:`~speechgrpo.rollout.vllm_engine.VLLMEngine` (vLLM in the
training process, TRL's ``vllm_mode="colocate"``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from speechgrpo.models import Completions, SamplingConfig, SpeechLM, SpeechPrompt


@dataclass
class Samples:
    """``per_prompt`` completions of each prompt (``[p0, p0, ..., p1, ...]``), and the sampler's per-token
    log-probs ``(n, length)`` (0 at padding) where the engine reports them: those of the distribution it
    sampled from (temperature and top-p applied), to compare with the trainer's."""

    completions: Completions
    log_probs: torch.Tensor | None = None


class RolloutEngine(ABC):
    """Samples completions from the policy."""

    name: str

    @abstractmethod
    def sample(self, prompts: Sequence[SpeechPrompt], per_prompt: int, sampling: SamplingConfig,
               seeds: Sequence[int]) -> Samples:
        """``per_prompt`` completions of each prompt; ``seeds[i]`` seeds prompt ``i``'s random stream."""

    def sync(self, model: SpeechLM) -> None:  # noqa: B027  (engines that sample from the model itself need nothing)
        """Bring the engine's weights to ``model``'s (after an optimizer step)."""

    def close(self) -> None:  # noqa: B027
        """Release what the engine holds."""


def sampling_seed(seed: int, step: int, example: int) -> int:
    """The seed of one prompt's samples at ``step``, from the run's seed and the prompt's index in the training
    set: a prompt's samples do not depend on the number of processes or on what else is sampled with it."""
    state = np.random.SeedSequence([seed, step, example]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])

"""Sampling with the model's own generation (``SpeechLM.generate``): no second copy of the weights."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from speechgrpo.models import Completions, SamplingConfig, SpeechLM, SpeechPrompt
from speechgrpo.rollout.engine import RolloutEngine, Samples


class HFEngine(RolloutEngine):
    """``prompts_per_call`` prompts per ``generate`` call, KV-cached, dropout off (the model in eval mode);
    each call's random stream is seeded by its first prompt's seed (so with one prompt per call, a prompt's
    samples do not depend on the others). ``autocast`` is the trainer's mixed-precision context: rollouts
    run in the precision the forwards train in."""

    name = "hf"

    def __init__(self, model: SpeechLM, prompts_per_call: int | None = None,
                 autocast: Callable[[], Any] = contextlib.nullcontext) -> None:
        self.model, self.prompts_per_call, self.autocast = model, prompts_per_call, autocast

    def sample(self, prompts: Sequence[SpeechPrompt], per_prompt: int, sampling: SamplingConfig,
               seeds: Sequence[int]) -> Samples:
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        step = self.prompts_per_call or len(prompts)
        parts = []
        self.model.unwrapped().eval()
        with torch.no_grad(), self.autocast():
            for start in range(0, len(prompts), step):
                batch = self.model.encode_prompts(prompts[start:start + step])
                part = self.model.generate(batch, per_prompt, sampling, torch.Generator().manual_seed(seeds[start]))
                part.prompt_index = part.prompt_index + start
                parts.append(part)
        return Samples(concatenate(parts))


def concatenate(parts: Sequence[Completions]) -> Completions:
    """The rows of ``parts`` in order (``prompt_index`` values are kept as given), padded to the widest."""
    width = max(part.ids.shape[1] for part in parts)

    def padded(tensor: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]))

    return Completions(torch.cat([padded(p.ids) for p in parts]), torch.cat([padded(p.mask) for p in parts]),
                       [text for p in parts for text in p.texts], torch.cat([p.prompt_index for p in parts]))

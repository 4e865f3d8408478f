"""Token sampling shared by the models' decoding loops: temperature, top-p, then an inverse-CDF draw
from one uniform per row.

The uniforms come from one ``torch.Generator`` in row order, or from one generator per prompt (a
:data:`RandomStreams` sequence): then a prompt's samples depend only on its own stream, not on which
prompts share its batch or its process, which is what makes evaluation scores independent of the batch
size and the number of processes (``speechgrpo.train.evaluation``).
"""

from __future__ import annotations

import torch

from speechgrpo.models.speech_lm import RandomStreams, SamplingConfig

NUCLEUS_CANDIDATES = 64  # the most probable tokens ranked first; the whole vocabulary only if they hold < top_p
_COVERAGE_MARGIN = 1e-4  # beyond float rounding of the cumulative sums: then no later token can be in the nucleus


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """``probs`` with the tokens outside each row's top-p nucleus set to 0 (the smallest set of most probable
    tokens that holds ``top_p``; the top token always stays), in vocabulary order. Ranks the
    :data:`NUCLEUS_CANDIDATES` most probable tokens (``topk``), and sorts the whole row only where those
    hold less than ``top_p``: the same set as a full sort, at a fraction of its cost."""
    k = min(NUCLEUS_CANDIDATES, probs.shape[-1])
    ranked, order = probs.topk(k, dim=-1)
    held = ranked.cumsum(-1)
    if k < probs.shape[-1] and bool((held[:, -1] < top_p + _COVERAGE_MARGIN).any()):
        ranked, order = probs.sort(dim=-1, descending=True)
        held = ranked.cumsum(-1)
    outside = held - ranked >= top_p
    return torch.zeros_like(probs).scatter(-1, order, ranked.masked_fill(outside, 0.0))


def check_streams(streams: RandomStreams, prompts: int) -> None:
    """Refuse a per-prompt sequence of generators whose length is not the number of prompts."""
    if streams is not None and not isinstance(streams, torch.Generator) and len(streams) != prompts:
        raise ValueError(f"{len(streams)} random streams for {prompts} prompts: give one generator per prompt")


def uniforms(prompt_of_row: torch.Tensor, streams: RandomStreams, device: torch.device) -> torch.Tensor:
    """One uniform in [0, 1) per row, on ``device``: from a single generator in row order (on the
    generator's own device, so a CPU generator also drives a GPU model), or from the generator of each
    row's prompt (``prompt_of_row[i]``), a prompt's rows drawing in turn."""
    if streams is None or isinstance(streams, torch.Generator):
        source = streams.device if streams is not None else device
        return torch.rand(len(prompt_of_row), generator=streams, device=source).to(device)
    draws = [torch.rand(1, generator=streams[p], device=streams[p].device) for p in prompt_of_row.tolist()]
    return torch.cat([d.cpu() for d in draws]).to(device) if draws else torch.zeros(0, device=device)


def sample_tokens(logits: torch.Tensor, sampling: SamplingConfig, prompt_of_row: torch.Tensor,
                  streams: RandomStreams) -> torch.Tensor:
    """Next tokens ``(rows,)``: argmax when greedy (no draw), else the inverse CDF of
    ``softmax(logits / temperature)`` restricted to the top-p nucleus at one uniform per row
    (:func:`uniforms`)."""
    if sampling.greedy:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        probs = nucleus(probs, sampling.top_p)
    uniform = uniforms(prompt_of_row, streams, logits.device)
    cdf = probs.cumsum(-1)
    picked = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True)[:, 0]
    return picked.clamp(max=logits.shape[-1] - 1)

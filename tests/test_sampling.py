"""Token sampling (speechgrpo.models.sampling): the top-p set, the distribution against transformers' own
temperature and top-p warpers, and per-prompt random streams."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from speechgrpo.models import SamplingConfig  # noqa: E402
from speechgrpo.models.sampling import NUCLEUS_CANDIDATES, nucleus, sample_tokens, uniforms  # noqa: E402


def test_nucleus_equals_a_full_sort() -> None:
    """The top-p set from the top-ranked candidates equals the one from sorting the whole vocabulary, on
    peaked and flat rows (flat ones need the full sort) and vocabularies smaller than the candidates."""
    def full_sort(probs: torch.Tensor, top_p: float) -> torch.Tensor:
        ranked, order = probs.sort(dim=-1, descending=True)
        outside = ranked.cumsum(-1) - ranked >= top_p
        return torch.zeros_like(probs).scatter(-1, order, ranked.masked_fill(outside, 0.0))

    generator = torch.Generator().manual_seed(0)
    flat_rows = 0
    for vocab in (5, NUCLEUS_CANDIDATES, 1970):
        for scale in (0.05, 1.0, 4.0, 30.0):
            probs = torch.softmax(torch.randn(32, vocab, generator=generator) * scale, -1)
            for top_p in (0.3, 0.9, 0.999):
                kept = nucleus(probs, top_p)
                assert torch.equal(kept, full_sort(probs, top_p)), (vocab, scale, top_p)
                flat_rows += int(((kept > 0).sum(-1) > NUCLEUS_CANDIDATES).sum())
                assert bool(((kept > 0).sum(-1) >= 1).all())
    assert flat_rows > 0  # the fallback ran


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.9, 0.9), (1.5, 0.6), (0.5, 0.95)])
def test_samples_follow_transformers_temperature_and_top_p(temperature: float, top_p: float) -> None:
    """200,000 draws from one row match the distribution transformers' TemperatureLogitsWarper and
    TopPLogitsWarper define (total variation < 0.01; no token outside the nucleus drawn)."""
    transformers = pytest.importorskip("transformers")
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(1)) * 2
    warped = transformers.TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_p < 1.0:
        warped = transformers.TopPLogitsWarper(top_p)(None, warped)
    expected = torch.softmax(warped, -1)[0]
    draws = 200_000
    rows = torch.zeros(draws, dtype=torch.long)
    tokens = sample_tokens(logits.expand(draws, -1), SamplingConfig(temperature=temperature, top_p=top_p), rows,
                           torch.Generator().manual_seed(2))
    observed = torch.bincount(tokens, minlength=50).double() / draws
    assert set(torch.nonzero(observed).flatten().tolist()) <= set(torch.nonzero(expected).flatten().tolist())
    assert float((observed - expected.double()).abs().sum() / 2) < 0.01


def test_greedy_takes_the_argmax_without_drawing() -> None:
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert sample_tokens(logits, SamplingConfig(greedy=True), torch.tensor([0, 1]), generator).tolist() == [1, 0]
    assert torch.equal(generator.get_state(), state)


def test_per_prompt_streams_draw_from_their_own_generator() -> None:
    """Rows draw in turn from their prompt's generator: prompt 1's draws are the same whether or not prompt 0
    is in the batch; a single generator draws for the rows in order."""
    def streams() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(s) for s in (5, 6)]

    both = uniforms(torch.tensor([0, 0, 1, 1]), streams(), torch.device("cpu"))
    alone = uniforms(torch.tensor([0, 0]), [streams()[1]], torch.device("cpu"))  # prompt 1 alone in its batch
    assert torch.equal(both[2:], alone)
    first = torch.Generator().manual_seed(5)
    assert torch.equal(both[:2], torch.cat([torch.rand(1, generator=first), torch.rand(1, generator=first)]))
    assert not torch.equal(both[:2], both[2:])
    single = uniforms(torch.tensor([0, 0, 1]), torch.Generator().manual_seed(3), torch.device("cpu"))
    assert torch.equal(single, torch.rand(3, generator=torch.Generator().manual_seed(3)))

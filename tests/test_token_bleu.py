"""Token-id BLEU in torch against a plain per-row implementation over ids, and against sacrebleu."""

from __future__ import annotations

import random
from collections import Counter

import pytest

torch = pytest.importorskip("torch")
sacrebleu = pytest.importorskip("sacrebleu")

from speechgrpo.metrics.token_bleu import token_bleu, token_bleu_statistics  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PAD = 0


def naive_statistics(candidate: list[int], references: list[list[int]], order: int = 4) -> list[int]:
    """sacrebleu's statistics written out per row over ids: the simple reference implementation."""
    def ngrams(tokens: list[int]) -> Counter[tuple[int, ...]]:
        return Counter(tuple(tokens[i:i + n]) for n in range(1, order + 1) for i in range(len(tokens) - n + 1))

    merged: Counter[tuple[int, ...]] = Counter()
    for ref in references:
        for gram, count in ngrams(ref).items():
            merged[gram] = max(merged[gram], count)
    correct, total = [0] * order, [0] * order
    for gram, count in ngrams(candidate).items():
        total[len(gram) - 1] += count
        correct[len(gram) - 1] += min(count, merged.get(gram, 0))
    ref_len = min((len(r) for r in references), key=lambda r: (abs(len(candidate) - r), r))
    return [len(candidate), ref_len, *correct, *total]


def random_batch(seed: int, batch: int, n_refs: int, length: int, vocab: int) -> tuple[list, list]:
    rng = random.Random(seed)
    cands = [[rng.randint(1, vocab) for _ in range(rng.randint(0, length))] for _ in range(batch)]
    refs = [[[rng.randint(1, vocab) for _ in range(rng.randint(0, length))] for _ in range(n_refs)]
            for _ in range(batch)]
    for b in range(batch):  # copies and partial copies give matches at every order
        if rng.random() < 0.4:
            refs[b][0] = (cands[b][: rng.randint(0, len(cands[b]))] + refs[b][0][:3])[:length]
    return cands, refs


def padded(rows: list[list[int]], length: int, left: bool = False) -> list[list[int]]:
    return [[PAD] * (length - len(r)) + r if left else r + [PAD] * (length - len(r)) for r in rows]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed,n_refs,vocab", [(0, 1, 6), (1, 3, 50), (2, 2, 200_000), (3, 4, 3)])
def test_statistics_equal_the_naive_implementation(device: str, seed: int, n_refs: int, vocab: int) -> None:
    cands, refs = random_batch(seed, 48, n_refs, 30, vocab)
    candidates = torch.tensor(padded(cands, 30), device=device)
    references = torch.tensor([padded(r, 30) for r in refs], device=device)
    got = token_bleu_statistics(candidates, references, pad_id=PAD).cpu().tolist()
    assert got == [naive_statistics(c, r) for c, r in zip(cands, refs, strict=True)]


@pytest.mark.parametrize("device", DEVICES)
def test_left_padding_and_explicit_masks(device: str) -> None:
    cands, refs = random_batch(7, 32, 2, 20, 9)
    left = token_bleu_statistics(torch.tensor(padded(cands, 20, left=True), device=device),
                                 torch.tensor([padded(r, 20, left=True) for r in refs], device=device), pad_id=PAD)
    candidates = torch.tensor(padded(cands, 20), device=device)
    references = torch.tensor([padded(r, 20) for r in refs], device=device)
    masked = token_bleu_statistics(candidates, references, candidate_mask=candidates != PAD,
                                   reference_mask=references != PAD)
    assert left.cpu().tolist() == masked.cpu().tolist() == [naive_statistics(c, r) for c, r in zip(cands, refs,
                                                                                                  strict=True)]


@pytest.mark.parametrize("smooth_method", ["exp", "floor", "add-k", "none"])
@pytest.mark.parametrize("effective_order", [True, False])
def test_scores_follow_sacrebleu_arithmetic(smooth_method: str, effective_order: bool) -> None:
    cands, refs = random_batch(11, 64, 2, 25, 12)
    scores = token_bleu(torch.tensor(padded(cands, 25)), torch.tensor([padded(r, 25) for r in refs]), pad_id=PAD,
                        smooth_method=smooth_method, effective_order=effective_order)
    compute = sacrebleu.metrics.BLEU.compute_bleu
    expected = [compute(s[2:6], s[6:], s[0], s[1], smooth_method, None, effective_order).score
                for s in (naive_statistics(c, r) for c, r in zip(cands, refs, strict=True))]
    assert scores.tolist() == expected  # sacrebleu's own arithmetic, float for float


def test_equals_sacrebleu_on_ids_written_as_words() -> None:
    cands, refs = random_batch(5, 64, 1, 20, 15)
    scores = token_bleu(torch.tensor(padded(cands, 20)), torch.tensor([padded(r, 20) for r in refs]), pad_id=PAD)
    bleu = sacrebleu.metrics.BLEU(tokenize="none", effective_order=True)
    expected = [bleu.sentence_score(" ".join(map(str, c)), [" ".join(map(str, r[0]))]).score
                for c, r in zip(cands, refs, strict=True)]
    assert torch.allclose(scores, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_two_dimensional_references_and_bad_shapes() -> None:
    candidates = torch.tensor([[5, 6, 7, 8], [1, 2, 0, 0]])
    assert token_bleu(candidates, candidates.clone(), pad_id=PAD).tolist() == pytest.approx([100.0, 100.0])
    with pytest.raises(ValueError, match="candidates must be"):
        token_bleu(torch.tensor([1, 2]), candidates)
    with pytest.raises(ValueError, match="references must be"):
        token_bleu(candidates, torch.zeros(3, 4, dtype=torch.long))

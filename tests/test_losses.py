"""Policy losses: value and gradient against a naive per-token loop, numerical safety, statistics."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speechgrpo.losses import LOSS_PRESETS, LossConfig, loss_config, policy_loss, token_entropy, token_log_probs


def naive_loss(logp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, ref: torch.Tensor,
               off: torch.Tensor, config: LossConfig) -> torch.Tensor:
    """The loss written token by token, straight from the formulas in the notes."""
    batch, width = logp.shape
    eps_high = config.epsilon_low if config.epsilon_high is None else config.epsilon_high
    sequence_losses, total = [], torch.zeros((), dtype=logp.dtype)
    for b in range(batch):
        tokens = [t for t in range(width) if mask[b, t]]
        sequence_log_ratio = sum((logp[b, t] - old[b, t] for t in tokens), torch.zeros(())) / max(len(tokens), 1)
        sequence_sum = torch.zeros((), dtype=logp.dtype)
        for t in tokens:
            if off[b]:
                p = torch.exp(logp[b, t])
                gamma = config.off_policy_shaping
                objective = (p if gamma is None else p / (p + gamma)) * adv[b]
            else:
                log_ratio = sequence_log_ratio if config.ratio_level == "sequence" else logp[b, t] - old[b, t]
                ratio = torch.exp(log_ratio)
                objective = torch.min(ratio * adv[b], torch.clamp(ratio, 1 - config.epsilon_low, 1 + eps_high) * adv[b])
            loss = -objective
            if config.beta and (config.off_policy_kl or not off[b]):
                x = ref[b, t] - logp[b, t]
                kl = {"k1": -x, "k2": 0.5 * x * x, "k3": torch.exp(x) - x - 1}[config.kl_estimator]
                loss = loss + config.beta * kl
            sequence_sum = sequence_sum + loss
        sequence_losses.append(sequence_sum / max(len(tokens), 1))
        total = total + sequence_sum
    if config.aggregation == "sequence_mean":
        return torch.stack(sequence_losses).mean()
    if config.aggregation == "token_mean":
        return total / max(int(mask.sum()), 1)
    return total / (batch * (config.max_completion_length or width))


def random_batch(seed: int, batch: int = 5, width: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logp = -3 * torch.rand(batch, width, generator=g, dtype=torch.float64)
    mask = torch.rand(batch, width, generator=g) < 0.75
    mask[:, 0] = True
    mask[-1] = False  # an all-padding row
    return {
        "logp": logp,
        "old": logp + 0.3 * torch.randn(batch, width, generator=g, dtype=torch.float64),
        "ref": logp + 0.2 * torch.randn(batch, width, generator=g, dtype=torch.float64),
        "adv": torch.randn(batch, generator=g, dtype=torch.float64),
        "mask": mask,
        "off": torch.tensor([False, True, False, False, False]),
    }


CONFIGS = [
    *[(name, {"entropy_coef": 0.0}) for name in sorted(LOSS_PRESETS)],
    ("paper", {"kl_estimator": "k1"}),
    ("paper", {"kl_estimator": "k2", "off_policy_kl": False}),
    ("dapo", {"beta": 0.1, "ratio_level": "sequence"}),
    ("dr_grpo", {"max_completion_length": 20, "off_policy_shaping": 0.5}),
]


@pytest.mark.parametrize(("preset", "overrides"), CONFIGS)
@pytest.mark.parametrize("seed", range(3))
def test_loss_and_gradient_equal_the_naive_per_token_loop(preset: str, overrides: dict[str, object],
                                                          seed: int) -> None:
    data = random_batch(seed)
    config = loss_config(preset, **overrides)
    logp = data["logp"].clone().requires_grad_(True)
    out = policy_loss(logp, data["old"], data["adv"], data["mask"], ref_logprobs=data["ref"],
                      off_policy=data["off"], preset=config)
    (grad,) = torch.autograd.grad(out.loss, logp)
    naive_logp = data["logp"].clone().requires_grad_(True)
    expected = naive_loss(naive_logp, data["old"], data["adv"], data["mask"], data["ref"], data["off"], config)
    (naive_grad,) = torch.autograd.grad(expected, naive_logp)
    torch.testing.assert_close(out.loss, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, naive_grad, rtol=1e-10, atol=1e-12)


def test_off_policy_gradient_is_probability_weighted_sft_without_clipping() -> None:
    logp = torch.log(torch.tensor([[0.9, 0.05, 0.5]], dtype=torch.float64)).requires_grad_(True)
    old = torch.full_like(logp, -30.0)  # would give a clipped ratio on-policy; must be ignored off-policy
    out = policy_loss(logp, old, torch.tensor([2.0], dtype=torch.float64), torch.ones(1, 3, dtype=torch.bool),
                      off_policy=torch.tensor([True]), preset="paper", beta=0.0)
    (grad,) = torch.autograd.grad(out.loss, logp)
    torch.testing.assert_close(grad, -2.0 * logp.detach().exp() / 3)
    assert out.stats["off_policy_prob"].item() == pytest.approx((0.9 + 0.05 + 0.5) / 3)


def test_luffy_shaping_raises_the_weight_of_unlikely_tokens() -> None:
    logp = torch.log(torch.tensor([[0.9, 0.01]], dtype=torch.float64)).requires_grad_(True)
    out = policy_loss(logp, None, torch.ones(1, dtype=torch.float64), torch.ones(1, 2, dtype=torch.bool),
                      off_policy=torch.tensor([True]), preset="luffy", entropy_coef=0.0)
    (grad,) = torch.autograd.grad(out.loss, logp)
    p, gamma = logp.detach().exp(), 0.1
    torch.testing.assert_close(grad, -(gamma * p / (p + gamma) ** 2) / 2)
    assert abs(grad[0, 1]) / abs(grad[0, 0]) > 0.01 / 0.9  # relatively more weight than without shaping


def test_clip_fractions_count_where_the_clip_is_active() -> None:
    logp = torch.zeros(2, 2, dtype=torch.float64)
    old = torch.tensor([[-0.5, 0.0], [0.5, 0.0]], dtype=torch.float64)  # ratios e^0.5 and e^-0.5
    out = policy_loss(logp, old, torch.tensor([1.0, -1.0], dtype=torch.float64), torch.ones(2, 2, dtype=torch.bool),
                      preset="dapo")
    assert out.stats["clip_frac_high"].item() == 0.25
    assert out.stats["clip_frac_low"].item() == 0.25
    assert out.stats["clip_frac"].item() == 0.5
    assert out.stats["tokens"].item() == 4


def test_gradient_accumulation_with_a_global_token_count_equals_one_batch() -> None:
    data = random_batch(11, batch=6)
    data["mask"][-1, :3] = True
    args = {"preset": "paper"}
    full = policy_loss(data["logp"], data["old"], data["adv"], data["mask"], ref_logprobs=data["ref"], **args)
    n_tokens = data["mask"].sum()
    parts = sum(policy_loss(data["logp"][s], data["old"][s], data["adv"][s], data["mask"][s],
                            ref_logprobs=data["ref"][s], num_tokens=n_tokens, **args).loss
                for s in (slice(0, 2), slice(2, 6)))
    torch.testing.assert_close(parts, full.loss)


def test_token_log_probs_and_entropy_match_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    logits = 5 * torch.randn(3, 4, 50, generator=g)
    ids = torch.randint(0, 50, (3, 4), generator=g)
    expected = torch.distributions.Categorical(logits=logits / 0.7)
    torch.testing.assert_close(token_log_probs(logits, ids, temperature=0.7), expected.log_prob(ids))
    torch.testing.assert_close(token_entropy(logits, temperature=0.7), expected.entropy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_log_probs_and_their_gradient_equal_log_softmax(monkeypatch: pytest.MonkeyPatch,
                                                                dtype: torch.dtype) -> None:
    """The selective, chunked log-probs (3 positions per chunk here) and their hand-written backward pass equal
    autograd through a full float32 log-softmax; the gradient comes back in the logits' dtype."""
    from speechgrpo.losses import log_probs as module

    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 3 * 40)
    g = torch.Generator().manual_seed(1)
    logits = (4 * torch.randn(2, 5, 40, generator=g)).to(dtype).requires_grad_(True)
    ids = torch.randint(0, 40, (2, 5), generator=g)
    upstream = torch.randn(2, 5, generator=g)
    for temperature in (1.0, 0.6):
        (grad,) = torch.autograd.grad((token_log_probs(logits, ids, temperature) * upstream).sum(), logits)
        reference = logits.detach().float().requires_grad_(True)
        expected = torch.log_softmax(reference / temperature, -1).gather(-1, ids[..., None])[..., 0]
        (expected_grad,) = torch.autograd.grad((expected * upstream).sum(), reference)
        torch.testing.assert_close(token_log_probs(logits, ids, temperature), expected.detach(), atol=1e-5, rtol=1e-5)
        assert grad.dtype == dtype
        tolerance = 1e-6 if dtype == torch.float32 else 1e-2
        torch.testing.assert_close(grad.float(), expected_grad, atol=tolerance, rtol=tolerance)


def test_entropy_statistic_takes_no_gradient_without_a_bonus(monkeypatch: pytest.MonkeyPatch) -> None:
    from speechgrpo.losses import log_probs as module

    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 2 * 9)
    data = random_batch(3, batch=3, width=4)
    logits = torch.randn(3, 4, 9, requires_grad=True)
    out = policy_loss(data["logp"][:3, :4].clone().requires_grad_(True), None, data["adv"][:3],
                      data["mask"][:3, :4], preset="dapo", logits=logits, temperature=0.5)
    assert not out.stats["entropy"].requires_grad
    with torch.no_grad():
        chunked = token_entropy(logits, 0.5)
    torch.testing.assert_close(chunked, torch.distributions.Categorical(logits=logits.detach() / 0.5).entropy())
    assert torch.autograd.grad(out.loss, logits, allow_unused=True)[0] is None


def test_sampling_ratio_weights_the_policy_gradient_term_only() -> None:
    """TRL's vLLM importance-sampling correction: per-token loss x ratio, then the KL term on top."""
    data = random_batch(4, batch=3, width=4)
    args = (data["logp"][:3, :4], None, data["adv"][:3], data["mask"][:3, :4])
    ratio = torch.tensor([[0.5], [2.0], [0.0]])
    plain = policy_loss(*args, ref_logprobs=data["ref"][:3, :4], preset="paper")
    weighted = policy_loss(*args, ref_logprobs=data["ref"][:3, :4], preset="paper", sampling_ratio=ratio)
    mask = data["mask"][:3, :4]
    pg = torch.where(mask, plain.per_token - 0.02 * torch.where(mask, kl(args[0], data["ref"][:3, :4]), 0.0), 0.0)
    expected = torch.where(mask, pg * ratio + 0.02 * kl(args[0], data["ref"][:3, :4]), 0.0)
    torch.testing.assert_close(weighted.per_token, expected)
    with pytest.raises(ValueError, match="sampling_ratio must be finite"):
        policy_loss(*args, sampling_ratio=torch.ones(3, 2))


def kl(logp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return torch.exp(ref - logp) - (ref - logp) - 1.0


def test_entropy_bonus_and_statistic() -> None:
    data = random_batch(2, batch=3, width=4)
    logits = torch.randn(3, 4, 9, dtype=torch.float64, requires_grad=True)
    mask = data["mask"][:3, :4] | torch.tensor([[False]] * 2 + [[True]])
    plain = policy_loss(data["logp"][:3, :4], None, data["adv"][:3], mask, preset="luffy", entropy_coef=0.0,
                        logits=logits)
    bonus = policy_loss(data["logp"][:3, :4], None, data["adv"][:3], mask, preset="luffy", logits=logits)
    entropy = token_entropy(logits)
    torch.testing.assert_close(bonus.loss, plain.loss - 0.01 * entropy[mask].sum() / mask.sum(), rtol=1e-6,
                               atol=1e-7)
    torch.testing.assert_close(plain.stats["entropy"], entropy[mask].mean().detach().float(), rtol=1e-5,
                               atol=1e-6)


def test_extreme_and_masked_logits_stay_finite() -> None:
    logits = torch.tensor([[[1e4, -1e4, float("-inf"), 0.0], [float("-inf"), 3.0, float("-inf"), float("-inf")],
                            [0.0, 0.0, 0.0, float("-inf")]]], requires_grad=True)
    ids = torch.tensor([[1, 2, 3]])  # two of them are masked (-inf) tokens
    logp = token_log_probs(logits, ids)
    assert torch.isfinite(logp).all() and (logp <= 0).all()
    entropy = token_entropy(logits)
    assert torch.isfinite(entropy).all()
    out = policy_loss(logp, logp.detach() + 50, torch.tensor([1.0]), torch.ones(1, 3, dtype=torch.bool),
                      ref_logprobs=logp.detach() - 1e6, logits=logits, preset="paper", entropy_coef=0.01)
    out.loss.backward()
    assert torch.isfinite(out.loss) and logits.grad is not None and torch.isfinite(logits.grad).all()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(sorted(LOSS_PRESETS)), st.floats(0.0, 1e4), st.floats(0.0, 1e3),
       st.booleans())
def test_loss_and_gradients_are_finite_for_any_input(seed: int, preset: str, spread: float, adv_scale: float,
                                                     nan_padding: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    shape = (4, 6)
    logp = (-spread * torch.rand(shape, generator=g)).requires_grad_(True)
    old = -spread * torch.rand(shape, generator=g)
    ref = -spread * torch.rand(shape, generator=g)
    mask = torch.rand(shape, generator=g) < 0.6
    if nan_padding:  # garbage in padded positions must not leak
        old = torch.where(mask, old, float("nan"))
        ref = torch.where(mask, ref, float("inf"))
    adv = adv_scale * torch.randn(4, generator=g)
    logits = spread * torch.randn(*shape, 5, generator=g)
    out = policy_loss(logp, old, adv, mask, ref_logprobs=ref, off_policy=torch.tensor([True, False, False, True]),
                      logits=logits, preset=preset, beta=0.04)
    (grad,) = torch.autograd.grad(out.loss, logp)
    assert math.isfinite(out.loss.item())
    assert torch.isfinite(grad).all()
    assert all(torch.isfinite(v) for v in out.stats.values())
    assert (grad[~mask] == 0).all()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"advantages": torch.tensor([1.0, float("nan")])}, r"advantages\[1\] is not finite"),
    ({"advantages": torch.ones(3)}, "advantages has shape"),
    ({"mask": torch.ones(2, 4)}, "mask has shape"),
    ({"off_policy": torch.ones(3, dtype=torch.bool)}, "off_policy has shape"),
    ({"beta": 0.1}, "needs ref_logprobs"),
    ({"entropy_coef": 0.1}, "needs logits"),
    ({"preset": "ppo2"}, "unknown loss preset"),
    ({"aggregation": "sum"}, "aggregation must be one of"),
    ({"epsilon_low": -0.1}, "epsilon_low must be"),
])
def test_bad_input_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"logprobs": torch.zeros(2, 3), "old_logprobs": None, "advantages": torch.ones(2),
                               "mask": torch.ones(2, 3)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        policy_loss(**args)  # type: ignore[arg-type]

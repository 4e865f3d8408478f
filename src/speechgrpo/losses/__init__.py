"""GRPO-family policy losses in torch: PPO-clip (clip-higher, GSPO), KL estimators, MP-GRPO off-policy
tokens, and the aggregation of GRPO, DAPO and Dr. GRPO, with presets."""

from speechgrpo.losses.config import LOSS_PRESETS, LossConfig, loss_config
from speechgrpo.losses.log_probs import token_entropy, token_log_probs
from speechgrpo.losses.policy_loss import PolicyLoss, kl_penalty, policy_loss

__all__ = ["LOSS_PRESETS", "LossConfig", "PolicyLoss", "kl_penalty", "loss_config", "policy_loss", "token_entropy",
           "token_log_probs"]

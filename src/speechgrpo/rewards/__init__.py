"""Pluggable rewards for GRPO: one batched API, [0, 1] scale, signatures, composites, off-policy aware.

    from speechgrpo.rewards import parse_reward
    reward = parse_reward("0.7*bleu + 0.3*chrf")
    result = reward(completions, references, off_policy=mask)
    result.scores, result.components, result.signature
"""

from speechgrpo.rewards.base import Reward, RewardBatch, RewardResult
from speechgrpo.rewards.composite import GroupNormalizedSum, Minimum, Product, WeightedSum
from speechgrpo.rewards.function_reward import FunctionReward
from speechgrpo.rewards.gate import Gate, NonEmpty, RegexMatch, Script, WordCount
from speechgrpo.rewards.metric_reward import MetricReward
from speechgrpo.rewards.registry import (
    REWARD_OPTIONS,
    RewardInfo,
    available_rewards,
    get_reward,
    register_reward,
)
from speechgrpo.rewards.shaping import OverlongPenalty, overlong_penalty
from speechgrpo.rewards.spec import SpecError, as_reward, parse_reward

__all__ = [
    "REWARD_OPTIONS", "FunctionReward", "Gate", "GroupNormalizedSum", "MetricReward", "Minimum", "NonEmpty",
    "OverlongPenalty", "Product", "RegexMatch", "Reward", "RewardBatch", "RewardInfo", "RewardResult", "Script",
    "SpecError", "WeightedSum", "WordCount", "as_reward", "available_rewards", "get_reward",
    "overlong_penalty", "parse_reward", "register_reward",
]

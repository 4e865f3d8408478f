"""Group advantages for GRPO and its variants (numpy or torch, one API), with framework presets.

>>> from speechgrpo.advantages import group_advantages
>>> group_advantages([0.2, 0.4, 0.9, 0.9], groups=2, preset="trl").advantages.round(3).tolist()
[-0.707, 0.707, 0.0, 0.0]
"""

from speechgrpo.advantages.config import ADVANTAGE_PRESETS, AdvantageConfig, advantage_config
from speechgrpo.advantages.group_advantages import GroupAdvantages, group_advantages

__all__ = ["ADVANTAGE_PRESETS", "AdvantageConfig", "GroupAdvantages", "advantage_config", "group_advantages"]

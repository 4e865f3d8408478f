"""The reference trainer (SFT, GRPO, MP-GRPO) and the paper's evaluation.

Import ``speechgrpo.train.trainer`` / ``speechgrpo.train.evaluation`` for the loop and the evaluation;
this package itself only loads the configuration (no torch at import).
"""

from speechgrpo.train.config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config"]

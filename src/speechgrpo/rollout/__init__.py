"""Rollout engines: who samples the G completions of each prompt (``rollout_engine: hf | vllm``).

:class:`RolloutEngine` is the interface the trainer samples through; :class:`HFEngine` uses the model's own
generation, :class:`~speechgrpo.rollout.vllm_engine.VLLMEngine` (imported on use: vLLM is an extra) runs vLLM
in the training process.
"""

from speechgrpo.rollout.engine import RolloutEngine, Samples, sampling_seed
from speechgrpo.rollout.hf_engine import HFEngine

__all__ = ["HFEngine", "RolloutEngine", "Samples", "sampling_seed"]

"""Training configuration: one dataclass, loadable from YAML, with the paper's GRPO defaults."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Stage = Literal["sft", "grpo", "mp_grpo"]


@dataclass
class TrainConfig:
    """Everything a run depends on (saved next to its checkpoints).

    ``stage`` is ``"sft"`` (cross-entropy on the references), ``"grpo"`` (G sampled completions per prompt,
    reward, group advantages, policy loss) or ``"mp_grpo"`` (G-1 samples plus the reference as one
    off-policy sample per group, behaviour probability 1, no clipping). GRPO defaults are the paper's:
    G=8, beta=0.02 with a reference model, rollout temperature 1.0, at most 200 new tokens, token-level
    (DAPO) loss, group z-score advantages.
    """

    model: str  # local checkpoint directory
    train_manifests: list[str]
    output_dir: str
    stage: Stage = "grpo"
    eval_manifests: list[str] = field(default_factory=list)
    # optimization
    steps: int = 100
    prompts_per_step: int = 4  # per process
    micro_batch_size: int = 8  # completions per forward/backward (gradient accumulation over the rest)
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warm-up from 1/warmup_steps of the rate
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"  # decay to 0 over the steps after warm-up
    max_grad_norm: float = 1.0
    seed: int = 0
    dtype: Literal["float32", "bfloat16"] = "float32"
    # SFT loss: ce_weight x cross-entropy on the references + ctc_weight x CTC loss of the spoken prompts'
    # transcripts (models with a CTC head); ce_weight 0 trains the audio encoder alone
    ce_weight: float = 1.0
    ctc_weight: float = 0.0
    # GRPO
    reward: str = "bleu"
    num_generations: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 200
    advantage_preset: str = "paper"
    loss_preset: str = "paper"
    beta: float = 0.02
    off_policy_shaping: float | None = None  # LUFFY's gamma for MP-GRPO
    # bookkeeping
    log_every: int = 1
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    tensorboard: bool = False
    save_rollouts: bool = False  # GRPO: every group to rollouts.jsonl (groups format; `speechgrpo bench signal`)
    lora_rank: int = 0  # > 0: train LoRA adapters (peft) instead of all weights
    lora_alpha: float = 32.0

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.stage not in ("sft", "grpo", "mp_grpo"):
            raise ValueError(f"stage must be 'sft', 'grpo' or 'mp_grpo', got {self.stage!r}")
        if not self.train_manifests:
            raise ValueError("train_manifests is empty")
        if self.stage != "sft" and self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 for {self.stage}, got {self.num_generations}")
        for name in ("steps", "prompts_per_step", "micro_batch_size", "max_new_tokens", "log_every",
                     "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ce_weight < 0 or self.ctc_weight < 0 or self.ce_weight + self.ctc_weight == 0:
            raise ValueError(f"ce_weight and ctc_weight must be >= 0 and not both 0, got {self.ce_weight} and "
                             f"{self.ctc_weight}")
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant', 'linear' or 'cosine', got {self.lr_schedule!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def check_numbers(config: Any) -> None:
    """Check the int and float fields of a dataclass, reading numeric strings into float fields: YAML 1.1
    (PyYAML) loads ``1e-5`` as the string ``'1e-5'``, and ``key=1e-5`` on the command line goes through it."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if hint in (float, float | None) and value is not None:
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError(f"{f.name} must be a number, got {value!r}") from None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
            setattr(config, f.name, float(value))
        elif hint is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{f.name} must be an integer, got {value!r}")


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A config from a YAML file (keys = :class:`TrainConfig` fields) with keyword overrides on top."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must be a YAML mapping, got {type(loaded).__name__}")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
    return TrainConfig(**values)

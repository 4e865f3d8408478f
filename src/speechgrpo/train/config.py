"""Training configuration: one dataclass, loadable from YAML, with the paper's GRPO defaults."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from speechgrpo._presets import check_choice

C = TypeVar("C")
Stage = Literal["sft", "grpo", "mp_grpo"]


# The metrics validation and `speechgrpo eval` compute (speechgrpo.train.evaluation).
#: the paper's evaluation metrics (its Tables 1-3), reported by the demo and ``bench train``
PAPER_METRICS = ("bleu", "bertscore", "rouge1", "rouge2", "rougeL", "meteor")
#: every metric an evaluation can report: the paper's, the translation metrics, and error rates for ASR
EVAL_METRICS = (*PAPER_METRICS, "chrf", "chrfpp", "ter", "wer", "cer")
Precision = Literal["no", "bf16", "fp16"]
DType = Literal["float32", "bfloat16"]
KLEstimator = Literal["k1", "k2", "k3"]
RolloutEngineName = Literal["hf", "vllm"]
#: TRL's vLLM importance-sampling modes: truncate (clip) or mask ratios outside the bounds, per token or sequence
IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
#: where ``report_to`` sends the per-step metrics besides metrics.jsonl / metrics.csv
REPORTERS = ("tensorboard", "wandb", "trackio")
RL_STAGES = ("grpo", "mp_grpo")
#: the stages each stage-specific field applies to; every other field applies to every stage. A field set to
#: anything but its default on another stage is refused before anything loads (``TrainConfig``).
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("ce_weight", "ctc_weight"), ("sft",)),
    **dict.fromkeys(("num_generations", "temperature", "top_p", "generation_batch_size", "rollout_engine",
                     "vllm_gpu_memory_utilization", "vllm_max_model_length", "vllm_importance_sampling_correction",
                     "vllm_importance_sampling_mode", "vllm_importance_sampling_clip_max", "num_iterations",
                     "advantage_preset", "loss_preset", "beta", "epsilon_low", "epsilon_high", "kl_estimator",
                     "off_policy_kl", "entropy_coef", "mask_truncated_completions", "save_rollouts",
                     "reference_dtype"), RL_STAGES),
    "off_policy_shaping": ("mp_grpo",),
}
# vLLM settings: None means TRL's default, given here; setting one with rollout_engine hf is refused
VLLM_DEFAULTS = {"vllm_gpu_memory_utilization": 0.3, "vllm_max_model_length": None,
                 "vllm_importance_sampling_correction": True, "vllm_importance_sampling_mode": "sequence_mask",
                 "vllm_importance_sampling_clip_max": 3.0}


@dataclass
class TrainConfig:
    """Everything a run depends on (saved next to its checkpoints). Names follow TRL's ``GRPOConfig`` where
    TRL has the same option.

    ``stage`` is ``"sft"`` (cross-entropy on the references), ``"grpo"`` (G sampled completions per prompt,
    reward, group advantages, policy loss) or ``"mp_grpo"`` (G-1 samples plus the reference as one
    off-policy sample per group, behaviour probability 1, no clipping). GRPO defaults are the paper's:
    G=8, rollout temperature 1.0, at most 200 new tokens, and the ``paper`` presets (token-level loss,
    clip 0.2, k3 KL with beta 0.02, group z-score advantages). The loss fields left at ``None`` take the
    loss preset's value. Every field is described in ``docs/trainer.md``.
    """

    model: str  # local checkpoint directory
    train_manifests: list[str]
    output_dir: str
    stage: Stage = "grpo"
    # optimization
    steps: int = 100  # optimizer steps (a GRPO rollout serves num_iterations of them)
    prompts_per_step: int = 4  # per process
    micro_batch_size: int = 8  # completions (SFT: prompts) per forward/backward; accumulated to one step
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warm-up from 1/warmup_steps of the rate
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"  # decay to 0 over the steps after warm-up
    max_grad_norm: float = 1.0
    seed: int = 0
    # precision: dtype is what the weights are loaded (and, with mixed_precision "no", trained) in;
    # mixed_precision keeps float32 master weights and runs forwards under autocast (accelerate)
    dtype: DType = "float32"
    mixed_precision: Precision = "no"
    reference_dtype: DType | None = None  # the separate reference model's weights (None: as dtype)
    gradient_checkpointing: bool = False
    disable_dropout: bool | None = None  # None: on for GRPO/MP-GRPO (as TRL recommends), off for SFT
    # LoRA (peft) on the language model's linear layers; 0 trains all weights
    lora_rank: int = 0
    lora_alpha: float | None = None  # None: 2 x lora_rank
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | None = None  # None: attention and MLP projections of the LM
    merge_lora: bool = False  # final/ holds the adapter merged into the weights (for export) instead of both
    # parameter-name prefixes of the network kept fixed, e.g. ["lm."]: the audio encoder and projector learn
    # to speak to a language model that does not change (as speech LLMs are aligned with their LLM frozen)
    freeze: list[str] = field(default_factory=list)
    # SFT loss: ce_weight x cross-entropy on the references + ctc_weight x CTC loss of the spoken prompts'
    # transcripts (models with a CTC head); ce_weight 0 trains the audio encoder alone
    ce_weight: float = 1.0
    ctc_weight: float = 0.0
    # GRPO rollouts
    reward: str = "bleu"
    num_generations: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 200
    generation_batch_size: int | None = None  # completions per generate() call, a multiple of num_generations
    rollout_engine: RolloutEngineName = "hf"  # who samples: the model's own generation, or vLLM (colocated)
    vllm_gpu_memory_utilization: float | None = None  # the GPU memory share of the vLLM engine (None: 0.3)
    vllm_max_model_length: int | None = None  # the engine's context (None: the model's)
    vllm_importance_sampling_correction: bool | None = None  # TRL's correction (None: on with vllm)
    vllm_importance_sampling_mode: str | None = None  # one of IS_MODES (None: sequence_mask)
    vllm_importance_sampling_clip_max: float | None = None  # ratios above it clipped or masked (None: 3.0)
    mask_truncated_completions: bool = False  # completions cut at max_new_tokens (no stop token) out of the loss
    max_audio_seconds: float | None = None  # drop longer clips from the manifests (with a count) instead of failing
    allow_empty_references: bool = False  # accept empty references (refused before training otherwise)
    allow_unknown_words: bool = False  # train on words the model's vocabulary lacks (<unk>), with a warning
    num_iterations: int = 1  # optimizer steps per rollout (TRL's mu): > 1 makes the ratio and the clip act
    advantage_preset: str = "paper"
    # GRPO loss: the preset, then these fields on top of it (None: the preset's value)
    loss_preset: str = "paper"
    beta: float | None = None
    epsilon_low: float | None = None
    epsilon_high: float | None = None
    kl_estimator: KLEstimator | None = None
    off_policy_kl: bool | None = None
    entropy_coef: float | None = None
    off_policy_shaping: float | None = None  # LUFFY's gamma for MP-GRPO
    # validation during training and best-checkpoint selection
    eval_manifests: list[str] = field(default_factory=list)
    eval_every: int = 0  # steps between validations (0: only after the last step, when eval_manifests are given)
    eval_metrics: list[str] = field(default_factory=lambda: ["bleu", "rouge1", "rouge2", "rougeL"])
    eval_seeds: int = 1  # sampled passes at the paper's T=0.9, top-p 0.9, averaged
    eval_batch_size: int = 16
    eval_max_examples: int | None = None  # the first N of the eval manifests (None: all)
    best_metric: str | None = None  # None: the reward's metric when it is one of eval_metrics, else "reward"
    patience: int = 0  # stop after this many validations in a row without a new best (0: train every step)
    # bookkeeping
    audio_cache_size: int = 4096  # decoded audio clips kept in memory (least recently used dropped)
    log_every: int = 1
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    report_to: str | list[str] = "none"  # TRL's field: "none", or tensorboard / wandb / trackio (a list for several)
    # auto: resume output_dir's run, refusing a config that changes it; never: refuse an output_dir that holds a
    # run; force: resume it with the changed fields (listed), the reference model still the run's first
    resume: Literal["auto", "never", "force"] = "auto"
    save_rollouts: bool = False  # GRPO: every group to rollouts.jsonl (groups format; `speechgrpo bench signal`)

    def __post_init__(self) -> None:
        check_numbers(self)
        check_choice("stage", self.stage, ("sft", "grpo", "mp_grpo"))
        check_choice("lr_schedule", self.lr_schedule, ("constant", "linear", "cosine"))
        if not isinstance(self.freeze, list) or not all(isinstance(p, str) and p for p in self.freeze):
            raise ValueError(f"freeze must be a list of parameter-name prefixes (non-empty strings), got "
                             f"{self.freeze!r}")
        if self.freeze and self.lora_rank:
            raise ValueError("freeze with lora_rank > 0: LoRA already keeps every weight but its adapter fixed")
        check_choice("dtype", self.dtype, ("float32", "bfloat16"))
        check_choice("mixed_precision", self.mixed_precision, ("no", "bf16", "fp16"))
        for name, choices in (("reference_dtype", ("float32", "bfloat16")), ("kl_estimator", ("k1", "k2", "k3"))):
            if getattr(self, name) is not None:
                check_choice(name, getattr(self, name), choices)
        if not self.train_manifests:
            raise ValueError("train_manifests is empty")
        if self.stage != "sft" and self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 for {self.stage}, got {self.num_generations}")
        for name in ("steps", "prompts_per_step", "micro_batch_size", "max_new_tokens", "log_every",
                     "checkpoint_every", "keep_checkpoints", "num_iterations", "eval_seeds", "eval_batch_size",
                     "audio_cache_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lora_rank", "eval_every", "warmup_steps", "patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.ce_weight < 0 or self.ctc_weight < 0 or self.ce_weight + self.ctc_weight == 0:
            raise ValueError(f"ce_weight and ctc_weight must be >= 0 and not both 0, got {self.ce_weight} and "
                             f"{self.ctc_weight}")
        if self.mixed_precision != "no" and self.dtype != "float32":
            raise ValueError(f"mixed_precision {self.mixed_precision!r} keeps float32 master weights: load them "
                             f"with dtype 'float32', not {self.dtype!r}")
        if self.lora_rank == 0 and (self.lora_alpha is not None or self.lora_dropout or self.lora_target_modules
                                    or self.merge_lora):
            raise ValueError("lora_alpha, lora_dropout, lora_target_modules and merge_lora need lora_rank > 0")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        check_choice("rollout_engine", self.rollout_engine, ("hf", "vllm"))
        check_choice("resume", self.resume, ("auto", "never", "force"))
        if self.vllm_importance_sampling_mode is not None:
            check_choice("vllm_importance_sampling_mode", self.vllm_importance_sampling_mode, IS_MODES)
        vllm_set = [name for name in VLLM_DEFAULTS if getattr(self, name) is not None]
        if vllm_set and self.rollout_engine != "vllm":
            raise ValueError(f"{', '.join(vllm_set)} only apply to rollout_engine: vllm")
        if self.vllm_gpu_memory_utilization is not None and not 0 < self.vllm_gpu_memory_utilization <= 1:
            raise ValueError(f"vllm_gpu_memory_utilization must be in (0, 1], got {self.vllm_gpu_memory_utilization}")
        for name in ("vllm_max_model_length", "vllm_importance_sampling_clip_max", "max_audio_seconds"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        reporters = self.reporters
        unknown_reporters = [r for r in reporters if r not in REPORTERS]
        if unknown_reporters or (isinstance(self.report_to, list) and not self.report_to):
            raise ValueError(f"report_to takes 'none' or any of {', '.join(REPORTERS)}; got {self.report_to!r}")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        misplaced = [name for name, stages in STAGE_FIELDS.items()
                     if self.stage not in stages and getattr(self, name) != defaults[name]]
        if misplaced:
            groups: dict[tuple[str, ...], list[str]] = {}
            for name in misplaced:
                groups.setdefault(STAGE_FIELDS[name], []).append(name)
            described = {RL_STAGES: "GRPO stages (grpo, mp_grpo)", ("sft",): "the sft stage", ("mp_grpo",): "mp_grpo"}
            raise ValueError("; ".join(f"{', '.join(names)} only apply to {described[stages]}"
                                       for stages, names in groups.items())
                             + f", not {self.stage} (fields per stage: docs/trainer.md)")
        if self.generation_batch_size is not None and (self.generation_batch_size < self.num_generations
                                                       or self.generation_batch_size % self.num_generations):
            raise ValueError(f"generation_batch_size must be a multiple of num_generations ({self.num_generations}),"
                             f" got {self.generation_batch_size}")
        if self.checkpoint_every % self.num_iterations:
            raise ValueError(f"checkpoint_every ({self.checkpoint_every}) must be a multiple of num_iterations "
                             f"({self.num_iterations}): a checkpoint is taken between rollouts")
        if self.eval_every and not self.eval_manifests:
            raise ValueError("eval_every needs eval_manifests")
        if self.patience and not self.eval_every:
            raise ValueError("patience counts validations: it needs eval_every > 0 (and eval_manifests)")
        if self.patience and self.eval_every % self.num_iterations:
            raise ValueError(f"eval_every ({self.eval_every}) must be a multiple of num_iterations "
                             f"({self.num_iterations}) with patience: a run stops between rollouts")
        unknown = [name for name in self.eval_metrics if name not in EVAL_METRICS]
        if unknown or not self.eval_metrics:
            raise ValueError(f"eval_metrics must be a non-empty list of {', '.join(EVAL_METRICS)}; "
                             f"got {self.eval_metrics}")
        if self.best_metric is not None and self.best_metric not in (*self.eval_metrics, "reward"):
            raise ValueError(f"best_metric must be one of eval_metrics {self.eval_metrics} or 'reward', got "
                             f"{self.best_metric!r}")

    @property
    def reporters(self) -> list[str]:
        """``report_to`` as a list of backends (empty for ``"none"``)."""
        names = [self.report_to] if isinstance(self.report_to, str) else list(self.report_to)
        return [] if names == ["none"] else names

    def vllm_setting(self, name: str) -> Any:
        """A ``vllm_*`` field, or its default where it is ``None``."""
        value = getattr(self, name)
        return VLLM_DEFAULTS[name] if value is None else value

    @property
    def dropout_off(self) -> bool:
        return self.stage != "sft" if self.disable_dropout is None else self.disable_dropout

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


#: fields that do not change what a run computes: a resumed run may change them (``steps`` and ``patience``
#: extend it)
BOOKKEEPING_FIELDS = ("steps", "patience", "log_every", "checkpoint_every", "keep_checkpoints", "report_to",
                      "audio_cache_size", "eval_batch_size", "resume")


def run_changes(before: dict[str, Any], after: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The fields of ``after`` that change the run recorded as ``before`` (a saved config): ``{field: (was,
    now)}``. A field ``before`` lacks (a newer speechgrpo's) counts as its default."""
    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(after)}
    now = after.to_dict()
    return {name: (before.get(name, defaults[name]), value) for name, value in now.items()
            if name not in BOOKKEEPING_FIELDS and _normalized(before.get(name, defaults[name])) != _normalized(value)}


def _normalized(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


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
        elif hint in (int, int | None) and value is not None and (isinstance(value, bool)
                                                                   or not isinstance(value, int)):
            raise ValueError(f"{f.name} must be an integer, got {value!r}")


def load_layered(cls: type[C], path: str | Path | None, overrides: dict[str, Any], what: str = "config") -> C:
    """A ``cls`` dataclass from its defaults, then the YAML file, then ``overrides`` (``None`` values
    skipped). Mapping fields are merged key by key (``grpo: {steps: 100}`` keeps the other GRPO
    settings), lists become tuples where the field's default is a tuple, unknown keys fail."""
    import yaml

    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    defaults = {name: f.default_factory() if f.default_factory is not dataclasses.MISSING
                else f.default for name, f in fields.items()}
    values: dict[str, Any] = {}
    loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {} if path is not None else {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a {what} file must be a YAML mapping, got {type(loaded).__name__}")
    for layer in (loaded, {k: v for k, v in overrides.items() if v is not None}):
        for key, value in layer.items():
            default = values.get(key, defaults.get(key))
            values[key] = {**default, **value} if isinstance(default, dict) and isinstance(value, dict) else value
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known: {sorted(fields)}")
    for key, value in values.items():
        if isinstance(defaults[key], tuple) and isinstance(value, list):
            values[key] = tuple(value)
    return cls(**values)


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A config from a YAML file (keys = :class:`TrainConfig` fields) with keyword overrides on top."""
    return load_layered(TrainConfig, path, overrides)

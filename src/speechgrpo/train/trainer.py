"""The reference trainer: SFT, GRPO and MP-GRPO for speech LLMs, readable top to bottom.

One GRPO rollout (the paper's recipe, every formula from speechgrpo's own modules):

1. take ``prompts_per_step`` prompts (audio + question) and sample G completions each at temperature T
   (dropout off, ``generation_batch_size`` completions per call); for MP-GRPO sample G-1 and add the
   reference answer as the group's off-policy sample;
2. score them with the reward (``speechgrpo.rewards``; any spec string), in one batched call;
3. group advantages (``speechgrpo.advantages``, preset ``paper``: z-score over the whole mixed group);
4. without gradient: the behaviour log-probs (when ``num_iterations`` > 1) and the reference policy's
   (the frozen copy, or the same model with its LoRA adapter off), all at temperature T.

Then ``num_iterations`` optimizer steps on that rollout, each one:

5. log-probs of the completions under the policy (with gradient) at temperature T, micro-batch by
   micro-batch inside ``accelerator.accumulate`` (DDP syncs and DeepSpeed steps once per step);
6. the policy loss (``speechgrpo.losses``, preset ``paper``: token-level loss, clip 0.2, k3 KL with
   beta 0.02; off-policy tokens use ratio p/1 without clipping), normalized by the step's global token
   or sequence count over all micro-batches and processes, so the gradient is the same for any
   micro-batch size and process count;
7. optimizer step; log; validate; checkpoint.

SFT is the same loop with the references as targets and cross-entropy as the loss. Scaling out goes
through ``accelerate launch`` (DDP, FSDP or DeepSpeed through accelerate's config): each process takes its
own prompts, whole groups stay on one process.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from speechgrpo.advantages import group_advantages
from speechgrpo.data import AudioCache, Example, read_manifest
from speechgrpo.losses import LossConfig, loss_config, policy_loss, token_log_probs
from speechgrpo.models import Completions, SamplingConfig, SpeechLM, SpeechPrompt
from speechgrpo.models.loading import load_speech_lm
from speechgrpo.rewards import Reward, as_reward
from speechgrpo.rollout import HFEngine, RolloutEngine, sampling_seed
from speechgrpo.train.checkpoint import (
    latest_checkpoint,
    load_trainer_state,
    rng_state,
    run_config,
    run_facts,
    save_checkpoint,
    set_rng_state,
    write_atomically,
)
from speechgrpo.train.config import TrainConfig, run_changes
from speechgrpo.train.evaluation import generate_answers, higher_is_better, score_answers
from speechgrpo.train.input_check import check_inputs, model_input_limits
from speechgrpo.train.rollout_log import RolloutLog, rollout_file, rollout_groups
from speechgrpo.train.run_log import RunLog, check_trackers

# TrainConfig fields that override the loss preset when set (None: the preset's value).
LOSS_FIELDS = ("beta", "epsilon_low", "epsilon_high", "kl_estimator", "off_policy_kl", "entropy_coef",
               "off_policy_shaping")
# Metrics that add up over processes (each process holds its share of the global normalization).
ADDITIVE_METRICS = ("loss", "pg_loss", "kl_loss", "ctc_loss")
DROPOUT_ATTRIBUTES = ("dropout", "attention_dropout", "activation_dropout", "hidden_dropout", "layerdrop")


# -- data --------------------------------------------------------------------------------------------------
class PromptSampler:
    """Prompts in a fresh seeded order each epoch, this process's share only; its position is resumable."""

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world
        self.epoch, self.position = 0, 0

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)[self.rank::self.world]

    def take(self, count: int) -> list[int]:
        taken: list[int] = []
        order = self._order()
        while len(taken) < count:
            if self.position >= len(order):
                self.epoch, self.position = self.epoch + 1, 0
                order = self._order()
            taken.append(int(order[self.position]))
            self.position += 1
        return taken

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]


def read_examples(paths: Sequence[str]) -> list[Example]:
    examples = [example for path in paths for example in read_manifest(path)]
    if not examples:
        raise ValueError(f"no examples in {', '.join(paths)}")
    return examples


# -- completions ---------------------------------------------------------------------------------------------
def chunks(size: int, chunk: int) -> list[list[int]]:
    return [list(range(start, min(start + chunk, size))) for start in range(0, size, chunk)]


def _padded(tensor: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]))


def select(completions: Completions, index: Sequence[int]) -> Completions:
    """Rows ``index`` of ``completions``, padding trimmed to the longest selected row."""
    rows = torch.as_tensor(index, dtype=torch.long, device=completions.ids.device)
    mask = completions.mask[rows]
    width = max(int(mask.sum(1).max()) if len(rows) else 0, 1)
    return Completions(completions.ids[rows, :width], mask[:, :width], [completions.texts[i] for i in index],
                       completions.prompt_index[rows])


def with_references(sampled: Completions, references: Completions, per_prompt: int) -> tuple[Completions,
                                                                                              torch.Tensor]:
    """MP-GRPO groups: each prompt's ``per_prompt`` samples followed by its reference; and the off-policy mask."""
    rows, off = [], []
    for p in range(len(references)):
        rows += [(sampled, p * per_prompt + j) for j in range(per_prompt)] + [(references, p)]
        off += [False] * per_prompt + [True]
    width = max(sampled.ids.shape[1], references.ids.shape[1])
    ids = torch.stack([_padded(source.ids[i:i + 1], width)[0] for source, i in rows])
    mask = torch.stack([_padded(source.mask[i:i + 1], width)[0] for source, i in rows])
    texts = [source.texts[i] for source, i in rows]
    prompt_index = torch.stack([source.prompt_index[i] for source, i in rows])
    return Completions(ids, mask, texts, prompt_index), torch.tensor(off, device=ids.device)


def score(model: SpeechLM, prompts: Sequence[SpeechPrompt], part: Completions,
          temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of ``part`` at ``temperature`` (0 at padding) and the logits (as the model made
    them, not tempered), with the audio of each of its prompts encoded once (its rows' prompts only)."""
    used = sorted(set(part.prompt_index.tolist()))
    where = {p: i for i, p in enumerate(used)}
    batch = model.encode_prompts([prompts[p] for p in used])
    local = Completions(part.ids, part.mask, part.texts,
                        torch.tensor([where[int(p)] for p in part.prompt_index], device=part.prompt_index.device))
    logits = model.completion_logits(batch, local)
    log_probs = token_log_probs(logits, local.ids, temperature)
    return torch.where(local.mask, log_probs, 0.0), logits


def no_grad_log_probs(model: SpeechLM, prompts: Sequence[SpeechPrompt], completions: Completions,
                      micro_batches: list[list[int]], temperature: float, accelerator: Any) -> torch.Tensor:
    """:func:`score` without gradient over ``micro_batches``, padded to the completions' full width."""
    out = torch.zeros(completions.ids.shape, dtype=torch.float32, device=completions.ids.device)
    with torch.no_grad(), accelerator.autocast():
        for index in micro_batches:
            part = select(completions, index)
            out[index, :part.ids.shape[1]] = score(model, prompts, part, temperature)[0]
    return out


# -- set-up helpers ------------------------------------------------------------------------------------------
def disable_dropout(module: torch.nn.Module) -> None:
    """Dropout probabilities to 0 (modules and the float attributes transformers layers read), so that the
    policy that samples and the policy that is scored are the same function, in train mode too. A LoRA
    adapter's own dropout (``lora_dropout``, asked for explicitly) is kept."""
    for name, child in module.named_modules():
        if ".lora_dropout." in f".{name}.":
            continue
        if isinstance(child, torch.nn.Dropout):
            child.p = 0.0
        for name in DROPOUT_ATTRIBUTES:
            if isinstance(getattr(child, name, None), float):
                setattr(child, name, 0.0)


def freeze_batch_norm(module: torch.nn.Module) -> None:
    """Batch-norm layers stay in inference mode (their running statistics, never updated), whatever
    ``train()`` is called on: in RL the scored policy is then the sampling policy (Granite Speech's conformer
    normalizes with batch statistics in training mode), and with LoRA the frozen weights stay frozen."""
    for child in module.modules():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
            child.eval()
            child.train = functools.partial(_stay_in_eval, child)  # type: ignore[method-assign,assignment]


def _stay_in_eval(module: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
    return torch.nn.Module.train(module, False)


def loss_settings(config: TrainConfig) -> LossConfig:
    """The loss preset with the config's non-None loss fields on top; ``"constant"`` divides by
    ``max_new_tokens`` (Dr. GRPO's max completion length) unless the preset fixes it."""
    overrides = {name: getattr(config, name) for name in LOSS_FIELDS if getattr(config, name) is not None}
    preset = loss_config(config.loss_preset, **overrides)
    if preset.aggregation == "constant" and preset.max_completion_length is None:
        return loss_config(preset, max_completion_length=config.max_new_tokens)
    return preset


def rows_per_step(config: TrainConfig) -> int:
    """Rows one optimizer step trains on per process: completions (GRPO) or targets (SFT)."""
    return config.prompts_per_step * (1 if config.stage == "sft" else config.num_generations)


def global_sum(accelerator: Any, *values: float) -> list[float]:
    """Each value summed over processes."""
    local = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    return [float(v) for v in (accelerator.reduce(local, "sum") if accelerator.num_processes > 1 else local)]


def backward_scale(accelerator: Any) -> float:
    """What the trainer multiplies a micro-batch loss by before ``accelerator.backward``: that divides by
    the accumulation steps and the wrapper averages over processes, while our losses are already
    normalized by the global counts (a sum over micro-batches and processes is the step's loss)."""
    return float(accelerator.gradient_accumulation_steps * accelerator.num_processes)


class Averages:
    """Token-weighted means of per-micro-batch statistics, and plain sums of the additive ones."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, stats: dict[str, torch.Tensor | float], weight: float) -> None:
        for key, value in stats.items():
            additive = key in ADDITIVE_METRICS
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * (1.0 if additive else weight)
            self.weights[key] = self.weights.get(key, 0.0) + (1.0 if additive else weight)

    def result(self) -> dict[str, float]:
        return {k: self.sums[k] if k in ADDITIVE_METRICS else self.sums[k] / max(self.weights[k], 1e-12)
                for k in self.sums}


# -- SFT -----------------------------------------------------------------------------------------------------
def sft_step(model: SpeechLM, prompts: Sequence[SpeechPrompt], examples: Sequence[Example], config: TrainConfig,
             accelerator: Any) -> dict[str, float]:
    """Cross-entropy on the first reference of each prompt (``ce_weight``) plus the transcripts' CTC loss
    (``ctc_weight``), each normalized by its global token/word count, micro-batch by micro-batch."""
    device = model.device
    targets = model.encode_completions([e.references[0] for e in examples], torch.arange(len(examples),
                                                                                         device=device))
    transcripts = [str(e.meta.get("transcript") or "") if e.audio is not None else "" for e in examples]
    tokens, words = global_sum(accelerator, float(targets.mask.sum()), sum(len(t.split()) for t in transcripts))
    scale = backward_scale(accelerator)
    totals = Averages()
    for index in chunks(len(examples), config.micro_batch_size):
        with accelerator.accumulate(model.module), accelerator.autocast():
            part = select(targets, index)
            batch = model.encode_prompts([prompts[i] for i in index])
            part.prompt_index = torch.arange(len(index), device=device)
            loss = torch.zeros((), device=device)
            stats: dict[str, torch.Tensor | float] = {}
            if config.ce_weight > 0:
                log_probs = model.completion_log_probs(batch, part)
                ce = -torch.where(part.mask, log_probs, 0.0).sum() / tokens
                loss = loss + config.ce_weight * ce
                stats["loss"] = ce.detach()
            if config.ctc_weight > 0 and words > 0:
                ctc = model.transcript_ctc_losses(batch, [transcripts[i] for i in index]).sum() / words
                loss = loss + config.ctc_weight * ctc
                stats["ctc_loss"] = ctc.detach()
            if not loss.requires_grad:  # nothing to learn here (no transcript): a zero that reaches the weights,
                loss = loss + sum(p.sum() * 0.0 for p in model.module.parameters() if p.requires_grad)  # for DDP
            accelerator.backward(loss * scale)
        totals.add(stats, 1.0)
    metrics = totals.result()
    if config.ce_weight > 0:
        metrics["tokens"] = tokens
    return metrics


# -- GRPO ----------------------------------------------------------------------------------------------------
@dataclass
class Rollout:
    """One rollout: completions with their advantages and the log-probs that do not change while the policy
    is updated on it (behaviour, reference), plus what it logs."""

    prompts: list[SpeechPrompt]
    completions: Completions
    loss_mask: torch.Tensor  # the completion tokens the loss counts (mask_truncated_completions removes some)
    off_policy: torch.Tensor | None  # MP-GRPO: bool per row, true on the reference answers; GRPO: None
    advantages: torch.Tensor
    micro_batches: list[list[int]]
    old_log_probs: torch.Tensor | None
    ref_log_probs: torch.Tensor | None
    sampling_ratio: torch.Tensor | None  # TRL's vLLM importance-sampling ratio, (n, length) or (n, 1)
    metrics: dict[str, float]
    groups: list[dict[str, Any]] = field(default_factory=list)  # the rollouts file's records (save_rollouts)


def make_engine(config: TrainConfig, model: SpeechLM, accelerator: Any) -> RolloutEngine:
    """The engine that samples the rollouts (``rollout_engine``), started from the policy's current weights."""
    if config.rollout_engine == "vllm":
        from speechgrpo.rollout.vllm_engine import VLLMEngine, VLLMSettings

        precision = {"bf16": "bfloat16", "fp16": "float16"}.get(config.mixed_precision, config.dtype)
        return VLLMEngine(model, VLLMSettings(
            dtype=precision, gpu_memory_utilization=config.vllm_setting("vllm_gpu_memory_utilization"),
            max_model_len=config.vllm_setting("vllm_max_model_length"), seed=config.seed))
    prompts_per_call = None if config.generation_batch_size is None else max(
        1, config.generation_batch_size // config.num_generations)
    return HFEngine(model, prompts_per_call, accelerator.autocast)


def importance_sampling_ratio(trainer: torch.Tensor, sampler: torch.Tensor, mask: torch.Tensor, mode: str,
                              clip_max: float) -> torch.Tensor:
    """TRL's vLLM importance-sampling correction: ``exp(trainer - sampler log-probs)`` per token (``token_*``,
    shape ``(n, length)``) or summed over the sequence (``sequence_*``, ``(n, 1)``), then ratios above
    ``clip_max`` clipped to it (``*_truncate``) or set to 0 (``*_mask``)."""
    difference = torch.where(mask, trainer - sampler, 0.0)
    if mode.startswith("sequence"):
        difference = difference.sum(-1, keepdim=True)
    ratio = torch.exp(difference.clamp(max=20.0))
    return ratio.clamp(max=clip_max) if mode.endswith("truncate") else torch.where(ratio > clip_max, 0.0, ratio)


def make_rollout(model: SpeechLM, engine: RolloutEngine, reference: SpeechLM | None, prompts: list[SpeechPrompt],
                 examples: Sequence[Example], indices: Sequence[int], reward: Reward, config: TrainConfig,
                 loss: LossConfig, accelerator: Any, step: int) -> Rollout:
    """Steps 1-4 of the module docstring for the training examples ``indices`` (``examples``, ``prompts``)."""
    mp_grpo = config.stage == "mp_grpo"
    per_prompt = config.num_generations - 1 if mp_grpo else config.num_generations
    device = model.device
    model.unwrapped().eval()  # the fixed log-probs below are the sampling policy's
    started = time.perf_counter()
    seeds = [sampling_seed(config.seed, step, i) for i in indices]
    samples = engine.sample(prompts, per_prompt, SamplingConfig(config.max_new_tokens, config.temperature,
                                                                config.top_p), seeds)
    generation_time = time.perf_counter() - started
    completions = samples.completions
    sampled_lengths = completions.mask.sum(1).float()
    stopped = completions.stopped(model.stop_token_ids)
    if mp_grpo:
        references = model.encode_completions([e.references[0] for e in examples],
                                              torch.arange(len(examples), device=device))
        completions, off_policy = with_references(completions, references, per_prompt)
    else:
        off_policy = torch.zeros(len(completions), dtype=torch.bool, device=device)
    off = off_policy.cpu().numpy()
    sampled = torch.nonzero(~off_policy)[:, 0]  # the sampled rows, in sampling order
    width = completions.ids.shape[1]

    prompt_index = completions.prompt_index.cpu().numpy()
    started = time.perf_counter()
    result = reward(completions.texts, [examples[i].references for i in prompt_index], group_ids=prompt_index,
                    off_policy=off)
    reward_time = time.perf_counter() - started
    options: dict[str, Any] = {}
    if mp_grpo and not result.in_group_stats[off].all():  # the reward leaves its off-policy samples out
        options["off_policy_in_stats"] = False
    advantages = group_advantages(result.scores, prompt_index, preset=config.advantage_preset, off_policy=off,
                                  **options)

    loss_mask = completions.mask.clone()
    if config.mask_truncated_completions:  # TRL's option: a completion cut at max_new_tokens trains nothing
        loss_mask[sampled[~stopped]] = False
    micro_batches = chunks(len(completions), config.micro_batch_size)
    old = None
    if config.num_iterations > 1 or samples.log_probs is not None:
        old = no_grad_log_probs(model, prompts, completions, micro_batches, config.temperature, accelerator)
    ref = None
    if loss.beta > 0:
        if reference is None:
            with model.reference_mode():
                ref = no_grad_log_probs(model, prompts, completions, micro_batches, config.temperature, accelerator)
        else:
            ref = no_grad_log_probs(reference, prompts, completions, micro_batches, config.temperature, accelerator)
    on_policy = result.scores[~off]
    metrics = {
        "reward_mean": float(on_policy.mean()),
        "reward_std": float(on_policy.std()),
        "frac_zero_std_groups": advantages.stats["frac_zero_std_groups"],
        "completion_length": float(sampled_lengths.mean()),
        "completion_words": float(np.mean([len(completions.texts[i].split()) for i in sampled.tolist()])),
        "frac_truncated": float((~stopped).float().mean()),
        "generation_s": generation_time,
        "reward_s": reward_time,
    }
    ratio = None
    if samples.log_probs is not None:  # the sampler's log-probs: its gap to the trainer's, and TRL's correction
        assert old is not None
        sampler = torch.zeros_like(old)
        sampler[sampled, :samples.log_probs.shape[1]] = samples.log_probs.to(old.device)
        tokens = completions.mask & ~off_policy[:, None]
        gap = (old - sampler)[tokens].abs()
        metrics.update(sampling_logp_diff_mean=float(gap.mean()) if gap.numel() else 0.0,
                       sampling_logp_diff_max=float(gap.max()) if gap.numel() else 0.0)
        if config.vllm_setting("vllm_importance_sampling_correction"):
            ratio = importance_sampling_ratio(old, sampler, tokens,
                                              config.vllm_setting("vllm_importance_sampling_mode"),
                                              config.vllm_setting("vllm_importance_sampling_clip_max"))
            ratio[off_policy] = 1.0  # the reference answers were not sampled
            seen = ratio[tokens] if ratio.shape[1] == width else ratio[~off_policy, 0]
            metrics.update(importance_sampling_ratio_mean=float(seen.mean()),
                           importance_sampling_ratio_min=float(seen.min()),
                           importance_sampling_ratio_max=float(seen.max()))
    groups = (rollout_groups(step, examples, completions.texts, prompt_index.tolist(), off.tolist(),
                             result.scores.tolist()) if config.save_rollouts else [])
    return Rollout(prompts, completions, loss_mask, off_policy if mp_grpo else None,
                   torch.as_tensor(advantages.advantages, dtype=torch.float32, device=device), micro_batches,
                   old, ref, ratio, metrics, groups)


def policy_update(model: SpeechLM, rollout: Rollout, config: TrainConfig, loss: LossConfig,
                  accelerator: Any) -> dict[str, float]:
    """Steps 5-6: backpropagate the policy loss of ``rollout`` over its micro-batches (one optimizer step)."""
    completions = rollout.completions
    tokens, sequences = global_sum(accelerator, float(rollout.loss_mask.sum()), float(len(completions)))
    tokens = max(tokens, 1.0)  # every completion masked (mask_truncated_completions): a zero loss, as in TRL
    local_tokens = max(float(rollout.loss_mask.sum()), 1.0)
    scale = backward_scale(accelerator)
    model.unwrapped().train()
    totals = Averages()
    for index in rollout.micro_batches:
        part = select(completions, index)
        width = part.ids.shape[1]
        mask = rollout.loss_mask[index, :width]
        with accelerator.accumulate(model.module), accelerator.autocast():
            log_probs, logits = score(model, rollout.prompts, part, config.temperature)
            old = None if rollout.old_log_probs is None else rollout.old_log_probs[index, :width]
            ref = None if rollout.ref_log_probs is None else rollout.ref_log_probs[index, :width]
            ratio = None if rollout.sampling_ratio is None else rollout.sampling_ratio[index, :width]
            out = policy_loss(log_probs, old, rollout.advantages[index], mask, ref_logprobs=ref,
                              off_policy=None if rollout.off_policy is None else rollout.off_policy[index],
                              logits=logits, temperature=config.temperature, sampling_ratio=ratio,
                              num_tokens=tokens, num_sequences=sequences, preset=loss)
            accelerator.backward(out.loss * scale)
        stats = {k: v for k, v in out.stats.items() if k != "tokens"}
        totals.add({"loss": out.loss.detach(), **stats}, float(mask.sum()) / local_tokens)
    return totals.result()


# -- validation ----------------------------------------------------------------------------------------------
VALIDATION_SAMPLING = SamplingConfig(temperature=0.9, top_p=0.9)  # the paper's evaluation decoding


def validate(model: SpeechLM, examples: Sequence[Example], reward: Reward, config: TrainConfig, audio: AudioCache,
             accelerator: Any) -> dict[str, float]:
    """Dev metrics (0-100) and the mean training reward of ``eval_seeds`` sampled passes; each process
    answers its share of the examples, and every process gets the same numbers."""
    from accelerate.utils import gather_object

    rank, world = accelerator.process_index, accelerator.num_processes
    mine = list(range(rank, len(examples), world))
    sampling = SamplingConfig(config.max_new_tokens, VALIDATION_SAMPLING.temperature, VALIDATION_SAMPLING.top_p)
    passes: list[dict[str, float]] = []
    for seed in range(config.eval_seeds):
        with accelerator.autocast():
            answers = generate_answers(model, [examples[i] for i in mine], sampling, seed, config.eval_batch_size,
                                       audio)
        pairs = gather_object(list(zip(mine, answers, strict=True))) if world > 1 else list(zip(mine, answers,
                                                                                               strict=True))
        ordered = [answer for _, answer in sorted(pairs)]
        scores = score_answers(ordered, examples, config.eval_metrics)
        scores["reward"] = 100 * float(reward(ordered, [e.references for e in examples]).scores.mean())
        passes.append(scores)
    model.unwrapped().train()
    return {key: float(np.mean([p[key] for p in passes])) for key in passes[0]}


def best_metric(config: TrainConfig) -> str:
    """``best_metric``, else the reward's own name when it is an evaluation metric, else ``"reward"``."""
    if config.best_metric is not None:
        return config.best_metric
    return config.reward.strip() if config.reward.strip() in config.eval_metrics else "reward"


def patience_spent(config: TrainConfig, best: dict[str, Any] | None, step: int) -> bool:
    """Whether ``patience`` validations in a row since the best checkpoint's have found no better dev score."""
    return bool(config.patience) and best is not None and step - best["step"] >= config.patience * config.eval_every


def read_best(output: Path) -> dict[str, Any] | None:
    path = output / "best" / "best.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# -- the run -------------------------------------------------------------------------------------------------
def learning_rate_factor(step: int, config: TrainConfig) -> float:
    """The multiplier of ``config.learning_rate`` at ``step``: linear warm-up, then the schedule."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return 1.0
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    if config.lr_schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def torch_dtype(name: str) -> torch.dtype:
    return torch.bfloat16 if name == "bfloat16" else torch.float32


def load_policy(config: TrainConfig, resume: Path | None, device: torch.device) -> SpeechLM:
    """The model to train: the resumed checkpoint (its LoRA adapter re-attached) or ``config.model`` with a
    fresh adapter when ``lora_rank`` > 0; dropout off and gradient checkpointing on as configured."""
    model = load_speech_lm(resume / "model" if resume else config.model, device=device,
                           dtype=torch_dtype(config.dtype))
    if model.lora is not None and resume is None:  # its "adapter off" would be the model before that adapter
        raise ValueError(f"{config.model} holds a LoRA adapter: start from a merged model (merge_lora: true in the "
                         "run that made it), so that the reference policy is the model this run starts from")
    if config.lora_rank and model.lora is None:
        model.apply_lora(config.lora_rank, config.lora_alpha, config.lora_dropout, config.lora_target_modules)
    elif not config.lora_rank and model.lora is not None:
        raise ValueError(f"{resume} holds a LoRA adapter but lora_rank is 0")
    elif model.lora is not None and model.lora.r != config.lora_rank:
        raise ValueError(f"{resume} holds a rank-{model.lora.r} LoRA adapter but lora_rank is {config.lora_rank}")
    if config.ctc_weight > 0 and not model.has_ctc_head:
        raise ValueError(f"ctc_weight is {config.ctc_weight} but {type(model).__name__} has no CTC head; set it to 0")
    if config.dropout_off:
        disable_dropout(model.module)
    if config.dropout_off or model.lora is not None:
        freeze_batch_norm(model.module)
    if config.freeze:
        freeze_parameters(model.module, config.freeze)
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return model


def freeze_parameters(net: torch.nn.Module, prefixes: Sequence[str]) -> None:
    """Keep the parameters whose names start with one of ``prefixes`` fixed; a prefix that names no
    parameter, or one that would leave nothing to train, is an error (before any step runs)."""
    named = list(net.named_parameters(remove_duplicate=False))  # tied weights under each of their names
    unmatched = [prefix for prefix in prefixes if not any(name.startswith(prefix) for name, _ in named)]
    if unmatched:
        roots = sorted({name.split(".")[0] + "." for name, _ in named})
        raise ValueError(f"freeze: {unmatched} name(s) no parameter of {type(net).__name__} (its parameters start "
                         f"with {', '.join(roots)})")
    for name, parameter in named:
        if name.startswith(tuple(prefixes)):
            parameter.requires_grad_(False)
    if not any(parameter.requires_grad for parameter in net.parameters()):
        raise ValueError(f"freeze: {list(prefixes)} leaves no parameter to train")


def gather_metrics(accelerator: Any, metrics: dict[str, float]) -> dict[str, float]:
    """Metrics over processes: sums for :data:`ADDITIVE_METRICS`, means for the others."""
    if accelerator.num_processes == 1:
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    gathered = accelerator.gather(values[None])
    return {k: float(gathered[:, i].sum() if k in ADDITIVE_METRICS else gathered[:, i].mean())
            for i, k in enumerate(keys)}


def full_state(accelerator: Any, model: SpeechLM) -> dict[str, torch.Tensor]:
    """The full weights, on every process: gathered from the shards under FSDP / DeepSpeed ZeRO-3 (a
    collective: every process calls it), the module's own otherwise."""
    state: dict[str, torch.Tensor] = accelerator.get_state_dict(model.module)
    return state


def save_model(accelerator: Any, model: SpeechLM, directory: Path, merge: bool = False,
               extra: dict[str, str] | None = None) -> None:
    """Write the full model from the main process, atomically (a kill during the write leaves the previous
    folder, never a broken one), with the text files ``extra`` beside it; ``merge`` folds a LoRA adapter into
    the weights (a plain model for export; not under sharding, where no process holds the whole adapter)."""
    from speechgrpo.models.lora import merge_lora

    if merge and model.lora is not None:
        if accelerator.distributed_type.name in ("FSDP", "DEEPSPEED"):
            raise ValueError("merge_lora under FSDP / DeepSpeed: merge the saved final/ adapter afterwards")
        merge_lora(model.unwrapped())
        model.lora = None
    state = full_state(accelerator, model)
    if accelerator.is_main_process:
        def write(partial: Path) -> None:
            model.save(partial, state)
            for name, text in (extra or {}).items():
                (partial / name).write_text(text, encoding="utf-8")

        write_atomically(directory, write)
    accelerator.wait_for_everyone()


def save_state(accelerator: Any, output: Path, step: int, model: SpeechLM, optimizer: Any, scheduler: Any,
               sampler: PromptSampler, config: TrainConfig, reference_model: str, elapsed_s: float) -> None:
    """Gather every process's sampler and RNG state, then the main process writes the checkpoint (with the
    run's config, the model its reference policy comes from, and the training loop's time so far)."""
    from accelerate.utils import gather_object

    samplers = gather_object([sampler.state()])
    rngs = gather_object([rng_state()])
    weights = full_state(accelerator, model)
    if accelerator.is_main_process:
        scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else None  # fp16 loss scale
        save_checkpoint(output, step, model, {"step": step, "optimizer": optimizer.state_dict(),
                                              "scheduler": scheduler.state_dict(), "sampler": samplers,
                                              "rng": rngs, "scaler": scaler, "elapsed_s": elapsed_s},
                        config.keep_checkpoints, weights, config.to_dict(), {"reference_model": reference_model})
    accelerator.wait_for_everyone()


def check_resume(config: TrainConfig, output: Path) -> tuple[Path | None, dict[str, tuple[Any, Any]]]:
    """The checkpoint to resume from (``None``: a new run) and the fields that change the run it holds, per
    ``config.resume``; refuses, before anything loads, a changed run (``auto``) or an existing one (``never``)."""
    resume = latest_checkpoint(output)
    if resume is None:
        return None, {}
    if config.resume == "never":
        raise ValueError(f"{output} holds a run (checkpoint {resume.name}) and resume is 'never': choose another "
                         "output_dir, or resume: auto to continue it")
    recorded = run_config(resume)
    if recorded is None and (output / "config.yaml").is_file():  # checkpoints of versions that did not record it
        import yaml

        recorded = yaml.safe_load((output / "config.yaml").read_text(encoding="utf-8"))
    changes = run_changes(recorded or {}, config)
    if changes and config.resume == "auto":
        listed = "; ".join(f"{name}: {was!r} -> {now!r}" for name, (was, now) in changes.items())
        raise ValueError(f"{output} holds a run ({resume.name}) trained with another config ({listed}): choose "
                         "another output_dir, or resume: force to continue it with these changes")
    return resume, changes


def check_distributed(accelerator: Any, micro_batches: int) -> None:
    """Refuse the distributed set-ups this trainer cannot run correctly, before anything is loaded."""
    kind = accelerator.distributed_type.name
    if kind == "FSDP":
        raise ValueError("FSDP is not supported: the audio merge and the embeddings run outside the FSDP root "
                         "(use DDP, or DeepSpeed ZeRO stage 1 or 2)")
    if kind == "DEEPSPEED":
        stage = accelerator.state.deepspeed_plugin.zero_stage
        if stage == 3:
            raise ValueError("DeepSpeed ZeRO-3 is not supported (partitioned weights outside the engine's forward); "
                             "use ZeRO stage 1 or 2")
        if accelerator.gradient_accumulation_steps != micro_batches:
            raise ValueError(f"the DeepSpeed config's gradient_accumulation_steps is "
                             f"{accelerator.gradient_accumulation_steps}, but a step of this config is {micro_batches} "
                             "micro-batches: set it to that, so DeepSpeed steps once per optimizer step")


def train(config: TrainConfig, show_progress: bool = True) -> Path:
    """Run ``config`` (resuming from its output directory's latest checkpoint); returns the final model dir."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    check_trackers(config.reporters)  # a missing tracker package fails before anything is loaded
    micro_batches = math.ceil(rows_per_step(config) / config.micro_batch_size)
    AcceleratorState._reset_state()  # one process may run several trainings (the demo) with other settings
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=config.mixed_precision,
                              gradient_accumulation_steps=micro_batches)
    check_distributed(accelerator, micro_batches)
    output = Path(config.output_dir)
    resume, changes = check_resume(config, output)
    if "freeze" in changes:  # the optimizer state holds the parameters that trained
        raise ValueError(f"{output}: cannot resume with another freeze ({changes['freeze'][0]!r} -> "
                         f"{changes['freeze'][1]!r}); start a new output_dir from its model")
    if changes:
        print("resuming with changes (resume: force): " + "; ".join(f"{name}: {was!r} -> {now!r}" for name,
              (was, now) in changes.items()), file=sys.stderr)
    # the reference policy is the model the run started from, whatever a forced resume changed
    reference_model = (run_facts(resume).get("reference_model") or (run_config(resume) or {}).get("model")
                       if resume is not None else None) or config.model
    manifests = {"train_manifests": read_examples(config.train_manifests)}
    if config.eval_manifests:
        manifests["eval_manifests"] = read_examples(config.eval_manifests)[:config.eval_max_examples]
    checked = check_inputs(manifests, model_input_limits(resume / "model" if resume else config.model),
                           config.max_audio_seconds, config.allow_empty_references, config.allow_unknown_words)
    examples, dev = checked["train_manifests"], checked.get("eval_manifests", [])
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        config.save(output / "config.yaml")
    torch.manual_seed(config.seed)  # a new LoRA adapter's initial weights are drawn here, the same on every process
    model = load_policy(config, resume, accelerator.device)
    loss = loss_settings(config)
    reference = None
    if config.reference_dtype is not None and not (config.stage != "sft" and loss.beta > 0 and model.lora is None):
        raise ValueError("reference_dtype applies to a separate reference model, which this run does not load "
                         "(SFT, beta 0, or LoRA: the reference is the policy with its adapter off)")
    if config.stage != "sft" and loss.beta > 0 and model.lora is None:
        reference = load_speech_lm(reference_model, device=accelerator.device,
                                   dtype=torch_dtype(config.reference_dtype or config.dtype))
        reference.module.requires_grad_(False).eval()
    sampler = PromptSampler(len(examples), config.seed, accelerator.process_index, accelerator.num_processes)
    audio = AudioCache(config.audio_cache_size)
    reward = as_reward(config.reward)

    parameters = [p for p in model.module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(learning_rate_factor, config=config))
    model.module, optimizer = accelerator.prepare(model.module, optimizer)
    torch.manual_seed(config.seed * 1000 + accelerator.process_index)
    np.random.seed(config.seed * 1000 + accelerator.process_index)

    start, trained_s = 0, 0.0  # trained_s: the training loop's wall time before this process (resumed runs)
    if resume is not None:
        if accelerator.distributed_type.name == "DEEPSPEED":
            raise ValueError(f"{resume}: resuming under DeepSpeed is not supported (each process's optimizer state "
                             "is a partition, and checkpoints keep one); start a new output_dir from its model")
        state = load_trainer_state(resume)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if changes:  # a forced resume trains on with this config's optimizer settings, not the checkpoint's
            scheduler.base_lrs = [config.learning_rate] * len(optimizer.param_groups)
            for group in optimizer.param_groups:
                group.update(lr=config.learning_rate * learning_rate_factor(state["step"], config),
                             weight_decay=config.weight_decay, initial_lr=config.learning_rate)
        sampler.load(state["sampler"][accelerator.process_index])
        set_rng_state(state["rng"][accelerator.process_index])
        if state.get("scaler") is not None and accelerator.scaler is not None:
            accelerator.scaler.load_state_dict(state["scaler"])
        start, trained_s = state["step"], float(state.get("elapsed_s", 0.0))
        if "elapsed_s" not in state:
            print(f"{resume}: the checkpoint predates elapsed_s; the logged elapsed_s counts from this run",
                  file=sys.stderr, flush=True)
    engine = None if config.stage == "sft" else make_engine(config, model, accelerator)
    log = RunLog(output, resume_step=start, report_to=config.reporters,
                 run_config=config.to_dict()) if accelerator.is_main_process else None
    rollouts = None
    if config.save_rollouts and config.stage != "sft":
        rollouts = RolloutLog(rollout_file(output, accelerator.process_index, accelerator.num_processes), start)
    best_name, best = best_metric(config), read_best(output)
    if best is not None and (best["step"] > start or best["metric"] != best_name):
        best = None  # written after the resumed checkpoint, or by another best_metric: the next validation decides

    end = start if patience_spent(config, best, start) else config.steps  # a run that stopped stays stopped
    progress = tqdm(range(start, end), initial=start, total=config.steps, desc=config.stage,
                    disable=not (show_progress and accelerator.is_main_process))
    rollout: Rollout | None = None
    loop_started = time.perf_counter()
    for step in progress:
        started = time.perf_counter()
        if config.stage == "sft":
            chosen = [examples[i] for i in sampler.take(config.prompts_per_step)]
            model.unwrapped().train()
            metrics = sft_step(model, [audio.prompt(e) for e in chosen], chosen, config, accelerator)
            samples = len(chosen)
        else:
            fresh = step % config.num_iterations == 0 or rollout is None
            if fresh:
                indices = sampler.take(config.prompts_per_step)
                chosen = [examples[i] for i in indices]
                assert engine is not None
                rollout = make_rollout(model, engine, reference, [audio.prompt(e) for e in chosen], chosen, indices,
                                       reward, config, loss, accelerator, step + 1)
                if rollouts is not None:
                    rollouts.log(rollout.groups)
            assert rollout is not None
            # a reused rollout's reward statistics describe the data trained on; its timings belong to its own step
            kept = {k: v for k, v in rollout.metrics.items() if fresh or k not in ("generation_s", "reward_s")}
            metrics = {**kept, **policy_update(model, rollout, config, loss, accelerator)}
            samples = len(rollout.completions)
        if not accelerator.sync_gradients:
            raise RuntimeError("gradient accumulation is out of step with the micro-batches")
        grad_norm = accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
        learning_rate = float(optimizer.param_groups[0]["lr"])  # the rate this step uses
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if engine is not None and (step + 1) % config.num_iterations == 0:  # the next rollout samples these weights
            engine.sync(model)
        step_time = time.perf_counter() - started

        metrics = gather_metrics(accelerator, metrics)
        metrics.update(grad_norm=float(grad_norm), step_time_s=step_time,
                       learning_rate=learning_rate,
                       samples_per_s=samples * accelerator.num_processes / step_time)
        if "reward_s" in metrics:
            metrics["reward_share"] = metrics["reward_s"] / step_time
        last = step + 1 == config.steps
        if dev and ((config.eval_every and (step + 1) % config.eval_every == 0) or last):
            scores = validate(model, dev, reward, config, audio, accelerator)
            metrics.update({f"eval_{k}": v for k, v in scores.items()})
            value = scores[best_name]
            better = best is None or (value > best["value"] if higher_is_better(best_name) else value < best["value"])
            if math.isfinite(value) and better:
                best = {"step": step + 1, "metric": best_name, "value": value}
                save_model(accelerator, model, output / "best", extra={"best.json": json.dumps(best) + "\n"})
            if not last and patience_spent(config, best, step + 1):
                assert best is not None
                print(f"{config.stage}: stopping at step {step + 1} of {config.steps}: no better dev {best_name} in "
                      f"{config.patience} validations since step {best['step']} ({best['value']:.4g})",
                      file=sys.stderr, flush=True)
                metrics["stopped_early"] = 1.0
                last = True
        metrics["elapsed_s"] = trained_s + time.perf_counter() - loop_started  # summed over resumed runs
        if log is not None and ((step + 1) % config.log_every == 0 or last or any(k.startswith("eval_")
                                                                                    for k in metrics)):
            log.log({"step": step + 1, **metrics})
            progress.set_postfix({k: f"{metrics[k]:.3g}" for k in ("loss", "reward_mean") if k in metrics})
        if (step + 1) % config.checkpoint_every == 0 or last:
            save_state(accelerator, output, step + 1, model, optimizer, scheduler, sampler, config, reference_model,
                       metrics["elapsed_s"])
        if last:
            break

    final = output / "final"
    accelerator.wait_for_everyone()
    save_model(accelerator, model, final, merge=config.merge_lora)
    if engine is not None:
        engine.close()
    if log is not None:
        log.close()
    return final

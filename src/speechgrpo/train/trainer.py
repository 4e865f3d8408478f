"""The reference trainer: SFT, GRPO and MP-GRPO for speech LLMs, readable top to bottom.

One step of GRPO (the paper's recipe, every formula from speechgrpo's own modules):

1. take ``prompts_per_step`` prompts (audio + question) and sample G completions each at temperature T;
   for MP-GRPO sample G-1 and add the reference answer as the group's off-policy sample;
2. score them with the reward (``speechgrpo.rewards``; any spec string), in one batched call;
3. group advantages (``speechgrpo.advantages``, preset ``paper``: z-score over the whole mixed group);
4. log-probs of the completions under the policy (with gradient) and the frozen reference model;
5. policy loss (``speechgrpo.losses``, preset ``paper``: token-level DAPO loss, clip 0.2, k3 KL with
   beta 0.02; off-policy tokens use ratio p/1 without clipping), accumulated over micro-batches;
6. optimizer step; log; checkpoint.

SFT is steps 1 and 4 with the references as targets and cross-entropy as the loss. Scaling out goes
through ``accelerate launch`` (DDP, or DeepSpeed through accelerate's config): each process takes its
own prompts, whole groups stay on one process, and gradients are averaged by the wrapper.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from speechgrpo.advantages import group_advantages
from speechgrpo.data import Example, load_audio, read_manifest
from speechgrpo.losses import policy_loss
from speechgrpo.models import Completions, PromptBatch, SamplingConfig, SpeechLM, SpeechPrompt
from speechgrpo.models.loading import load_speech_lm
from speechgrpo.rewards import Reward, as_reward
from speechgrpo.train.checkpoint import (
    latest_checkpoint,
    load_trainer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from speechgrpo.train.config import TrainConfig
from speechgrpo.train.rollout_log import RolloutLog, rollout_file, rollout_groups
from speechgrpo.train.run_log import RunLog


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


class AudioCache:
    """Decoded 16 kHz audio per path, loaded once (the bundled task fits in memory many times over)."""

    def __init__(self) -> None:
        self._audio: dict[str, np.ndarray] = {}

    def prompt(self, example: Example) -> SpeechPrompt:
        """The model input of ``example`` (text-only when its ``audio`` is ``None``)."""
        if example.audio is None:
            return SpeechPrompt(None, example.prompt)
        key = str(example.audio_path)
        if key not in self._audio:
            self._audio[key] = load_audio(key)
        return SpeechPrompt(self._audio[key], example.prompt)


def read_examples(paths: Sequence[str]) -> list[Example]:
    examples = [example for path in paths for example in read_manifest(path)]
    if not examples:
        raise ValueError(f"no examples in {', '.join(paths)}")
    return examples


# -- completions ---------------------------------------------------------------------------------------------
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
    n_prompts = len(references)
    for p in range(n_prompts):
        rows += [("s", p * per_prompt + j) for j in range(per_prompt)] + [("r", p)]
        off += [False] * per_prompt + [True]
    width = max(sampled.ids.shape[1], references.ids.shape[1])

    def padded(tensor: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]))

    ids_s, ids_r, mask_s, mask_r = padded(sampled.ids), padded(references.ids), padded(sampled.mask), padded(
        references.mask)
    ids = torch.stack([ids_s[i] if kind == "s" else ids_r[i] for kind, i in rows])
    mask = torch.stack([mask_s[i] if kind == "s" else mask_r[i] for kind, i in rows])
    texts = [sampled.texts[i] if kind == "s" else references.texts[i] for kind, i in rows]
    prompt_index = torch.stack([sampled.prompt_index[i] if kind == "s" else references.prompt_index[i]
                                for kind, i in rows])
    return Completions(ids, mask, texts, prompt_index), torch.tensor(off, device=ids.device)


def log_probs_in_chunks(model: SpeechLM, batch: PromptBatch, completions: Completions, chunk: int) -> torch.Tensor:
    """Per-token log-probs without gradient, ``chunk`` completions per forward, padded to the full width."""
    out = torch.zeros(completions.ids.shape, dtype=torch.float32, device=completions.ids.device)
    with torch.no_grad():
        for start in range(0, len(completions), chunk):
            index = list(range(start, min(start + chunk, len(completions))))
            part = select(completions, index)
            out[start:start + len(index), :part.ids.shape[1]] = model.completion_log_probs(batch, part).float()
    return out


# -- one step ------------------------------------------------------------------------------------------------
@dataclass
class StepOutput:
    metrics: dict[str, float]
    samples: int
    groups: list[dict[str, Any]] = field(default_factory=list)  # GRPO: the step's rollouts (see rollout_log)


def sft_step(model: SpeechLM, batch: PromptBatch, examples: Sequence[Example], config: TrainConfig,
             accelerator: Any) -> StepOutput:
    """Cross-entropy on the first reference of each prompt, token-averaged over the whole step (weighted by
    ``ce_weight``), plus ``ctc_weight`` x the transcripts' CTC loss."""
    metrics: dict[str, float] = {}
    if config.ce_weight > 0:
        targets = model.encode_completions([e.references[0] for e in examples],
                                           torch.arange(len(examples), device=batch_device(batch)))
        tokens = targets.mask.sum()
        total = 0.0
        for index in chunks(len(targets), config.micro_batch_size):
            part = select(targets, index)
            log_probs = model.completion_log_probs(batch, part)
            loss = -torch.where(part.mask, log_probs, 0.0).sum() / tokens
            accelerator.backward(config.ce_weight * loss)
            total += float(loss.detach())
        metrics.update(loss=total, tokens=float(tokens))
    if config.ctc_weight > 0:
        metrics["ctc_loss"] = transcript_ctc_step(model, batch, examples, config.ctc_weight, accelerator)
    return StepOutput(metrics, len(examples))


def transcript_ctc_step(model: SpeechLM, batch: PromptBatch, examples: Sequence[Example], weight: float,
                        accelerator: Any) -> float:
    """Backpropagate ``weight`` x the CTC loss of each spoken prompt's transcript (``meta["transcript"]``),
    per transcript word; returns that per-word loss (0 when no prompt of the step has both)."""
    transcripts = [str(e.meta.get("transcript") or "") if e.audio is not None else "" for e in examples]
    words = sum(len(t.split()) for t in transcripts)
    if not words:
        return 0.0
    loss = model.transcript_ctc_losses(batch, transcripts).sum() / words
    accelerator.backward(weight * loss)
    return float(loss.detach())


def grpo_step(model: SpeechLM, reference: SpeechLM | None, batch: PromptBatch, examples: Sequence[Example],
              reward: Reward, config: TrainConfig, generator: torch.Generator, accelerator: Any,
              step: int = 0) -> StepOutput:
    """One GRPO / MP-GRPO step (see the module docstring); returns the metrics to log."""
    device = batch_device(batch)
    per_prompt = config.num_generations - 1 if config.stage == "mp_grpo" else config.num_generations
    sampling = SamplingConfig(config.max_new_tokens, config.temperature, config.top_p)
    model.unwrapped().eval()
    started = time.perf_counter()
    with torch.no_grad():
        completions = model.generate(batch, per_prompt, sampling, generator)
    generation_time = time.perf_counter() - started
    model.unwrapped().train()
    sampled_lengths = completions.mask.sum(1).float()
    off_policy = torch.zeros(len(completions), dtype=torch.bool, device=device)
    if config.stage == "mp_grpo":
        references = model.encode_completions([e.references[0] for e in examples],
                                              torch.arange(len(examples), device=device))
        completions, off_policy = with_references(completions, references, per_prompt)

    prompt_index = completions.prompt_index.cpu().numpy()
    started = time.perf_counter()
    result = reward(completions.texts, [examples[i].references for i in prompt_index], group_ids=prompt_index,
                    off_policy=off_policy.cpu().numpy())
    reward_time = time.perf_counter() - started
    advantages = group_advantages(result.scores, prompt_index, preset=config.advantage_preset,
                                  off_policy=off_policy.cpu().numpy())

    ref_log_probs = None
    if reference is not None:
        ref_log_probs = log_probs_in_chunks(reference, batch, completions, config.micro_batch_size)
    advantage_tensor = torch.as_tensor(advantages.advantages, dtype=torch.float32, device=device)
    tokens = completions.mask.sum()
    sums: dict[str, float] = {}
    for index in chunks(len(completions), config.micro_batch_size):
        part = select(completions, index)
        log_probs = model.completion_log_probs(batch, part)
        out = policy_loss(log_probs, None, advantage_tensor[index], part.mask,
                          ref_logprobs=None if ref_log_probs is None else ref_log_probs[index, :part.ids.shape[1]],
                          off_policy=off_policy[index] if config.stage == "mp_grpo" else None,
                          num_tokens=tokens, preset=config.loss_preset,
                          beta=config.beta, off_policy_shaping=config.off_policy_shaping)
        accelerator.backward(out.loss)
        weight = float(part.mask.sum()) / float(tokens)
        sums["loss"] = sums.get("loss", 0.0) + float(out.loss.detach())
        for key, value in out.stats.items():
            if key != "tokens":
                sums[key] = sums.get(key, 0.0) + weight * float(value)

    on_policy = result.scores[~off_policy.cpu().numpy()]
    metrics = {
        **sums,
        "reward_mean": float(on_policy.mean()),
        "reward_std": float(on_policy.std()),
        "frac_zero_std_groups": advantages.stats["frac_zero_std_groups"],
        "completion_length": float(sampled_lengths.mean()),
        "frac_truncated": float((sampled_lengths >= config.max_new_tokens).float().mean()),
        "generation_s": generation_time,
        "reward_s": reward_time,
    }
    groups = (rollout_groups(step, examples, completions.texts, prompt_index.tolist(), off_policy.tolist(),
                             result.scores.tolist()) if config.save_rollouts else [])
    return StepOutput(metrics, len(completions), groups)


def batch_device(batch: PromptBatch) -> torch.device:
    return next(iter(batch.inputs.values())).device


def chunks(size: int, chunk: int) -> list[list[int]]:
    return [list(range(start, min(start + chunk, size))) for start in range(0, size, chunk)]


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


def train(config: TrainConfig, show_progress: bool = True) -> Path:
    """Run ``config`` (resuming from its output directory's latest checkpoint); returns the final model dir."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    output = Path(config.output_dir)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        config.save(output / "config.yaml")
    dtype = torch.bfloat16 if config.dtype == "bfloat16" else torch.float32
    resume = latest_checkpoint(output)
    model = load_speech_lm(resume / "model" if resume else config.model, device=accelerator.device, dtype=dtype)
    if config.ctc_weight > 0 and not model.has_ctc_head:
        raise ValueError(f"ctc_weight is {config.ctc_weight} but {type(model).__name__} has no CTC head; set it to 0")
    reference = None
    if config.stage != "sft" and config.beta > 0:
        reference = load_speech_lm(config.model, device=accelerator.device, dtype=dtype)
        reference.module.requires_grad_(False).eval()
    examples = read_examples(config.train_manifests)
    sampler = PromptSampler(len(examples), config.seed, accelerator.process_index, accelerator.num_processes)
    audio = AudioCache()
    reward = as_reward(config.reward)

    parameters = [p for p in model.module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(learning_rate_factor, config=config))
    model.module, optimizer = accelerator.prepare(model.module, optimizer)
    generator = torch.Generator().manual_seed(config.seed * 1000 + accelerator.process_index)
    torch.manual_seed(config.seed * 1000 + accelerator.process_index)
    np.random.seed(config.seed * 1000 + accelerator.process_index)

    start = 0
    if resume is not None:
        state = load_trainer_state(resume)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load(state["sampler"][accelerator.process_index])
        set_rng_state(state["rng"][accelerator.process_index], generator)
        start = state["step"]
    log = RunLog(output, resume_step=start, tensorboard=config.tensorboard) if accelerator.is_main_process else None
    rollouts = None
    if config.save_rollouts and config.stage != "sft":
        rollouts = RolloutLog(rollout_file(output, accelerator.process_index, accelerator.num_processes), start)

    progress = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=config.stage,
                    disable=not (show_progress and accelerator.is_main_process))
    for step in progress:
        started = time.perf_counter()
        chosen = [examples[i] for i in sampler.take(config.prompts_per_step)]
        batch = model.encode_prompts([audio.prompt(e) for e in chosen])
        if config.stage == "sft":
            out = sft_step(model, batch, chosen, config, accelerator)
        else:
            out = grpo_step(model, reference, batch, chosen, reward, config, generator, accelerator, step + 1)
            if rollouts is not None:
                rollouts.log(out.groups)
        grad_norm = accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step_time = time.perf_counter() - started

        metrics = {k: float(v) for k, v in gather_mean(accelerator, out.metrics).items()}
        metrics.update(grad_norm=float(grad_norm), step_time_s=step_time,
                       learning_rate=float(scheduler.get_last_lr()[0]),
                       samples_per_s=out.samples * accelerator.num_processes / step_time)
        if "reward_s" in metrics:
            metrics["reward_share"] = metrics["reward_s"] / step_time
        if log is not None and ((step + 1) % config.log_every == 0 or step + 1 == config.steps):
            log.log({"step": step + 1, **metrics})
            progress.set_postfix({k: f"{metrics[k]:.3g}" for k in ("loss", "reward_mean") if k in metrics})
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            save_state(accelerator, output, step + 1, model, optimizer, scheduler, sampler, generator, config)

    final = output / "final"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model.save(final)
    accelerator.wait_for_everyone()
    return final


def gather_mean(accelerator: Any, metrics: dict[str, float]) -> dict[str, float]:
    """Metrics averaged over processes (every process logs the same keys)."""
    if accelerator.num_processes == 1:
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    gathered = accelerator.gather(values[None]).mean(0)
    return {k: float(v) for k, v in zip(keys, gathered.tolist(), strict=True) if math.isfinite(float(v))}


def save_state(accelerator: Any, output: Path, step: int, model: SpeechLM, optimizer: Any, scheduler: Any,
               sampler: PromptSampler, generator: torch.Generator, config: TrainConfig) -> None:
    """Gather every process's sampler and RNG state, then the main process writes the checkpoint."""
    from accelerate.utils import gather_object

    samplers = gather_object([sampler.state()])
    rngs = gather_object([rng_state(generator)])
    if accelerator.is_main_process:
        save_checkpoint(output, step, model, {"step": step, "optimizer": optimizer.state_dict(),
                                              "scheduler": scheduler.state_dict(), "sampler": samplers,
                                              "rng": rngs}, config.keep_checkpoints)
    accelerator.wait_for_everyone()

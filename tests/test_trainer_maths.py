"""The trainer's GRPO maths, each test able to fail: a step moves log-probs the way the advantages say,
micro-batches and processes leave the gradient unchanged, one step equals trl.GRPOTrainer's, GRPO raises the
reward of a toy task, and each config field does what it says (precision, LoRA, dropout, temperature,
num_iterations, presets, validation, generation batches, gradient checkpointing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_lm import PAIRS, build_tiny_lm

from speechgrpo.data import Example, write_manifest
from speechgrpo.losses import LOSS_PRESETS
from speechgrpo.models import SpeechLM, SpeechPrompt
from speechgrpo.models.loading import load_speech_lm
from speechgrpo.rewards import parse_reward
from speechgrpo.rollout import HFEngine
from speechgrpo.train import TrainConfig
from speechgrpo.train import trainer as T


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Example]]:
    root = tmp_path_factory.mktemp("maths")
    model = build_tiny_lm(root / "model")
    examples = [Example(id=f"t{i}", audio=None, prompt=p, references=(r,), task="ast_text")
                for i, (p, r) in enumerate(PAIRS)]
    return model, write_manifest(root / "train.jsonl", examples), examples


def config(task: tuple[Path, Path, list[Example]], out: Path, **overrides: Any) -> TrainConfig:
    model, manifest, _ = task
    values: dict[str, Any] = {"model": str(model), "train_manifests": [str(manifest)], "output_dir": str(out),
                              "steps": 3, "prompts_per_step": 3, "num_generations": 4, "max_new_tokens": 6,
                              "micro_batch_size": 4, "learning_rate": 1e-2, "checkpoint_every": 50}
    values.update(overrides)
    return TrainConfig(**values)


def accelerator(micro_batches: int) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    return Accelerator(cpu=True, gradient_accumulation_steps=micro_batches)


def rollout_of(model: SpeechLM, reference: SpeechLM | None, settings: TrainConfig,
               examples: list[Example], step: int = 1) -> T.Rollout:
    chosen = examples[:settings.prompts_per_step]
    return T.make_rollout(model, HFEngine(model), reference, [SpeechPrompt(None, e.prompt) for e in chosen],
                          chosen,
                          list(range(len(chosen))), parse_reward(settings.reward), settings, T.loss_settings(settings),
                          accelerator(1), step)


def gradient(model: SpeechLM, rollout: T.Rollout, settings: TrainConfig, micro_batch: int) -> torch.Tensor:
    rollout.micro_batches = T.chunks(len(rollout.completions), micro_batch)
    model.module.zero_grad(set_to_none=True)
    T.policy_update(model, rollout, settings, T.loss_settings(settings), accelerator(len(rollout.micro_batches)))
    return torch.cat([p.grad.flatten() for p in model.module.parameters() if p.grad is not None])


def sequence_log_probs(model: SpeechLM, rollout: T.Rollout, temperature: float = 1.0) -> torch.Tensor:
    return T.no_grad_log_probs(model, rollout.prompts, rollout.completions, rollout.micro_batches, temperature,
                               accelerator(1)).sum(1)


def test_one_step_raises_the_log_probs_of_positive_advantages(task: tuple[Path, Path, list[Example]],
                                                              tmp_path: Path) -> None:
    settings = config(task, tmp_path, reward="chrf", beta=0.0)
    model = load_speech_lm(task[0])
    rollout = rollout_of(model, None, settings, task[2])
    advantages = rollout.advantages
    assert (advantages > 0).any() and (advantages < 0).any()
    before = sequence_log_probs(model, rollout)
    gradient(model, rollout, settings, micro_batch=4)
    with torch.no_grad():
        for p in model.module.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    change = sequence_log_probs(model, rollout) - before
    assert float((advantages * change).sum()) > 0
    assert float(change[advantages > 0].mean()) > 0 > float(change[advantages < 0].mean())


@pytest.mark.parametrize("preset", sorted(LOSS_PRESETS))
def test_micro_batch_size_leaves_the_gradient_unchanged(task: tuple[Path, Path, list[Example]], tmp_path: Path,
                                                        preset: str) -> None:
    stage = "mp_grpo" if preset == "luffy" else "grpo"
    settings = config(task, tmp_path, stage=stage, loss_preset=preset, num_iterations=2, checkpoint_every=2,
                      reward="chrf", beta=0.04)
    model, reference = load_speech_lm(task[0]), load_speech_lm(task[0])
    rollout = rollout_of(model, reference, settings, task[2])
    with torch.no_grad():  # the policy moves after sampling, so ratios, clipping and KL are all active
        generator = torch.Generator().manual_seed(0)
        for p in model.module.parameters():
            p += 0.05 * torch.randn(p.shape, generator=generator)
    whole = gradient(model, rollout, settings, micro_batch=len(rollout.completions))
    for size in (5, 1):
        torch.testing.assert_close(gradient(model, rollout, settings, micro_batch=size), whole, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_one_step_equals_trl_grpo_trainer(task: tuple[Path, Path, list[Example]], tmp_path: Path,
                                          temperature: float) -> None:
    """The same batch (prompts, completions, advantages, reference log-probs) through TRL's own loss code
    (GRPOTrainer.compute_loss, loss_type dapo, beta 0.04, epsilon 0.2) and through ours (preset trl, beta 0.04):
    the same loss and gradient."""
    pytest.importorskip("trl")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    settings = config(task, tmp_path, loss_preset="trl", beta=0.04, temperature=temperature, reward="chrf",
                      prompts_per_step=2)
    model, reference = load_speech_lm(task[0]), load_speech_lm(task[0])
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for p in model.module.parameters():
            p += 0.05 * torch.randn(p.shape, generator=generator)
    chosen = [e for e in task[2] if len(e.prompt.split()) == 4][:2]  # equal lengths: no left padding
    rollout = T.make_rollout(model, HFEngine(model), reference, [SpeechPrompt(None, e.prompt) for e in chosen],
                             chosen, [0, 1],
                             parse_reward("chrf"), settings, T.loss_settings(settings), accelerator(1), 1)
    assert rollout.ref_log_probs is not None
    ours = gradient(model, rollout, settings, micro_batch=len(rollout.completions))
    our_loss = T.policy_update(model, rollout, settings, T.loss_settings(settings), accelerator(1))["loss"]

    # fp32, no checkpointing, and the plain k3 KL gradient (TRL 1.16 multiplies the KL by the ratio by default,
    # use_bias_correction_kl, which changes its gradient but not its value; speechgrpo's losses do not)
    trl_config = GRPOConfig(output_dir=str(tmp_path / "trl"), use_cpu=True, bf16=False, gradient_checkpointing=False,
                            use_bias_correction_kl=False, beta=0.04, epsilon=0.2, loss_type="dapo",
                            temperature=temperature, num_generations=4,
                            per_device_train_batch_size=8, max_completion_length=settings.max_new_tokens,
                            report_to="none", save_strategy="no")
    trainer = GRPOTrainer(model=model.module, reward_funcs=lambda completions, **_: [0.0] * len(completions),
                          args=trl_config, train_dataset=Dataset.from_dict({"prompt": [e.prompt for e in chosen]}),
                          processing_class=model.tokenizer)  # type: ignore[attr-defined]
    batch = model.encode_prompts([SpeechPrompt(None, e.prompt) for e in chosen])
    index = rollout.completions.prompt_index
    inputs = {"prompt_ids": batch.inputs["input_ids"][index], "prompt_mask": batch.inputs["attention_mask"][index],
              "completion_ids": rollout.completions.ids, "completion_mask": rollout.completions.mask.long(),
              "advantages": rollout.advantages, "ref_per_token_logps": rollout.ref_log_probs,
              "num_items_in_batch": rollout.completions.mask.sum()}
    trainer.current_gradient_accumulation_steps = 1  # what Trainer.train sets for a step without accumulation
    model.module.zero_grad(set_to_none=True)
    trl_loss = trainer.compute_loss(model.module, inputs)
    trl_loss.backward()
    theirs = torch.cat([p.grad.flatten() for p in model.module.parameters() if p.grad is not None])
    # terms of size ~1 cancel (the advantages sum to 0), so the loss is compared in absolute terms
    assert our_loss == pytest.approx(float(trl_loss.detach()), abs=1e-6)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-7)
    print(f"T={temperature}: |loss - TRL| = {abs(our_loss - float(trl_loss.detach())):.1e}, "
          f"max |grad - TRL| = {float((ours - theirs).abs().max()):.1e} (max |grad| {float(theirs.abs().max()):.1e})")


def test_grpo_raises_the_reward_of_a_toy_task(task: tuple[Path, Path, list[Example]], tmp_path: Path) -> None:
    """Reward: how often the completion says "katze"; 40 steps of GRPO on the tiny text LM (~20 s)."""
    T.train(config(task, tmp_path, reward="exact_match", steps=40, prompts_per_step=6, num_generations=8,
                   max_new_tokens=1, micro_batch_size=48, learning_rate=3e-2, beta=0.0, seed=3,
                   train_manifests=[str(write_manifest(tmp_path / "katze.jsonl", [
                       Example(id=f"k{i}", audio=None, prompt=p, references=("katze",), task="t")
                       for i, (p, _) in enumerate(PAIRS)]))]), show_progress=False)
    rewards = [json.loads(line)["reward_mean"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.3, rewards


def _launch(args: list[str], processes: int, script: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = ([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                 "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"] if processes > 1
                else [sys.executable])
    result = subprocess.run([*launcher, str(script), *args], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


RANK_WEIGHTS_SCRIPT = '''
import sys
import torch
import yaml
import speechgrpo.train.trainer as T
from speechgrpo.train import load_config

out = sys.argv[1]
original = T.save_model

def save_model(accelerator, model, directory, merge=False, extra=None):
    torch.save(model.unwrapped().state_dict(), f"{out}/rank{accelerator.process_index}.pt")
    original(accelerator, model, directory, merge, extra)

T.save_model = save_model
pairs = (arg.split("=", 1) for arg in sys.argv[2:])
T.train(load_config(None, **{key: yaml.safe_load(value) for key, value in pairs}), show_progress=False)
'''


def test_two_processes_equal_one_with_the_same_global_batch(task: tuple[Path, Path, list[Example]],
                                                             tmp_path: Path) -> None:
    """MP-GRPO, 3 steps, 2 micro-batches per process: DDP keeps the ranks identical, and the global token
    normalization makes 2 x 2 prompts the same update as 1 x 4 (the samples are seeded per prompt); the dev
    scores, each process answering half the examples from their own streams, equal one process's."""
    script = tmp_path / "run.py"
    script.write_text(RANK_WEIGHTS_SCRIPT, encoding="utf-8")
    model, manifest, _ = task
    common = [f"model={model}", f"train_manifests=[{manifest}]", "stage=mp_grpo", "steps=3", "num_generations=4",
              "generation_batch_size=4", "micro_batch_size=4", "max_new_tokens=5", "learning_rate=0.01",
              "reward=chrf", f"eval_manifests=[{manifest}]", "eval_every=3", "eval_seeds=1",
              "eval_metrics=[bleu, chrf]"]
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    _launch([str(tmp_path / "two"), *common, "prompts_per_step=2", f"output_dir={tmp_path / 'two' / 'run'}"], 2,
            script)
    _launch([str(tmp_path / "one"), *common, "prompts_per_step=4", f"output_dir={tmp_path / 'one' / 'run'}"], 1,
            script)
    rank0, rank1 = (torch.load(tmp_path / "two" / f"rank{r}.pt") for r in (0, 1))
    single = torch.load(tmp_path / "one" / "rank0.pt")
    initial = load_speech_lm(model).module.state_dict()
    assert any(not torch.equal(rank0[k], initial[k]) for k in rank0)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-4, atol=1e-6)
    dev = [[r for r in map(json.loads, (tmp_path / n / "run" / "metrics.jsonl").read_text().splitlines())
            if "eval_bleu" in r] for n in ("two", "one")]
    assert len(dev[0]) == 1 and all(dev[0][0][k] == dev[1][0][k] for k in ("eval_bleu", "eval_chrf", "eval_reward"))
    difference = max(float((rank0[k] - single[k]).abs().max()) for k in rank0)
    print(f"max |w(2 processes) - w(1 process)| = {difference:.2e}")


def test_two_processes_with_lora_keep_identical_adapters(task: tuple[Path, Path, list[Example]],
                                                         tmp_path: Path) -> None:
    """DDP over the adapter only, with the reference taken by switching the adapter off on each rank."""
    script = tmp_path / "run.py"
    script.write_text(RANK_WEIGHTS_SCRIPT, encoding="utf-8")
    model, manifest, _ = task
    _launch([str(tmp_path), f"model={model}", f"train_manifests=[{manifest}]", "stage=grpo", "steps=2",
             "num_generations=4", "micro_batch_size=4", "max_new_tokens=4", "learning_rate=0.01", "reward=chrf",
             "prompts_per_step=2", "lora_rank=2", "beta=0.04", f"output_dir={tmp_path / 'run'}"], 2, script)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    adapters = [k for k in rank0 if ".lora_B." in k]
    assert adapters and any(float(rank0[k].abs().max()) > 0 for k in adapters)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)

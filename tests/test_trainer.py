"""The reference trainer on a tiny text LM (fast) and a tiny Qwen2-Audio (speech path): steps, MP-GRPO
groups, resume after kill -9, two processes under accelerate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_lm import PAIRS, build_tiny_lm

from speechgrpo.data import Example, read_manifest, write_manifest
from speechgrpo.data.groups_file import read_groups
from speechgrpo.losses import policy_loss
from speechgrpo.models import SamplingConfig, SpeechPrompt
from speechgrpo.models.loading import load_speech_lm
from speechgrpo.rewards import parse_reward
from speechgrpo.train import TrainConfig, load_config
from speechgrpo.train.checkpoint import load_trainer_state
from speechgrpo.train.rollout_log import RolloutLog, rollout_file
from speechgrpo.train.trainer import PromptSampler, learning_rate_factor, select, train, with_references


@pytest.fixture(scope="module")
def text_task(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("text_task")
    model = build_tiny_lm(root / "model")
    examples = [Example(id=f"t{i}", audio=None, prompt=p, references=(r,), task="ast_text")
                for i, (p, r) in enumerate(PAIRS)]
    return model, write_manifest(root / "train.jsonl", examples)


def config(model: Path, manifest: Path, out: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {"model": str(model), "train_manifests": [str(manifest)], "output_dir": str(out),
                                 "steps": 3, "prompts_per_step": 3, "max_new_tokens": 6,
                                 "micro_batch_size": 8, "learning_rate": 1e-2, "checkpoint_every": 2}
    if overrides.get("stage", "grpo") != "sft":
        values["num_generations"] = 4
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_sampler_is_deterministic_resumable_and_split_across_processes() -> None:
    a, b = PromptSampler(10, seed=3), PromptSampler(10, seed=3)
    first = a.take(7)
    assert first == b.take(7) and len(set(first)) == 7
    state = a.state()
    rest = a.take(8)
    c = PromptSampler(10, seed=3)
    c.load(state)
    assert c.take(8) == rest
    shards = [PromptSampler(10, seed=3, rank=r, world=2).take(5) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(10))


def test_sft_reduces_the_loss(text_task: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest = text_task
    train(config(model, manifest, tmp_path, stage="sft", steps=12, prompts_per_step=6, checkpoint_every=50),
          show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 13
    assert (tmp_path / "final" / "config.json").is_file()


def test_mp_grpo_groups_hold_exactly_one_reference(text_task: tuple[Path, Path]) -> None:
    model_dir, manifest = text_task
    model = load_speech_lm(model_dir)
    examples = read_manifest(manifest)[:3]
    batch = model.encode_prompts([SpeechPrompt(None, e.prompt) for e in examples])
    sampled = model.generate(batch, 3, SamplingConfig(max_new_tokens=5), torch.Generator().manual_seed(1))
    references = model.encode_completions([e.references[0] for e in examples], torch.arange(3))
    merged, off = with_references(sampled, references, 3)
    assert off.tolist() == [False, False, False, True] * 3
    assert merged.prompt_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert [merged.texts[i] for i in (3, 7, 11)] == [e.references[0] for e in examples]
    for group, row in enumerate((3, 7, 11)):
        width = int(references.mask[group].sum())
        assert torch.equal(merged.ids[row, :width], references.ids[group, :width])
        assert not merged.mask[row, width:].any()
    # the off-policy rows: ratio p/1 and no clipping, so the loss there is -A * p averaged over tokens
    part = select(merged, [3])
    log_probs = model.completion_log_probs(batch, part)
    out = policy_loss(log_probs, log_probs.detach() - 5.0, torch.tensor([2.0]), part.mask,
                      off_policy=torch.tensor([True]), preset="paper", beta=0.0)
    expected = -(2.0 * log_probs.exp())[part.mask].sum() / part.mask.sum()
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize("stage", ["grpo", "mp_grpo"])
def test_grpo_and_mp_grpo_runs_log_what_the_issue_asks(text_task: tuple[Path, Path], tmp_path: Path,
                                                       stage: str) -> None:
    model, manifest = text_task
    train(config(model, manifest, tmp_path, stage=stage, reward="0.5*bleu + 0.5*chrf", save_rollouts=True),
          show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("reward_mean", "reward_std", "frac_zero_std_groups", "kl", "clip_frac_low", "clip_frac_high",
                "completion_length", "step_time_s", "reward_share", "samples_per_s"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert ("off_policy_prob" in rows[0]) == (stage == "mp_grpo")

    groups = read_groups(tmp_path / "rollouts.jsonl")  # the groups format `speechgrpo bench signal` reads
    records = [json.loads(line) for line in (tmp_path / "rollouts.jsonl").read_text().splitlines()]
    assert len(groups) == 3 * 3 and [r["step"] for r in records] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    for row in rows:  # completion_words: whitespace words of the sampled (on-policy) completions of that step
        sampled = [c for r in records if r["step"] == row["step"]
                   for c, off in zip(r["completions"], r["off_policy"], strict=True) if not off]
        assert row["completion_words"] == pytest.approx(np.mean([len(c.split()) for c in sampled]))
    reward = parse_reward("0.5*bleu + 0.5*chrf")
    for group, record in zip(groups, records, strict=True):
        assert len(group.completions) == 4 and sum(group.off_policy) == (stage == "mp_grpo")
        if stage == "mp_grpo":
            assert group.completions[group.off_policy.index(True)] == group.references[0]
        assert record["rewards"] == pytest.approx(reward(group.completions, [group.references] * 4).scores)


def test_rollout_log_drops_steps_after_the_resumed_checkpoint(tmp_path: Path) -> None:
    path = rollout_file(tmp_path)
    log = RolloutLog(path)
    for step in (1, 2, 3):
        log.log([{"step": step, "references": ["a"], "completions": ["a", "b"]}])
    RolloutLog(path, resume_step=2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
    assert rollout_file(tmp_path, rank=1, world=2).name == "rollouts.rank1.jsonl"


def test_ctc_weight_needs_a_ctc_head_and_some_loss(text_task: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest = text_task
    with pytest.raises(ValueError, match="not both 0"):
        config(model, manifest, tmp_path, stage="sft", ce_weight=0)
    with pytest.raises(ValueError, match="CausalLM has no CTC head"):
        train(config(model, manifest, tmp_path / "ctc", stage="sft", ctc_weight=0.5), show_progress=False)


def test_numbers_in_yaml_1_1_notation_and_wrong_types(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: m\ntrain_manifests: [t]\noutput_dir: o\nlearning_rate: 1e-5\n")
    assert load_config(path).learning_rate == 1e-5  # PyYAML reads 1e-5 as a string
    assert load_config(path, stage="mp_grpo", off_policy_shaping="1e-1").off_policy_shaping == 0.1
    with pytest.raises(ValueError, match="learning_rate must be a number, got 'fast'"):
        load_config(path, learning_rate="fast")
    with pytest.raises(ValueError, match=r"steps must be an integer, got 2\.5"):
        load_config(path, steps=2.5)


def test_learning_rate_schedules() -> None:
    def factors(**kwargs: object) -> list[float]:
        settings = TrainConfig(model="m", train_manifests=["t"], output_dir="o", steps=12, **kwargs)  # type: ignore[arg-type]
        return [learning_rate_factor(step, settings) for step in range(12)]

    assert factors() == [1.0] * 12
    warm = factors(warmup_steps=4, lr_schedule="linear")
    assert warm[:4] == [0.25, 0.5, 0.75, 1.0] and warm[4:] == pytest.approx([1 - k / 8 for k in range(8)])
    cosine = factors(warmup_steps=2, lr_schedule="cosine")
    assert cosine[2] == 1.0 and cosine[7] == pytest.approx(0.5) and all(np.diff(cosine[2:]) < 0)
    with pytest.raises(ValueError, match="lr_schedule"):
        factors(lr_schedule="step")


def test_yaml_config_and_cli(text_task: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest = text_task
    path = tmp_path / "run.yaml"
    config(model, manifest, tmp_path / "run", stage="grpo", steps=2).save(path)
    assert load_config(path, beta=0.04).beta == 0.04
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(path, betta=0.1)
    from speechgrpo.cli import main

    assert main(["train", "--config", str(path), "--no-progress", "steps=2", "learning_rate=0.001"]) == 0
    assert main(["eval", "--model", str(tmp_path / "run" / "final"), "--manifest", str(manifest), "--seeds", "2",
                 "--metrics", "bleu,rougeL,wer", "--max-new-tokens", "6", "--output", str(tmp_path / "e.json")]) == 0
    results = json.loads((tmp_path / "e.json").read_text())
    assert {"sampled", "sampled_std", "greedy", "model", "metrics"} <= set(results)
    assert set(results["greedy"]) == {"bleu", "rougeL", "wer"}


def _run_cli(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-m", "speechgrpo.cli", *args], env=env, **kwargs)  # type: ignore[call-overload]


def test_resume_after_kill_gives_the_same_weights(text_task: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest = text_task
    args = ["train", "--no-progress", f"model={model}", f"train_manifests=[{manifest}]", "stage=grpo", "steps=6",
            "prompts_per_step=2", "num_generations=4", "max_new_tokens=6", "checkpoint_every=2",
            "learning_rate=0.01", "keep_checkpoints=3"]
    assert _run_cli([*args, f"output_dir={tmp_path / 'whole'}"]).wait(timeout=300) == 0
    interrupted = tmp_path / "interrupted"
    process = _run_cli([*args, f"output_dir={interrupted}"])
    deadline = time.monotonic() + 300
    while not (interrupted / "checkpoints" / "step-00000002" / "COMPLETE").is_file():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _run_cli([*args, f"output_dir={interrupted}"]).wait(timeout=300) == 0
    whole = load_speech_lm(tmp_path / "whole" / "final").module.state_dict()
    resumed = load_speech_lm(interrupted / "final").module.state_dict()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    rows = [json.loads(line) for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    # the training time goes on from the checkpoint's: the killed run's two steps are counted once
    before = load_trainer_state(interrupted / "checkpoints" / "step-00000002")["elapsed_s"]
    elapsed = [row["elapsed_s"] for row in rows]
    assert elapsed[1] <= before < elapsed[2] and elapsed == sorted(elapsed)


def test_resume_refuses_a_changed_run_and_force_takes_the_changes(text_task: tuple[Path, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from speechgrpo.train import trainer as T

    model, manifest = text_task
    out = tmp_path / "run"
    train(config(model, manifest, out, steps=2), show_progress=False)
    checkpoint = out / "checkpoints" / "step-00000002"
    assert (checkpoint / "config.yaml").is_file() and json.loads((checkpoint / "run.json").read_text()) == {
        "reference_model": str(model)}
    other = build_tiny_lm(tmp_path / "other")
    with pytest.raises(ValueError, match=r"trained with another config \(model: .*; learning_rate: 0\.01 -> 0\.02\)"):
        train(config(model=other, manifest=manifest, out=out, steps=4, learning_rate=0.02), show_progress=False)
    with pytest.raises(ValueError, match=r"holds a run .* resume is 'never'"):
        train(config(model, manifest, out, steps=4, resume="never"), show_progress=False)
    loaded: list[str] = []
    load = T.load_speech_lm
    monkeypatch.setattr(T, "load_speech_lm", lambda path, **kw: (loaded.append(str(path)), load(path, **kw))[1])
    train(config(model=other, manifest=manifest, out=out, steps=4, learning_rate=0.02, resume="force"),
          show_progress=False)
    assert loaded == [str(checkpoint / "model"), str(model)]  # the policy resumed, the reference as it started
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["learning_rate"]) for r in rows] == [(1, 0.01), (2, 0.01), (3, 0.02), (4, 0.02)]
    assert json.loads((out / "checkpoints" / "step-00000004" / "run.json").read_text())["reference_model"] == str(model)
    train(config(model=other, manifest=manifest, out=out, steps=5, learning_rate=0.02), show_progress=False)  # steps


def test_the_logged_learning_rate_is_the_one_the_step_used(text_task: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest = text_task
    train(config(model, manifest, tmp_path, steps=3, warmup_steps=2, stage="sft"), show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["learning_rate"] for r in rows] == [0.005, 0.01, 0.01]


@pytest.mark.parametrize(("kind", "occurrence"), [("checkpoint", 2), ("best", 2)])
def test_a_kill_during_a_checkpoint_or_best_write_resumes_to_the_same_run(text_task: tuple[Path, Path],
                                                                          tmp_path: Path, kind: str,
                                                                          occurrence: int) -> None:
    """SIGKILL in the middle of writing a checkpoint or best/: what was there stays whole, and the re-run ends
    with the weights and the best/ of an uninterrupted run."""
    model, manifest = text_task
    args = ["train", "--no-progress", f"model={model}", f"train_manifests=[{manifest}]", "stage=grpo", "steps=6",
            "prompts_per_step=2", "num_generations=4", "max_new_tokens=6", "checkpoint_every=2", "learning_rate=0.01",
            f"eval_manifests=[{manifest}]", "eval_every=1", "eval_max_examples=4", "best_metric=reward", "reward=chrf",
            "keep_checkpoints=5"]
    assert _run_cli([*args, f"output_dir={tmp_path / 'whole'}"]).wait(timeout=300) == 0
    out = tmp_path / "killed"
    script = Path(__file__).resolve().parent / "kill_during_write.py"
    killed = subprocess.run([sys.executable, str(script), kind, str(occurrence), "--", *args, f"output_dir={out}"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "best" / "best.json").is_file() and load_speech_lm(out / "best") is not None  # still whole
    assert _run_cli([*args, f"output_dir={out}"]).wait(timeout=300) == 0
    for folder in ("final", "best"):
        whole = load_speech_lm(tmp_path / "whole" / folder).module.state_dict()
        resumed = load_speech_lm(out / folder).module.state_dict()
        assert all(torch.equal(whole[k], resumed[k]) for k in whole), folder
    assert (out / "best" / "best.json").read_text() == (tmp_path / "whole" / "best" / "best.json").read_text()
    assert not list(out.rglob("*.partial")) and not list(out.rglob("*.old"))


def test_two_processes_under_accelerate(text_task: tuple[Path, Path], tmp_path: Path) -> None:
    """DDP over gloo on CPU: accelerate's ``--multi_gpu`` launcher (torchrun) with no GPU gives MULTI_CPU."""
    model, manifest = text_task
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "speechgrpo.cli",
               "train", "--no-progress", f"model={model}", f"train_manifests=[{manifest}]", "stage=mp_grpo",
               "steps=2", "prompts_per_step=2", "num_generations=3", "max_new_tokens=5",
               f"output_dir={tmp_path}"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    state = torch.load(tmp_path / "checkpoints" / "step-00000002" / "trainer_state.pt", weights_only=False)
    assert len(state["sampler"]) == 2 and state["sampler"][0] == state["sampler"][1]
    assert (tmp_path / "final" / "config.json").is_file()


def test_documented_config_is_a_valid_paper_config(tmp_path: Path) -> None:
    from doc_blocks import doc_block

    path = tmp_path / "grpo.yaml"
    path.write_text(doc_block("trainer.md", "train-config"), encoding="utf-8")
    loaded = load_config(path)
    assert (loaded.stage, loaded.num_generations, loaded.temperature, loaded.max_new_tokens) == ("grpo", 8, 1.0, 200)
    assert (loaded.advantage_preset, loaded.loss_preset, loaded.mixed_precision) == ("paper", "paper", "bf16")


def test_ready_paper_and_leaf_configs(tmp_path: Path) -> None:
    from doc_blocks import doc_block

    from speechgrpo.advantages.config import advantage_config
    from speechgrpo.train.trainer import loss_settings

    configs = {}
    for name in ("paper", "leaf"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(doc_block("trainer.md", f"{name}-config"), encoding="utf-8")
        configs[name] = load_config(path)
    paper, leaf = configs["paper"], configs["leaf"]
    loss = loss_settings(paper)
    assert (paper.num_generations, loss.beta, loss.kl_estimator, loss.epsilon_low, loss.aggregation,
            paper.max_new_tokens, paper.temperature) == (8, 0.02, "k3", 0.2, "token_mean", 200, 1.0)
    loss = loss_settings(leaf)
    assert (leaf.lora_rank, leaf.lora_alpha, leaf.lora_dropout, leaf.learning_rate, loss.epsilon_low,
            loss.clip_high, loss.kl_estimator, loss.beta, leaf.num_generations, leaf.max_new_tokens,
            leaf.top_p) == (64, 128.0, 0.05, 5e-6, 0.2, 0.2, "k3", 0.02, 8, 200, 0.9)
    assert advantage_config(leaf.advantage_preset).std_floor == pytest.approx(1 / 3)


def test_trainer_page_documents_every_field() -> None:
    import dataclasses
    import re

    text = (Path(__file__).resolve().parent.parent / "docs" / "trainer.md").read_text(encoding="utf-8")
    table = text[text.index("## Every field"):text.index("**Precision.**")]
    documented = {name for cell in re.findall(r"^\| ([^|]+) \|", table, re.M) for name in re.findall(r"`(\w+)`", cell)}
    assert {f.name for f in dataclasses.fields(TrainConfig)} == documented
    from speechgrpo.train.config import STAGE_FIELDS

    for names, stages in re.findall(r"^\| ([^|]+) \| [^|]+ \| ([^|]+) \|", table, re.M)[1:]:
        expected = {STAGE_FIELDS.get(name, ("sft", "grpo", "mp_grpo")) for name in re.findall(r"`(\w+)`", names)}
        assert expected == {("sft", "grpo", "mp_grpo") if stages.strip() == "all" else
                            tuple(stages.strip().split(", "))}, names

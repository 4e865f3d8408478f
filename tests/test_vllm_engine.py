"""rollout_engine: vllm on the CPU (vLLM's CPU build) with Qwen2-Audio and Granite Speech built from their published
configs (Granite in its shipped-adapter layout): log-probs against speechgrpo's own, weights after each optimizer
step (full, LoRA adapter for Granite, merged LoRA for Qwen2-Audio), and GRPO / MP-GRPO runs of `speechgrpo train`.

vLLM's CPU build pins a transformers older than the main environment's, so these tests run in their own
environment (``make test`` builds ``.venv-vllm`` and runs ``pytest -m vllm`` there); elsewhere they skip. One
engine per architecture and settings serves the whole run (speechgrpo.rollout.vllm_engine keeps them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache per engine: the tiny models need little
torch = pytest.importorskip("torch")
pytest.importorskip("vllm", reason="vLLM runs in .venv-vllm (make test)")
from published_models import FAMILIES, build_families, clip  # noqa: E402

from speechgrpo.data import Example, write_manifest, write_wav  # noqa: E402
from speechgrpo.models import SamplingConfig, SpeechPrompt  # noqa: E402
from speechgrpo.models.loading import load_speech_lm  # noqa: E402
from speechgrpo.rollout.vllm_engine import VLLMEngine, VLLMSettings  # noqa: E402

pytestmark = pytest.mark.vllm
SETTINGS = VLLMSettings(max_model_len=2048)
TOLERANCE = 1e-5  # float32 log-probs, vLLM against speechgrpo


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_families(tmp_path_factory.mktemp("published"))


PROMPTS = [SpeechPrompt(clip(1.0, 1), "What is the dog doing?"), SpeechPrompt(clip(1.7, 2), "Translate it.")]


def max_gap(model: Any, engine: VLLMEngine, temperature: float, seeds: list[int]) -> float:
    """|vLLM's log-prob - speechgrpo's| over every sampled token, at ``temperature``."""
    samples = engine.sample(PROMPTS, 3, SamplingConfig(8, temperature=temperature), seeds)
    completions = samples.completions
    assert samples.log_probs is not None and len(completions) == 6
    assert completions.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
    model.module.eval()
    with torch.no_grad():
        ours = model.completion_log_probs(model.encode_prompts(PROMPTS), completions, temperature)
    return float((ours - samples.log_probs).abs().max())


@pytest.mark.parametrize("family", FAMILIES)
def test_log_probs_equal_speechgrpos_and_follow_the_weights(checkpoints: dict[str, Path], family: str) -> None:
    model = load_speech_lm(checkpoints[family])
    engine = VLLMEngine(model, SETTINGS)
    assert max_gap(model, engine, 1.0, [1, 2]) < TOLERANCE
    with torch.no_grad():  # an optimizer step's worth of change, everywhere (encoder, projector, LM)
        generator = torch.Generator().manual_seed(0)
        for parameter in model.module.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    assert max_gap(model, engine, 0.7, [3, 4]) > 1e-3  # the engine still holds the old weights
    engine.sync(model)
    assert max_gap(model, engine, 0.7, [3, 4]) < TOLERANCE
    engine.close()


def test_granite_logits_scaling_matters(checkpoints: dict[str, Path]) -> None:
    """vLLM divides Granite's logits by logits_scaling (8); without speechgrpo's division the log-probs differ."""
    model = load_speech_lm(checkpoints["granite_speech"])
    engine = VLLMEngine(model, SETTINGS)
    head = model.unwrapped().get_output_embeddings()
    undo = head.register_forward_hook(lambda _m, _i, output: output * model.logits_divisor)
    try:
        assert max_gap(model, engine, 1.0, [5, 6]) > 0.05
    finally:
        undo.remove()
    assert max_gap(model, engine, 1.0, [5, 6]) < TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_reaches_the_engine(checkpoints: dict[str, Path], family: str) -> None:
    """Granite: the adapter as a LoRA request; Qwen2-Audio (no LoRA in vLLM): the merged weights."""
    model = load_speech_lm(checkpoints[family])
    model.apply_lora(8)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for name, parameter in model.module.named_parameters():
            if ".lora_B." in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    engine = VLLMEngine(model, SETTINGS)
    assert engine.adapter_in_engine == (family == "granite_speech")
    assert max_gap(model, engine, 1.0, [7, 8]) < TOLERANCE
    with torch.no_grad():
        for name, parameter in model.module.named_parameters():
            if ".lora_A." in name:
                parameter.mul_(3.0)
    assert max_gap(model, engine, 1.0, [7, 8]) > 1e-3  # the engine still holds the old adapter
    engine.sync(model)
    assert max_gap(model, engine, 1.0, [7, 8]) < TOLERANCE
    if engine.adapter_in_engine:  # the previous adapter's files are gone
        assert [p.name for p in Path(engine._adapters.name).iterdir()] == ["v2"]
    engine.close()


def test_samples_stop_at_the_end_of_turn_and_are_seeded_per_prompt(checkpoints: dict[str, Path]) -> None:
    model = load_speech_lm(checkpoints["qwen2_audio"])
    engine = VLLMEngine(model, SETTINGS)
    head = model.unwrapped().get_output_embeddings()
    end = model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].reshape(-1, head.in_features)))
    max_gap(model, engine, 1.0, [9, 10])
    hook.remove()
    direction = torch.cat(seen).mean(0)
    with torch.no_grad():  # the end-of-turn token likely after any prefix: completions of varied lengths
        head.weight[end] = 4.0 * direction / direction.square().sum()
    engine.sync(model)
    first = engine.sample(PROMPTS, 4, SamplingConfig(12), [11, 12]).completions
    stopped = first.stopped(model.stop_token_ids)
    assert bool(stopped.any()) and not bool(stopped.all())
    lengths = first.mask.sum(1)
    assert all(int(first.ids[i, lengths[i] - 1]) == end for i in range(len(first)) if stopped[i])
    assert "<|im_end|>" not in "".join(first.texts)
    # a prompt's samples depend on its own seed only
    alone = engine.sample(PROMPTS[1:], 4, SamplingConfig(12), [12]).completions
    assert alone.texts == first.texts[4:]
    engine.close()


def test_a_model_vllm_cannot_run_is_refused_before_anything_starts(tmp_path: Path) -> None:
    from tiny_lm import build_tiny_lm

    with pytest.raises(ValueError, match="rollout_engine vllm runs granite_speech and qwen2_audio"):
        VLLMEngine(load_speech_lm(build_tiny_lm(tmp_path / "lm")), SETTINGS)


@pytest.mark.parametrize(("family", "stage", "extra"), [
    ("granite_speech", "grpo", []), ("granite_speech", "mp_grpo", ["lora_rank=8"]),
    ("qwen2_audio", "mp_grpo", []), ("qwen2_audio", "grpo", ["lora_rank=8", "mask_truncated_completions=true"]),
])
def test_speechgrpo_train_with_rollout_engine_vllm(checkpoints: dict[str, Path], tmp_path: Path, family: str,
                                                  stage: str, extra: list[str]) -> None:
    from speechgrpo.cli import main

    examples = []
    for i in range(4):
        write_wav(tmp_path / f"{i}.wav", clip(0.6 + 0.2 * i, 30 + i))
        examples.append(Example(id=f"a{i}", audio=f"{i}.wav", prompt="What does the speaker say?",
                                references=(["der hund ist im park", "die katze", "the dog ran", "ja"][i],),
                                task="sqa", root=tmp_path))
    manifest = write_manifest(tmp_path / "train.jsonl", examples)
    out = tmp_path / "run"
    assert main(["train", "--no-progress", f"model={checkpoints[family]}", f"train_manifests=[{manifest}]",
                 f"output_dir={out}", f"stage={stage}", "steps=3", "prompts_per_step=2", "num_generations=3",
                 "max_new_tokens=5", "micro_batch_size=3", "learning_rate=0.001", "reward=chrf",
                 "rollout_engine=vllm", "vllm_max_model_length=2048", *extra]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:  # the engine samples the weights the trainer scores, step after step
        assert row["sampling_logp_diff_max"] < TOLERANCE
        assert abs(row["importance_sampling_ratio_mean"] - 1.0) < 1e-4
        assert np.isfinite(row["loss"])
    assert load_speech_lm(out / "final") is not None


def test_rollout_benchmark_compares_the_engines(tmp_path: Path) -> None:
    """benchmarks/rollout.py: both engines, one run, the ratio column."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "rollout.py"
    result = subprocess.run([sys.executable, str(script), "--families", "qwen2_audio", "--steps", "2", "--prompts", "2",
                             "--generations", "2", "--max-new-tokens", "4", "--audio-seconds", "0.6",
                             "--markdown", str(tmp_path / "t.md")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in (tmp_path / "t.md").read_text().splitlines() if "qwen2_audio" in line]
    assert len(rows) == 2 and "vllm" in rows[1] and rows[1].rstrip(" |").endswith("x")

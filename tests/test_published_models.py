"""Granite Speech 3.3 2B and Qwen2-Audio-7B-Instruct with their published configs, chat templates, special
tokens and generation configs (tests/published_models.py): the exact prompt text, audio placeholder expansion,
targets that end with the model's own end-of-turn token, sampling that stops on it, trainable parameters with
and without LoRA, dropout off for RL, and `speechgrpo train` with LoRA, bf16 autocast, num_iterations and
validation on both."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from published_models import FAMILIES, build_families, clip
from tiny_lm import trainable_fraction

from speechgrpo.data import Example, write_manifest, write_wav
from speechgrpo.models import SamplingConfig, SpeechPrompt
from speechgrpo.models.loading import load_speech_lm
from speechgrpo.train import trainer as T
from speechgrpo.train.config import TrainConfig

END_OF_TURN = {"granite_speech": "<|end_of_text|>", "qwen2_audio": "<|im_end|>"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_families(tmp_path_factory.mktemp("published"))


def test_exact_prompt_text(checkpoints: dict[str, Path]) -> None:
    granite, qwen = (load_speech_lm(checkpoints[f]) for f in FAMILIES)
    prompt = SpeechPrompt(clip(1.0, 0), "What is the dog doing?")
    today = datetime.datetime.now().strftime("%B %d, %Y")
    assert granite._render(granite._messages(prompt)) == (
        "<|start_of_role|>system<|end_of_role|>Knowledge Cutoff Date: April 2024.\nToday's Date: " + today + ".\n"
        "You are Granite, developed by IBM. You are a helpful AI assistant.<|end_of_text|>\n"
        "<|start_of_role|>user<|end_of_role|><|audio|>What is the dog doing?<|end_of_text|>\n"
        "<|start_of_role|>assistant<|end_of_role|>")
    assert qwen._render(qwen._messages(prompt)) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nWhat is the dog doing?<|im_end|>\n<|im_start|>assistant\n")
    assert qwen._render(qwen._messages(SpeechPrompt(None, "Say hi."))) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nSay hi.<|im_end|>\n"
        "<|im_start|>assistant\n")


@pytest.mark.parametrize("family", FAMILIES)
def test_audio_placeholder_expands_to_one_token_per_audio_embedding(checkpoints: dict[str, Path],
                                                                     family: str) -> None:
    model = load_speech_lm(checkpoints[family])
    batch = model.encode_prompts([SpeechPrompt(clip(seconds, i), "Say it.") for i, seconds in enumerate((1.0, 2.3))])
    audio_id = model.tokenizer.convert_tokens_to_ids("<|audio|>" if family == "granite_speech" else "<|AUDIO|>")
    counts = (batch.inputs["input_ids"] == audio_id).sum(1)
    if family == "granite_speech":  # 3 query tokens per window of 15 (stacked) frames
        expected = batch.inputs["input_features_mask"].sum(1)
    else:  # Whisper frames, halved by the encoder's stride and again by its pooling
        frames = (batch.inputs["feature_attention_mask"].sum(1) - 1) // 2 + 1
        expected = (frames - 2) // 2 + 1
        assert counts.tolist() == [25, 57]  # ~25 per second, as the model card says
    assert counts.tolist() == expected.tolist()
    with torch.no_grad():  # the merge of audio embeddings into the placeholders accepts the count
        model.completion_logits(batch, model.encode_completions(["die katze", "ja"], torch.tensor([0, 1])))


@pytest.mark.parametrize("family", FAMILIES)
def test_targets_and_references_end_with_the_end_of_turn_token(checkpoints: dict[str, Path], family: str) -> None:
    model = load_speech_lm(checkpoints[family])
    end = model.tokenizer.convert_tokens_to_ids(END_OF_TURN[family])
    assert model.eos_token_id == end
    targets = model.encode_completions(["der hund ist in the park", "ja"], torch.tensor([0, 1]))
    lengths = targets.mask.sum(1)
    assert [int(targets.ids[i, lengths[i] - 1]) for i in range(2)] == [end, end]
    batch = model.encode_prompts([SpeechPrompt(clip(0.8, 1), "Say it."), SpeechPrompt(clip(0.6, 2), "Say it.")])
    sampled = model.generate(batch, 2, SamplingConfig(4), torch.Generator().manual_seed(0))
    merged, off = T.with_references(sampled, targets, 2)
    for row in torch.nonzero(off)[:, 0].tolist():
        assert int(merged.ids[row, int(merged.mask[row].sum()) - 1]) == end


def _boost(model: Any, token: int) -> Any:
    head = model.unwrapped().get_output_embeddings()

    def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        output[..., token] += 100.0
        return output

    return head.register_forward_hook(hook)


@pytest.mark.parametrize("family", FAMILIES)
def test_sampling_stops_on_the_models_stop_tokens(checkpoints: dict[str, Path], family: str) -> None:
    model = load_speech_lm(checkpoints[family])
    stops = {"granite_speech": ["<|end_of_text|>"], "qwen2_audio": ["<|im_end|>", "<|endoftext|>"]}[family]
    assert sorted(model.stop_token_ids) == sorted(model.tokenizer.convert_tokens_to_ids(stops))
    batch = model.encode_prompts([SpeechPrompt(clip(0.8, 3), "Say it.")])
    for stop in stops:
        token = model.tokenizer.convert_tokens_to_ids(stop)
        handle = _boost(model, token)
        out = model.generate(batch, 3, SamplingConfig(8), torch.Generator().manual_seed(0))
        handle.remove()
        assert out.mask.sum(1).tolist() == [1, 1, 1] and out.ids[:, 0].tolist() == [token] * 3, stop
        assert out.texts == ["", "", ""]
    word = model.tokenizer.convert_tokens_to_ids("der")
    handle = _boost(model, word)
    out = model.generate(batch, 2, SamplingConfig(6), torch.Generator().manual_seed(0))
    handle.remove()
    assert out.mask.sum(1).tolist() == [6, 6]  # no stop token: max_new_tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_the_audio_placeholder_is_never_sampled(checkpoints: dict[str, Path], family: str) -> None:
    """Its logit is -inf in every forward (a sampled placeholder would break the scoring forward's audio merge),
    so sampling, scoring and the reference all see the distribution the policy samples from."""
    model = load_speech_lm(checkpoints[family])
    placeholder = model.tokenizer.convert_tokens_to_ids("<|audio|>" if family == "granite_speech" else "<|AUDIO|>")
    assert model.placeholder_id == placeholder
    head = model.unwrapped().get_output_embeddings()
    with torch.no_grad():  # the placeholder far ahead of every other token
        head.weight[placeholder] = 50.0 * head.weight.abs().max() * head.weight.mean(0).sign()
    batch = model.encode_prompts([SpeechPrompt(clip(0.8, 7), "Say it.")])
    completions = model.generate(batch, 4, SamplingConfig(6), torch.Generator().manual_seed(0))
    assert not bool((completions.ids[completions.mask] == placeholder).any())
    with torch.no_grad():
        logits = model.completion_logits(batch, completions)
    assert bool(torch.isneginf(logits[..., placeholder]).all())
    assert bool(torch.isfinite(logits[..., :placeholder]).all())


@pytest.mark.parametrize("family", FAMILIES)
def test_trainable_parameters_with_and_without_lora(checkpoints: dict[str, Path], family: str) -> None:
    full = load_speech_lm(checkpoints[family])
    assert trainable_fraction(full.module) == 1.0
    model = load_speech_lm(checkpoints[family])
    model.apply_lora(8, dropout=0.05)
    trainable = [name for name, p in model.module.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n and n.startswith("model.language_model.") for n in trainable)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[1] for n in trainable}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert 0 < trainable_fraction(model.module) < 0.5
    print(f"{family}: trainable fraction with LoRA r=8 on the test-size model {trainable_fraction(model.module):.3f}")


def test_published_dropout_is_off_for_rl(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """granite-speech-3.3-2b publishes dropout 0.1 in its encoder, Q-Former projector and LM attention, and
    batch norm in its conformer: in RL the scored policy must be the sampling (inference-mode) policy."""
    prompts = [SpeechPrompt(clip(0.8, 4), "Say it.")]
    for stage, deterministic in (("grpo", True), ("sft", False)):
        settings = TrainConfig(model=str(checkpoints["granite_speech"]), train_manifests=["x"],
                               output_dir=str(tmp_path), stage=stage)  # type: ignore[arg-type]
        model = T.load_policy(settings, None, torch.device("cpu"))
        model.module.train()
        batch = model.encode_prompts(prompts)
        targets = model.encode_completions(["der hund"], torch.tensor([0]))
        with torch.no_grad():
            first, second = (model.completion_log_probs(batch, targets) for _ in range(2))
            training = model.prompt_embeddings(batch)
            model.module.eval()  # how the policy samples
            sampling = model.prompt_embeddings(batch)
        assert torch.equal(first, second) == deterministic, stage
        if deterministic:  # RL: the conformer's batch norm keeps its running statistics (the sampling policy)
            torch.testing.assert_close(training, sampling, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_train_with_lora_bf16_autocast_iterations_and_validation(checkpoints: dict[str, Path], family: str,
                                                                 tmp_path: Path) -> None:
    from speechgrpo.cli import main

    examples = []
    for i in range(4):
        write_wav(tmp_path / f"{i}.wav", clip(0.6 + 0.1 * i, 10 + i))
        examples.append(Example(id=f"a{i}", audio=f"{i}.wav", prompt="What does the speaker say?",
                                references=(["der hund ist in the park", "die katze", "the dog ran", "ja"][i],),
                                task="sqa", root=tmp_path))
    manifest = write_manifest(tmp_path / "train.jsonl", examples)
    out = tmp_path / "run"
    args = ["train", "--no-progress", f"model={checkpoints[family]}", f"train_manifests=[{manifest}]",
            f"output_dir={out}", "stage=mp_grpo", "steps=4", "prompts_per_step=2", "num_generations=3",
            "max_new_tokens=4", "micro_batch_size=3", "lora_rank=4", "mixed_precision=bf16", "num_iterations=2",
            "checkpoint_every=2", f"eval_manifests=[{manifest}]", "eval_every=2", "eval_batch_size=2",
            "learning_rate=0.001", "reward=chrf"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "eval_bleu" in r] == [2, 4]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["kl"]) for r in rows)
    assert (out / "best" / "best.json").is_file() and (out / "final" / "lora_adapter").is_dir()
    tuned = load_speech_lm(out / "final")
    assert tuned.lora is not None


@pytest.mark.parametrize("family", FAMILIES)
def test_audio_is_encoded_once_per_prompt(checkpoints: dict[str, Path], family: str) -> None:
    """G completions of 2 prompts: the audio encoder sees the 2 audios once per generate and per scoring forward
    (Granite's one at a time: its encoder does not mask padding)."""
    model = load_speech_lm(checkpoints[family])
    encoder = model.unwrapped().get_submodule("model.encoder" if family == "granite_speech" else "model.audio_tower")
    seen: list[int] = []
    encoder.register_forward_hook(lambda _m, inputs, _o: seen.append(int(inputs[0].shape[0])))
    batch = model.encode_prompts([SpeechPrompt(clip(0.8, 5), "Say it."), SpeechPrompt(clip(1.1, 6), "Say it.")])
    once = [1, 1] if family == "granite_speech" else [2]
    completions = model.generate(batch, 4, SamplingConfig(5), torch.Generator().manual_seed(0))
    assert seen == once
    model.completion_log_probs(batch, completions).sum().backward()
    assert seen == once * 2 and len(completions) == 8
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in encoder.parameters())


def test_rollout_benchmark_runs_at_test_size(tmp_path: Path) -> None:
    """benchmarks/rollout.py (prepared for a GPU at the published sizes) runs end to end at test size; the vLLM
    engine's row runs in tests/test_vllm_engine.py."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "rollout.py"
    result = subprocess.run([sys.executable, str(script), "--engines", "hf", "--steps", "2", "--prompts", "2",
                             "--generations", "2", "--max-new-tokens", "3", "--audio-seconds", "0.6",
                             "--micro-batch", "4", "--lora-rank", "4", "--markdown", str(tmp_path / "t.md")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "t.md").read_text()
    assert "granite_speech" in table and "qwen2_audio" in table and "LoRA r 4" in table

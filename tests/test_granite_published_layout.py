"""Granite Speech 3.3 as published: its audio LoRA shipped beside the weights (merged by speechgrpo at load) and
its logits divided by ``logits_scaling`` (which transformers' Granite Speech forward leaves out).

The checkpoints are the published layout recreated at test size (``tests/published_models.py``: config.json with
``has_lora_adapter: true``, the published ``adapter_config.json``, an ``adapter_model.safetensors`` under the
published module names); the reference for the merge is peft applying that adapter file to the same weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
import published_models
from published_models import clip

from speechgrpo.data import Example, write_manifest, write_wav
from speechgrpo.models import SamplingConfig, SpeechPrompt
from speechgrpo.models.granite_speech import MERGED_FLAG, GraniteSpeechLM
from speechgrpo.models.hf_speech_lm import published_to_module_name
from speechgrpo.models.loading import load_speech_lm


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return published_models.build("granite_speech", tmp_path_factory.mktemp("granite") / "shipped",
                                  shipped_adapter=True)


def prompts() -> list[SpeechPrompt]:
    return [SpeechPrompt(clip(0.9, 1), "What does the speaker say?"), SpeechPrompt(clip(1.4, 2), "Translate it.")]


def weights_only(directory: Path) -> Any:
    """The published weights without their adapter."""
    from transformers import GraniteSpeechConfig, GraniteSpeechForConditionalGeneration

    base = directory.parent / "weights_only"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(directory, base, ignore=shutil.ignore_patterns("adapter_*"))
    config: Any = GraniteSpeechConfig.from_pretrained(base)
    config.has_lora_adapter = False
    return GraniteSpeechForConditionalGeneration.from_pretrained(base, config=config).eval()


def peft_reference(directory: Path) -> GraniteSpeechLM:
    """The published weights with the shipped adapter applied by peft, as transformers would with peft >= 0.22."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    model = weights_only(directory)
    adapter = json.loads((directory / "adapter_config.json").read_text())
    inject_adapter_in_model(LoraConfig(r=adapter["r"], lora_alpha=adapter["lora_alpha"],
                                       target_modules=adapter["target_modules"]), model)
    state = {published_to_module_name(GraniteSpeechLM.published_prefixes, key.removeprefix("base_model.model.")): value
             for key, value in load_file(str(directory / "adapter_model.safetensors")).items()}
    result = set_peft_model_state_dict(model, state)
    assert not [k for k in result.unexpected_keys if "lora_" in k]
    return GraniteSpeechLM(model, GraniteSpeechLM._load_processor(directory))


def logits(model: Any, texts: list[str]) -> torch.Tensor:
    batch = model.encode_prompts(prompts())
    targets = model.encode_completions(texts, torch.tensor([0, 1]))
    with torch.no_grad():
        out: torch.Tensor = model.completion_logits(batch, targets)
    return out


def test_merged_adapter_equals_the_adapter_applied_on_audio_prompts(shipped: Path) -> None:
    merged = load_speech_lm(shipped)
    assert isinstance(merged, GraniteSpeechLM) and merged.audio_adapter_merged
    texts = ["der hund ist im park", "die katze"]
    reference = logits(peft_reference(shipped), texts)
    torch.testing.assert_close(logits(merged, texts), reference, atol=2e-5, rtol=1e-4)
    # the adapter matters: the same weights without it answer differently
    plain = logits(GraniteSpeechLM(weights_only(shipped), merged.processor), texts)
    finite = torch.isfinite(reference)  # the audio placeholder's logit is -inf in both
    assert float((plain - reference)[finite].abs().max()) > 1e-2


def test_the_published_layout_trains_every_weight(shipped: Path) -> None:
    model = load_speech_lm(shipped)
    parameters = list(model.module.parameters())
    assert parameters and all(p.requires_grad for p in parameters)
    batch = model.encode_prompts(prompts())
    loss = model.completion_log_probs(batch, model.encode_completions(["ja", "nein"], torch.tensor([0, 1]))).sum()
    loss.backward()
    lm = model.unwrapped().get_submodule("model.language_model.layers.0.self_attn.q_proj")
    assert lm.weight.grad is not None and float(lm.weight.grad.abs().sum()) > 0


def test_text_only_prompts_are_refused_once_merged(shipped: Path) -> None:
    model = load_speech_lm(shipped)
    with pytest.raises(ValueError, match=r"prompt 1 has no audio.*merged"):
        model.encode_prompts([prompts()[0], SpeechPrompt(None, "Say hi.")])


def test_saved_model_keeps_the_merge(shipped: Path, tmp_path: Path) -> None:
    model = load_speech_lm(shipped)
    model.save(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["has_lora_adapter"] is False and config[MERGED_FLAG] is True
    assert not (tmp_path / "saved" / "adapter_config.json").exists()
    again = load_speech_lm(tmp_path / "saved")
    assert isinstance(again, GraniteSpeechLM) and again.audio_adapter_merged
    torch.testing.assert_close(logits(again, ["ja", "nein"]), logits(model, ["ja", "nein"]))


def test_train_full_and_lora_then_eval_from_the_published_layout(shipped: Path, tmp_path: Path) -> None:
    """The paper's setting (GRPO, all weights), LEAF's (LoRA on the LM), and `speechgrpo eval`."""
    from speechgrpo.cli import main

    examples = []
    for i in range(2):
        write_wav(tmp_path / f"{i}.wav", clip(0.7 + 0.2 * i, 20 + i))
        examples.append(Example(id=f"a{i}", audio=f"{i}.wav", prompt="What does the speaker say?",
                                references=(["der hund", "die katze ist da"][i],), task="sqa", root=tmp_path))
    manifest = write_manifest(tmp_path / "train.jsonl", examples)
    before = load_speech_lm(shipped).unwrapped().state_dict()
    for name, extra in (("full", []), ("lora", ["lora_rank=4"])):
        out = tmp_path / name
        assert main(["train", "--no-progress", f"model={shipped}", f"train_manifests=[{manifest}]",
                     f"output_dir={out}", "stage=grpo", "steps=2", "prompts_per_step=2", "num_generations=2",
                     "max_new_tokens=3", "learning_rate=0.01", "reward=chrf", *extra]) == 0
        tuned = load_speech_lm(out / "final")
        assert isinstance(tuned, GraniteSpeechLM) and tuned.audio_adapter_merged
        changed = [k for k, v in tuned.unwrapped().state_dict().items()
                   if ".lora_" not in k and k in before and not torch.equal(v, before[k])]
        if name == "full":
            assert any(k.startswith("model.encoder.") for k in changed)
            assert any(k.startswith("model.language_model.") for k in changed)
        else:
            assert tuned.lora is not None and not changed
    results = tmp_path / "eval.json"
    assert main(["eval", "--model", str(shipped), "--manifest", str(manifest), "--seeds", "1", "--metrics", "bleu",
                 "--max-new-tokens", "3", "--output", str(results)]) == 0
    report = json.loads(results.read_text())
    assert {"sampled", "sampled_std", "greedy"} <= set(report) and report["model"] == str(shipped.resolve())


@pytest.mark.parametrize(("field", "value", "message"), [
    ("use_dora", True, "use_dora"), ("bias", "all", "bias"), ("rank_pattern", {"q_proj": 8}, "rank_pattern")])
def test_adapter_options_that_cannot_be_merged_are_refused(shipped: Path, tmp_path: Path, field: str, value: Any,
                                                           message: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(shipped, copy)
    config = json.loads((copy / "adapter_config.json").read_text())
    config[field] = value
    (copy / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"cannot merge an adapter with {message}"):
        load_speech_lm(copy)


def test_incomplete_published_layouts_are_refused(shipped: Path, tmp_path: Path) -> None:
    no_adapter = tmp_path / "no_adapter"
    shutil.copytree(shipped, no_adapter, ignore=shutil.ignore_patterns("adapter_config.json"))
    with pytest.raises(FileNotFoundError, match=r"has_lora_adapter: true but there is no adapter_config\.json"):
        load_speech_lm(no_adapter)
    rank = tmp_path / "rank"
    shutil.copytree(shipped, rank)
    config = json.loads((rank / "adapter_config.json").read_text())
    config["r"] = 32
    (rank / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not fit"):
        load_speech_lm(rank)


# -- logits_scaling -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unscaled(tmp_path_factory: pytest.TempPathFactory, shipped: Path) -> Path:
    """The same weights with ``logits_scaling`` 1."""
    copy = tmp_path_factory.mktemp("granite") / "unscaled"
    shutil.copytree(shipped, copy)
    config = json.loads((copy / "config.json").read_text())
    config["text_config"]["logits_scaling"] = 1.0
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_logits_are_divided_by_logits_scaling(shipped: Path, unscaled: Path) -> None:
    """transformers' Granite Speech forward returns lm_head(h); the model's logits are lm_head(h) / 8."""
    scaled, plain = load_speech_lm(shipped), load_speech_lm(unscaled)
    assert json.loads((shipped / "config.json").read_text())["text_config"]["logits_scaling"] == 8.0
    assert scaled.logits_divisor == 8.0 and plain.logits_divisor == 1.0
    texts = ["der hund", "die katze ist da"]
    torch.testing.assert_close(logits(scaled, texts) * 8.0, logits(plain, texts), atol=1e-5, rtol=1e-5)


def test_sampling_uses_the_scaled_logits(shipped: Path, unscaled: Path) -> None:
    """Temperature T on the scaled model samples what temperature 8 T samples on the unscaled one."""
    scaled, plain = load_speech_lm(shipped), load_speech_lm(unscaled)
    texts = [model.generate(model.encode_prompts(prompts()), 4, SamplingConfig(6, temperature=t),
                            torch.Generator().manual_seed(3)).texts
             for model, t in ((scaled, 1.0), (plain, 8.0))]
    assert texts[0] == texts[1]
    greedy = plain.generate(plain.encode_prompts(prompts()), 4, SamplingConfig(6, temperature=1.0),
                            torch.Generator().manual_seed(3)).texts
    assert greedy != texts[0]


def test_a_forward_that_divides_already_is_left_alone(shipped: Path) -> None:
    """A text Granite LM (GraniteForCausalLM) divides by itself: no second division."""
    from transformers import GraniteConfig, GraniteForCausalLM

    text = json.loads((shipped / "config.json").read_text())["text_config"]
    model = GraniteForCausalLM(GraniteConfig(**{k: v for k, v in text.items() if k != "model_type"}))
    from speechgrpo.models.hf_speech_lm import _apply_logits_scaling

    assert _apply_logits_scaling(model, {0}) == 1.0

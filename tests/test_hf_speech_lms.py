"""Qwen2-Audio, Granite Speech and text-only causal LMs behind the SpeechLM interface, on tiny random models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_lm import build_tiny_lm  # noqa: E402
from tiny_speech_models import (  # noqa: E402
    build_granite_speech,
    build_qwen2_audio,
    build_tokenizer,
    granite_speech_config,
    qwen2_audio_config,
)

from speechgrpo.models import Completions, SamplingConfig, SpeechPrompt  # noqa: E402
from speechgrpo.models.causal_lm import CausalLM  # noqa: E402
from speechgrpo.models.granite_features import TorchGraniteSpeechFeatureExtractor, TorchMelSpectrogram  # noqa: E402
from speechgrpo.models.granite_speech import GraniteSpeechLM  # noqa: E402
from speechgrpo.models.hf_speech_lm import HFSpeechLM  # noqa: E402
from speechgrpo.models.loading import MODEL_TYPES, load_speech_lm  # noqa: E402
from speechgrpo.models.lora import LORA_DIRECTORY  # noqa: E402
from speechgrpo.models.qwen2_audio import Qwen2AudioLM  # noqa: E402

FAMILIES = ["qwen2_audio", "granite_speech"]
SAMPLING = SamplingConfig(max_new_tokens=10)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Tiny matrices: intra-op threads only add synchronization (16 ms per linear instead of 0.06 ms when
    another process keeps a core busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {"qwen2_audio": build_qwen2_audio(root / "qwen2_audio"),
            "granite_speech": build_granite_speech(root / "granite_speech"),
            "llama": build_tiny_lm(root / "llama")}


@pytest.fixture(scope="module")
def models(checkpoints: dict[str, Path]) -> dict[str, Any]:
    """Loaded once; tests that change a model load their own copy."""
    loaded = {name: load_speech_lm(path) for name, path in checkpoints.items()}
    for model in loaded.values():
        model.module.eval()
    return loaded


def audio(seconds: float, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(16_000 * seconds))).astype(np.float32)


def mixed_prompts() -> list[SpeechPrompt]:
    """Different audio lengths, different text lengths (left padding) and a text-only prompt."""
    return [SpeechPrompt(audio(1.0, 0), "translate the speech into german"),
            SpeechPrompt(audio(0.4, 1), "say what"),
            SpeechPrompt(None, "what is the red house")]


def boost_eos(model: HFSpeechLM, amount: float = 4.5) -> Any:
    """Raise the EOS logit (a hook on the output layer, seen by generate and by scoring alike) so that random
    models stop at varied lengths; returns the hook handle."""
    head = model.unwrapped().get_output_embeddings()
    bias = torch.zeros(head.out_features)
    bias[model.eos_token_id] = amount
    return head.register_forward_hook(lambda module, inputs, output: output + bias)


def reference_log_probs(model: HFSpeechLM, prompts: list[SpeechPrompt], completions: Completions) -> list[torch.Tensor]:
    """Per completion, one forward of its prompt encoded alone (no padding, its own audio's features) followed
    by the completion."""
    net = model.unwrapped()
    result = []
    for i in range(len(completions)):
        alone = model.encode_prompts([prompts[int(completions.prompt_index[i])]]).inputs
        tokens = completions.ids[i][completions.mask[i]]
        features = {key: alone[key] for key in model.audio_feature_keys if key in alone}
        with torch.no_grad():
            logits = net(input_ids=torch.cat([alone["input_ids"][0], tokens])[None], **features).logits[0].float()
        start = alone["input_ids"].shape[1] - 1
        log_probs = torch.log_softmax(logits[start:start + len(tokens)], dim=-1)
        result.append(log_probs.gather(-1, tokens[:, None])[:, 0])
    return result


# -- feature extraction ------------------------------------------------------------------------------------------
def test_torch_mel_matches_numpy_reference() -> None:
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    signal = audio(0.5, 3)
    filters = mel_filter_bank(num_frequency_bins=257, num_mel_filters=80, min_frequency=0.0, max_frequency=8000,
                              sampling_rate=16_000, norm=None, mel_scale="htk")
    expected = spectrogram(signal.astype(np.float64), window_function(400, "hann", frame_length=512),
                           frame_length=512, hop_length=160, fft_length=512, power=2.0, center=True,
                           pad_mode="reflect", mel_filters=filters, mel_floor=0.0)
    mel = TorchMelSpectrogram()(torch.from_numpy(signal)[None])[0].double().numpy()
    assert mel.shape == expected.shape
    np.testing.assert_allclose(mel, expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_granite_feature_extractor_outputs_and_config_round_trip(tmp_path: Path) -> None:
    extractor = TorchGraniteSpeechFeatureExtractor(n_mels=40, projector_window_size=10)
    out = extractor([torch.from_numpy(audio(1.0, 0)), torch.from_numpy(audio(0.5, 1))])
    assert out["input_features"].shape == (2, 50, 80)  # 101 mel frames -> 100 -> stacked by 2
    # ceil(encoder frames / window) * (window // downsample): ceil(50 / 10) * 2, ceil(25 / 10) * 2
    assert out["audio_embed_sizes"] == [10, 6]
    assert out["input_features_mask"].sum(1).tolist() == [10, 6]
    extractor.save_pretrained(tmp_path)
    reloaded = TorchGraniteSpeechFeatureExtractor.from_pretrained(tmp_path)
    assert reloaded.melspec_kwargs["n_mels"] == 40 and reloaded.projector_window_size == 10
    assert '"GraniteSpeechFeatureExtractor"' in (tmp_path / "preprocessor_config.json").read_text()


# -- prompts -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_encode_prompts_mixed_batch(models: dict[str, Any], family: str) -> None:
    model = models[family]
    batch = model.encode_prompts(mixed_prompts())
    assert batch.size == 3
    assert batch.extra["audio_row"].tolist() == [0, 1, -1]
    features = batch.inputs[model.audio_feature_keys[0]]
    assert features.shape[0] == 2 and features.dtype == torch.float32
    mask = batch.inputs["attention_mask"]
    assert bool((mask[:, -1] == 1).all()) and bool((mask[:, 0] == 0).any())  # left padding
    audio_id = model.unwrapped().config.audio_token_id
    audio_tokens = (batch.inputs["input_ids"] == audio_id).sum(1).tolist()
    assert audio_tokens[0] > audio_tokens[1] > 0 and audio_tokens[2] == 0  # longer audio, more tokens
    text = model.tokenizer.decode(batch.inputs["input_ids"][2][mask[2].bool()])
    assert text.endswith("<|im_start|>assistant\n") and "what is the red house" in text


# -- generation ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_generate_shapes_eos_mask_and_seed(models: dict[str, Any], family: str) -> None:
    model = models[family]
    batch = model.encode_prompts(mixed_prompts())
    handle = boost_eos(model)
    try:
        out = model.generate(batch, 4, SAMPLING, torch.Generator().manual_seed(7))
        same = model.generate(batch, 4, SAMPLING, torch.Generator().manual_seed(7))
        other = model.generate(batch, 4, SAMPLING, torch.Generator().manual_seed(8))
    finally:
        handle.remove()
    assert len(out) == 12 and out.ids.shape == out.mask.shape and out.ids.shape[1] <= SAMPLING.max_new_tokens
    assert out.prompt_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(out.ids, same.ids) and out.texts == same.texts
    assert not torch.equal(out.ids, other.ids)
    lengths = out.mask.sum(1)
    assert len(set(lengths.tolist())) > 1  # some stopped early
    for ids, mask, text, length in zip(out.ids, out.mask, out.texts, lengths, strict=True):
        assert bool(mask[:length].all()) and not bool(mask[length:].any())  # right-padded
        assert bool((ids[length:] == model.pad_token_id).all())
        is_eos = ids[:length] == model.eos_token_id
        assert int(is_eos.sum()) <= 1 and (not is_eos.any() or bool(is_eos[-1]))  # EOS last, inclusive
        assert text == model.tokenizer.decode(ids[:length], skip_special_tokens=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_embeddings_do_not_depend_on_the_batch(models: dict[str, Any], family: str) -> None:
    """A prompt's embeddings are the same alone and beside a longer clip: Granite's encoder attends over
    padded frames (0.008 apart when batched), so its prompts are encoded one by one."""
    model = models[family]
    prompts = mixed_prompts()
    with torch.no_grad():
        together = model.prompt_embeddings(model.encode_prompts(prompts))
        for i, prompt in enumerate(prompts):
            alone = model.prompt_embeddings(model.encode_prompts([prompt]))[0]
            torch.testing.assert_close(together[i, -len(alone):], alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_per_prompt_streams_make_answers_independent_of_the_batch(models: dict[str, Any], family: str) -> None:
    """One generator per prompt: a prompt's samples are the same alone and within a batch in any order."""
    model = models[family]
    prompts = mixed_prompts()
    sampling = SamplingConfig(max_new_tokens=8, temperature=1.2, top_p=0.95)

    def answers(order: list[int]) -> dict[int, list[str]]:
        batch = model.encode_prompts([prompts[i] for i in order])
        texts = model.generate(batch, 2, sampling, [torch.Generator().manual_seed(10 + i) for i in order]).texts
        return {i: texts[2 * k:2 * k + 2] for k, i in enumerate(order)}

    handle = boost_eos(model, 2.5)
    try:
        together = answers([0, 1, 2])
        assert answers([2, 0, 1]) == together
        assert {i: answers([i])[i] for i in range(3)} == together
    finally:
        handle.remove()
    assert len({text for pair in together.values() for text in pair}) > 3  # sampled, not one answer


def test_greedy_decodes_once_and_repeats(models: dict[str, Any]) -> None:
    model = models["granite_speech"]
    batch = model.encode_prompts(mixed_prompts()[:2])
    out = model.generate(batch, 3, SamplingConfig(max_new_tokens=6, greedy=True))
    assert len(out) == 6 and torch.equal(out.ids[0], out.ids[2]) and out.texts[3] == out.texts[5]


# -- scoring -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_log_probs_match_unpadded_forward_and_generate(models: dict[str, Any], family: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Left-padded prompts + right-padded completions in one forward give the log-probs of a forward without
    padding, and those of the sampler (temperature 1: generate's raw logits)."""
    model = models[family]
    batch = model.encode_prompts(mixed_prompts())
    from transformers import GenerationMixin

    generate, captured = GenerationMixin.generate, {}

    def spy(net: Any, **kwargs: Any) -> torch.Tensor:
        out = generate(net, **kwargs, output_logits=True, return_dict_in_generate=True)
        captured["logits"] = torch.stack(out.logits, dim=1)
        return out.sequences

    monkeypatch.setattr(GenerationMixin, "generate", spy)
    handle = boost_eos(model)
    try:
        completions = model.generate(batch, 2, SAMPLING, torch.Generator().manual_seed(0))
        log_probs = model.completion_log_probs(batch, completions)
        expected = reference_log_probs(model, mixed_prompts(), completions)
    finally:
        handle.remove()
    assert log_probs.shape == completions.ids.shape
    assert bool((log_probs[~completions.mask] == 0).all())
    sampler = torch.log_softmax(captured["logits"][:, :completions.ids.shape[1]].float(), dim=-1)
    sampler = sampler.gather(-1, completions.ids[..., None])[..., 0]
    for i, reference in enumerate(expected):
        n = len(reference)
        torch.testing.assert_close(log_probs[i, :n].detach(), reference, atol=1e-5, rtol=0)
        torch.testing.assert_close(log_probs[i, :n].detach(), sampler[i, :n], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_flow_through_module_wrapper(models: dict[str, Any], family: str) -> None:
    """Scoring runs through ``module`` (a DDP-style wrapper sees the forward), generation through the
    unwrapped model; gradients are finite despite padded rows."""
    model = models[family]
    inner = model.module

    class Wrapper(torch.nn.Module):
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module, self.calls = module, 0

        def forward(self, **kwargs: Any) -> Any:
            self.calls += 1
            return self.module(**kwargs)

    model.module = Wrapper(inner)
    try:
        batch = model.encode_prompts(mixed_prompts())
        completions = model.generate(batch, 2, SAMPLING, torch.Generator().manual_seed(1))
        assert model.module.calls == 0
        targets = model.encode_completions(["der hund", "", "the red house is blue"], torch.tensor([0, 1, 2]))
        loss = -model.completion_log_probs(batch, targets).sum() - model.completion_log_probs(batch, completions).sum()
        loss.backward()
        assert model.module.calls == 2
        grads = [p.grad for p in inner.parameters() if p.grad is not None]
        assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
    finally:
        model.module = inner
        inner.zero_grad(set_to_none=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_shared_prompt_equals_full_rows_with_gradients(checkpoints: dict[str, Path], family: str) -> None:
    """Scoring runs each prompt once and lets its completions share its keys and values; with gradient
    checkpointing in training it runs full [prompt + completion] rows. Same logits, same gradients."""
    results = []
    for checkpointed in (False, True):
        model = load_speech_lm(checkpoints[family])
        model.module.train()
        if checkpointed:
            model.enable_gradient_checkpointing()
        assert model._checkpointed_training() == checkpointed
        batch = model.encode_prompts(mixed_prompts()[:2])
        targets = model.encode_completions(["der hund ist", "ja", "die katze", ""], torch.tensor([0, 0, 1, 1]))
        logits = model.completion_logits(batch, targets)
        picked = torch.log_softmax(logits.float(), -1).gather(-1, targets.ids[..., None])[..., 0]
        (picked * targets.mask).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.module.named_parameters() if p.grad is not None}
        results.append((logits.detach(), grads))
    (shared, shared_grads), (full, full_grads) = results
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=1e-5)
    assert shared_grads.keys() == full_grads.keys() and len(shared_grads) > 10
    for name, grad in shared_grads.items():
        torch.testing.assert_close(grad, full_grads[name], atol=1e-4, rtol=1e-4, msg=name)


def test_encode_completions(models: dict[str, Any]) -> None:
    model = models["qwen2_audio"]
    texts = ["der hund ist rot", "", "übersetze: ok!"]
    out = model.encode_completions(texts, torch.tensor([1, 0, 1]))
    lengths = out.mask.sum(1)
    assert out.texts == texts and out.prompt_index.tolist() == [1, 0, 1] and lengths[1] == 1
    for ids, mask, text, length in zip(out.ids, out.mask, texts, lengths, strict=True):
        assert ids[length - 1] == model.eos_token_id and bool((ids[length:] == model.pad_token_id).all())
        assert bool(mask[:length].all()) and not bool(mask[length:].any())
        assert model.tokenizer.decode(ids[:length], skip_special_tokens=True) == text
    with pytest.raises(ValueError, match="prompt indices"):
        model.encode_completions(texts, torch.tensor([0]))


# -- save / load, dtype, LoRA -------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip(models: dict[str, Any], family: str, tmp_path: Path) -> None:
    model = models[family]
    model.save(tmp_path)
    reloaded = load_speech_lm(tmp_path)
    assert type(reloaded) is type(model)
    batch, batch2 = model.encode_prompts(mixed_prompts()), reloaded.encode_prompts(mixed_prompts())
    assert batch.inputs.keys() == batch2.inputs.keys()
    assert all(torch.equal(batch.inputs[k], batch2.inputs[k]) for k in batch.inputs)
    targets = model.encode_completions(["ein hund", "der baum ist grün", "a"], torch.tensor([0, 1, 2]))
    with torch.no_grad():
        torch.testing.assert_close(reloaded.completion_logits(batch2, targets),
                                   model.completion_logits(batch, targets), atol=0, rtol=0)


def test_bfloat16_forward(checkpoints: dict[str, Path]) -> None:
    model = load_speech_lm(checkpoints["granite_speech"], dtype=torch.bfloat16)
    assert next(model.module.parameters()).dtype == torch.bfloat16
    batch = model.encode_prompts(mixed_prompts())
    assert batch.inputs["input_features"].dtype == torch.bfloat16
    out = model.generate(batch, 2, SamplingConfig(max_new_tokens=4), torch.Generator().manual_seed(0))
    log_probs = model.completion_log_probs(batch, out)
    assert log_probs.dtype == torch.float32 and bool(torch.isfinite(log_probs).all())


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_trains_only_language_model_adapters_and_round_trips(checkpoints: dict[str, Path], family: str,
                                                                  tmp_path: Path) -> None:
    model = load_speech_lm(checkpoints[family])
    batch = model.encode_prompts(mixed_prompts())
    targets = model.encode_completions(["ein hund", "der baum", "rot"], torch.tensor([0, 1, 2]))
    with torch.no_grad():
        base_logits = model.completion_logits(batch, targets)
    model.apply_lora(4, alpha=8, target_modules=("q_proj", "v_proj"))
    trainable = [name for name, p in model.module.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in name and ".language_model." in name for name in trainable)
    assert len(trainable) == 2 * 2 * 2  # 2 layers x (q, v) x (A, B)
    with torch.no_grad():
        torch.testing.assert_close(model.completion_logits(batch, targets), base_logits)  # B starts at 0
        for name, p in model.module.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
        tuned = model.completion_logits(batch, targets)
    assert not torch.allclose(tuned, base_logits)
    model.save(tmp_path)
    assert (tmp_path / LORA_DIRECTORY / "adapter_config.json").is_file()
    reloaded = load_speech_lm(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.completion_logits(batch, targets), tuned)
    assert sorted(n for n, p in reloaded.module.named_parameters() if p.requires_grad) == sorted(trainable)
    base = type(model).model_class.from_pretrained(tmp_path)  # the base weights alone, without peft
    with torch.no_grad():
        torch.testing.assert_close(type(model)(base, model.processor).completion_logits(batch, targets), base_logits)
    with pytest.raises(ValueError, match="already has LoRA"):
        model.apply_lora(4)


# -- text-only causal LM -------------------------------------------------------------------------------------------
def test_causal_lm_plain_text(models: dict[str, Any]) -> None:
    model = models["llama"]
    assert isinstance(model, CausalLM)
    prompts = [SpeechPrompt(None, "the cat sat on the"), SpeechPrompt(None, "red")]
    batch = model.encode_prompts(prompts)
    assert batch.inputs.keys() == {"input_ids", "attention_mask"}
    assert model.tokenizer.decode(batch.inputs["input_ids"][1][batch.inputs["attention_mask"][1].bool()]) == "red"
    completions = model.generate(batch, 3, SAMPLING, torch.Generator().manual_seed(0))
    assert len(completions) == 6
    log_probs = model.completion_log_probs(batch, completions)
    for i, reference in enumerate(reference_log_probs(model, prompts, completions)):
        torch.testing.assert_close(log_probs[i, :len(reference)].detach(), reference, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="text-only"):
        model.encode_prompts([SpeechPrompt(audio(0.1, 0), "the")])


def test_causal_lm_with_chat_template(tmp_path: Path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = CausalLM(Qwen2ForCausalLM(config).eval(), tokenizer)
    batch = model.encode_prompts([SpeechPrompt(None, "say what")])
    expected = "<|im_start|>user\nsay what<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(batch.inputs["input_ids"][0]) == expected
    model.save(tmp_path)
    assert isinstance(load_speech_lm(tmp_path), CausalLM)


# -- loading and errors --------------------------------------------------------------------------------------------
class MarkedCausalLM(CausalLM):
    """A registered class for the dispatch test."""


def test_load_speech_lm_dispatch(models: dict[str, Any], checkpoints: dict[str, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(models["qwen2_audio"], Qwen2AudioLM)
    assert isinstance(models["granite_speech"], GraniteSpeechLM)
    assert isinstance(models["llama"], CausalLM)
    monkeypatch.setitem(MODEL_TYPES, "llama", f"{__name__}:MarkedCausalLM")  # how a new model type registers
    assert type(load_speech_lm(checkpoints["llama"])) is MarkedCausalLM
    monkeypatch.setitem(MODEL_TYPES, "llama", "speechgrpo.models.speech_lm:SpeechPrompt")
    with pytest.raises(TypeError, match="not a SpeechLM"):
        load_speech_lm(checkpoints["llama"])
    with pytest.raises(FileNotFoundError, match="local model directory"):
        load_speech_lm(tmp_path / "nowhere")


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_inputs(models: dict[str, Any], family: str) -> None:
    model = models[family]
    with pytest.raises(ValueError, match="no prompts"):
        model.encode_prompts([])
    with pytest.raises(ValueError, match="1-D"):
        model.encode_prompts([SpeechPrompt(np.zeros((2, 1600), np.float32), "stereo")])
    for short in (np.zeros(0, np.float32), audio(0.09, 0)):
        with pytest.raises(ValueError, match=r"at least 0\.1 s"):
            model.encode_prompts([SpeechPrompt(short, "too short")])
    with pytest.raises(ValueError, match="NaN"):
        model.encode_prompts([SpeechPrompt(np.full(1600, np.nan, np.float32), "nan")])
    batch = model.encode_prompts([SpeechPrompt(audio(0.5, 0).astype(np.float64), "float64 is converted")])
    with pytest.raises(ValueError, match="num_samples"):
        model.generate(batch, 0, SAMPLING)


def test_qwen2_audio_rejects_audio_over_30_seconds(models: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at most 30 s"):
        models["qwen2_audio"].encode_prompts([SpeechPrompt(np.zeros(16_000 * 31, np.float32), "long")])


# -- realistic sizes (configs only; the GPU benchmark builds the weights) ---------------------------------------
def test_realistic_configs_have_published_sizes() -> None:
    from transformers import GraniteSpeechForConditionalGeneration, Qwen2AudioForConditionalGeneration

    tokenizer = build_tokenizer()
    for model_class, config, billions in [
            (GraniteSpeechForConditionalGeneration, granite_speech_config(tokenizer, "realistic"), 3.0),
            (Qwen2AudioForConditionalGeneration, qwen2_audio_config(tokenizer, "realistic"), 8.4)]:
        with torch.device("meta"):
            model = model_class(config)
        assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, rel=0.05)

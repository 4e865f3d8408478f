"""The bundled speech LM: features, tokenizer, generation, log-prob consistency, save/load, and that it
learns speech recognition from espeak-ng audio in a few hundred CPU steps."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from speechgrpo.models import SamplingConfig, SpeechPrompt  # noqa: E402
from speechgrpo.models.log_mel import HOP_LENGTH, N_FFT, FeatureCache, log_mel  # noqa: E402
from speechgrpo.models.tiny_speech_lm import TinySpeechLM  # noqa: E402
from speechgrpo.models.tiny_speech_net import TinySpeechLMConfig  # noqa: E402
from speechgrpo.models.word_tokenizer import WordTokenizer, build_tokenizer  # noqa: E402


def num_frames(num_samples: int) -> int:
    """Frames ``log_mel`` should return: a centred STFT of clips padded to at least one window."""
    return 1 + max(num_samples, N_FFT) // HOP_LENGTH

SENTENCES = [
    "The dog runs.", "Der Hund läuft.", "Die Straße ist groß, oder?", "Äpfel und Öl sind süß!",
    'He said "hello" (twice) - 3.5 times... don\'t stop.', "Is it red? Yes: it is red.",
    "Transcribe the audio:", "What colour is the cat?", "Translate into German:",
]
SMALL = TinySpeechLMConfig(encoder_dim=32, encoder_layers=1, encoder_heads=2, lm_dim=32, lm_layers=2, lm_heads=2,
                           lm_ffn_dim=64)


@pytest.fixture(scope="module")
def tokenizer() -> WordTokenizer:
    return build_tokenizer(SENTENCES)


@pytest.fixture(scope="module")
def model(tokenizer: WordTokenizer) -> TinySpeechLM:
    torch.manual_seed(0)
    return TinySpeechLM.create(SMALL, tokenizer)


def noise(seconds: float, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(16_000 * seconds))).astype(np.float32)


PROMPTS = [SpeechPrompt(noise(1.3, 0), "Transcribe the audio:"), SpeechPrompt(noise(0.45, 1), "What colour is"),
           SpeechPrompt(None, "Translate into German: The dog runs."), SpeechPrompt(noise(0.8, 2), "")]
ANSWERS = ["The dog runs.", "red", "Der Hund läuft.", "", "Die Straße ist groß, oder?", "Is it red? Yes."]
ANSWER_PROMPTS = [0, 1, 2, 3, 0, 3]


def test_log_mel_shape_and_normalization() -> None:
    features = log_mel(noise(1.0, 0) + np.sin(np.arange(16_000) / 5).astype(np.float32))
    assert features.shape == (num_frames(16_000), 80) == (101, 80)
    assert features.dtype == torch.float32
    assert features.mean(dim=0).abs().max() < 1e-4
    assert abs(float(features.std(correction=0)) - 1.0) < 1e-3
    assert log_mel(np.zeros(100, dtype=np.float32)).shape == (num_frames(100), 80) == (3, 80)
    assert torch.isfinite(log_mel(np.zeros(800, dtype=np.float32))).all()


def test_feature_cache_returns_the_features_of_the_samples_it_is_given() -> None:
    cache = FeatureCache()
    clip = noise(0.5, 3)
    first = cache(clip)
    torch.testing.assert_close(first, log_mel(clip), rtol=0, atol=0)
    assert cache(clip.copy()) is first and len(cache) == 1  # the same samples: the stored features
    clip[:800] = 0.0  # changed in place: recomputed
    changed = cache(clip)
    torch.testing.assert_close(changed, log_mel(clip), rtol=0, atol=0)
    assert not torch.equal(changed, first) and len(cache) == 2
    assert cache(clip, n_mels=40).shape[1] == 40 and len(cache) == 3
    size = first.numel() * first.element_size()
    small = FeatureCache(max_bytes=2 * size)
    clips = [noise(0.5, seed) for seed in range(4)]
    for c in clips:
        small(c)
    assert len(small) == 2  # the two least recently used are gone
    kept = small(clips[3])
    assert small(clips[3]) is kept  # stored
    recomputed = small(clips[0])  # was evicted: computed again, and clips[2] (least recently used) leaves
    assert small(clips[0]) is recomputed and small(clips[3]) is kept and len(small) == 2
    too_big = FeatureCache(max_bytes=size - 1)
    too_big(clip)
    assert len(too_big) == 0


def test_tokenizer_round_trips(tokenizer: WordTokenizer, tmp_path: Path) -> None:
    for sentence in SENTENCES:
        assert tokenizer.decode(tokenizer.encode(sentence)) == sentence
    assert tokenizer.encode("Der Hund läuft.") == tokenizer.encode("Der  Hund\tläuft. ")
    assert len(tokenizer.encode("Die Straße ist groß")) == 4  # one token per word
    # NFD input (decomposed umlaut) is normalized to the trained NFC form
    assert tokenizer.decode(tokenizer.encode("su\u0308ß!")) == "süß!"
    assert tokenizer.decode(tokenizer.encode("The zebra runs.")) == "The runs."  # unknown word dropped
    specials = [tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id, tokenizer.sep_id]
    assert len(set(specials)) == 5
    assert tokenizer.decode([tokenizer.bos_id, *tokenizer.encode("Der Hund"), tokenizer.eos_id]) == "Der Hund"
    tokenizer.save(tmp_path / "tokenizer.json")
    reloaded = WordTokenizer.load(tmp_path / "tokenizer.json")
    assert reloaded.encode(SENTENCES[2]) == tokenizer.encode(SENTENCES[2])
    assert reloaded.vocab_size == tokenizer.vocab_size


def test_encode_prompts(model: TinySpeechLM) -> None:
    batch = model.encode_prompts(PROMPTS)
    assert batch.size == 4
    lengths = batch.inputs["feature_lengths"].tolist()
    assert lengths == [num_frames(len(PROMPTS[0].audio)), num_frames(len(PROMPTS[1].audio)), 0,  # type: ignore[arg-type]
                       num_frames(len(PROMPTS[3].audio))]  # type: ignore[arg-type]
    assert batch.inputs["features"].shape == (4, max(lengths), 80)
    assert (batch.inputs["features"][1, lengths[1]:] == 0).all()
    ids = batch.inputs["prompt_ids"]
    for row, (prompt, length) in enumerate(zip(PROMPTS, batch.inputs["prompt_lengths"].tolist(), strict=True)):
        assert ids[row, :length].tolist() == [*model.tokenizer.encode(prompt.text), model.tokenizer.sep_id]
    text_only = model.encode_prompts([SpeechPrompt(None, "Translate into German:")])
    assert text_only.inputs["features"].shape == (1, 1, 80)
    with pytest.raises(ValueError):
        model.encode_prompts([])


def test_generate_shapes_eos_mask_and_prompt_index(model: TinySpeechLM) -> None:
    batch = model.encode_prompts(PROMPTS)
    completions = model.generate(batch, 3, SamplingConfig(max_new_tokens=40, temperature=1.5),
                                 generator=torch.Generator().manual_seed(0))
    assert len(completions) == 12
    assert completions.prompt_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert completions.ids.shape == completions.mask.shape
    assert completions.ids.shape[1] <= 40
    eos, pad = model.tokenizer.eos_id, model.tokenizer.pad_id
    stopped = 0
    for ids, mask, text in zip(completions.ids.tolist(), completions.mask.tolist(), completions.texts, strict=True):
        length = ids.index(eos) + 1 if eos in ids else len(ids)
        stopped += eos in ids
        assert mask == [True] * length + [False] * (len(ids) - length)
        assert all(t == pad for t in ids[length:])
        assert text == model.tokenizer.decode([t for t in ids[:length] if t != eos])
    assert stopped > 0
    greedy = model.generate(batch, 2, SamplingConfig(max_new_tokens=5, greedy=True))
    assert torch.equal(greedy.ids[0::2], greedy.ids[1::2])  # greedy samples of a prompt agree
    assert model.generate(batch, 1, SamplingConfig(max_new_tokens=0)).ids.shape == (4, 0)


def test_seeded_sampling_is_reproducible(model: TinySpeechLM) -> None:
    batch = model.encode_prompts(PROMPTS)
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.0, top_p=0.9)

    def sample(seed: int) -> torch.Tensor:
        return model.generate(batch, 4, sampling, generator=torch.Generator().manual_seed(seed)).ids

    first = sample(7)
    assert torch.equal(first, sample(7))
    assert not torch.equal(first, sample(8))


def test_per_prompt_streams_make_answers_independent_of_the_batch(model: TinySpeechLM) -> None:
    """With one generator per prompt, a prompt's samples are the same alone, in a batch, and in another
    order; a single generator (training rollouts) gives other samples in another batch."""
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.5, top_p=0.95)

    def answers(order: list[int], per_prompt: bool) -> dict[int, list[str]]:
        batch = model.encode_prompts([PROMPTS[i] for i in order])
        streams = ([torch.Generator().manual_seed(100 + i) for i in order] if per_prompt
                   else torch.Generator().manual_seed(0))
        texts = model.generate(batch, 3, sampling, streams).texts
        return {i: texts[3 * k:3 * k + 3] for k, i in enumerate(order)}

    together = answers([0, 1, 2, 3], per_prompt=True)
    assert answers([3, 1, 0, 2], per_prompt=True) == together
    alone = {i: answers([i], per_prompt=True)[i] for i in range(4)}
    assert alone == together
    assert answers([3, 1, 0, 2], per_prompt=False) != answers([0, 1, 2, 3], per_prompt=False)
    with pytest.raises(ValueError, match="3 random streams for 4 prompts"):
        model.generate(model.encode_prompts(PROMPTS), 1, sampling, [torch.Generator()] * 3)


def test_log_probs_match_unpadded_forward_and_generation(model: TinySpeechLM) -> None:
    batch = model.encode_prompts(PROMPTS)
    completions = model.encode_completions(ANSWERS, torch.tensor(ANSWER_PROMPTS))
    assert completions.mask.sum(1).tolist() == [len(model.tokenizer.encode(a)) + 1 for a in ANSWERS]
    log_probs = model.completion_log_probs(batch, completions)
    assert log_probs.shape == completions.ids.shape
    assert (log_probs[~completions.mask] == 0).all()
    for row, (answer, prompt) in enumerate(zip(ANSWERS, ANSWER_PROMPTS, strict=True)):
        single = model.completion_log_probs(model.encode_prompts([PROMPTS[prompt]]),
                                            model.encode_completions([answer], torch.tensor([0])))
        length = int(completions.mask[row].sum())
        torch.testing.assert_close(log_probs[row, :length], single[0], atol=1e-5, rtol=0)

    for temperature in (1.0, 0.7):
        sampled, scores = model.generate_with_log_probs(
            batch, 2, SamplingConfig(max_new_tokens=15, temperature=temperature),
            generator=torch.Generator().manual_seed(1))
        recomputed = model.completion_log_probs(batch, sampled, temperature=temperature)
        torch.testing.assert_close(scores, recomputed, atol=1e-5, rtol=0)


def test_shared_prefix_forward_equals_one_pass_forward(tokenizer: WordTokenizer) -> None:
    """Each prompt's prefix runs once and its cache serves the completions that answer it: the logits and
    every gradient equal those of one forward over the full rows (the path activation checkpointing
    takes). Several completions per prompt, an empty one (only ``<eos>``), unequal prefixes, and a batch
    of one-token completions (the prefix alone predicts them)."""
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = TinySpeechLM.create(SMALL, tokenizer)
        if checkpointing:
            model.enable_gradient_checkpointing()
        model.module.train()
        assert model.net().checkpointed() is checkpointing
        batch = model.encode_prompts(PROMPTS)
        completions = model.encode_completions(ANSWERS, torch.tensor(ANSWER_PROMPTS))
        eos_only = model.encode_completions(["", ""], torch.tensor([1, 3]))
        logits = model.completion_logits(batch, completions)
        short = model.completion_logits(batch, eos_only)
        (logits.float().square().mean() + model.completion_log_probs(batch, completions).sum()
         + short.float().square().mean()).backward()
        grads = {name: p.grad.clone() for name, p in model.module.named_parameters() if p.grad is not None}
        results.append((logits.detach(), short.detach(), grads))
    (shared, shared_short, shared_grads), (one_pass, one_pass_short, one_pass_grads) = results
    assert shared_short.shape == (2, 1, tokenizer.vocab_size)
    torch.testing.assert_close(shared, one_pass, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared_short, one_pass_short, atol=1e-5, rtol=1e-5)
    assert shared_grads.keys() == one_pass_grads.keys() and len(shared_grads) > 10
    for name, grad in shared_grads.items():
        torch.testing.assert_close(grad, one_pass_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_gradients_flow_through_a_wrapped_module(tokenizer: WordTokenizer) -> None:
    class Wrapper(torch.nn.Module):
        """Stands in for DDP: holds the net as ``.module`` and forwards to it."""

        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module
            self.calls = 0

        def forward(self, **kwargs: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            out: torch.Tensor = self.module(**kwargs)
            return out

    torch.manual_seed(0)
    model = TinySpeechLM.create(SMALL, tokenizer)
    wrapper = Wrapper(model.module)
    model.module = wrapper
    batch = model.encode_prompts(PROMPTS)
    completions = model.encode_completions(ANSWERS, torch.tensor(ANSWER_PROMPTS))
    (-model.completion_log_probs(batch, completions).sum()).backward()
    assert wrapper.calls == 1
    net = model.net()
    for parameter in (net.encoder.conv1.weight, net.projector.mlp[0].weight, net.lm.model.layers[0].mlp.up_proj.weight,
                      net.lm.get_input_embeddings().weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    model.generate(batch, 1, SamplingConfig(max_new_tokens=3))
    assert wrapper.calls == 1  # generation bypasses the wrapper


def test_transcript_ctc_losses(tokenizer: WordTokenizer) -> None:
    torch.manual_seed(0)
    model = TinySpeechLM.create(SMALL, tokenizer)
    batch = model.encode_prompts(PROMPTS)
    with pytest.raises(ValueError, match="3 transcripts for 4 prompts"):
        model.transcript_ctc_losses(batch, ["a", "b", "c"])
    losses = model.transcript_ctc_losses(batch, ["The dog runs.", "red", "", ""])
    assert losses.shape == (4,) and torch.isfinite(losses).all()
    assert (losses[:2] > 0).all() and (losses[2:] == 0).all()  # no audio or no transcript: no loss
    losses[:2].sum().backward()
    net = model.net()
    for parameter in (net.encoder.conv1.weight, net.projector.mlp[2].weight, net.lm.get_input_embeddings().weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    assert net.lm.model.layers[0].mlp.up_proj.weight.grad is None  # the LM's layers are not involved
    optimizer = torch.optim.Adam(model.module.parameters(), lr=3e-3)
    before = float(losses[:2].sum())
    for _ in range(40):
        optimizer.zero_grad()
        model.transcript_ctc_losses(batch, ["The dog runs.", "red", "", ""]).sum().backward()
        optimizer.step()
    assert float(model.transcript_ctc_losses(batch, ["The dog runs.", "red", "", ""]).sum()) < before / 4


def test_save_load_gives_identical_logits(model: TinySpeechLM, tmp_path: Path) -> None:
    model.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "speechgrpo_tiny"
    assert config["lm_dim"] == SMALL.lm_dim
    loaded = TinySpeechLM.load(tmp_path)
    assert loaded.config == model.config
    batch = model.encode_prompts(PROMPTS)
    completions = model.encode_completions(ANSWERS, torch.tensor(ANSWER_PROMPTS))
    with torch.no_grad():
        assert torch.equal(model.completion_logits(batch, completions),
                           loaded.completion_logits(loaded.encode_prompts(PROMPTS), completions))


def test_bf16_forward_and_generate(model: TinySpeechLM, tmp_path: Path) -> None:
    model.save(tmp_path)
    half = TinySpeechLM.load(tmp_path, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    batch = half.encode_prompts(PROMPTS)
    assert batch.inputs["features"].dtype == torch.bfloat16
    completions = half.encode_completions(ANSWERS, torch.tensor(ANSWER_PROMPTS))
    with torch.no_grad():
        low = half.completion_log_probs(batch, completions)
        full = model.completion_log_probs(model.encode_prompts(PROMPTS), completions)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - full).abs().max() < 0.2
    assert len(half.generate(batch, 2, SamplingConfig(max_new_tokens=4))) == 8


# --- learning from audio -------------------------------------------------------------------------------

COLOURS = ["red", "green", "blue", "yellow", "black"]
ANIMALS = ["cat", "dog", "horse", "bird", "fish", "mouse", "sheep", "goat"]


def speak(text: str) -> np.ndarray:
    """espeak-ng speech at 16 kHz (espeak writes 22.05 kHz: 16000/22050 = 320/441)."""
    from scipy.signal import resample_poly

    wav = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text], check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        assert reader.getframerate() == 22_050
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    return resample_poly(samples, 320, 441).astype(np.float32)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_learns_speech_recognition_from_espeak_audio() -> None:
    """40 spoken "colour animal" phrases; ASR by cross-entropy on ``completion_log_probs`` must beat the
    text prior (1.23 nats/token: 5 colours x 8 animals + EOS), which only listening can do."""
    jiwer = pytest.importorskip("jiwer")
    texts = [f"{colour} {animal}" for colour, animal in itertools.product(COLOURS, ANIMALS)]
    prompts = [SpeechPrompt(speak(text), "Transcribe the audio:") for text in texts]
    torch.manual_seed(0)
    model = TinySpeechLM.create(TinySpeechLMConfig(), build_tokenizer([*texts, "Transcribe the audio:"]))
    optimizer = torch.optim.AdamW(model.module.parameters(), lr=1e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 50))
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(300):
        rows = rng.choice(len(texts), 8, replace=False)
        batch = model.encode_prompts([prompts[i] for i in rows])
        completions = model.encode_completions([texts[i] for i in rows], torch.arange(8))
        loss = -model.completion_log_probs(batch, completions).sum() / completions.mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    start, end = np.mean(losses[:5]), np.mean(losses[-20:])
    decoded = model.generate(model.encode_prompts(prompts), 1, SamplingConfig(max_new_tokens=6, greedy=True)).texts
    wer = jiwer.wer(texts, decoded)
    print(f"loss {start:.3f} -> {end:.3f}, greedy WER on the training clips {wer:.3f}")
    assert end < 0.3 < start
    assert wer < 0.3


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_trainer_combines_cross_entropy_and_transcript_ctc(tmp_path: Path) -> None:
    """``ce_weight``/``ctc_weight`` through the reference trainer: CTC alone (encoder pre-training), then both."""
    import soundfile

    from speechgrpo.data import Example, write_manifest
    from speechgrpo.train import TrainConfig
    from speechgrpo.train.trainer import train

    texts = [f"{colour} {animal}" for colour, animal in itertools.product(COLOURS[:2], ANIMALS[:4])]
    examples = []
    for i, text in enumerate(texts):
        soundfile.write(tmp_path / f"{i}.wav", speak(text), 16_000)
        examples.append(Example(id=f"a{i}", audio=str(tmp_path / f"{i}.wav"), prompt="Transcribe the audio:",
                                references=(text,), task="asr", meta={"transcript": text}))
    examples.append(Example(id="t", audio=None, prompt="Translate into German: The dog runs.",
                            references=("Der Hund läuft.",), task="ast_text"))
    manifest = write_manifest(tmp_path / "train.jsonl", examples)
    torch.manual_seed(0)
    TinySpeechLM.create(SMALL, build_tokenizer([*texts, "Transcribe the audio:", *SENTENCES])).save(tmp_path / "m")

    def run(name: str, **weights: float) -> list[dict[str, float]]:
        train(TrainConfig(model=str(tmp_path / "m"), train_manifests=[str(manifest)], output_dir=str(tmp_path / name),
                          stage="sft", steps=30, prompts_per_step=9, learning_rate=3e-3, **weights),
              show_progress=False)
        return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    ctc_only = run("ctc", ce_weight=0.0, ctc_weight=1.0)
    assert "loss" not in ctc_only[0] and ctc_only[-1]["ctc_loss"] < ctc_only[0]["ctc_loss"] / 2
    both = run("both", ctc_weight=0.5)
    assert {"loss", "ctc_loss"} <= set(both[-1]) and both[-1]["loss"] < both[0]["loss"]


def test_train_bundled_model_with_lora_bf16_iterations_and_validation(tmp_path: Path) -> None:
    """`speechgrpo train` on the bundled model with LoRA on its decoder, bf16 autocast, num_iterations 2 and
    validation: the adapter trains, the audio encoder and the base weights stay as they were."""
    from speechgrpo.cli import main
    from speechgrpo.data import Example, write_manifest, write_wav

    rng = np.random.default_rng(0)
    texts = [f"{c} {a}" for c, a in itertools.product(COLOURS[:2], ANIMALS[:2])]
    examples = []
    for i, text in enumerate(texts):
        write_wav(tmp_path / f"{i}.wav", rng.normal(0, 0.1, 8000 + 1000 * i).astype(np.float32))
        examples.append(Example(id=f"a{i}", audio=f"{i}.wav", prompt="What animal?", references=(text,),
                                task="sqa", root=tmp_path))
    manifest = write_manifest(tmp_path / "train.jsonl", examples)
    torch.manual_seed(0)
    TinySpeechLM.create(SMALL, build_tokenizer([*texts, "What animal?"])).save(tmp_path / "m")
    out = tmp_path / "run"
    assert main(["train", "--no-progress", f"model={tmp_path / 'm'}", f"train_manifests=[{manifest}]",
                 f"output_dir={out}", "stage=grpo", "steps=4", "prompts_per_step=2", "num_generations=4",
                 "max_new_tokens=3", "lora_rank=4", "mixed_precision=bf16", "num_iterations=2", "checkpoint_every=2",
                 f"eval_manifests=[{manifest}]", "eval_every=2", "learning_rate=0.01", "reward=chrf"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_bleu" in r] == [2, 4] and all(np.isfinite(r["kl"]) for r in rows)
    tuned = TinySpeechLM.load(out / "final")
    assert tuned.lora is not None
    initial = TinySpeechLM.load(tmp_path / "m").module.state_dict()
    base = {k.replace(".base_layer", ""): v for k, v in tuned.module.state_dict().items() if ".lora_" not in k}
    assert all(torch.equal(base[k], initial[k]) for k in initial)
    assert any(float(v.abs().max()) > 0 for k, v in tuned.module.state_dict().items() if "lora_B" in k)


def assert_log_probs_consistent(model: TinySpeechLM) -> None:
    """Batched, single-prompt and generated log-probs of ``PROMPTS`` agree."""
    batch = model.encode_prompts(PROMPTS)
    completions = model.encode_completions(ANSWERS, torch.tensor(ANSWER_PROMPTS))
    with torch.no_grad():
        log_probs = model.completion_log_probs(batch, completions)
        for row, (answer, prompt) in enumerate(zip(ANSWERS, ANSWER_PROMPTS, strict=True)):
            single = model.completion_log_probs(model.encode_prompts([PROMPTS[prompt]]),
                                                model.encode_completions([answer], torch.tensor([0])))
            torch.testing.assert_close(log_probs[row, :int(completions.mask[row].sum())], single[0], atol=1e-5,
                                       rtol=0)
        sampled, scores = model.generate_with_log_probs(batch, 2, SamplingConfig(max_new_tokens=10),
                                                        generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(scores, model.completion_log_probs(batch, sampled), atol=1e-5, rtol=0)


def test_ctc_compression_drops_blanks_and_averages_runs_of_one_word(tokenizer: WordTokenizer) -> None:
    """Speech-LLaMA's CTC compressor on tokens whose CTC words are known: one-hot word embeddings make
    each token's word the axis it points along. Blank tokens go, a run of one word becomes its mean, a
    word repeated after a blank starts a new run, padding past a clip's length is ignored, a clip heard as
    silence gives no token, and the gradient reaches every kept token."""
    net = TinySpeechLM.create(dataclasses.replace(SMALL, ctc_compress=True), tokenizer).net()
    vocab, dim = tokenizer.vocab_size, SMALL.lm_dim
    words = [w for w in range(vocab) if w != tokenizer.pad_id][:3]
    with torch.no_grad():  # word w's embedding: the unit vector of axis w % dim
        net.lm.get_input_embeddings().weight.copy_(torch.eye(dim)[torch.arange(vocab) % dim] * 10)

    def token(word: int, scale: float) -> torch.Tensor:
        return torch.eye(dim)[word % dim] * scale

    blank = tokenizer.pad_id
    a, b, c = words
    rows = [[token(a, 1), token(a, 3), token(blank, 1), token(a, 5), token(b, 2), token(b, 4), token(c, 1)],
            [token(blank, 1), token(blank, 2), token(c, 9)] + [token(a, 1)] * 4]
    tokens = torch.stack([torch.stack(r) for r in rows]).requires_grad_(True)
    lengths = torch.tensor([6, 2])  # row 0 ends before c; row 1 is blanks, then padding
    compressed, counts = net.compress(tokens, lengths)
    assert counts.tolist() == [3, 0] and compressed.shape == (2, 3, dim)
    torch.testing.assert_close(compressed[0], torch.stack([token(a, 2), token(a, 5), token(b, 3)]))
    compressed[0].sum().backward()
    assert tokens.grad is not None
    assert tokens.grad[0, :6].abs().sum(-1).gt(0).tolist() == [True, True, False, True, True, True]
    assert tokens.grad[0, 6:].abs().sum() == 0 and tokens.grad[1].abs().sum() == 0


def test_ctc_compression_shortens_the_prefix_and_keeps_log_probs_consistent(tokenizer: WordTokenizer) -> None:
    """With ``ctc_compress`` the decoder reads the compressed audio (a shorter prefix than without), and
    batched, single-prompt and generated log-probs still agree."""
    torch.manual_seed(0)
    plain = TinySpeechLM.create(SMALL, tokenizer)
    model = TinySpeechLM.create(dataclasses.replace(SMALL, ctc_compress=True), tokenizer)
    model.net().load_state_dict(plain.net().state_dict())
    batch = model.encode_prompts(PROMPTS)
    with torch.no_grad():  # the blank's embedding along the audio tokens' mean: some tokens are blanks
        audio, lengths = model.net().audio_tokens(batch.inputs["features"][[0, 1, 3]],
                                                  batch.inputs["feature_lengths"][[0, 1, 3]])
        mean = audio[audio.abs().sum(-1) > 0].mean(0)
        model.net().lm.get_input_embeddings().weight[tokenizer.pad_id] = mean * 0.5
        _, counts = model.net().compress(audio, lengths)
    assert (counts < lengths).all() and (counts > 0).any()
    wide, _ = plain.net().prefix(**batch.inputs)
    narrow, _ = model.net().prefix(**batch.inputs)
    assert narrow.shape[1] < wide.shape[1]
    assert_log_probs_consistent(model)


def test_ctc_posteriors_need_compression() -> None:
    with pytest.raises(ValueError, match="ctc_posteriors needs ctc_compress"):
        dataclasses.replace(SMALL, ctc_posteriors=True)


def test_ctc_posteriors_feed_the_lm_expected_word_embeddings(tokenizer: WordTokenizer, tmp_path: Path) -> None:
    """LegoSLM's input: the CTC scores come from the model's own output layer (the CTC loss trains it, not
    the word embeddings) and each compressed audio token reaches the LM as its word posterior, the blank
    left out, times the word embeddings: a confidently heard word is that word's text embedding. The layer
    survives save and load."""
    torch.manual_seed(0)
    model = TinySpeechLM.create(dataclasses.replace(SMALL, ctc_compress=True, ctc_posteriors=True), tokenizer)
    net = model.net()
    blank, word = tokenizer.pad_id, tokenizer.encode("dog")[0]
    assert net.ctc_head is not None
    batch = model.encode_prompts(PROMPTS)
    inputs = batch.inputs
    with torch.no_grad():  # every token: the word 6 above the rest, the blank 5 above: kept, blank mass dropped
        net.ctc_head.weight.zero_()
        net.ctc_head.bias.zero_()
        net.ctc_head.bias[word], net.ctc_head.bias[blank] = 6.0, 5.0
        prefix, mask = net.prefix(**inputs)
    embeddings = net.lm.get_input_embeddings().weight.detach()
    logits = torch.zeros(tokenizer.vocab_size)
    logits[word] = 6.0
    posterior = torch.softmax(logits.index_fill(0, torch.tensor([blank]), float("-inf")), 0)
    expected = posterior @ embeddings
    first = prefix[0, mask[0].bool()]  # <bos>, one audio token (one run of one word), the prompt
    prompt = net.embed_tokens(inputs["prompt_ids"][0, :int(inputs["prompt_lengths"][0])]).detach()
    assert len(first) == 2 + len(prompt)
    torch.testing.assert_close(first[1], expected)
    torch.testing.assert_close(first[2:], prompt)
    with torch.no_grad():
        net.ctc_head.bias[word] = 60.0  # confident: the word's own embedding
        torch.testing.assert_close(net.prefix(**inputs)[0][0, -len(prompt) - 1], embeddings[word])
    net.zero_grad()
    model.transcript_ctc_losses(batch, ["the dog runs", "red", "", "dog"]).sum().backward()
    assert net.ctc_head.weight.grad is not None and net.ctc_head.weight.grad.abs().sum() > 0
    lm_embedding = net.lm.get_input_embeddings().weight
    assert lm_embedding.grad is None or lm_embedding.grad.abs().sum() == 0
    model.save(tmp_path / "m")
    loaded = TinySpeechLM.load(tmp_path / "m")
    assert loaded.config.ctc_posteriors
    with torch.no_grad():
        torch.testing.assert_close(loaded.net().prefix(**inputs)[0], net.prefix(**inputs)[0])


def test_ctc_posteriors_train_the_audio_side_through_the_lm(tokenizer: WordTokenizer) -> None:
    """Cross-entropy on a spoken prompt reaches the encoder through the posteriors, and batched, single-prompt
    and generated log-probs agree."""
    torch.manual_seed(0)
    model = TinySpeechLM.create(dataclasses.replace(SMALL, ctc_compress=True, ctc_posteriors=True), tokenizer)
    batch = model.encode_prompts(PROMPTS)
    completions = model.encode_completions(ANSWERS, torch.tensor(ANSWER_PROMPTS))
    log_probs = model.completion_log_probs(batch, completions)
    (log_probs * completions.mask).sum().backward()
    assert model.net().encoder.conv1.weight.grad.abs().sum() > 0
    assert_log_probs_consistent(model)


def test_ctc_posteriors_read_each_compressed_run(tokenizer: WordTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs are found on the audio tokens (the output layer's words), then each run's mean is read as its
    posterior-weighted embedding: two runs of two words around a blank give two LM inputs."""
    torch.manual_seed(0)
    net = TinySpeechLM.create(dataclasses.replace(SMALL, ctc_compress=True, ctc_posteriors=True), tokenizer).net()
    assert net.ctc_head is not None
    dim, blank = SMALL.lm_dim, tokenizer.pad_id
    a, b = tokenizer.encode("dog")[0], tokenizer.encode("red")[0]
    axis = torch.eye(dim)
    with torch.no_grad():  # word a reads axis 0, word b axis 1, the blank axis 2
        net.ctc_head.weight.zero_()
        net.ctc_head.bias.zero_()
        net.ctc_head.weight[a], net.ctc_head.weight[b], net.ctc_head.weight[blank] = axis[0], axis[1], axis[2] * 2
    tokens = torch.stack([axis[0], axis[0] * 3, axis[2] * 5, axis[1] * 2, axis[1] * 4])[None]
    monkeypatch.setattr(net, "audio_tokens", lambda features, lengths: (tokens, torch.tensor([5])))
    prompt = torch.tensor([tokenizer.encode("What colour is")])
    with torch.no_grad():
        prefix, _ = net.prefix(torch.zeros(1, 8, SMALL.n_mels), torch.tensor([8]), prompt, torch.tensor([3]))
        embeddings = net.lm.get_input_embeddings().weight
        expected = [torch.softmax(net.ctc_head(run).index_fill(0, torch.tensor([blank]), float("-inf")), 0) @ embeddings
                    for run in (axis[0] * 2, axis[1] * 3)]
    assert prefix.shape[1] == 1 + 2 + 3
    torch.testing.assert_close(prefix[0, 1:3], torch.stack(expected))


def test_ctc_posteriors_in_bfloat16_and_under_autocast(tokenizer: WordTokenizer, tmp_path: Path) -> None:
    """A bf16 model reads bf16 posterior embeddings; under a trainer's bf16 autocast a float32 model's audio
    inputs stay float32, as its text embeddings are."""
    torch.manual_seed(0)
    model = TinySpeechLM.create(dataclasses.replace(SMALL, ctc_compress=True, ctc_posteriors=True), tokenizer)
    model.save(tmp_path)
    half = TinySpeechLM.load(tmp_path, dtype=torch.bfloat16)
    batch = half.encode_prompts(PROMPTS)
    with torch.no_grad():
        prefix, _ = half.net().prefix(**batch.inputs)
        assert prefix.dtype == torch.bfloat16 and torch.isfinite(prefix).all()
        assert len(half.generate(batch, 2, SamplingConfig(max_new_tokens=4))) == 8
        full = model.encode_prompts(PROMPTS)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            audio, _ = model.net().audio_tokens(full.inputs["features"], full.inputs["feature_lengths"])
            read = model.net().posterior_embeddings(audio)
        assert read.dtype == torch.float32
        reference = model.net().posterior_embeddings(audio.float())
        torch.testing.assert_close(read, reference)

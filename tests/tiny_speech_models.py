"""Random-weight Qwen2-Audio and Granite Speech checkpoints built offline from configs, saved to a local directory.

``scale="tiny"`` (a few hundred K parameters, a 500-token byte-level BPE tokenizer trained in-process) is for
tests on a CPU. ``scale="realistic"`` keeps the tiny tokenizer but uses the published model dimensions
(Qwen2-Audio-7B; Granite Speech 3.3 2B, approximately), with a vocabulary-sized embedding, for GPU step-time
benchmarks: the weights are random, so the text is meaningless, but the compute per token is real.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GraniteSpeechConfig,
    GraniteSpeechForConditionalGeneration,
    GraniteSpeechProcessor,
    PreTrainedTokenizerFast,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)

from speechgrpo.models.granite_features import TorchGraniteSpeechFeatureExtractor

Scale = Literal["tiny", "realistic"]

# Qwen2-Audio marks audio as <|audio_bos|><|AUDIO|><|audio_eos|>; Granite Speech as <|audio|>.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>",
                  "<|audio|>"]
# ChatML in the Qwen style. Content is a string (Granite: "<|audio|>" inside the text) or a list of parts
# (Qwen2-Audio: an audio part becomes <|audio_bos|><|AUDIO|><|audio_eos|>).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "mat", "park", "one", "two", "three", "red", "green",
         "blue", "house", "tree", "is", "was", "and", "of", "to", "speech", "translate", "transcribe", "into",
         "german", "english", "say", "what", "der", "die", "das", "ein", "eine", "hund", "katze", "haus", "baum",
         "ist", "und", "zu", "sprache", "übersetze", "ins", "deutsche", "sag", "was"]


def build_tokenizer(seed: int = 0, vocab_size: int = 500) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text encodes) with the audio special tokens and a ChatML template;
    EOS ``<|im_end|>``, PAD ``<|endoftext|>``, left padding."""
    rng = random.Random(seed)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(2000)]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=SPECIAL_TOKENS[1:])
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def _text_config(tokenizer: PreTrainedTokenizerFast, model_type: str, scale: Scale) -> dict[str, Any]:
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    if scale == "tiny":
        return {"model_type": model_type, "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "max_position_embeddings": 2048, **ids}
    if model_type == "qwen2":  # Qwen-7B as in Qwen2-Audio-7B
        return {"model_type": "qwen2", "vocab_size": 156_032, "hidden_size": 4096, "intermediate_size": 11_008,
                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
                "max_position_embeddings": 8192, "rope_theta": 10_000.0, "rms_norm_eps": 1e-5, **ids}
    return {"model_type": "granite", "vocab_size": 49_160, "hidden_size": 2048, "intermediate_size": 8192,  # 2B
            "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8,
            "max_position_embeddings": 131_072, "rope_theta": 10_000_000.0, "attention_multiplier": 0.015625,
            "embedding_multiplier": 12.0, "residual_multiplier": 0.22, "logits_scaling": 8.0,
            "tie_word_embeddings": True, **ids}


def qwen2_audio_config(tokenizer: PreTrainedTokenizerFast, scale: Scale = "tiny") -> Qwen2AudioConfig:
    """Qwen2-Audio: a Whisper-style encoder on 128-bin log-mels (30 s window) and a Qwen2 LM."""
    encoder: dict[str, Any] = {"model_type": "qwen2_audio_encoder", "num_mel_bins": 128, "max_source_positions": 1500}
    if scale == "tiny":
        encoder.update(encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128, d_model=64)
    else:  # Whisper-large-v3 encoder
        encoder.update(encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, d_model=1280)
    return Qwen2AudioConfig(audio_config=encoder, text_config=_text_config(tokenizer, "qwen2", scale),
                            audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))


def granite_speech_config(tokenizer: PreTrainedTokenizerFast, scale: Scale = "tiny") -> GraniteSpeechConfig:
    """Granite Speech: a conformer CTC encoder on stacked 80-bin log-mels, a Q-Former projector (windows of
    15 frames -> 3 audio tokens) and a Granite LM. Dropout off (the tiny model is used to compare forwards in
    train mode); ``has_lora_adapter=False`` (no built-in audio LoRA)."""
    if scale == "tiny":
        encoder = {"num_layers": 2, "hidden_dim": 64, "feedforward_mult": 2, "num_heads": 2, "dim_head": 32,
                   "output_dim": 16}
        projector = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 128,
                     "encoder_hidden_size": 64, "max_position_embeddings": 64}
    else:  # granite-speech-3.3-2b
        encoder = {"num_layers": 16, "hidden_dim": 1024, "feedforward_mult": 4, "num_heads": 8, "dim_head": 128,
                   "output_dim": 256}
        projector = {"hidden_size": 1024, "num_hidden_layers": 2, "num_attention_heads": 16,
                     "intermediate_size": 4096, "encoder_hidden_size": 1024, "max_position_embeddings": 2048}
    return GraniteSpeechConfig(
        encoder_config={"model_type": "granite_speech_encoder", "input_dim": 160, "context_size": 200,
                        "max_pos_emb": 512, "conv_kernel_size": 15, "dropout": 0.0, **encoder},
        projector_config={"model_type": "blip_2_qformer", "cross_attention_frequency": 1, "hidden_dropout_prob": 0.0,
                          "attention_probs_dropout_prob": 0.0, **projector},
        text_config=_text_config(tokenizer, "granite", scale),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|audio|>"), has_lora_adapter=False, downsample_rate=5,
        window_size=15)


def build_qwen2_audio(directory: Path, scale: Scale = "tiny", seed: int = 0, device: str = "cpu",
                      dtype: torch.dtype = torch.float32) -> Path:
    """Save a random Qwen2-Audio model with its processor (128-mel Whisper features) to ``directory``."""
    tokenizer = build_tokenizer()
    processor = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer,
                                    chat_template=CHAT_TEMPLATE)
    return _save(Qwen2AudioForConditionalGeneration, qwen2_audio_config(tokenizer, scale), processor, directory,
                 seed, device, dtype)


def build_granite_speech(directory: Path, scale: Scale = "tiny", seed: int = 0, device: str = "cpu",
                         dtype: torch.dtype = torch.float32) -> Path:
    """Save a random Granite Speech model with its processor (torch feature extractor) to ``directory``."""
    tokenizer = build_tokenizer()
    processor = GraniteSpeechProcessor(audio_processor=TorchGraniteSpeechFeatureExtractor(), tokenizer=tokenizer,
                                       chat_template=CHAT_TEMPLATE)
    return _save(GraniteSpeechForConditionalGeneration, granite_speech_config(tokenizer, scale), processor,
                 directory, seed, device, dtype)


def _save(model_class: Any, config: Any, processor: Any, directory: Path, seed: int, device: str,
          dtype: torch.dtype) -> Path:
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_class._from_config(config, dtype=dtype)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory

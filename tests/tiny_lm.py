"""A tiny causal LM and word-level tokenizer built offline from a config, saved to a local directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park", "one", "two", "three", "four", "five",
         "six", "red", "green", "blue", "yellow", "black", "white", "der", "die", "das", "ein", "eine", "hund",
         "katze", "zug", "hat", "heute", "rote", "translate", ":"]
# A toy translation task over the tiny LM's words (prompt, reference), for the trainer tests.
PAIRS = [("translate: the cat sat", "die katze"), ("translate: a dog ran", "ein hund"),
         ("translate: the red mat", "das rote"), ("translate: one two three", "eine zug"),
         ("translate: green blue park", "die das"), ("translate: five six yellow", "hat heute")]


def build_tiny_lm(directory: Path, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden size 32) with a word-level tokenizer; returns ``directory``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    tokenizer_model = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer_model.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer_model.decoder = decoders.WordPiece(prefix="##")  # decode joins words with spaces
    tokenizer_model.train_from_iterator([" ".join(WORDS)],
                                        trainers.WordLevelTrainer(special_tokens=["<pad>", "<s>", "</s>", "<unk>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer_model, pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", unk_token="<unk>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def trainable_fraction(module: Any) -> float:
    """Trainable parameters / all parameters (LoRA leaves a small fraction trainable)."""
    total = sum(p.numel() for p in module.parameters())
    return sum(p.numel() for p in module.parameters() if p.requires_grad) / max(total, 1)

"""A word-level tokenizer for the bundled speech LM, trained offline from a text corpus.

Words keep their case and carry a leading ``▁`` when a space precedes them (the Metaspace scheme), and
every punctuation character is a token of its own, so decoding restores the text exactly: no space
before punctuation ("Der Hund läuft."), none after opening quotes or brackets, umlauts and ß intact.
Whitespace runs count as one space and text is NFC-normalized first. A word missing from the corpus
becomes ``<unk>``, which decoding drops. One token per word keeps sequences short (fast on a CPU) and
makes every output token a whole word, which suits small closed-vocabulary tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PAD, BOS, EOS, UNK, SEP = "<pad>", "<bos>", "<eos>", "<unk>", "<sep>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, SEP)


class WordTokenizer:
    """Text <-> ids; ``sep`` separates a prompt from its answer, ``eos`` ends the answer."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        found = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
        ids = [int(i) for i in found if i is not None]
        if len(ids) != len(SPECIAL_TOKENS):
            raise ValueError(f"tokenizer lacks one of the special tokens {SPECIAL_TOKENS}")
        self.pad_id, self.bos_id, self.eos_id, self.unk_id, self.sep_id = ids

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` outside the vocabulary (each becomes ``<unk>``), in order."""
        encoded = self.tokenizer.encode(text, add_special_tokens=False)
        return [text[start:end].strip() for token, (start, end) in zip(encoded.ids, encoded.offsets, strict=True)
                if token == self.unk_id]

    def decode(self, ids: Sequence[int]) -> str:
        """Natural text of ``ids``; special tokens (``<unk>`` included) are dropped."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def save(self, path: str | Path) -> None:
        self.tokenizer.save(str(path))

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))


def build_tokenizer(texts: Iterable[str], min_count: int = 1) -> WordTokenizer:
    """A tokenizer whose vocabulary is every word and punctuation mark seen at least ``min_count`` times."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=min_count)
    tokenizer.train_from_iterator(texts, trainer)
    return WordTokenizer(tokenizer)

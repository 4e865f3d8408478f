"""Texts to integer word ids in one pass over a whole batch, with sacrebleu's 13a tokenization.

The compiled path joins the batch into one array of code points and, in numba kernels
(:mod:`speechgrpo.metrics.text_kernels`),
(1) applies the 13a post-tokenizer's four regular expressions exactly as ``re.sub`` does (leftmost,
non-overlapping matches, scanning on after each match), then (2) splits lines on the separator and
words on Python's own whitespace set (``str.split()``), giving equal words equal ids through a hash
table that compares code points (exact, no hash collisions possible). The pure-Python path calls
sacrebleu's tokenizer and a dict. Both give the same ids, in order of first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import Any

import numpy as np

from speechgrpo.metrics.jit import compiled_available

# sacrebleu tokenizer_re rule 1 pads these ASCII characters with spaces: [{-~ [-` space-& (-+ :-@ /]
_RULE1 = frozenset([*range(0x7B, 0x7F), *range(0x5B, 0x61), *range(0x20, 0x27), *range(0x28, 0x2C),
                    *range(0x3A, 0x41), 0x2F])
_PADDED = np.array([c in _RULE1 for c in range(128)], dtype=np.bool_)


@cache
def _python_whitespace() -> np.ndarray:
    """``space[c]`` is True where ``chr(c).isspace()``; the kernels assume none lies above U+3000."""
    whitespace = [c for c in range(0x110000) if chr(c).isspace()]
    if max(whitespace) > 0x3000:  # a future Unicode database; the kernel's bound would be wrong
        raise RuntimeError(f"whitespace code point U+{max(whitespace):04X} above U+3000: update text_kernels")
    space = np.zeros(0x3001, dtype=np.bool_)
    space[whitespace] = True
    return space


@dataclass(frozen=True)
class WordIds:
    """Text ``t`` is ``ids[starts[t]:ends[t]]``; ``vocab_size`` distinct words in the batch."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    vocab_size: int


def ids_of_token_lists(tokens: Sequence[list[str]]) -> WordIds:
    """Token lists to ids (equal tokens, equal ids, in order of first occurrence)."""
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab)) for words in tokens for w in words), dtype=np.int64)
    lengths = np.fromiter((len(words) for words in tokens), dtype=np.int64, count=len(tokens))
    ends = np.cumsum(lengths)
    return WordIds(ids, ends - lengths, ends, len(vocab))


def _13a_step1(line: str) -> str:
    # sacrebleu Tokenizer13a.__call__ before the regexes (input already rstripped by the metric)
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    return line


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@cache
def _kernels() -> Any:
    """:mod:`speechgrpo.metrics.text_kernels`, imported on first use (it imports numba). A cached call, as
    an import statement in a function costs ~1 us, much of a one-sample call's tokenization."""
    return import_module("speechgrpo.metrics.text_kernels")


_NO_PUNCT = np.zeros(0, dtype=np.bool_)
_ROUGE_SEPARATOR = re.compile(r"[^a-z0-9]*")
# rouge-score's tokenizer on ASCII: A-Z lower-cased, 0-9 and a-z kept, everything else a space
_ROUGE_FOLD = np.array([c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 or 48 <= c <= 57 else 32
                        for c in range(128)], dtype=np.uint32)
# sacrebleu.metrics.chrf.CHRF._PUNCTS, which chrF++ splits off words
CHRF_PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'
_CHRF_PUNCT = np.array([chr(c) in CHRF_PUNCTUATION for c in range(128)], dtype=np.bool_)


def _compiled_split(lines: Sequence[str], text: np.ndarray, punct: np.ndarray = _NO_PUNCT,
                    jiwer: bool = False) -> WordIds:
    ids, ends, vocab_size = _kernels().split_ids(text, len(lines), _python_whitespace(), punct, jiwer)
    starts = np.concatenate((np.zeros(1, np.int64), ends[:-1]))
    return WordIds(ids, starts, ends, int(vocab_size))


#: Code points from which the compiled renumbering (a table over all of Unicode, 9 MB to fill) costs less
#: than sorting them (measured: 270 vs 37 us at 100 code points, 442 vs 642 us at 10,000)
COMPACT_TABLE_MIN = 5000


def char_ids(texts: Sequence[str]) -> WordIds:
    """Each text's characters (code points) as ids, renumbered compactly over the batch."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    ends = np.cumsum(lengths)
    points = _code_points("".join(texts))
    if compiled_available() and points.size >= COMPACT_TABLE_MIN:
        ids, vocab_size = _kernels().compact_ids(points)
        return WordIds(ids, ends - lengths, ends, int(vocab_size))
    distinct, inverse = np.unique(points, return_inverse=True)
    return WordIds(inverse.astype(np.int64), ends - lengths, ends, len(distinct))


def chrf_word_ids(texts: Sequence[str]) -> WordIds | None:
    """sacrebleu chrF++'s words of each text as ids (``str.split()``, then one leading or trailing
    punctuation character split off each longer word), compiled; None where a text holds a line break."""
    joined = "\n".join(texts)
    if not texts or joined.count("\n") != len(texts) - 1:
        return None
    return _compiled_split(texts, _code_points(joined), _CHRF_PUNCT)


def _lower_is_alphanumeric(code_points: np.ndarray) -> bool:
    """Whether any of these non-ASCII characters lower-cases into an ASCII letter or digit (as U+212A,
    the Kelvin sign, into "k" and U+0130 into "i" and a combining dot)."""
    return any(not _ROUGE_SEPARATOR.fullmatch(chr(c).lower()) for c in code_points.tolist())


def rouge_word_ids(texts: Sequence[str]) -> WordIds:
    """rouge-score's default tokens (no stemmer) of each text as word ids, compiled: lower-cased, and every
    run of characters outside ``[a-z0-9]`` a separator (its ``NON_ALPHANUM_RE`` and split). Needs numba.

    The code points are folded in place (A-Z to a-z, every other character but 0-9 and a-z a separator),
    unless the batch holds one of the few non-ASCII characters that lower-case into a letter or digit:
    then Python's ``str.lower`` runs first."""
    if not texts:
        return ids_of_token_lists([])
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    points = _code_points("\n".join(texts)).copy()
    beyond_ascii = _kernels().fold_for_rouge(points, _ROUGE_FOLD)
    if beyond_ascii.size and _lower_is_alphanumeric(np.unique(beyond_ascii)):
        lowered = [t.lower() for t in texts]  # a character may lower-case into several: lengths change
        lengths = np.fromiter(map(len, lowered), dtype=np.int64, count=len(texts))
        points = _code_points("\n".join(lowered)).copy()
        _kernels().fold_for_rouge(points, _ROUGE_FOLD)
    points[np.cumsum(lengths[:-1] + 1) - 1] = 10  # the line breaks between texts
    return _compiled_split(texts, points)


def word_ids(texts: Sequence[str]) -> WordIds:
    """Words as ``str.split()`` gives them, mapped to ids (equal words, equal ids)."""
    if not texts:
        return ids_of_token_lists([])
    if compiled_available():
        joined = "\n".join(texts)
        if joined.count("\n") == len(texts) - 1:  # no text holds a line break
            return _compiled_split(texts, _code_points(joined))
    return ids_of_token_lists([t.split() for t in texts])


def jiwer_word_ids(texts: Sequence[str]) -> WordIds | None:
    """jiwer's default words of each text (``wer_default``: a lone tab or no-break space stays inside its word,
    a whitespace run separates) as ids, compiled; ``None`` where a text holds a line break or nothing is to
    be split. Needs numba."""
    joined = "\n".join(texts)
    if not texts or joined.count("\n") != len(texts) - 1:
        return None
    return _compiled_split(texts, _code_points(joined), jiwer=True)


def tokens_13a(line: str) -> list[str]:
    """sacrebleu 13a's tokens of one (already lower-cased/rstripped) text, in one compiled pass. Needs numba."""
    if "&" in line or "\n" in line or "<" in line:
        line = _13a_step1(line)
    padded = _kernels().apply_13a_rules(_code_points(f" {line} "), _PADDED)
    return str(padded.tobytes().decode("utf-32-le", "surrogatepass")).split()


def tokenize_13a(texts: Sequence[str], fallback: Callable[[str], str]) -> WordIds:
    """sacrebleu 13a tokens of each (already lower-cased/rstripped) text, as word ids.

    ``fallback`` is sacrebleu's own ``Tokenizer13a`` instance, used when numba is unavailable.
    """
    if not texts:
        return ids_of_token_lists([])
    if not compiled_available():
        return ids_of_token_lists([fallback(t).split() for t in texts])
    joined = " \n ".join(texts)
    marks = joined.count("&") + joined.count("<")
    if joined.count("\n") != len(texts) - 1 or marks > len(texts) // 16:  # step 1 changes many texts
        joined = " \n ".join(_13a_step1(t) if "&" in t or "\n" in t or "<" in t else t for t in texts)
    elif marks:  # step 1 changes the few texts holding an entity or <skipped>: find them in the joined text
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        starts = np.cumsum(lengths + 3) - (lengths + 3)  # where each text begins in the joined text
        fixed = list(texts)
        for mark in "&<":
            at = joined.find(mark)
            while at != -1:
                t = int(np.searchsorted(starts, at, side="right")) - 1
                fixed[t] = _13a_step1(texts[t])
                at = joined.find(mark, int(starts[t] + lengths[t]))
        joined = " \n ".join(fixed)
    return _compiled_split(texts, _kernels().apply_13a_rules(_code_points(f" {joined} "), _PADDED))

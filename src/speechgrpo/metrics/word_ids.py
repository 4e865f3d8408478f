"""Texts to integer word ids in one pass over a whole batch, with sacrebleu's 13a tokenization.

The compiled path joins the batch into one array of code points and, in numba kernels,
(1) applies the 13a post-tokenizer's four regular expressions exactly as ``re.sub`` does (leftmost,
non-overlapping matches, scanning on after each match), then (2) splits lines on the separator and
words on Python's own whitespace set (``str.split()``), giving equal words equal ids through a hash
table that compares code points (exact, no hash collisions possible). The pure-Python path calls
sacrebleu's tokenizer and a dict. Both give the same ids, in order of first occurrence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from speechgrpo.metrics.jit import compiled_available, njit

# sacrebleu tokenizer_re rule 1 pads these ASCII characters with spaces: [{-~ [-` space-& (-+ :-@ /]
_RULE1 = frozenset([*range(0x7B, 0x7F), *range(0x5B, 0x61), *range(0x20, 0x27), *range(0x28, 0x2C),
                    *range(0x3A, 0x41), 0x2F])
_PADDED = np.array([c in _RULE1 for c in range(128)], dtype=np.bool_)
_SP, _NL, _DOT, _COMMA, _DASH, _ZERO, _NINE = 32, 10, 46, 44, 45, 48, 57


@cache
def _python_whitespace() -> np.ndarray:
    """``space[c]`` is True where ``chr(c).isspace()`` (all such code points are <= U+3000)."""
    space = np.zeros(0x3001, dtype=np.bool_)
    for c in range(0x3001):
        space[c] = chr(c).isspace()
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


@njit
def _13a_rules(src: np.ndarray, padded: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    n0 = src.size
    s = np.empty(3 * n0 + 4, np.uint32)
    n = 0
    for i in range(n0):  # rule 1: ([{-~[-` -&(-+:-@/]) -> ' \1 '
        c = src[i]
        if c < 128 and padded[c]:
            s[n] = _SP
            s[n + 1] = c
            s[n + 2] = _SP
            n += 3
        else:
            s[n] = c
            n += 1
    a = np.empty(2 * n + 4, np.uint32)
    m = 0
    i = 0
    while i < n:  # rule 2: ([^0-9])([\.,]) -> '\1 \2 '
        c = s[i]
        if i + 1 < n and not (_ZERO <= c <= _NINE) and (s[i + 1] == _DOT or s[i + 1] == _COMMA):
            a[m] = c
            a[m + 1] = _SP
            a[m + 2] = s[i + 1]
            a[m + 3] = _SP
            m += 4
            i += 2
        else:
            a[m] = c
            m += 1
            i += 1
    b = np.empty(2 * m + 4, np.uint32)
    k = 0
    i = 0
    while i < m:  # rule 3: ([\.,])([^0-9]) -> ' \1 \2'
        c = a[i]
        if i + 1 < m and c in (_DOT, _COMMA) and not (_ZERO <= a[i + 1] <= _NINE):
            b[k] = _SP
            b[k + 1] = c
            b[k + 2] = _SP
            b[k + 3] = a[i + 1]
            k += 4
            i += 2
        else:
            b[k] = c
            k += 1
            i += 1
    out = np.empty(2 * k + 4, np.uint32)
    j = 0
    i = 0
    while i < k:  # rule 4: ([0-9])(-) -> '\1 \2 '
        c = b[i]
        if i + 1 < k and _ZERO <= c <= _NINE and b[i + 1] == _DASH:
            out[j] = c
            out[j + 1] = _SP
            out[j + 2] = _DASH
            out[j + 3] = _SP
            j += 4
            i += 2
        else:
            out[j] = c
            j += 1
            i += 1
    return out[:j]


@njit
def _split_ids(text: np.ndarray, n_lines: int, space: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    # pragma: no cover - compiled
    n = text.size
    ids = np.empty(n // 2 + 1, np.int64)
    ends = np.zeros(n_lines, np.int64)
    cap = 1024
    while cap < 2 * (n // 2 + 1):
        cap *= 2
    table = np.full(cap, -1, np.int64)
    first = np.empty(n // 2 + 1, np.int64)
    length = np.empty(n // 2 + 1, np.int64)
    n_words = 0
    n_tok = 0
    line = 0
    i = 0
    while i < n:
        c = text[i]
        if c == _NL:
            ends[line] = n_tok
            line += 1
            i += 1
            continue
        if c <= 0x3000 and space[c]:
            i += 1
            continue
        j = i
        h = np.uint64(1469598103934665603)
        while j < n and not (text[j] <= 0x3000 and space[text[j]]):
            h = (h ^ np.uint64(text[j])) * np.uint64(1099511628211)
            j += 1
        size = j - i
        slot = np.int64(h & np.uint64(cap - 1))
        while True:
            w = table[slot]
            if w == -1:
                table[slot] = n_words
                first[n_words] = i
                length[n_words] = size
                ids[n_tok] = n_words
                n_words += 1
                break
            if length[w] == size:
                f = first[w]
                same = True
                for x in range(size):
                    if text[f + x] != text[i + x]:
                        same = False
                        break
                if same:
                    ids[n_tok] = w
                    break
            slot = (slot + 1) & (cap - 1)
        n_tok += 1
        i = j
    ends[line] = n_tok
    return ids[:n_tok], ends, n_words


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _compiled_split(lines: Sequence[str], text: np.ndarray) -> WordIds:
    ids, ends, vocab_size = _split_ids(text, len(lines), _python_whitespace())
    starts = np.concatenate((np.zeros(1, np.int64), ends[:-1]))
    return WordIds(ids, starts, ends, int(vocab_size))


def char_ids(texts: Sequence[str]) -> WordIds:
    """Each text's characters (code points) as ids, renumbered compactly over the batch."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    ends = np.cumsum(lengths)
    points = _code_points("".join(texts))
    distinct, ids = np.unique(points, return_inverse=True)
    return WordIds(ids.astype(np.int64), ends - lengths, ends, len(distinct))


def word_ids(texts: Sequence[str]) -> WordIds:
    """Words as ``str.split()`` gives them, mapped to ids (equal words, equal ids)."""
    if not texts:
        return ids_of_token_lists([])
    if compiled_available() and not any("\n" in t for t in texts):
        return _compiled_split(texts, _code_points("\n".join(texts)))
    return ids_of_token_lists([t.split() for t in texts])


def tokenize_13a(texts: Sequence[str], fallback: Callable[[str], str]) -> WordIds:
    """sacrebleu 13a tokens of each (already lower-cased/rstripped) text, as word ids.

    ``fallback`` is sacrebleu's own ``Tokenizer13a`` instance, used when numba is unavailable.
    """
    if not texts:
        return ids_of_token_lists([])
    if not compiled_available():
        return ids_of_token_lists([fallback(t).split() for t in texts])
    joined = " \n ".join(_13a_step1(t) for t in texts)
    return _compiled_split(texts, _13a_rules(_code_points(f" {joined} "), _PADDED))

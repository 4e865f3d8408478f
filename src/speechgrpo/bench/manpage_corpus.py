"""A benchmark corpus of real German text, built offline from the German manual pages on the machine.

Speed measured on generated sentences overstated the engine about 9x: their small vocabulary and
repeated phrases make tokenizing, sorting and deduplicating n-grams cheap. Real text is needed, and
the one large body of real human-translated prose a Debian machine can install offline is the German
manual pages (``manpages-de``: about 1,100 pages translated from English, plus the German pages other
packages ship). Rendered with ``groff``, split into sentences and filtered to 15-30-word prose, they give
about 9,800 distinct sentences with about 28,000 word types.

References are those sentences. Each has ``group_size`` hypotheses made by the errors an MT system
makes, each hypothesis at its own error rate (spread from 10% to 70% of the words, like systems of
different quality): words replaced by another inflection of the same stem or by a corpus word of
similar frequency, dropped, inserted, swapped with a neighbour, a phrase moved elsewhere (what TER's
shifts find), punctuation changed. Everything is deterministic given the sentences and the seed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from speechgrpo.bench.corpus import STYLES, Corpus

MAN_DIRS = ("/usr/share/man/de",)
INSTALL_HINT = "apt-get install manpages-de groff-base"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ])")
_NOT_PROSE = re.compile(r"[/\\<>{}\[\]|=_*#$%@~^`]|--|\s-\w|\.\w")
_ENDINGS = ("", "e", "en", "er", "es", "em", "n", "s", "t", "te")
_INFLECTED = re.compile(r"^(?P<stem>\w{3,}?)(?P<end>e|en|er|es|em|n|s|t|te)?(?P<punct>\W*)$")


class CorpusUnavailable(RuntimeError):
    """The machine lacks the German manual pages or groff."""


def manual_pages(dirs: Sequence[str] = MAN_DIRS) -> list[Path]:
    """The compressed German manual pages under ``dirs``, sorted."""
    return sorted(p for d in dirs for p in Path(d).glob("man*/*.gz") if p.is_file())


def render(page: Path) -> str:
    """The page as plain UTF-8 text (``groff -k`` reads the page's own encoding)."""
    with gzip.open(page) as handle:
        source = handle.read()
    result = subprocess.run(["groff", "-k", "-man", "-Tutf8", "-P-cbou", "-rLL=1000n"], input=source,
                            capture_output=True, timeout=60, check=False)
    return result.stdout.decode("utf-8", "replace")


def paragraphs(rendered: str) -> list[str]:
    """The body paragraphs of a rendered page: runs of indented lines (headings, the header and the
    footer start at column 0; blank lines end a paragraph)."""
    out: list[str] = []
    current: list[str] = []
    for line in [*rendered.splitlines(), ""]:
        if line.strip() and line[0].isspace():
            current.append(line.strip())
        elif current:
            out.append(" ".join(current))
            current = []
    return out


def prose_sentences(text: str, min_words: int = 15, max_words: int = 30) -> list[str]:
    """Sentences of ``min_words``-``max_words`` words that read as prose (no paths, options, markup)."""
    out = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        if (min_words <= len(sentence.split()) <= max_words and sentence[0].isupper() and sentence[-1] in ".!?"
                and "\ufffd" not in sentence and not _NOT_PROSE.search(sentence)):
            out.append(sentence)
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("SPEECHGRPO_CACHE", Path.home() / ".cache" / "speechgrpo")) / "corpus"


def manpage_sentences(dirs: Sequence[str] = MAN_DIRS) -> list[str]:
    """The distinct prose sentences of the German manual pages, in page order; cached per set of pages."""
    pages = manual_pages(dirs)
    if not pages:
        raise CorpusUnavailable(f"no German manual pages under {', '.join(dirs)}; install them ({INSTALL_HINT}) "
                                "or use the generated corpus")
    if shutil.which("groff") is None:
        raise CorpusUnavailable(f"groff is needed to read the manual pages ({INSTALL_HINT})")
    key = hashlib.sha256("\n".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in pages).encode())
    cached = cache_dir() / f"manpages-de-{key.hexdigest()[:16]}.txt"
    if cached.is_file():
        return cached.read_text(encoding="utf-8").splitlines()
    seen: dict[str, None] = {}
    for page in pages:
        for paragraph in paragraphs(render(page)):
            for sentence in prose_sentences(paragraph):
                seen.setdefault(sentence)
    sentences = list(seen)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return sentences


class _ErrorModel:
    """MT-like errors drawn from the corpus' own words (``Counter`` of word frequencies)."""

    def __init__(self, frequencies: Counter[str]) -> None:
        ranked = [w for w, _ in frequencies.most_common()]
        self.rank = {w: i for i, w in enumerate(ranked)}
        self.ranked = ranked
        self.function_words = ranked[:100]

    def similar_word(self, word: str, rng: random.Random) -> str:
        """A word of similar frequency: a wrong lexical choice."""
        i = self.rank.get(word, len(self.ranked) // 2)
        j = min(len(self.ranked) - 1, max(0, i + rng.randint(-50, 50)))
        return self.ranked[j]

    def hypothesis(self, reference: str, rng: random.Random, rate: float) -> str:
        words = reference.split()
        out: list[str] = []
        for word in words:
            u = rng.random()
            if u < rate * 0.15:  # dropped
                continue
            if u < rate * 0.45:  # another inflection of the same stem
                m = _INFLECTED.match(word)
                if m:
                    word = m["stem"] + rng.choice(_ENDINGS) + m["punct"]
            elif u < rate * 0.75:  # another word
                tail = word[len(word.rstrip(".,;:!?")):]
                word = self.similar_word(word.rstrip(".,;:!?"), rng) + tail
            out.append(word)
            if rng.random() < rate * 0.1:  # inserted
                out.append(rng.choice(self.function_words))
        for _ in range(int(rate * len(out) / 4)):  # neighbours swapped
            if len(out) > 2:
                i = rng.randrange(len(out) - 1)
                out[i], out[i + 1] = out[i + 1], out[i]
        if len(out) > 6 and rng.random() < rate * 1.5:  # a phrase moved
            length = rng.randint(2, 5)
            start = rng.randrange(len(out) - length)
            phrase = out[start:start + length]
            del out[start:start + length]
            at = rng.randint(0, len(out))
            out[at:at] = phrase
        if out and rng.random() < rate:  # punctuation
            out[-1] = out[-1].rstrip(".!?") + rng.choice(["", ".", " .", "!"])
        return " ".join(out) if out else words[0]


def _short_answer(sentence: str, rng: random.Random) -> str:
    """A 1-6-word span of a sentence, as a spoken-QA answer is a phrase of the passage."""
    words = [w.strip(",;:") or w for w in sentence.rstrip(".!?").split()]
    length = rng.randint(1, min(6, len(words)))
    start = rng.randrange(len(words) - length + 1)
    answer = " ".join(words[start:start + length])
    return answer[0].upper() + answer[1:] + rng.choice(["", "", "."])


def make_manpage_corpus(n_references: int = 3_000, group_size: int = 16, seed: int = 1234,
                        sentences: Sequence[str] | None = None, style: str = "news") -> Corpus:
    """``n_references`` references drawn from the manual-page sentences (seeded), with ``group_size`` MT-like
    hypotheses each.

    ``style``: ``news`` (one sentence, 15-30 words), ``long`` (3-5 consecutive sentences of a page) or
    ``short`` (a 1-6-word span of a sentence; a sixth of its hypotheses are another sentence's span, a
    wrong answer). Raises :class:`CorpusUnavailable` when the German manual pages or groff are missing.
    """
    if n_references < 1 or group_size < 1:
        raise ValueError("n_references and group_size must be at least 1")
    if style not in STYLES:
        raise ValueError(f"unknown style={style!r}; use one of {STYLES}")
    pool = list(sentences) if sentences is not None else manpage_sentences()
    rng = random.Random(seed)
    picks = (rng.sample(range(len(pool)), n_references) if n_references <= len(pool)
             else [rng.randrange(len(pool)) for _ in range(n_references)])
    if style == "long":
        chosen = [" ".join(pool[(i + j) % len(pool)] for j in range(rng.randint(3, 5))) for i in picks]
    elif style == "short":
        chosen = [_short_answer(pool[i], rng) for i in picks]
    else:
        chosen = [pool[i] for i in picks]
    model = _ErrorModel(Counter(w.rstrip(".,;:!?") for s in pool for w in s.split()))
    hypotheses = []
    for reference in chosen:
        for k in range(group_size):
            if style == "short" and rng.random() < 1 / 6:
                hypotheses.append(_short_answer(rng.choice(pool), rng))
                continue
            rate = 0.1 + 0.6 * (k / max(1, group_size - 1)) * rng.uniform(0.8, 1.2)
            hypotheses.append(model.hypothesis(reference, rng, rate))
    kind = {"news": "sentences", "long": "passages of 3-5 sentences", "short": "1-6-word answers"}[style]
    source = f"German manual pages (real text, {len(pool):,} sentences) as {kind}, MT-like errors, seed {seed}"
    return Corpus(chosen, hypotheses, group_size, source)

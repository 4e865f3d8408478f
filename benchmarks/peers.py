"""Speed and exactness of speechgrpo's batched metrics against the fast third-party implementations on PyPI.

All of them run single-threaded (``RAYON_NUM_THREADS``, ``OMP_NUM_THREADS``, ... = 1, set before anything
loads, and ``torch.set_num_threads(1)``) on the same real text: GRPO groups of German and French manual-page
sentences, French with the no-break spaces (U+00A0) of its typography, German with its „quotes“, hypotheses
from ``make_manpage_corpus``'s MT-like error model. Per metric and implementation:

- speed: its fastest way to score every pair (a batch call where it has one, else one call per pair),
  timed ``--repeats`` times interleaved with the others, median wall time; caches cleared and the garbage
  collector run before every timed call; ``cpu/wall`` above 1 would mean it used more than one core;
- exactness: its per-pair values on the first ``--exact-pairs`` pairs against the reference implementation
  of the definition it computes (jiwer, rouge-score, sacrebleu): identical floats, within 1e-9, max |diff|.

A peer that computes another definition than speechgrpo's default (BLEU without smoothing, ...) is compared
with speechgrpo computing that definition. The environment with every peer: ``make setup-peers``.

    .venv-peers/bin/python benchmarks/peers.py                      # all metrics, ~5 min on 2 cores
    .venv-peers/bin/python benchmarks/peers.py --metrics wer,cer --groups 500 --markdown peers.md
"""

# ruff: noqa: E402  (the thread counts must be in the environment before the native libraries load)
from __future__ import annotations

import os

#: Threads each native library may use: 1, or PEERS_THREADS (the child process of the all-cores rows).
THREADS = int(os.environ.get("PEERS_THREADS", "1"))
THREAD_VARIABLES = ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS")
for _variable in THREAD_VARIABLES:
    os.environ[_variable] = str(THREADS)

import argparse
import gc
import hashlib
import itertools
import json
import logging
import math
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import common
import numpy as np

from speechgrpo.bench import manpage_corpus
from speechgrpo.bench.corpus import Corpus
from speechgrpo.bench.reference_implementations import clear_caches, compare_scores
from speechgrpo.metrics.base import package_version

PACKAGES = ("speechgrpo", "numpy", "numba", "torch", "sacrebleu", "jiwer", "rouge-score", "rapidfuzz", "werx",
            "universal-edit-distance", "editdistance", "werpy", "rouge-score-rs", "rouge-rust", "bleuscore",
            "fast-bleu", "fastchrf", "torchmetrics", "rxlm")
MAN_DIRS = {"de": "/usr/share/man/de", "fr": "/usr/share/man/fr"}
NBSP = "\u00a0"
_NBSP_STAND_IN = "\ue000"  # a private-use character: not whitespace, so the sentence filters keep it
QUOTES = "«»„“”‚‘’‹›"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
TOLERANCE = 1e-9


# --- corpus ----------------------------------------------------------------------------------------------

def sentences_keeping_nbsp(directory: str) -> list[str]:
    """``manpage_sentences(dirs=(directory,))`` with its U+00A0 kept, cached like it.

    ``manpage_sentences`` normalises whitespace with ``" ".join(text.split())``, which turns every U+00A0
    into a space (it finds 0 in the French pages, whose rendering holds ~1,800). Here U+00A0 is replaced by
    a private-use character while the same filters (``paragraphs``, ``prose_sentences``) run, then restored.
    """
    pages = manpage_corpus.manual_pages((directory,))
    if not pages or shutil.which("groff") is None:
        raise SystemExit(f"no manual pages under {directory} or no groff: apt-get install manpages-de manpages-fr "
                         "groff-base")
    key = hashlib.sha256("\n".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in pages).encode())
    cached = manpage_corpus.cache_dir() / f"peers-{Path(directory).name}-{key.hexdigest()[:16]}.txt"
    if cached.is_file():
        return cached.read_text(encoding="utf-8").split("\n")[:-1]
    seen: dict[str, None] = {}
    for page in pages:
        for paragraph in manpage_corpus.paragraphs(manpage_corpus.render(page).replace(NBSP, _NBSP_STAND_IN)):
            for sentence in manpage_corpus.prose_sentences(paragraph):
                seen.setdefault(sentence.replace(_NBSP_STAND_IN, NBSP))
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text("".join(s + "\n" for s in seen), encoding="utf-8")
    return list(seen)


def keep_separators(reference: str, hypothesis: str) -> str:
    """``hypothesis`` with the reference's separator between two words that are neighbours in both, where the
    reference has another separator than one space (U+00A0): the error model joins words with spaces."""
    parts = re.split(r"(\s+)", reference)
    separators = {(parts[i - 1], parts[i + 1]): parts[i] for i in range(1, len(parts) - 1, 2) if parts[i] != " "}
    words = hypothesis.split()
    if not separators or not words:
        return hypothesis
    return words[0] + "".join(separators.get(pair, " ") + pair[1] for pair in itertools.pairwise(words))


def build_corpus(groups: int, group_size: int, seed: int, french_share: float) -> tuple[Corpus, list[str]]:
    """``groups`` references (``french_share`` of them French, the rest German) with ``group_size`` hypotheses
    each, the groups shuffled; and the language of every group."""
    n_french = round(groups * french_share)
    items: list[tuple[str, str, list[str]]] = []
    for offset, (language, n) in enumerate((("de", groups - n_french), ("fr", n_french))):
        if n == 0:
            continue
        corpus = manpage_corpus.make_manpage_corpus(n, group_size, seed + offset,
                                                   sentences=sentences_keeping_nbsp(MAN_DIRS[language]))
        for g, reference in enumerate(corpus.references):
            hyps = corpus.hypotheses[g * group_size:(g + 1) * group_size]
            items.append((language, reference, [keep_separators(reference, h) for h in hyps]))
    random.Random(seed).shuffle(items)
    source = (f"German and French manual pages (real text; U+00A0 kept, also in hypotheses where the words on both "
              f"sides are unchanged neighbours), MT-like errors, seed {seed}")
    corpus = Corpus([r for _, r, _ in items], [h for *_, hyps in items for h in hyps], group_size, source)
    return corpus, [language for language, *_ in items]


def character_counts(texts: Sequence[str], name: str) -> str:
    """How many U+00A0, other non-ASCII whitespace and typographic quotes ``texts`` hold, and in how many."""
    kinds = {"U+00A0": lambda c: c == NBSP, "other non-ASCII whitespace": lambda c: c.isspace() and c > "\x7f"
             and c != NBSP, f"typographic quotes {QUOTES}": lambda c: c in QUOTES}
    out = []
    for kind, test in kinds.items():
        per_text = [sum(map(test, text)) for text in texts]
        holding = sum(n > 0 for n in per_text)
        out.append(f"{kind} {sum(per_text):,} in {holding:,} ({holding / max(1, len(texts)):.1%})")
    return f"{name}: " + "; ".join(out)


def corpus_lines(corpus: Corpus, languages: list[str]) -> list[str]:
    chars = {name: sum(map(len, texts)) / max(1, len(texts))
             for name, texts in (("reference", corpus.references), ("hypothesis", corpus.hypotheses))}
    return [corpus.describe(),
            f"groups by language: {languages.count('de'):,} German, {languages.count('fr'):,} French; "
            f"{chars['reference']:.1f} characters per reference, {chars['hypothesis']:.1f} per hypothesis",
            character_counts(corpus.references, f"references ({len(corpus.references):,})"),
            character_counts(corpus.hypotheses, f"hypotheses ({len(corpus.hypotheses):,})")]


# --- implementations -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Batch:
    """Pairs in GRPO groups (``refs[i]`` is shared by the ``group_size`` hypotheses of its group) and, for
    token-id BLEU, the same pairs as ``(candidates, references)`` tensors of ``--token-batch`` rows each."""

    hyps: list[str]
    refs: list[str]
    group_size: int
    token_chunks: tuple[tuple[Any, Any], ...] = ()

    def head(self, pairs: int) -> Batch:
        return replace(self, hyps=self.hyps[:pairs], refs=self.refs[:pairs])

    def warm_up(self) -> Batch:
        """The first groups, 64 pairs at least (past every metric's few-pairs path), and the first chunk of ids."""
        return replace(self.head(-(-64 // self.group_size) * self.group_size), token_chunks=self.token_chunks[:1])

    def groups(self) -> Iterator[tuple[str, list[str]]]:
        for i in range(0, len(self.hyps), self.group_size):
            yield self.refs[i], self.hyps[i:i + self.group_size]


BatchFn = Callable[[Batch], np.ndarray]
"""``score(batch) -> values``, shape ``(pairs,)`` or ``(pairs, 3)`` for ROUGE-1/2/L F."""


class Unavailable(Exception):
    """The implementation cannot run here (the message says why)."""


def per_pair(score: Callable[[str, str], Any], width: int = 1) -> BatchFn:
    """One call per (hypothesis, reference) pair; a pair whose call raises gets NaN (counted as an error)."""
    failed: Any = (math.nan,) * width if width > 1 else math.nan

    def run(batch: Batch) -> np.ndarray:
        out = []
        for h, r in zip(batch.hyps, batch.refs, strict=True):
            try:
                out.append(score(h, r))
            except Exception:
                out.append(failed)
        return np.asarray(out, dtype=np.float64)

    return run


def word_rate(distance: Callable[[list[str], list[str]], int]) -> BatchFn:
    """WER from a word-level edit distance on ``str.split()`` words, one call per pair."""
    def score(h: str, r: str) -> float:
        words = r.split()
        return distance(words, h.split()) / len(words)

    return per_pair(score)


def char_rate(distance: Callable[[str, str], int]) -> BatchFn:
    return per_pair(lambda h, r: distance(r, h) / len(r))


def ours(metric_name: str, **options: Any) -> Callable[[], BatchFn]:
    """speechgrpo's batched call: ``Metric(**options).score(hyps, refs)`` (ROUGE: its three F components)."""
    def make() -> BatchFn:
        from speechgrpo import metrics

        metric = getattr(metrics, metric_name)(**options)
        if metric_name == "ROUGE":
            def rouge(b: Batch) -> np.ndarray:
                components = metric.score_components(b.hyps, b.refs)
                return np.column_stack([components[f"{t}_fmeasure"] for t in ROUGE_TYPES])

            return rouge
        return lambda b: metric.score(b.hyps, b.refs)

    return make


def ours_token_bleu() -> BatchFn:
    from speechgrpo.metrics.token_bleu import token_bleu

    return lambda b: np.concatenate([token_bleu(c, r, pad_id=0, smooth_method="floor", smooth_value=0.1,
                                                effective_order=False).numpy() for c, r in b.token_chunks])


def werx_wer() -> BatchFn:
    import werx

    return per_pair(lambda h, r: werx.wer(r, h))


def ued(function: str) -> Callable[[], BatchFn]:
    def make() -> BatchFn:
        import universal_edit_distance

        score = getattr(universal_edit_distance, function)
        return lambda b: np.asarray(score(b.hyps, b.refs), dtype=np.float64)

    return make


def rapidfuzz_cpdist(words: bool) -> Callable[[], BatchFn]:
    """``process.cpdist`` (one call, ``workers=1``) on ``str.split()`` words or on the strings."""
    def make() -> BatchFn:
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        def run(b: Batch) -> np.ndarray:
            refs: Sequence[Sequence[str]] = [r.split() for r in b.refs] if words else b.refs
            hyps: Sequence[Sequence[str]] = [h.split() for h in b.hyps] if words else b.hyps
            distances = process.cpdist(refs, hyps, scorer=Levenshtein.distance, workers=1)
            return distances / np.fromiter(map(len, refs), dtype=np.float64, count=len(refs))

        return run

    return make


def rapidfuzz_loop_wer() -> BatchFn:
    from rapidfuzz.distance import Levenshtein

    return word_rate(Levenshtein.distance)


def editdistance_wer() -> BatchFn:
    import editdistance

    return word_rate(editdistance.eval)


def editdistance_cer() -> BatchFn:
    import editdistance

    return char_rate(editdistance.eval)


def rapidfuzz_loop_cer() -> BatchFn:
    from rapidfuzz.distance import Levenshtein

    return char_rate(Levenshtein.distance)


def werpy_wers() -> BatchFn:
    import werpy

    def run(b: Batch) -> np.ndarray:
        values = werpy.wers(b.refs, b.hyps)
        if values is None:  # werpy prints the error and returns None
            raise ValueError("werpy.wers returned None")
        return np.asarray(values, dtype=np.float64)

    return run


def torchmetrics_rate(function: str) -> Callable[[], BatchFn]:
    def make() -> BatchFn:
        from torchmetrics.functional import text

        score = getattr(text, function)
        return per_pair(lambda h, r: float(score(h, r)))

    return make


def rouge_score_rs(batched: bool) -> Callable[[], BatchFn]:
    def make() -> BatchFn:
        from rouge_score_rs import RougeScorer

        scorer = RougeScorer(list(ROUGE_TYPES))
        if batched:
            return lambda b: np.array([[s[t].fmeasure for t in ROUGE_TYPES]
                                       for s in scorer.score_batch(b.refs, b.hyps)], dtype=np.float64)
        return per_pair(lambda h, r: tuple(s.fmeasure for s in map(scorer.score(r, h).get, ROUGE_TYPES)), 3)

    return make


def fast_rouge_batch() -> BatchFn:
    import fast_rouge

    def run(b: Batch) -> np.ndarray:
        result = fast_rouge.score_batch_flat(b.refs, b.hyps)
        return np.column_stack([getattr(result, f"{t}_fmeasure") for t in ROUGE_TYPES])

    return run


def torchmetrics_rouge() -> BatchFn:
    from torchmetrics.functional.text import rouge_score

    def score(h: str, r: str) -> tuple[float, ...]:
        values = rouge_score(h, r, rouge_keys=ROUGE_TYPES)
        return tuple(float(values[f"{t}_fmeasure"]) for t in ROUGE_TYPES)

    return per_pair(score, 3)


def bleuscore_none() -> BatchFn:
    import bleuscore

    return per_pair(lambda h, r: 100 * bleuscore.compute([[r]], [h], smooth=False, ref_len_method="sacrebleu")["bleu"])


def fast_bleu_floor() -> BatchFn:
    """One ``fast_bleu.BLEU`` per group (its reference), ``get_score`` on the group's hypotheses, all tokenized
    with sacrebleu's 13a tokenizer (timed: BLEU on text includes it)."""
    from fast_bleu import BLEU as FastBLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenize = Tokenizer13a()

    def run(b: Batch) -> np.ndarray:
        scores: list[float] = []
        for ref, hyps in b.groups():
            bleu = FastBLEU([tokenize(ref).split()], smoothing_func=1)
            scores.extend(bleu.get_score([tokenize(h).split() for h in hyps])[4])
        return 100 * np.asarray(scores, dtype=np.float64)

    return run


def torchmetrics_sacre_bleu() -> BatchFn:
    from torchmetrics.functional.text import sacre_bleu_score

    return per_pair(lambda h, r: 100 * float(sacre_bleu_score([h], [[r]], smooth=False)))


def fastchrf(function: str) -> Callable[[], BatchFn]:
    """``pairwise_chrf`` / ``aggregate_chrf`` on the groups: each group's hypotheses against its reference."""
    def make() -> BatchFn:
        import fastchrf

        score = getattr(fastchrf, function)

        def run(b: Batch) -> np.ndarray:
            groups = list(b.groups())
            values = score([hyps for _, hyps in groups], [[ref] for ref, _ in groups])
            return np.asarray(values, dtype=np.float64).reshape(len(b.hyps))

        return run

    return make


def torchmetrics_chrf() -> BatchFn:
    from torchmetrics.functional.text import chrf_score

    def run(b: Batch) -> np.ndarray:
        _, sentences = chrf_score(b.hyps, [[r] for r in b.refs], n_word_order=0, return_sentence_level_score=True)
        return 100 * np.asarray(sentences, dtype=np.float64)

    return run


def sacrebleu_mojo() -> BatchFn:
    raise Unavailable("not run: every release (0.1.5, 0.2.3, 0.2.4) requires Python >= 3.12; not installable on "
                      f"Python {sys.version.split()[0]}")


def tensorbleu_floor() -> BatchFn:
    from rxlm.metrics.tensorbleu import tensor_sentence_bleu

    return lambda b: np.concatenate([100 * tensor_sentence_bleu(c, r.unsqueeze(1), pad_token_id=0,
                                                                smoothing_method="floor", smoothing_epsilon=0.1)
                                     .double().numpy() for c, r in b.token_chunks])


# --- reference implementations ---------------------------------------------------------------------------

PairFn = Callable[[str, str], Any]


def jiwer_reference(function: str) -> Callable[[], PairFn]:
    def make() -> PairFn:
        import jiwer

        measure = getattr(jiwer, function)
        return lambda h, r: measure(r, h)

    return make


def rouge_reference() -> PairFn:
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    return lambda h, r: tuple(s.fmeasure for s in map(scorer.score(r, h).get, ROUGE_TYPES))


def sacrebleu_reference(class_name: str, **options: Any) -> Callable[[], PairFn]:
    def make() -> PairFn:
        from sacrebleu import metrics

        logging.getLogger("sacrebleu").setLevel(logging.ERROR)  # "enable effective_order" on every call
        scorer = getattr(metrics, class_name)(**options)
        return lambda h, r: scorer.sentence_score(h, [r]).score

    return make


# --- the comparison --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Definition:
    """What a score means: its reference implementation and speechgrpo's batched call for it."""

    label: str
    reference_text: str
    reference: Callable[[], PairFn]
    ours: Callable[[], BatchFn]


@dataclass(frozen=True)
class Peer:
    name: str
    definition: str
    make: Callable[[], BatchFn]
    #: Timed on the first ``--slow-pairs`` pairs only (milliseconds per pair).
    slow: bool = False
    #: Its batch call is multi-threaded (rayon): also timed on all cores in a child process.
    threaded: bool = False


@dataclass(frozen=True)
class Section:
    metric: str
    title: str
    definitions: dict[str, Definition]
    peers: tuple[Peer, ...]
    width: int = 1
    notes: tuple[str, ...] = ()


WER_DEF = {"jiwer": Definition("jiwer WER", "jiwer.wer(r, h)", jiwer_reference("wer"), ours("WER"))}
CER_DEF = {"jiwer": Definition("jiwer CER", "jiwer.cer(r, h)", jiwer_reference("cer"), ours("CER"))}
BLEU_DEFS = {
    "exp": Definition("sentence BLEU", "sacrebleu BLEU(effective_order=True).sentence_score(h, [r]).score",
                      sacrebleu_reference("BLEU", effective_order=True), ours("BLEU")),
    "none": Definition("no smoothing", "sacrebleu BLEU(smooth_method='none', effective_order=False)"
                       ".sentence_score(h, [r]).score",
                       sacrebleu_reference("BLEU", smooth_method="none", effective_order=False),
                       ours("BLEU", smooth_method="none", effective_order=False)),
    "floor": Definition("floor 0.1", "sacrebleu BLEU(smooth_method='floor', smooth_value=0.1, effective_order=False)"
                        ".sentence_score(h, [r]).score",
                        sacrebleu_reference("BLEU", smooth_method="floor", smooth_value=0.1, effective_order=False),
                        ours("BLEU", smooth_method="floor", smooth_value=0.1, effective_order=False)),
}
SECTIONS = {section.metric: section for section in [
    Section("wer", "WER", WER_DEF, (
        Peer("werx (werx.wer per pair)", "jiwer", werx_wer),
        Peer("universal-edit-distance (word_error_rate_array)", "jiwer", ued("word_error_rate_array")),
        Peer("rapidfuzz (process.cpdist on words, workers=1)", "jiwer", rapidfuzz_cpdist(words=True)),
        Peer("rapidfuzz (Levenshtein.distance per pair)", "jiwer", rapidfuzz_loop_wer),
        Peer("editdistance (eval per pair)", "jiwer", editdistance_wer),
        Peer("werpy (wers)", "jiwer", werpy_wers),
        Peer("torchmetrics (word_error_rate per pair)", "jiwer", torchmetrics_rate("word_error_rate"), slow=True),
    ), notes=("jiwer collapses runs of two or more whitespace characters to one space, strips, then splits at ' ' "
              "only: a lone U+00A0 stays inside a word ('Note\\xa0:' is one word); str.split() (the rapidfuzz and "
              "editdistance rows), werx, werpy and torchmetrics split at U+00A0 too; universal-edit-distance splits "
              "at ' ' only but does not collapse runs (' \\xa0x' gives the word '\\xa0x')",
              "torchmetrics returns float32")),
    Section("cer", "CER", CER_DEF, (
        Peer("universal-edit-distance (character_error_rate_array)", "jiwer", ued("character_error_rate_array")),
        Peer("rapidfuzz (process.cpdist on strings, workers=1)", "jiwer", rapidfuzz_cpdist(words=False)),
        Peer("rapidfuzz (Levenshtein.distance per pair)", "jiwer", rapidfuzz_loop_cer),
        Peer("editdistance (eval per pair)", "jiwer", editdistance_cer),
        Peer("torchmetrics (char_error_rate per pair)", "jiwer", torchmetrics_rate("char_error_rate"), slow=True),
    ), notes=("jiwer strips leading and trailing whitespace before counting characters (and the reference length); "
              "the peers count it, so a hypothesis ending in a space (the error model makes a few) differs",
              "torchmetrics returns float32")),
    Section("rouge", "ROUGE-1/2/L F-measure (three values per pair)", {
        "rouge": Definition("rouge-score", "rouge_score RougeScorer(['rouge1', 'rouge2', 'rougeL']).score(r, h) F",
                            rouge_reference, ours("ROUGE", rouge_type=list(ROUGE_TYPES)))}, (
        Peer("rouge-score-rs (RougeScorer.score per pair)", "rouge", rouge_score_rs(batched=False)),
        Peer("rouge-score-rs (RougeScorer.score_batch)", "rouge", rouge_score_rs(batched=True), threaded=True),
        Peer("rouge-rust (fast_rouge.score_batch_flat)", "rouge", fast_rouge_batch, threaded=True),
        Peer("torchmetrics (rouge_score per pair)", "rouge", torchmetrics_rouge, slow=True),
    ), width=3, notes=("rouge-score-rs and rouge-rust score batches with rayon: RAYON_NUM_THREADS=1 here; "
                       "their all-cores times are the rows marked 'all cores' (a child process with RAYON_NUM_THREADS "
                       "= the usable cores), outside the comparison",
                       "torchmetrics returns float32")),
    Section("bleu", "BLEU (sentence level, 0-100)", BLEU_DEFS, (
        Peer("bleuscore (compute per pair, smooth=False, ref_len_method='sacrebleu')", "none", bleuscore_none),
        Peer("fast-bleu (BLEU per group, smoothing_func=1, sacrebleu 13a tokens)", "floor", fast_bleu_floor),
        Peer("torchmetrics (sacre_bleu_score per pair, smooth=False)", "none", torchmetrics_sacre_bleu, slow=True),
    ), notes=("no peer computes sacrebleu's sentence BLEU (exp smoothing, effective order); bleuscore's "
              "smooth=True adds 1 on every order (sacrebleu's add-k skips unigrams), torchmetrics' smooth=True "
              "also returns 0 when a count is 0: neither is a sacrebleu definition",
              "fast-bleu's smoothing_func=1 is NLTK's method1 (0.1 / total for a zero count), sacrebleu's floor "
              "0.1; it takes token lists, so the timed call tokenizes with sacrebleu's Tokenizer13a first",
              "torchmetrics returns float32")),
    Section("chrf", "chrF (0-100)", {
        "chrf": Definition("sacrebleu chrF", "sacrebleu CHRF().sentence_score(h, [r]).score",
                           sacrebleu_reference("CHRF"), ours("CHRF"))}, (
        Peer("fastchrf (pairwise_chrf on the groups)", "chrf", fastchrf("pairwise_chrf")),
        Peer("fastchrf (aggregate_chrf on the groups)", "chrf", fastchrf("aggregate_chrf")),
        Peer("torchmetrics (chrf_score, n_word_order=0, sentence scores of one call)", "chrf", torchmetrics_chrf,
             slow=True),
        Peer("sacrebleu-mojo", "chrf", sacrebleu_mojo),
    ), notes=("sacrebleu removes all whitespace (str.split) before taking character n-grams; torchmetrics removes "
              "only ' ', so a U+00A0 counts as a character there; torchmetrics returns float32",)),
    Section("token_bleu", "token-id BLEU on torch tensors (CPU; 13a tokens of the corpus as ids)", {
        "floor": Definition("floor 0.1", BLEU_DEFS["floor"].reference_text + " on the text",
                            BLEU_DEFS["floor"].reference, ours_token_bleu)}, (
        Peer("TensorBLEU (rxlm tensor_sentence_bleu, smoothing_method='floor')", "floor", tensorbleu_floor),
    ), notes=("ids: every sacrebleu 13a token of the corpus numbered from 1 (0 pads), so the statistics are "
              "those of sacrebleu on the text; both sides get the same right-padded chunks of --token-batch rows, "
              "built outside the timings",
              "TensorBLEU computes in float32 and takes log(p + 1e-12); its 'exp' smoothing is not sacrebleu's, "
              "its 'floor' is")),
]}


@dataclass
class Exactness:
    compared: int
    identical: int
    close: int
    max_diff: float
    errors: int

    @property
    def exact(self) -> bool:
        return self.errors == 0 and self.identical == self.compared

    def text(self) -> str:
        out = f"{self.identical:,}/{self.compared:,}"
        if not self.exact:
            out += f" (within {TOLERANCE:g}: {self.close:,}), max |diff| {self.max_diff:.3g}"
        return out + (f", {self.errors:,} errors" if self.errors else "")


def nan_rows(values: np.ndarray) -> int:
    return int(np.isnan(values.reshape(len(values), -1)).any(axis=1).sum())


def exactness(values: np.ndarray, expected: np.ndarray) -> Exactness:
    """``values`` against the reference's on the pairs both have, but those where the reference raised (ROUGE:
    each of the three values counts)."""
    n = min(len(values), len(expected))
    kept = ~np.isnan(expected[:n].reshape(n, -1)).any(axis=1)
    got, want = values[:n][kept].reshape(-1).tolist(), expected[:n][kept].reshape(-1).tolist()
    mismatches, max_diff = compare_scores(got, want, 0.0)
    far, _ = compare_scores(got, want, TOLERANCE)
    return Exactness(len(got), len(got) - mismatches, len(got) - far, max_diff, nan_rows(values))


@dataclass
class Row:
    name: str
    definition: str
    pairs: int
    is_ours: bool = False
    status: str = ""
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    check: Exactness | None = None
    #: Timed in a child process with every core (rayon's default); outside the single-threaded comparison.
    all_cores: bool = False

    @property
    def wall(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.pairs / self.wall if self.wall > 0 else math.inf


def timed(fn: BatchFn, batch: Batch) -> tuple[float, float, np.ndarray]:
    """Wall and CPU seconds of one call (caches cleared and garbage collected first) and its values."""
    clear_caches()
    gc.collect()
    cpu, start = time.process_time(), time.perf_counter()
    values = fn(batch)
    return time.perf_counter() - start, time.process_time() - cpu, np.asarray(values, dtype=np.float64)


def all_cores_time(section: Section, peer: Peer, batch: Batch, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``peer`` in a child process whose native libraries may use every core."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8", delete=False) as handle:
        json.dump({"hyps": batch.hyps, "refs": batch.refs, "group_size": batch.group_size}, handle)
    try:
        command = [sys.executable, os.path.abspath(__file__), "--child", f"{section.metric}:{peer.name}",
                   "--child-input", handle.name, "--repeats", str(repeats)]
        env = {**os.environ, "PEERS_THREADS": str(len(os.sched_getaffinity(0)))}
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    finally:
        os.unlink(handle.name)
    wall, cpu = map(float, result.stdout.split()[-2:])
    return wall, cpu


def child(target: str, path: str, repeats: int) -> int:
    """``--child`` (:func:`all_cores_time`): print the median wall and CPU seconds of one peer."""
    metric, name = target.split(":", 1)
    peer = next(p for p in SECTIONS[metric].peers if p.name == name)
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    batch = Batch(data["hyps"], data["refs"], data["group_size"])
    fn = peer.make()
    fn(batch.warm_up())
    runs = [timed(fn, batch)[:2] for _ in range(repeats)]
    print(statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
    return 0


def contestants(section: Section, n: int, slow_pairs: int) -> list[tuple[Row, BatchFn | None]]:
    """speechgrpo for every definition (on all pairs and on every peer's number of pairs), then the peers."""
    pairs = {peer.name: min(n, slow_pairs) if peer.slow else n for peer in section.peers}
    out: list[tuple[Row, BatchFn | None]] = []
    for key, definition in section.definitions.items():
        fn = definition.ours()
        for size in sorted({n} | {pairs[p.name] for p in section.peers if p.definition == key}, reverse=True):
            out.append((Row("speechgrpo", key, size, is_ours=True), fn))
    for peer in section.peers:
        row = Row(peer.name, peer.definition, pairs[peer.name])
        try:
            out.append((row, peer.make()))
        except ImportError as err:
            row.status = f"not installed ({err})"
            out.append((row, None))
        except Unavailable as err:
            row.status = str(err)
            out.append((row, None))
    return out


def run_section(section: Section, batch: Batch, exact_pairs: int, slow_pairs: int, repeats: int,
                all_cores: bool) -> tuple[list[Row], dict[str, int]]:
    """Time every implementation of ``section``, interleaved, ``repeats`` times; check the values of each
    against its definition's reference. Returns the rows and the reference's errors per definition."""
    timed_rows = contestants(section, len(batch.hyps), slow_pairs)
    for row, fn in timed_rows:  # warm-up: compiled kernels, lazy imports, thread pools
        if fn is not None:
            try:
                fn(batch.warm_up())
            except Exception as err:
                row.status = f"failed: {type(err).__name__}: {err}"
    for repeat in range(repeats):
        for row, fn in timed_rows:
            if fn is None or row.status:
                continue
            try:
                wall, cpu, values = timed(fn, batch.head(row.pairs))
            except Exception as err:
                row.status = f"failed: {type(err).__name__}: {err}"
                continue
            row.seconds.append(wall)
            row.cpu.append(cpu)
            if repeat == 0:
                row.values = values
        print(f"[{section.metric}] repeat {repeat + 1}/{repeats} timed", file=sys.stderr, flush=True)
    rows = [row for row, _ in timed_rows]
    reference_errors = {}
    for key, definition in section.definitions.items():
        expected = per_pair(definition.reference(), section.width)(batch.head(exact_pairs))
        reference_errors[key] = nan_rows(expected)
        for row in rows:
            if row.definition == key and row.seconds:
                row.check = exactness(row.values, expected)
    if all_cores:
        for peer in section.peers:
            single = next(r for r in rows if r.name == peer.name)
            if peer.threaded and single.seconds:
                wall, cpu = all_cores_time(section, peer, batch.head(single.pairs), repeats)
                rows.append(Row(f"{peer.name}, all cores", peer.definition, single.pairs, seconds=[wall], cpu=[cpu],
                                all_cores=True))
    return rows, reference_errors


# --- report ----------------------------------------------------------------------------------------------

def ours_row(rows: list[Row], row: Row) -> Row | None:
    return next((r for r in rows if r.is_ours and r.definition == row.definition and r.pairs == row.pairs
                 and r.seconds), None)


def ratio(rows: list[Row], row: Row) -> str:
    """speechgrpo's pairs/s over the row's, same definition and pairs; marked when the row is not exact."""
    mine = ours_row(rows, row)
    if row.is_ours or not row.seconds or mine is None:
        return "-"
    text = f"{mine.rate / row.rate:.2f}x"
    if row.check is None or row.check.exact:
        return text
    close = row.check.errors == 0 and row.check.close == row.check.compared
    return text + (f" (within {TOLERANCE:g})" if close else " (not exact)")


def section_table(section: Section, rows: list[Row], markdown: bool) -> str:
    headers = ["implementation", "definition", "pairs", "identical/compared", "s", "pairs/s", "cpu/wall",
               "speechgrpo / peer"]
    body = []
    for row in rows:
        label = section.definitions[row.definition].label
        if not row.seconds:
            body.append([row.name, label, "-", row.status, "-", "-", "-", "-"])
            continue
        exact = "(same code as above)" if row.all_cores else row.check.text() if row.check else "-"
        body.append([row.name, label, f"{row.pairs:,}", exact, f"{row.wall:.3f}", f"{row.rate:,.0f}",
                     f"{statistics.median(c / w for c, w in zip(row.cpu, row.seconds, strict=True)):.2f}",
                     ratio(rows, row)])
    return common.format_table(headers, body, markdown, left=2)


def summary_table(results: dict[str, list[Row]], markdown: bool) -> str:
    """Per metric: the fastest peer with identical floats, the fastest within 1e-9 and the fastest of all."""
    kinds: dict[str, Callable[[Exactness], bool]] = {
        "exact": lambda c: c.exact,
        f"within {TOLERANCE:g}": lambda c: c.errors == 0 and c.close == c.compared,
        "any": lambda c: True,
    }
    headers = ["metric"] + [f"fastest peer ({kind}), pairs/s: speechgrpo / peer" for kind in kinds]
    body = []
    for metric, rows in results.items():
        peers = [r for r in rows if not r.is_ours and not r.all_cores and r.check is not None]
        cells = [metric]
        for test in kinds.values():
            best = max((r for r in peers if r.check is not None and test(r.check)), key=lambda r: r.rate, default=None)
            mine = ours_row(rows, best) if best is not None else None
            cells.append("none" if best is None or mine is None else
                         f"{best.name}: {best.rate:,.0f}; speechgrpo {mine.rate:,.0f}: {ratio(rows, best)}")
        body.append(cells)
    return common.format_table(headers, body, markdown)


def report_text(title: str, command: str, machine: dict[str, str], corpus: list[str], notes: list[str],
           sections: list[tuple[Section, list[Row], dict[str, int]]], markdown: bool) -> str:
    """The whole report as plain text or Markdown (same content)."""
    def heading(text: str, level: int) -> str:
        return "#" * level + " " + text if markdown else text.upper() if level == 2 else text

    def bullet(line: str) -> str:
        return f"- {line}" if markdown else f"  {line}"

    out = [heading(title, 1), f"Command: `{command}`" if markdown else f"command: {command}",
           common.format_machine(machine, markdown), heading("Corpus", 2), "\n".join(map(bullet, corpus)),
           "\n".join(map(bullet, notes))]
    results = {}
    for section, rows, reference_errors in sections:
        results[section.metric] = rows
        lines = [f"{d.label}: {d.reference_text}" + (f" (raised on {reference_errors[k]} pairs, not compared)"
                                                       if reference_errors[k] else "")
                 for k, d in section.definitions.items()]
        out += [heading(section.title, 2), section_table(section, rows, markdown),
                "\n".join(map(bullet, lines + list(section.notes)))]
    out += [heading("Fastest peers", 2), summary_table(results, markdown)]
    return "\n\n".join(out) + "\n"


# --- main ------------------------------------------------------------------------------------------------

def token_chunks(batch: Batch, rows: int) -> tuple[tuple[Any, Any], ...]:
    """The pairs as right-padded id tensors of ``rows`` rows: every 13a token numbered from 1, 0 pads."""
    import torch
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenize = Tokenizer13a()
    vocabulary: dict[str, int] = {}

    def ids(text: str) -> torch.Tensor:
        return torch.tensor([vocabulary.setdefault(t, len(vocabulary) + 1) for t in tokenize(text).split()])

    def padded(texts: list[str]) -> torch.Tensor:
        return torch.nn.utils.rnn.pad_sequence([ids(t) for t in texts], batch_first=True, padding_value=0)

    return tuple((padded(batch.hyps[i:i + rows]), padded(batch.refs[i:i + rows]))
                 for i in range(0, len(batch.hyps), rows))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=3000, help="references (groups) (default 3000)")
    parser.add_argument("--group-size", type=int, default=16, help="hypotheses per reference (default 16)")
    parser.add_argument("--seed", type=int, default=1234, help="corpus seed (default 1234)")
    parser.add_argument("--french-share", type=float, default=0.5,
                        help="share of the groups with a French reference, the rest German (default 0.5)")
    parser.add_argument("--metrics", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per implementation; the median is kept")
    parser.add_argument("--exact-pairs", type=int, default=4096,
                        help="pairs checked against the reference implementations (the first ones; default 4096)")
    parser.add_argument("--slow-pairs", type=int, default=512,
                        help="pairs timed for torchmetrics, 0.1-40 ms a pair (default 512)")
    parser.add_argument("--token-batch", type=int, default=256, help="rows per token-id BLEU call (default 256)")
    parser.add_argument("--no-all-cores", dest="all_cores", action="store_false",
                        help="skip the all-cores timings of the rayon peers")
    parser.add_argument("--markdown", metavar="PATH", help="also write the report as Markdown to PATH")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-input", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.child_input, args.repeats)
    names = [name.strip() for name in args.metrics.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or args.repeats < 1 or args.groups < 1 or args.group_size < 1:
        raise SystemExit(f"unknown metric(s) {unknown}; choose from {', '.join(SECTIONS)}" if unknown
                         else "--repeats, --groups and --group-size must be at least 1")

    import torch

    torch.set_num_threads(THREADS)
    machine = common.machine_info()
    machine["packages"] = ", ".join(f"{name} {package_version(name)}" for name in PACKAGES)
    machine["threads"] = ", ".join(f"{name}={os.environ[name]}" for name in THREAD_VARIABLES)
    corpus, languages = build_corpus(args.groups, args.group_size, args.seed, args.french_share)
    batch = Batch(corpus.hypotheses, corpus.pair_references, args.group_size)
    exact_pairs = min(args.exact_pairs, len(batch.hyps))
    with_nbsp = sum(NBSP in h or NBSP in r for h, r in zip(batch.hyps[:exact_pairs], batch.refs, strict=False))
    notes = [f"exactness on the first {exact_pairs:,} pairs ({exact_pairs // args.group_size:,} groups; the groups "
             f"are shuffled), of which {with_nbsp:,} hold a U+00A0",
             f"median of {args.repeats} interleaved runs; before each: sacrebleu's tokenizer caches and speechgrpo's "
             "reference caches cleared, gc.collect()",
             f"torchmetrics (0.1-40 ms a pair) runs on the first {min(args.slow_pairs, len(batch.hyps)):,} pairs "
             "only (--slow-pairs); speechgrpo is timed on those too for its ratio",
             "identical/compared: exactly equal floats out of values compared; otherwise also how many are within "
             f"{TOLERANCE:g} and the largest |diff|; errors: pairs on which the implementation raised",
             "speechgrpo / peer: speechgrpo's pairs/s over the peer's, same definition, same pairs (>1: speechgrpo "
             "faster); cpu/wall: process CPU time over wall time (about 1: one core)"]
    command = "benchmarks/peers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print("\n".join(corpus_lines(corpus, languages)), file=sys.stderr, flush=True)
    sections = []
    for name in names:
        section = SECTIONS[name]
        data = replace(batch, token_chunks=token_chunks(batch, args.token_batch)) if name == "token_bleu" else batch
        rows, reference_errors = run_section(section, data, exact_pairs, args.slow_pairs, args.repeats,
                                             args.all_cores)
        sections.append((section, rows, reference_errors))
    title = "speechgrpo against the fast peers on PyPI"
    print(report_text(title, command, machine, corpus_lines(corpus, languages), notes, sections, markdown=False))
    if args.markdown:
        Path(args.markdown).write_text(report_text(title, f".venv-peers/bin/python {command}", machine,
                                              corpus_lines(corpus, languages), notes, sections, markdown=True),
                                       encoding="utf-8")
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

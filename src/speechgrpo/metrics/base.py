"""The small base class every metric derives from (the sacrebleu pattern).

A metric object holds its configuration, scores a batch of (hypothesis, references) pairs into a
numpy array, optionally computes a corpus-level score, and describes itself with a signature string
that records every option and the versions of the code that produced the numbers.

Identical (hypothesis, references) pairs inside one batch are scored once: in GRPO a group of G
completions often holds duplicates, and every metric here is a pure function of its inputs.
"""

from __future__ import annotations

import functools
import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from operator import itemgetter
from typing import Any, ClassVar, TypeVar

import numpy as np

from speechgrpo._group_ids import factorize
from speechgrpo._validation import References, as_references, as_texts
from speechgrpo.metrics.jit import compiled_available

#: What the corpus functions named after sacrebleu's say when the reference layout is not explicit.
LAYOUT_HELP = (
    "pass the references by keyword, in one of two layouts: refs=[[refs of sample 0], [refs of sample 1], ...] "
    "(speechgrpo's per-sample layout: refs[i] holds sample i's references) or ref_streams=[[ref 1 of every "
    "sample], [ref 2 of every sample], ...] (sacrebleu's corpus_score layout; None for a sample with fewer "
    "references). A positional second argument is refused because, with as many reference sets as "
    "hypotheses, either reading is possible and they give different numbers.")


def corpus_references(n: int, positional: tuple[Any, ...], refs: References | None,
                      ref_streams: Sequence[Sequence[str | None]] | None, caller: str) -> References:
    """The per-sample references of a sacrebleu-named corpus call, from exactly one explicit layout."""
    if positional:
        raise TypeError(f"{caller}: {LAYOUT_HELP}")
    if (refs is None) == (ref_streams is None):
        raise TypeError(f"{caller}: give exactly one of refs= and ref_streams=; {LAYOUT_HELP}")
    if refs is not None:
        return refs
    assert ref_streams is not None
    if isinstance(ref_streams, (str, bytes)) or not isinstance(ref_streams, Sequence) or not ref_streams:
        raise TypeError(f"{caller}: ref_streams must be a non-empty list of reference streams "
                        f"(each a list of {n} strings), got {type(ref_streams).__name__}")
    for k, stream in enumerate(ref_streams):
        if isinstance(stream, (str, bytes)) or not isinstance(stream, Sequence):
            raise TypeError(f"{caller}: ref_streams[{k}] must be a list of {n} strings, got {type(stream).__name__}")
        if len(stream) != n:
            raise ValueError(f"{caller}: ref_streams[{k}] has {len(stream)} references but there are {n} "
                             "hypotheses (every stream holds one reference per hypothesis, None where missing)")
    per_sample: list[tuple[str, ...]] = []
    for i, column in enumerate(zip(*ref_streams, strict=True)):
        present = tuple(ref for ref in column if ref is not None)
        if not present:
            raise ValueError(f"{caller}: sample {i} has no reference in any stream (all None)")
        per_sample.append(present)
    return per_sample

Pairs = list[tuple[str, tuple[str, ...]]]


@dataclass(frozen=True)
class PairIndex:
    """A batch of pairs as indices for the compiled kernels.

    ``texts`` lists the distinct hypotheses, then the distinct reference strings (a hypothesis equal to a
    reference is listed twice: it costs one more tokenization, not a pass over every pair); pair ``i`` is
    hypothesis ``pair_hyp[i]`` against reference set ``pair_refset[i]``, whose texts are
    ``refset_texts[refset_ptr[s]:refset_ptr[s + 1]]``; ``by_refset`` orders pairs so that each
    reference set's pairs are adjacent (the kernels process one set's n-grams once).
    """

    texts: list[str]
    pair_hyp: np.ndarray
    pair_refset: np.ndarray
    refset_ptr: np.ndarray
    refset_texts: np.ndarray
    by_refset: np.ndarray


def _at(items: list[Any], positions: np.ndarray) -> list[Any]:
    return list(map(items.__getitem__, positions.tolist()))


def index_pairs(pairs: Pairs) -> PairIndex:
    """Distinct hypotheses, reference sets and reference strings of ``pairs``, each hashed in one C-speed
    pass (no Python loop per pair: a batch can hold a million pairs)."""
    hyps = list(map(itemgetter(0), pairs))
    refs = list(map(itemgetter(1), pairs))
    pair_hyp, hyp_first = factorize(hyps)
    pair_refset, refset_first = factorize(refs)
    refsets = _at(refs, refset_first)
    flat = list(itertools.chain.from_iterable(refsets))
    flat_ids, flat_first = factorize(flat)
    refset_ptr = np.zeros(len(refsets) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, refsets), np.int64, count=len(refsets)), out=refset_ptr[1:])
    return PairIndex(_at(hyps, hyp_first) + _at(flat, flat_first), pair_hyp, pair_refset, refset_ptr,
                     flat_ids + len(hyp_first), np.argsort(pair_refset, kind="stable"))


@functools.cache
def package_version(name: str) -> str:
    """Installed version of a distribution, or ``"missing"`` (cached: signatures are built on every call)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


def nrefs_of(refsets: Sequence[tuple[str, ...]]) -> str | None:
    """sacrebleu's ``nrefs``: references per sample, ``var`` if it varies (``None`` for no samples)."""
    counts = set(map(len, refsets))
    if not counts:
        return None
    return str(counts.pop()) if len(counts) == 1 else "var"


def sacrebleu_signature_of(metric: Any, nrefs: str) -> str:
    """The signature sacrebleu prints for its ``metric`` object after scoring references ``nrefs`` per sample."""
    if nrefs != "var" and not nrefs.isdigit():
        raise ValueError(f"nrefs must be a count or 'var', got {nrefs!r}")
    metric.num_refs = -1 if nrefs == "var" else int(nrefs)  # what sacrebleu sets when it scores
    return str(metric.get_signature())


def format_signature(name: str, options: dict[str, Any], backends: Sequence[str]) -> str:
    """``name|key:value|...|backend:version`` with keys in a fixed order, stable across runs."""
    parts = [name]
    parts += [f"{key}:{_format_value(value)}" for key, value in options.items()]
    parts += [f"{backend}:{package_version(backend)}" for backend in backends]
    return "|".join(parts)


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "default"
    return str(value)


class Metric(ABC):
    """A per-sample metric over batches.

    Subclasses set the class attributes and implement :meth:`_score_pairs` (and
    :meth:`_corpus_score` where the metric defines a corpus-level score).
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    #: Units of the score: 100 for sacrebleu's percentages (BLEU, chrF, TER), 1 for fractions.
    scale: ClassVar[float] = 1.0
    #: Distributions whose versions enter the signature.
    backends: ClassVar[tuple[str, ...]] = ()
    #: Distinct pairs scored per engine call; bounds memory for arbitrarily large inputs.
    chunk_size: ClassVar[int] = 32768
    #: Up to this many distinct pairs are scored one by one in Python instead of by the compiled batch engine,
    #: whose fixed cost (indexing the batch, dispatching the kernels) exceeds a few pairs' work: per-sample
    #: callers (verl's default reward manager, per-sample reward files) send one pair per call.
    few_pairs: ClassVar[int] = 0

    def _batched(self, pairs: Pairs) -> bool:
        """Whether ``pairs`` go to the compiled batch engine (numba installed, more than :attr:`few_pairs`)."""
        return len(pairs) > self.few_pairs and compiled_available()

    def options(self) -> dict[str, Any]:
        """Every option that changes the numbers, in signature order."""
        return {}

    def describe(self, nrefs: str | None = None) -> str:
        """Name, options (and ``nrefs`` of a batch, when given) and backend versions: the signature
        without speechgrpo's own version."""
        options = self.options() if nrefs is None else {**self.options(), "nrefs": nrefs}
        return format_signature(self.name, options, self.backends)

    def signature_for(self, refs: References) -> str:
        """The signature of a call on ``refs`` (per-sample layout): with ``nrefs``, the number of
        references per sample (``var`` if it varies), as sacrebleu's signature records it."""
        nrefs = nrefs_of(as_references(refs, len(refs), "refs"))
        return f"{self.describe(nrefs)}|speechgrpo:{package_version('speechgrpo')}"

    @property
    def signature(self) -> str:
        """Reproducibility string, e.g. ``bleu|tok:13a|smooth:exp|...|sacrebleu:2.6.0|speechgrpo:0.1.0``."""
        return f"{self.describe()}|speechgrpo:{package_version('speechgrpo')}"

    def sacrebleu_signature(self, nrefs: str) -> str | None:
        """sacrebleu's own signature string for these options and ``nrefs`` (a count or ``var``), for the
        metrics sacrebleu defines (BLEU, chrF, TER); ``None`` for the others."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def __call__(self, hyps: Sequence[str], refs: References) -> np.ndarray:
        return self.score(hyps, refs)

    def score(self, hyps: Sequence[str], refs: References) -> np.ndarray:
        """Per-sample scores as a float64 array of shape ``(len(hyps),)``."""
        return self.score_components(hyps, refs)[self.primary]

    @property
    def primary(self) -> str:
        """Name of the component returned by :meth:`score`."""
        return self.name

    def score_components(self, hyps: Sequence[str], refs: References) -> dict[str, np.ndarray]:
        """Every per-sample component the metric computes (e.g. precision/recall/F)."""
        return self.components_of_pairs(self.validate(hyps, refs))

    def components_of_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        """:meth:`score_components` of already validated ``(hypothesis, references tuple)`` pairs (what a
        reward's validated batch holds), without checking them again."""
        distinct, inverse = pairs, None  # every pair distinct (as on real text): the scores come back in order
        if len(pairs) > 1 and self._dedupes_pairs():
            ids, first = factorize(pairs)
            if len(first) < len(pairs):
                distinct, inverse = _at(pairs, first), ids
        # Bounded memory: the engine's arrays grow with the pairs of one chunk, not of the whole input.
        if len(distinct) <= self.chunk_size:
            components = {key: np.asarray(values, dtype=np.float64)
                          for key, values in self._score_pairs(distinct).items()}
        else:
            chunks = [self._score_pairs(distinct[i:i + self.chunk_size])
                      for i in range(0, len(distinct), self.chunk_size)]
            components = {key: np.concatenate([np.asarray(c[key], dtype=np.float64) for c in chunks])
                          for key in chunks[0]}
        return components if inverse is None else {key: values[inverse] for key, values in components.items()}

    def primary_of_pairs(self, pairs: Pairs) -> list[float]:
        """The primary score of each validated pair as Python floats: :meth:`components_of_pairs`'s numbers,
        for callers that want floats (per-sample adapters scoring one pair a call). Metrics with a per-pair
        Python path for a few pairs override it to skip the arrays, whose fixed cost exceeds one pair's work."""
        scores: list[float] = self.components_of_pairs(pairs)[self.primary].tolist()
        return scores

    def _dedupes_pairs(self) -> bool:
        """Whether repeated pairs are scored once: True unless scoring a pair costs less than finding
        its repeats (one hash of the pair, about 0.2 microseconds)."""
        return True

    def corpus_score(self, hyps: Sequence[str], *positional: Any, refs: References | None = None,
                     ref_streams: Sequence[Sequence[str | None]] | None = None) -> float:
        """Corpus-level score, as the reference implementation defines it. The references come by
        keyword, per sample (``refs=``) or as sacrebleu's streams (``ref_streams=``): sacrebleu's
        ``corpus_score(hyps, [refs])`` takes streams, so a positional layout would be ambiguous."""
        per_sample = corpus_references(len(hyps), positional, refs, ref_streams,
                                       f"{type(self).__name__}.corpus_score")
        return self._corpus_score(self.validate(hyps, per_sample))

    @staticmethod
    def validate(hyps: Sequence[str], refs: References) -> Pairs:
        texts = as_texts(hyps, "hyps")
        return list(zip(texts, as_references(refs, len(texts), "refs"), strict=True))

    @abstractmethod
    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        """Score distinct pairs; return arrays aligned with ``pairs``."""

    def _corpus_score(self, pairs: Pairs) -> float:
        """Default corpus score: the mean of the per-sample primary scores."""
        if not pairs:
            return 0.0
        return float(np.mean(self._score_pairs(pairs)[self.primary]))


M = TypeVar("M", bound=Metric)


@lru_cache(maxsize=64)
def _cached(cls: type[Metric], frozen: tuple[tuple[str, Any], ...]) -> Metric:
    return cls(**dict(frozen))


def cached_metric(cls: type[M], **options: Any) -> M:
    """One shared instance per (class, options): functional forms reuse tokenizers and models."""
    try:
        metric = _cached(cls, tuple(sorted(options.items())))
    except TypeError:  # unhashable option value: build a fresh object
        return cls(**options)
    assert isinstance(metric, cls)
    return metric

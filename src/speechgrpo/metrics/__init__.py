"""Per-sample metrics over batches, exact to their reference implementations.

Each metric has an object form holding its configuration (``BLEU(tokenize="intl")``) and a functional
form with the same arguments (``sentence_bleu(hyps, refs, tokenize="intl")``). Per-sample scores come
back as float64 numpy arrays; ``corpus_score`` gives the corpus-level value where the metric defines
one. References are one string per sample or a sequence of strings per sample.

Heavy metrics (BERTScore, METEOR) import their dependencies only when constructed.
"""

from speechgrpo.metrics.base import Metric, cached_metric
from speechgrpo.metrics.bertscore import BERTScore, bertscore
from speechgrpo.metrics.bleu import BLEU, corpus_bleu, sentence_bleu
from speechgrpo.metrics.chrf import CHRF, corpus_chrf, sentence_chrf
from speechgrpo.metrics.error_rate import CER, WER, cer, corpus_cer, corpus_wer, wer
from speechgrpo.metrics.meteor import METEOR, meteor
from speechgrpo.metrics.rouge import ROUGE, rouge
from speechgrpo.metrics.squad import ExactMatch, TokenF1, exact_match, normalize_answer, token_f1
from speechgrpo.metrics.ter import TER, corpus_ter, sentence_ter

__all__ = [
    "BLEU", "CER", "CHRF", "METEOR", "ROUGE", "TER", "WER", "BERTScore", "ExactMatch", "Metric", "TokenF1",
    "bertscore", "cached_metric", "cer", "corpus_bleu", "corpus_cer", "corpus_chrf", "corpus_ter",
    "corpus_wer", "exact_match", "meteor", "normalize_answer", "rouge", "sentence_bleu", "sentence_chrf",
    "sentence_ter", "token_f1", "wer",
]

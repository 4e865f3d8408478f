"""speechgrpo's BLEU as a Hugging Face evaluate module (metric card: README.md beside this file)."""

from typing import Any, ClassVar

from speechgrpo import metrics
from speechgrpo.grpo_adapters.hf_evaluate import SpeechgrpoMetric


class Bleu(SpeechgrpoMetric):
    metric_class = metrics.BLEU
    corpus_defaults: ClassVar[dict[str, Any]] = {"effective_order": False}  # sacrebleu's corpus_score

"""speechgrpo's SQuAD exact match as a Hugging Face evaluate module (metric card: README.md beside this file)."""

from speechgrpo import metrics
from speechgrpo.grpo_adapters.hf_evaluate import SpeechgrpoMetric


class ExactMatch(SpeechgrpoMetric):
    metric_class = metrics.ExactMatch

"""speechgrpo's SQuAD token F1 as a Hugging Face evaluate module (metric card: README.md beside this file)."""

from speechgrpo import metrics
from speechgrpo.grpo_adapters.hf_evaluate import SpeechgrpoMetric


class TokenF1(SpeechgrpoMetric):
    metric_class = metrics.TokenF1

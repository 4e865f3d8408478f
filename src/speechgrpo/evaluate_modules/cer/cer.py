"""speechgrpo's character error rate as a Hugging Face evaluate module (metric card: README.md beside this file)."""

from speechgrpo import metrics
from speechgrpo.grpo_adapters.hf_evaluate import SpeechgrpoMetric


class Cer(SpeechgrpoMetric):
    metric_class = metrics.CER

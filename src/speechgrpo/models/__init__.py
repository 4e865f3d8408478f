"""Speech LLMs behind one interface (:class:`SpeechLM`): Granite Speech and Qwen2-Audio through
transformers, and a small bundled model that trains from scratch on a CPU."""

from speechgrpo.models.speech_lm import (
    SAMPLE_RATE,
    Completions,
    PromptBatch,
    SamplingConfig,
    SpeechLM,
    SpeechPrompt,
)

__all__ = ["SAMPLE_RATE", "Completions", "PromptBatch", "SamplingConfig", "SpeechLM", "SpeechPrompt"]

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

# The transformers-based classes live in speechgrpo.models.{qwen2_audio,granite_speech,causal_lm,hf_speech_lm}
# (not imported here: transformers is slow to import); load_speech_lm picks one from a checkpoint's config.
from speechgrpo.models.loading import MODEL_TYPES, load_speech_lm

__all__ += ["MODEL_TYPES", "load_speech_lm"]
from speechgrpo.models.tiny_speech_lm import TinySpeechLM  # noqa: E402
from speechgrpo.models.tiny_speech_net import TinySpeechLMConfig  # noqa: E402
from speechgrpo.models.word_tokenizer import WordTokenizer, build_tokenizer  # noqa: E402

__all__ += ["TinySpeechLM", "TinySpeechLMConfig", "WordTokenizer", "build_tokenizer"]

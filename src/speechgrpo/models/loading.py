"""``load_speech_lm``: open a local checkpoint directory as the right :class:`SpeechLM`."""

from __future__ import annotations

import importlib
import json
from importlib import resources
from pathlib import Path

import torch

from speechgrpo.models.speech_lm import SpeechLM

# config.json "model_type" -> "module:class" of its SpeechLM (imported on use: transformers is heavy to import).
# Any other model type is opened as a text-only causal LM (CAUSAL_LM).
MODEL_TYPES: dict[str, str] = {
    "qwen2_audio": "speechgrpo.models.qwen2_audio:Qwen2AudioLM",
    "granite_speech": "speechgrpo.models.granite_speech:GraniteSpeechLM",
    "speechgrpo_tiny": "speechgrpo.models.tiny_speech_lm:TinySpeechLM",
}
CAUSAL_LM = "speechgrpo.models.causal_lm:CausalLM"


def speech_lm_class(model_type: str | None) -> type[SpeechLM]:
    """The :class:`SpeechLM` subclass for a config ``model_type`` (:data:`MODEL_TYPES`, else a causal LM)."""
    module_name, _, class_name = MODEL_TYPES.get(model_type or "", CAUSAL_LM).partition(":")
    model_class = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(model_class, type) and issubclass(model_class, SpeechLM)):
        raise TypeError(f"{module_name}:{class_name} is not a SpeechLM class")
    return model_class


BUNDLED = "bundled"  # the short name of the small speech LM shipped in the package (the demo's base)


def bundled_base() -> Path:
    """The base checkpoint shipped in the package (``speechgrpo build-base`` with the defaults)."""
    path = Path(str(resources.files("speechgrpo.models") / "bundled_base"))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the bundled base model is missing from {path}; rebuild it with "
                                "`speechgrpo build-base` or run `speechgrpo demo --from-scratch`")
    return path


def model_path(name: str | Path) -> Path:
    """A checkpoint folder, or :data:`BUNDLED` for the bundled model's."""
    return bundled_base() if str(name) == BUNDLED else Path(name)


def load_speech_lm(path: str | Path, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> SpeechLM:
    """The model saved in the local directory ``path`` (or ``"bundled"``), chosen by its ``config.json``
    ``model_type``."""
    path = model_path(path)
    config = Path(path) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{path} is not a local model directory (no config.json)")
    model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    return speech_lm_class(model_type).load(path, device=device, dtype=dtype)

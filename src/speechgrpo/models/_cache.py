"""transformers' key-value cache argument, whose name changed."""

from __future__ import annotations

from functools import cache


@cache
def cache_kwarg() -> str:
    """The decoders' key-value cache argument: transformers 5.24 renamed ``past_key_values`` to ``cache``."""
    import inspect

    from transformers import LlamaModel

    return "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"

"""speechgrpo: exact, fast rewards for GRPO training of speech-aware language models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("speechgrpo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

"""Speech synthesis with espeak-ng (``apt-get install espeak-ng``): one subprocess per utterance, WAV on
stdout at 22.05 kHz, decoded and resampled to 16 kHz. The output depends only on the text and the voice
settings, so a seeded choice of voices gives the same audio on every run."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from speechgrpo.data.audio import SAMPLE_RATE, decode_audio

ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
DEFAULT_VOICES: tuple[str, ...] = tuple(f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS)
SPEED_WPM = (130, 190)
PITCH = (30, 70)


class TTSError(RuntimeError):
    """espeak-ng is missing or failed; the message says how."""


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice (``en-gb+f3``), speed in words per minute and pitch (0-99)."""

    name: str
    speed: int
    pitch: int


def espeak_binary() -> str:
    """Path of the espeak-ng executable; raises :class:`TTSError` when it is not installed."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise TTSError("espeak-ng not found on PATH; install it (Debian/Ubuntu: apt-get install espeak-ng)")
    return path


def espeak_version() -> str:
    """The first line of ``espeak-ng --version`` (recorded with a built data set)."""
    result = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown"


def sample_voice(rng: random.Random, voices: Sequence[str] = DEFAULT_VOICES,
                 speed: tuple[int, int] = SPEED_WPM, pitch: tuple[int, int] = PITCH) -> Voice:
    """A voice, speed and pitch drawn uniformly (inclusive ranges)."""
    return Voice(rng.choice(list(voices)), rng.randint(*speed), rng.randint(*pitch))


def synthesize(text: str, voice: Voice, sample_rate: int = SAMPLE_RATE, binary: str | None = None) -> np.ndarray:
    """``text`` spoken by ``voice``, as mono float32 at ``sample_rate`` Hz."""
    command = [binary or espeak_binary(), "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch),
               "-b", "1", "--stdout"]
    result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, check=False)
    if result.returncode != 0 or len(result.stdout) <= 44:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit status {result.returncode}"
        raise TTSError(f"espeak-ng failed for voice {voice.name!r} on {text[:60]!r}: {message}")
    return decode_audio(result.stdout, sample_rate, name=f"espeak-ng {voice.name}")

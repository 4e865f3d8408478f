"""Audio in the form every speechgrpo model takes: mono float32 at 16 kHz.

``soundfile`` and ``scipy`` (the ``train`` extra) are imported on first use, so that ``speechgrpo.data``
imports with the core dependencies only. Resampling is polyphase filtering with the exact rational
ratio of the two rates (22.05 kHz -> 16 kHz is up 320, down 441), so no rate is approximated.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000  # the same value as speechgrpo.models.SAMPLE_RATE (that module imports torch)


class AudioError(OSError):
    """An audio file that is missing or cannot be decoded; the message names the path."""


def resample(audio: np.ndarray, orig_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` (samples along axis 0) resampled from ``orig_rate`` to ``target_rate`` Hz, as float32."""
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {target_rate}")
    audio = np.asarray(audio, dtype=np.float32)
    if orig_rate == target_rate or audio.shape[0] == 0:
        return audio
    from scipy.signal import resample_poly

    ratio = Fraction(target_rate, orig_rate)
    out = resample_poly(audio, ratio.numerator, ratio.denominator, axis=0)
    return np.asarray(out, dtype=np.float32)


def _to_mono(audio: np.ndarray) -> np.ndarray:
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def decode_audio(data: bytes, sample_rate: int = SAMPLE_RATE, *, name: str = "<bytes>") -> np.ndarray:
    """Decode an in-memory audio file (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1) to mono float32."""
    import soundfile

    try:
        audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (RuntimeError, TypeError, ValueError) as err:  # soundfile.LibsndfileError is a RuntimeError
        raise AudioError(f"{name}: cannot decode audio ({err})") from err
    return resample(_to_mono(audio), int(rate), sample_rate)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The file at ``path`` as mono float32 at ``sample_rate`` Hz (channels averaged, then resampled).

    Reads whatever libsndfile reads: WAV, FLAC (LibriSpeech), OGG and, with libsndfile >= 1.1
    (soundfile >= 0.12 wheels bundle 1.2), MP3 (Common Voice / CoVoST2 clips).
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (RuntimeError, TypeError, ValueError) as err:
        hint = ""
        if path.suffix.lower() == ".mp3" and "MP3" not in soundfile.available_formats():
            hint = f"; this libsndfile ({soundfile.__libsndfile_version__}) has no MP3 support, it needs >= 1.1"
        raise AudioError(f"{path}: cannot read audio ({err}){hint}") from err
    return resample(_to_mono(audio), int(rate), sample_rate)


def audio_duration(path: str | Path) -> float:
    """Seconds of audio in the file at ``path``, from its header (nothing is decoded)."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{path}: cannot read audio ({err})") from err
    return float(info.frames) / float(info.samplerate)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono ``audio`` (float in [-1, 1]; clipped) as a 16-bit PCM WAV file."""
    import soundfile

    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    soundfile.write(str(path), clipped, sample_rate, subtype="PCM_16", format="WAV")


"""80-bin log-mel features with plain torch (``torch.stft``; torchaudio does not load next to CPU torch).

25 ms Hann window (400 samples), 10 ms hop (160 samples) at 16 kHz, Slaney mel filters from 0 to 8 kHz.
Log10 energies are floored 8 decades below the utterance's peak (as in Whisper), then normalized per
utterance: each bin's mean is removed (cancels the speaker/channel spectral tilt) and the whole
spectrogram is divided by one standard deviation (a per-bin std would blow up near-silent bins).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import torch

from speechgrpo.models.speech_lm import SAMPLE_RATE

N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80


@lru_cache(maxsize=4)
def _mel_filters(n_mels: int) -> torch.Tensor:
    from transformers.audio_utils import mel_filter_bank

    filters = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
                              max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney",
                              mel_scale="slaney")
    return torch.from_numpy(filters.astype(np.float32))  # (freq, mel)


def log_mel(audio: np.ndarray, n_mels: int = N_MELS) -> torch.Tensor:
    """Normalized log-mel spectrogram of 16 kHz mono audio, ``(frames, n_mels)`` float32."""
    samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32).reshape(-1))
    if samples.numel() < N_FFT:
        samples = torch.nn.functional.pad(samples, (0, N_FFT - samples.numel()))
    spectrum = torch.stft(samples, n_fft=N_FFT, hop_length=HOP_LENGTH, window=torch.hann_window(N_FFT),
                          center=True, return_complex=True).abs().square()  # (freq, frames)
    mel = (spectrum.T @ _mel_filters(n_mels)).clamp(min=1e-10).log10()
    mel = torch.maximum(mel, mel.max() - 8.0)
    mel = mel - mel.mean(dim=0, keepdim=True)
    return mel / (mel.std(correction=0) + 1e-5)


class FeatureCache:
    """The log-mel features of recently seen clips, keyed by a digest of the samples (so a clip changed
    in place is recomputed), least recently used first out beyond ``max_bytes``: a training step
    encodes each prompt's audio up to three times (sampling, reference and policy scoring) and every
    validation the same dev clips, while the digest costs ~5% of the features."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._features: OrderedDict[tuple[bytes, int, int], torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._features)

    def __call__(self, audio: np.ndarray, n_mels: int = N_MELS) -> torch.Tensor:
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        key = (hashlib.sha1(samples.data).digest(), samples.size, n_mels)
        with self._lock:
            features = self._features.get(key)
            if features is not None:
                self._features.move_to_end(key)
                return features
        features = log_mel(samples, n_mels)
        size = features.numel() * features.element_size()
        with self._lock:
            if key not in self._features and size <= self.max_bytes:
                self._features[key] = features
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, old = self._features.popitem(last=False)
                    self._bytes -= old.numel() * old.element_size()
        return features

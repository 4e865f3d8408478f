"""80-bin log-mel features with plain torch (``torch.stft``; torchaudio does not load next to CPU torch).

25 ms Hann window (400 samples), 10 ms hop (160 samples) at 16 kHz, Slaney mel filters from 0 to 8 kHz.
Log10 energies are floored 8 decades below the utterance's peak (as in Whisper), then normalized per
utterance: each bin's mean is removed (cancels the speaker/channel spectral tilt) and the whole
spectrogram is divided by one standard deviation (a per-bin std would blow up near-silent bins).
"""

from __future__ import annotations

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

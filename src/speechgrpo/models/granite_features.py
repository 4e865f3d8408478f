"""Granite Speech's feature extractor without torchaudio.

transformers' ``GraniteSpeechFeatureExtractor`` builds a ``torchaudio.transforms.MelSpectrogram`` in its
constructor, so it cannot even be instantiated where torchaudio does not load. This subclass computes the
same log-mel with ``torch.stft`` and transformers' ``mel_filter_bank`` (HTK scale, no filter normalization:
torchaudio's defaults) and keeps the rest of the recipe: log10 clipped to 8 decades below the maximum,
``/4 + 1``, odd last frame dropped, frames stacked by two into 160-dim vectors. It reads and writes the same
``preprocessor_config.json`` fields, so it loads a real Granite Speech checkpoint's extractor config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import BatchFeature, GraniteSpeechFeatureExtractor
from transformers.audio_utils import mel_filter_bank
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor


class TorchMelSpectrogram(torch.nn.Module):
    """``torchaudio.transforms.MelSpectrogram`` with its defaults (power 2, centred reflect padding,
    periodic Hann window, HTK mel scale, no filter normalization), in plain torch."""

    window: torch.Tensor
    filters: torch.Tensor

    def __init__(self, sample_rate: int = 16_000, n_fft: int = 512, win_length: int = 400, hop_length: int = 160,
                 n_mels: int = 80) -> None:
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.register_buffer("window", torch.hann_window(win_length))
        filters = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
                                  max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm=None,
                                  mel_scale="htk")
        self.register_buffer("filters", torch.tensor(filters, dtype=torch.float32))  # (n_freq, n_mels)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> power mel spectrogram ``(batch, n_mels, frames)``."""
        spectrum = torch.stft(audio, self.n_fft, self.hop_length, self.win_length, window=self.window, center=True,
                              pad_mode="reflect", return_complex=True).abs().pow(2)
        return torch.matmul(spectrum.transpose(-1, -2), self.filters).transpose(-1, -2)


class TorchGraniteSpeechFeatureExtractor(GraniteSpeechFeatureExtractor):
    """Drop-in ``GraniteSpeechFeatureExtractor`` (same outputs: ``input_features`` ``(batch, frames, 160)``,
    ``audio_embed_sizes``, ``input_features_mask``) that needs no torchaudio."""

    def __init__(self, sampling_rate: int = 16_000, n_fft: int = 512, win_length: int = 400, hop_length: int = 160,
                 n_mels: int = 80, projector_window_size: int = 15, projector_downsample_rate: int = 5,
                 padding_value: float = 0.0, **kwargs: Any) -> None:
        # The parent constructor requires torchaudio: skip it and set the same attributes here. A saved
        # config stores the mel settings as ``melspec_kwargs``; they win over the defaults.
        melspec_kwargs = {"sample_rate": sampling_rate, "n_fft": n_fft, "win_length": win_length,
                          "hop_length": hop_length, "n_mels": n_mels, **kwargs.pop("melspec_kwargs", {})}
        feature_size = melspec_kwargs["n_mels"] if kwargs.get("feature_size") is None else kwargs.pop("feature_size")
        SequenceFeatureExtractor.__init__(self, feature_size=feature_size, sampling_rate=sampling_rate,
                                          padding_value=padding_value, **kwargs)
        self.sampling_rate = sampling_rate
        self.melspec_kwargs = melspec_kwargs
        self.mel_filters = TorchMelSpectrogram(**self.melspec_kwargs)
        self.projector_window_size = projector_window_size
        self.projector_downsample_rate = projector_downsample_rate

    def __call__(self, audios: Any, device: str | None = "cpu") -> BatchFeature:
        batched_audio, audio_lengths = self._get_audios_and_audio_lengths(audios)
        features = self._extract_mel_spectrograms(batched_audio, device=device)
        sizes: Sequence[int] = self._get_num_audio_features(audio_lengths)
        mask = torch.arange(max(sizes)).view(1, -1) < torch.tensor(sizes).view(-1, 1)
        return BatchFeature(data={"input_features": features, "audio_embed_sizes": sizes,
                                  "input_features_mask": mask})

    def _extract_mel_spectrograms(self, audio: torch.Tensor, device: str | None = "cpu") -> torch.Tensor:
        melspec = self.mel_filters.to(device) if device is not None else self.mel_filters
        audio = audio.to(device) if device is not None else audio
        with torch.no_grad():
            logmel = melspec(audio.float()).transpose(-1, -2).clip_(min=1e-10).log10_()
            peak = logmel.amax(dim=(-2, -1), keepdim=True)
            logmel = torch.maximum(logmel, peak - 8.0).div_(4).add_(1)
            if logmel.shape[1] % 2 == 1:
                logmel = logmel[:, :-1]
            return logmel.reshape(audio.shape[0], -1, 2 * logmel.shape[-1])

    def to_dict(self) -> dict[str, Any]:
        """The parent's fields, saved under the parent's type name so that the saved config is a standard
        Granite Speech one (loadable by transformers' own extractor where torchaudio is installed)."""
        output: dict[str, Any] = super().to_dict()
        output["feature_extractor_type"] = "GraniteSpeechFeatureExtractor"
        return output

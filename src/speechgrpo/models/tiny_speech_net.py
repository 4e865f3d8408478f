"""The network of the bundled speech LM: audio encoder, frame-stacking projector and a small Llama decoder.

Built to learn speech recognition from scratch within minutes on a 2-core CPU:

- **Encoder.** Two stride-2 convolutions (kernel 3) turn 10 ms log-mel frames into 40 ms frames, the
  rate where a word spans a handful of positions and the attention cost stays small; sinusoidal
  positions (no parameters to learn, any length) and pre-LayerNorm transformer blocks follow. Frames
  past an utterance's length are zeroed after every convolution and are never attended to, so a
  padded batch gives each utterance exactly what it would get alone.
- **Projector.** ``frames_per_token`` adjacent encoder frames are concatenated (2 -> 80 ms per audio
  token, 12.5 tokens/s) and mapped to the LM width by a two-layer MLP: the LM sequence stays short,
  which is what costs time in training and sampling.
- **CTC compression** (``ctc_compress``, Speech-LLaMA's CTC compressor, Wu et al. 2023): the audio
  tokens whose CTC word (:meth:`TinySpeechNet.ctc_logits`: through the LM's word embeddings, or the CTC
  output layer with ``ctc_posteriors``) is the blank are dropped and each run of tokens with the same
  word is averaged, so the decoder reads about one audio token per spoken word, near that word's
  embedding, as it reads text; the tokens stay continuous and differentiable, only the choice of which to
  keep and merge is discrete. Switched on in the bundled base without training, it raises spoken QA from
  19.6 to 37.9 BLEU (first 100 test examples, one sampled pass; the same passages as text: 83); trained with
  the whole decoder, the decoder again tells audio from text and transcribes (17.2): ``docs/demo.md``,
  the base's attempt 4.
- **CTC posteriors** (``ctc_posteriors``, LegoSLM's input, Ma et al. 2025; needs ``ctc_compress``): CTC
  is read by an output layer of its own instead of through the word embeddings, and each compressed audio
  token reaches the decoder as its word posterior (the blank left out) times the word embeddings, so a
  decoder trained on text reads speech as text without being trained on audio. Through a frozen
  decoder's embeddings, CTC stalled (CTC-greedy WER 40% where trained embeddings reached 22%), and read as
  posteriors the same audio was answered about as well as after 8,000 steps of alignment (a probe on 100
  examples against the full evaluation): ``docs/demo.md``, attempt 5. A run of tokens is averaged before
  the output layer reads it (the same as averaging its logits); only the blank is left out of the
  posterior (``<bos>``, ``<eos>`` and ``<unk>`` keep what little mass CTC training leaves them).
- **Decoder.** ``transformers.LlamaForCausalLM`` (RoPE, RMSNorm, SwiGLU, tied embeddings), fed with
  embeddings ``[<bos>, audio tokens, prompt tokens ... <sep>]`` followed by the completion. Prefixes of
  different lengths are left-padded and positions count real tokens only, so every completion token sits
  at the same column in a batch and at the same position as in an unpadded forward. Scoring runs each
  prompt's prefix once and lets its G completions share its keys and values (GRPO rows are mostly
  prefix). Weights start at std ``1/sqrt(lm_dim)`` instead of Llama's 0.02: at 0.02 the decoder settles
  on the text prior and ignores the audio for hundreds of steps (ASR of 40 espeak clips: WER 0.65 after
  300 steps), at ``1/sqrt(d)`` it reads the audio within ~200 steps (WER 0-0.01 after 300 steps at lr
  1e-3 with a 50-step warmup; without warmup, or at lr 2e-3, it again stalls on the prior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechgrpo.models._cache import cache_kwarg
from speechgrpo.models.log_mel import N_MELS


@dataclass(frozen=True)
class TinySpeechLMConfig:
    """Sizes of :class:`TinySpeechNet` (the vocabulary size comes from the tokenizer)."""

    n_mels: int = N_MELS
    encoder_dim: int = 144
    encoder_layers: int = 3
    encoder_heads: int = 4
    frames_per_token: int = 2
    lm_dim: int = 192
    lm_layers: int = 3
    lm_heads: int = 4
    lm_ffn_dim: int = 512
    max_positions: int = 2048
    ctc_compress: bool = False  # drop blank audio tokens, average runs of one CTC word (module docstring)
    ctc_posteriors: bool = False  # CTC from an output layer of its own; the LM reads posterior-weighted embeddings

    def __post_init__(self) -> None:
        if self.ctc_posteriors and not self.ctc_compress:
            raise ValueError("ctc_posteriors needs ctc_compress: a blank audio token has no word posterior to read")


def sequence_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """``(batch, size)`` bool, true at positions below each length."""
    return torch.arange(size, device=lengths.device) < lengths[:, None]


def sinusoidal_positions(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The Transformer's fixed sine/cosine position table, ``(length, dim)``."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table.to(dtype)


class EncoderBlock(nn.Module):
    """Pre-LayerNorm self-attention + GELU MLP."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """``attend``: ``(batch, 1, time, time)`` bool, true where a query may attend to a key."""
        batch, time, dim = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).view(batch, time, 3, self.heads, dim // self.heads).permute(
            2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, time, dim))
        out: torch.Tensor = x + self.mlp(self.mlp_norm(x))
        return out


class AudioEncoder(nn.Module):
    """Log-mel frames (10 ms) -> encoder states (40 ms), with the output lengths."""

    def __init__(self, config: TinySpeechLMConfig) -> None:
        super().__init__()
        dim = config.encoder_dim
        self.conv1 = nn.Conv1d(config.n_mels, dim, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)
        self.blocks = nn.ModuleList(EncoderBlock(dim, config.encoder_heads) for _ in range(config.encoder_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = features.transpose(1, 2)
        for conv in (self.conv1, self.conv2):
            lengths = (lengths + 1) // 2
            x = F.gelu(conv(x))
            x = x * sequence_mask(lengths, x.shape[-1])[:, None, :].to(x.dtype)
        x = x.transpose(1, 2)
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype)
        valid = sequence_mask(lengths, x.shape[1])
        # Real frames attend to real frames; padding attends everywhere (never all-masked, so no NaN).
        attend = (valid[:, None, :] | ~valid[:, :, None])[:, None]
        for block in self.blocks:
            x = block(x, attend)
        return self.norm(x) * valid[..., None].to(x.dtype), lengths


class Projector(nn.Module):
    """Stacks ``frames_per_token`` encoder frames into one audio token at the LM width."""

    def __init__(self, config: TinySpeechLMConfig) -> None:
        super().__init__()
        self.stack = config.frames_per_token
        self.mlp = nn.Sequential(nn.Linear(self.stack * config.encoder_dim, config.lm_dim), nn.GELU(),
                                 nn.Linear(config.lm_dim, config.lm_dim))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, time, dim = x.shape
        x = F.pad(x, (0, 0, 0, -time % self.stack))
        x = x.reshape(batch, -1, self.stack * dim)
        return self.mlp(x), (lengths + self.stack - 1) // self.stack


class TinySpeechNet(nn.Module):
    """The trainable module: its forward returns completion logits, so a DDP wrapper sees one forward."""

    def __init__(self, config: TinySpeechLMConfig, vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> None:
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        self.encoder = AudioEncoder(config)
        self.projector = Projector(config)
        self.lm = LlamaForCausalLM(LlamaConfig(
            vocab_size=vocab_size, hidden_size=config.lm_dim, intermediate_size=config.lm_ffn_dim,
            num_hidden_layers=config.lm_layers, num_attention_heads=config.lm_heads,
            num_key_value_heads=config.lm_heads, max_position_embeddings=config.max_positions,
            initializer_range=config.lm_dim ** -0.5, tie_word_embeddings=True, pad_token_id=pad_id,
            bos_token_id=bos_id, eos_token_id=eos_id))
        self.bos_id, self.pad_id = bos_id, pad_id
        self.ctc_compress = config.ctc_compress
        self.ctc_head = nn.Linear(config.lm_dim, vocab_size) if config.ctc_posteriors else None

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        embedding: torch.Tensor = self.lm.get_input_embeddings()(ids)
        return embedding

    def audio_tokens(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio tokens at the LM width ``(batch, tokens, dim)`` and their counts, for clips with at least
        one frame, trimmed to the longest of them (so text-only rows cost no encoder work)."""
        if len(features) == 0:
            return features.new_zeros(0, 0, self.lm.config.hidden_size), feature_lengths
        features = features[:, :int(feature_lengths.max())]
        tokens, lengths = self.projector(*self.encoder(features, feature_lengths))
        return tokens, lengths

    def ctc_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each audio token's CTC scores over the words ``(batch, tokens, vocab)``, ``pad_id`` the blank: from
        the CTC output layer where there is one (``ctc_posteriors``), else its dot product with every word
        embedding."""
        if self.ctc_head is not None:
            logits: torch.Tensor = self.ctc_head(tokens)
            return logits
        embedding = self.lm.get_input_embeddings()
        assert isinstance(embedding, nn.Embedding)
        return tokens @ embedding.weight.T

    def posterior_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """LegoSLM's audio input: each audio token's CTC word posterior (the blank left out) times the word
        embeddings, so the LM reads what it reads for text, the expected embedding of the word heard."""
        embedding, head = self.lm.get_input_embeddings(), self.ctc_head
        assert isinstance(embedding, nn.Embedding) and head is not None
        blank = torch.tensor([self.pad_id], device=tokens.device)
        with torch.autocast(tokens.device.type, enabled=False):  # in float32 whatever the weights or autocast
            logits = F.linear(tokens.float(), head.weight.float(), head.bias.float())
            posterior = F.softmax(logits.index_fill(-1, blank, float("-inf")), dim=-1)
            out: torch.Tensor = posterior @ embedding.weight.float()
        return out.to(embedding.weight.dtype)  # the dtype text embeddings have

    def compress(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC compression: tokens whose CTC word is the blank dropped, each run of one word averaged (a
        word repeated after a blank starts a new run, as in CTC decoding); ``(batch, runs, dim)`` and the
        run counts (0 for a clip heard as silence)."""
        batch, width, dim = tokens.shape
        with torch.no_grad():
            words = self.ctc_logits(tokens).argmax(-1)
        keep = sequence_mask(lengths, width) & (words != self.pad_id)
        continues = keep & (words == F.pad(words, (1, 0), value=-1)[:, :-1]) & F.pad(keep, (1, 0))[:, :-1]
        starts = keep & ~continues
        run = starts.long().cumsum(-1) - 1
        counts = starts.sum(-1)
        runs = max(int(counts.max()), 1)
        target = (torch.arange(batch, device=tokens.device)[:, None] * runs + run)[keep]
        sums = tokens.new_zeros(batch * runs, dim).index_add(0, target, tokens[keep])
        sizes = tokens.new_zeros(batch * runs).index_add(0, target, tokens.new_ones(len(target)))
        return (sums / sizes.clamp(min=1)[:, None]).view(batch, runs, dim), counts

    def prefix(self, features: torch.Tensor, feature_lengths: torch.Tensor, prompt_ids: torch.Tensor,
               prompt_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``[<bos>, audio, prompt]`` embeddings ``(batch, width, dim)`` and their 0/1 mask."""
        spoken = (feature_lengths > 0).nonzero()[:, 0]
        audio, audio_lengths = self.audio_tokens(features[spoken], feature_lengths[spoken])
        if self.ctc_compress and len(spoken):
            audio, audio_lengths = self.compress(audio, audio_lengths)
        if self.ctc_head is not None and len(spoken):
            audio = self.posterior_embeddings(audio)
        audio_of = {int(row): (audio[k], int(audio_lengths[k])) for k, row in enumerate(spoken)}
        text = self.embed_tokens(prompt_ids)
        bos = self.embed_tokens(torch.tensor([self.bos_id], device=prompt_ids.device))
        rows = []
        for i, length in enumerate(prompt_lengths.tolist()):
            parts = [bos, text[i, :length]]
            if i in audio_of:
                parts.insert(1, audio_of[i][0][:audio_of[i][1]])
            rows.append(torch.cat(parts))
        width = max(len(row) for row in rows)
        embeds = torch.stack([F.pad(row, (0, 0, width - len(row), 0)) for row in rows])
        lengths = torch.tensor([len(row) for row in rows], device=embeds.device)
        mask = sequence_mask(lengths, width).flip(-1).long()
        return embeds, mask

    def transcript_ctc_losses(self, features: torch.Tensor, feature_lengths: torch.Tensor,
                              transcript_ids: torch.Tensor, transcript_lengths: torch.Tensor) -> torch.Tensor:
        """Per-utterance CTC loss ``(batch,)`` (summed over its frames) of the transcript words read off the
        audio tokens by :meth:`ctc_logits` (through the LM's tied word embeddings, or the CTC output layer with
        ``ctc_posteriors``), ``<pad>`` as the blank; 0 for a prompt with no audio or an empty transcript.

        Through the embeddings it teaches the encoder and projector to put each spoken word's embedding on
        its audio tokens, so the LM reads speech as it reads text: the fast way to make a from-scratch speech
        LLM hear. With ``ctc_posteriors`` it trains the audio side and the output layer only, and the LM
        reads the posteriors.
        """
        losses = torch.zeros(len(features), device=features.device)
        rows = ((feature_lengths > 0) & (transcript_lengths > 0)).nonzero()[:, 0]
        if len(rows) == 0:
            return losses
        audio, audio_lengths = self.audio_tokens(features[rows], feature_lengths[rows])
        log_probs = F.log_softmax(self.ctc_logits(audio).float(), dim=-1).transpose(0, 1)
        return losses.index_put((rows,), F.ctc_loss(log_probs, transcript_ids[rows], audio_lengths,
                                                    transcript_lengths[rows], blank=self.pad_id, reduction="none",
                                                    zero_infinity=True))

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor, prompt_ids: torch.Tensor,
                prompt_lengths: torch.Tensor, prompt_index: torch.Tensor | None = None,
                completion_ids: torch.Tensor | None = None, completion_mask: torch.Tensor | None = None,
                transcript_ids: torch.Tensor | None = None,
                transcript_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits predicting each completion token, ``(n, length, vocab)``; row ``i`` answers prompt
        ``prompt_index[i]``. Given ``transcript_ids`` instead, :meth:`transcript_ctc_losses` (one module
        forward either way, as a DDP wrapper requires)."""
        if transcript_ids is not None:
            assert transcript_lengths is not None
            return self.transcript_ctc_losses(features, feature_lengths, transcript_ids, transcript_lengths)
        assert prompt_index is not None and completion_ids is not None and completion_mask is not None
        embeds, mask = self.prefix(features, feature_lengths, prompt_ids, prompt_lengths)
        width, length = embeds.shape[1], completion_ids.shape[1]
        attention_mask = torch.cat([mask[prompt_index], completion_mask[:, :-1].long()], dim=1)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        completion_inputs = self.embed_tokens(completion_ids[:, :-1])
        if self.checkpointed() and self.training:  # checkpointed layers in training drop a cache
            inputs = torch.cat([embeds[prompt_index], completion_inputs], dim=1)
            hidden = self.lm.model(inputs_embeds=inputs, attention_mask=attention_mask,
                                   position_ids=positions).last_hidden_state[:, width - 1:]
        else:
            hidden = self.shared_prefix_hidden(embeds, mask, prompt_index, completion_inputs, attention_mask,
                                               positions)
        logits: torch.Tensor = self.lm.lm_head(hidden[:, :length])
        return logits

    def checkpointed(self) -> bool:
        """Whether the decoder recomputes its layers in the backward pass (activation checkpointing)."""
        return any(getattr(layer, "gradient_checkpointing", False) for layer in self.lm.model.layers)

    def shared_prefix_hidden(self, embeds: torch.Tensor, mask: torch.Tensor, prompt_index: torch.Tensor,
                             completion_inputs: torch.Tensor, attention_mask: torch.Tensor,
                             positions: torch.Tensor) -> torch.Tensor:
        """Decoder states from the last prefix position on, ``(n, 1 + completion inputs, dim)``: each prompt's
        prefix runs once and its keys and values are shared by the completions that answer it (gradients
        flow through them), the completions then run on that cache. With G completions per prompt this
        is the same forward on a fraction of the tokens (the audio prefix is most of a GRPO row)."""
        from transformers import DynamicCache

        width = embeds.shape[1]
        cache = DynamicCache(config=self.lm.config)
        prefix_positions = (mask.cumsum(-1) - 1).clamp(min=0)
        prefix = self.lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=prefix_positions,
                               use_cache=True, **{cache_kwarg(): cache}).last_hidden_state
        last: torch.Tensor = prefix[prompt_index, -1:]
        if completion_inputs.shape[1] == 0:
            return last
        cache.batch_select_indices(prompt_index)
        rest = self.lm.model(inputs_embeds=completion_inputs, attention_mask=attention_mask,
                             position_ids=positions[:, width:], use_cache=True,
                             **{cache_kwarg(): cache}).last_hidden_state
        return torch.cat([last, rest], dim=1)

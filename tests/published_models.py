# ruff: noqa: E501  (the chat templates are kept as published, one line per template line)
"""Granite Speech 3.3 2B and Qwen2-Audio-7B-Instruct as published, at test size, built offline.

Recreated from the files of the model repositories (``ibm-granite/granite-speech-3.3-2b``,
``Qwen/Qwen2-Audio-7B-Instruct``): ``config.json`` (every field but the sizes, which are shrunk so the
models run on a CPU), the chat templates, special tokens and EOS/PAD settings of ``tokenizer_config.json`` /
``chat_template.json``, ``generation_config.json`` and the feature extractors' settings. Only the vocabulary
is not the published one: a 500-token byte-level BPE trained here, with the published special tokens added
(so token ids differ; the tests use the tokens' names). Weights are random.

Granite Speech is published with ``has_lora_adapter: true`` and its audio LoRA beside the weights
(``adapter_config.json``, ``adapter_model.safetensors``, peft's layout, keys under the published module names
``base_model.model.language_model.model.layers.N.self_attn.{q,v}_proj``): ``build(..., shipped_adapter=True)``
writes that layout, with the published adapter config (rank 64 on ``q_proj`` and ``v_proj``) and random
factors (both non-zero, so the adapter changes the outputs). Without it, ``has_lora_adapter`` is ``false``.

Sizes: attention heads of 32 dimensions (vLLM's CPU attention takes 32, 64, 80, ... but not 8 or 16).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

# Granite 3.3 instruct's chat template (granite-speech-3.3-2b's tokenizer_config.json).
GRANITE_CHAT_TEMPLATE = r"""{# Alias tools -> available_tools #}
{%- if tools and not available_tools -%}
    {%- set available_tools = tools -%}
{%- endif -%}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set system_message = "Knowledge Cutoff Date: April 2024.\nToday's Date: " + strftime_now('%B %d, %Y') + ".\nYou are Granite, developed by IBM." %}
    {%- if available_tools and documents %}
        {%- set system_message = system_message + " You are a helpful assistant with access to the following tools. When a tool is required to answer the user's query, respond only with <|tool_call|> followed by a JSON list of tools used. If a tool does not exist in the provided list of tools, notify the user that you do not have the ability to fulfill the request.\nWrite the response to the user's input by strictly aligning with the facts in the provided documents. If the information needed to answer the question is not available in the documents, inform the user that the question cannot be answered based on the available data." %}
    {%- elif available_tools %}
        {%- set system_message = system_message + " You are a helpful assistant with access to the following tools. When a tool is required to answer the user's query, respond only with <|tool_call|> followed by a JSON list of tools used. If a tool does not exist in the provided list of tools, notify the user that you do not have the ability to fulfill the request." %}
    {%- elif documents %}
        {%- set system_message = system_message + " Write the response to the user's input by strictly aligning with the facts in the provided documents. If the information needed to answer the question is not available in the documents, inform the user that the question cannot be answered based on the available data." %}
    {%- elif thinking %}
        {%- set system_message = system_message + " You are a helpful AI assistant.\nRespond to every user query in a comprehensive and detailed way. You can write down your thoughts and reasoning process before responding. In the thought process, engage in a comprehensive cycle of analysis, summarization, exploration, reassessment, reflection, backtracing, and iteration to develop well-considered thinking process. In the response section, based on various attempts, explorations, and reflections from the thoughts section, systematically present the final solution that you deem correct. The response should summarize the thought process. Write your thoughts after 'Here is my thought process:' and write your response after 'Here is my response:' for each user query." %}
    {%- else %}
        {%- set system_message = system_message + " You are a helpful AI assistant." %}
    {%- endif %}
    {%- if 'citations' in controls and documents %}
        {%- set system_message = system_message + "\nUse the symbols <|start_of_cite|> and <|end_of_cite|> to indicate when a fact comes from a document in the search result, e.g <|start_of_cite|> {document_id: 1}my fact <|end_of_cite|> for a fact from document 1. Afterwards, list all the citations with their corresponding documents in an ordered list." %}
    {%- endif %}
    {%- if 'hallucinations' in controls and documents %}
        {%- set system_message = system_message + "\nFinally, after the response is written, include a numbered list of sentences from the response that are potentially hallucinated and not based in the documents." %}
    {%- endif %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- '<|start_of_role|>system<|end_of_role|>' + system_message + '<|end_of_text|>\n' }}
{%- if available_tools %}
    {{- '<|start_of_role|>available_tools<|end_of_role|>' }}
    {{- available_tools | tojson(indent=4) }}
    {{- '<|end_of_text|>\n' }}
{%- endif %}
{%- if documents %}
    {%- for document in documents %}
        {{- '<|start_of_role|>document {"document_id": "' + document['doc_id'] | string + '"}<|end_of_role|>\n' }}
        {{- document['text'] }}
        {{- '<|end_of_text|>\n' }}
    {%- endfor %}
{%- endif %}
{%- for message in loop_messages %}
    {{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' }}
    {%- if message['content'] is string %}
        {{- message['content'] }}
    {%- else %}
        {%- for entry in message['content'] %}
            {%- if entry['type'] == 'text' %}
                {{- entry['text'] }}
            {%- endif %}
        {%- endfor %}
    {%- endif %}
    {%- if loop.last and add_generation_prompt %}
        {{- '<|end_of_text|>\n' + '<|start_of_role|>assistant' }}
        {%- if controls %}
            {{- ' ' + controls | tojson()}}
        {%- endif %}
        {{- '<|end_of_role|>' }}
    {%- else %}
        {{- '<|end_of_text|>\n' }}
    {%- endif %}
{%- endfor %}"""

# Qwen2-Audio-7B-Instruct's chat_template.json.
QWEN2_AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] "
    "!= 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>"
    "{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}Audio {{ audio_count.value }}: "
    "<|audio_bos|><|AUDIO|><|audio_eos|>\n{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}")

# Special tokens in the order of their published ids (Granite: 0 and 49152-49155; Qwen2: 151643-151648).
GRANITE_SPECIAL = ["<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>", "<|tool_call|>", "<|audio|>"]
QWEN2_AUDIO_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "mat", "park", "what", "is", "say", "translate",
         "into", "german", "der", "die", "das", "hund", "katze", "ist", "und", "system", "user", "assistant"]


def _tokenizer(special: list[str], seed: int = 0) -> Tokenizer:
    rng = random.Random(seed)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(2000)]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=500, special_tokens=special,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return backend


def granite_tokenizer() -> PreTrainedTokenizerFast:
    """tokenizer_config.json: bos, eos, pad and unk all ``<|end_of_text|>``; the role and audio tokens added."""
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_tokenizer(GRANITE_SPECIAL), bos_token="<|end_of_text|>",
                                        eos_token="<|end_of_text|>", pad_token="<|end_of_text|>",
                                        unk_token="<|end_of_text|>", additional_special_tokens=GRANITE_SPECIAL[1:])
    tokenizer.chat_template = GRANITE_CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def qwen2_audio_tokenizer() -> PreTrainedTokenizerFast:
    """tokenizer_config.json: eos ``<|im_end|>``, pad ``<|endoftext|>``, no bos; the audio tokens added."""
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_tokenizer(QWEN2_AUDIO_SPECIAL), eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", additional_special_tokens=QWEN2_AUDIO_SPECIAL[1:])
    tokenizer.chat_template = QWEN2_AUDIO_CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def granite_speech_config(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """config.json of granite-speech-3.3-2b; sizes shrunk (layers, widths), everything else as published."""
    end = tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    return {
        "architectures": ["GraniteSpeechForConditionalGeneration"], "model_type": "granite_speech",
        "audio_token_index": tokenizer.convert_tokens_to_ids("<|audio|>"), "downsample_rate": 5, "window_size": 15,
        "has_lora_adapter": False, "initializer_range": 0.02,
        "encoder_config": {"model_type": "granite_speech_encoder", "context_size": 200, "conv_expansion_factor": 2,
                           "conv_kernel_size": 15, "dim_head": 16, "dropout": 0.1, "feedforward_mult": 4,
                           "hidden_dim": 32, "input_dim": 160, "max_pos_emb": 512, "num_heads": 2, "num_layers": 2,
                           "output_dim": 16},
        "projector_config": {"model_type": "blip_2_qformer", "attention_probs_dropout_prob": 0.1,
                             "cross_attention_frequency": 1, "encoder_hidden_size": 32, "hidden_act": "gelu",
                             "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02,
                             "intermediate_size": 64, "layer_norm_eps": 1e-12, "max_position_embeddings": 2048,
                             "num_attention_heads": 2, "num_hidden_layers": 2, "position_embedding_type": "absolute",
                             "use_qformer_text_input": False},
        "text_config": {"model_type": "granite", "attention_bias": False, "attention_dropout": 0.1,
                        "attention_multiplier": 0.0078125, "bos_token_id": end, "eos_token_id": end,
                        "pad_token_id": end, "embedding_multiplier": 12.0, "hidden_act": "silu", "hidden_size": 64,
                        "intermediate_size": 128, "logits_scaling": 8.0, "max_position_embeddings": 131072,
                        "mlp_bias": False, "num_attention_heads": 2, "num_hidden_layers": 2, "num_key_value_heads": 1,
                        "residual_multiplier": 0.22, "rms_norm_eps": 1e-05, "rope_theta": 10000000.0,
                        "tie_word_embeddings": True, "vocab_size": len(tokenizer)},
    }


def qwen2_audio_config(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """config.json of Qwen2-Audio-7B-Instruct; sizes shrunk, everything else as published."""
    return {
        "architectures": ["Qwen2AudioForConditionalGeneration"], "model_type": "qwen2_audio",
        "audio_token_index": tokenizer.convert_tokens_to_ids("<|AUDIO|>"), "ignore_index": -100,
        "vocab_size": len(tokenizer),
        "audio_config": {"model_type": "qwen2_audio_encoder", "activation_dropout": 0.0, "activation_function": "gelu",
                         "attention_dropout": 0.0, "d_model": 32, "dropout": 0.0, "encoder_attention_heads": 2,
                         "encoder_ffn_dim": 64, "encoder_layerdrop": 0.0, "encoder_layers": 2, "init_std": 0.02,
                         "max_source_positions": 1500, "num_mel_bins": 128, "scale_embedding": False},
        "text_config": {"model_type": "qwen2", "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"), "hidden_act": "silu",
                        "hidden_size": 64, "intermediate_size": 128, "max_position_embeddings": 8192,
                        "num_attention_heads": 2, "num_hidden_layers": 2, "num_key_value_heads": 2,
                        "rms_norm_eps": 1e-05, "rope_theta": 10000, "sliding_window": 32768, "use_sliding_window": False,
                        "tie_word_embeddings": False, "vocab_size": len(tokenizer), "attention_dropout": 0.0},
    }


def generation_config(family: str, tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """generation_config.json as published (Qwen2-Audio-7B-Instruct's decoding defaults included: an RL
    policy must ignore them, see HFSpeechLM.generate)."""
    if family == "granite_speech":
        end = tokenizer.convert_tokens_to_ids("<|end_of_text|>")
        return {"bos_token_id": end, "eos_token_id": end, "pad_token_id": end}
    ids = [tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.convert_tokens_to_ids("<|im_end|>")]
    return {"chat_format": "chatml", "do_sample": True, "eos_token_id": ids, "pad_token_id": ids[0],
            "repetition_penalty": 1.1, "temperature": 0.7, "top_k": 20, "top_p": 0.5}


# The published sizes (config.json), for the GPU benchmark: compute per token is real, the text is not.
PUBLISHED_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "granite_speech": {
        "encoder_config": {"dim_head": 128, "hidden_dim": 1024, "num_heads": 8, "num_layers": 16, "output_dim": 256},
        "projector_config": {"encoder_hidden_size": 1024, "hidden_size": 1024, "intermediate_size": 4096,
                             "num_attention_heads": 16},
        "text_config": {"hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 32,
                        "num_hidden_layers": 40, "num_key_value_heads": 8, "vocab_size": 49160},
    },
    "qwen2_audio": {
        "audio_config": {"d_model": 1280, "encoder_attention_heads": 20, "encoder_ffn_dim": 5120, "encoder_layers": 32},
        "text_config": {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
                        "num_hidden_layers": 32, "num_key_value_heads": 32, "vocab_size": 156032},
    },
}


# granite-speech-3.3-2b's adapter_config.json: the fields that define the adapter (peft's defaults elsewhere).
GRANITE_ADAPTER_CONFIG: dict[str, Any] = {
    "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "ibm-granite/granite-3.3-2b-instruct",
    "r": 64, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"], "bias": "none",
    "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "use_rslora": False,
    "use_dora": False, "modules_to_save": None, "layers_to_transform": None, "layers_pattern": None,
    "rank_pattern": {}, "alpha_pattern": {}, "revision": None,
}


def build(family: str, directory: Path, seed: int = 0, published_size: bool = False, device: str = "cpu",
          dtype: Any = None, shipped_adapter: bool = False) -> Path:
    """Save the random-weight model of ``family`` (``"granite_speech"`` or ``"qwen2_audio"``) with its processor;
    ``published_size``: at the published dimensions (2B / 8.4B parameters), built on ``device`` in ``dtype``;
    ``shipped_adapter`` (Granite): with its audio LoRA beside the weights, as published. The weights file uses
    the published parameter names (transformers 5.19 saves some under other names)."""
    import torch
    from transformers import (
        GenerationConfig,
        GraniteSpeechConfig,
        GraniteSpeechForConditionalGeneration,
        GraniteSpeechProcessor,
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    from speechgrpo.models.granite_features import TorchGraniteSpeechFeatureExtractor

    torch.manual_seed(seed)
    if family == "granite_speech":
        tokenizer = granite_tokenizer()
        values = _sized(granite_speech_config(tokenizer), family, published_size)
        config: Any = GraniteSpeechConfig(**{k: v for k, v in values.items() if k not in ("architectures",
                                                                                          "model_type")})
        with torch.device(device):
            model: Any = GraniteSpeechForConditionalGeneration._from_config(config, dtype=dtype)
        processor: Any = GraniteSpeechProcessor(audio_processor=TorchGraniteSpeechFeatureExtractor(),
                                                tokenizer=tokenizer, chat_template=GRANITE_CHAT_TEMPLATE)
    else:
        tokenizer = qwen2_audio_tokenizer()
        values = _sized(qwen2_audio_config(tokenizer), family, published_size)
        config = Qwen2AudioConfig(**{k: v for k, v in values.items() if k not in ("architectures", "model_type")})
        with torch.device(device):
            model = Qwen2AudioForConditionalGeneration._from_config(config, dtype=dtype)
        extractor = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30,
                                            n_fft=400, padding_value=0.0, return_attention_mask=True)
        processor = Qwen2AudioProcessor(feature_extractor=extractor, tokenizer=tokenizer,
                                        chat_template=QWEN2_AUDIO_CHAT_TEMPLATE)
    model.generation_config = GenerationConfig(**generation_config(family, tokenizer))
    if shipped_adapter:
        if family != "granite_speech":
            raise ValueError("only Granite Speech ships an adapter")
        model.config.has_lora_adapter = True
    model.save_pretrained(directory)
    _write_published_weights(family, model, directory)
    processor.save_pretrained(directory)
    if shipped_adapter:
        _write_shipped_adapter(model, directory, seed)
    (directory / "built_config.json").write_text(json.dumps(values, indent=2), encoding="utf-8")
    return directory


def _write_published_weights(family: str, model: Any, directory: Path) -> None:
    """``model.safetensors`` with the published parameter names (one file; a tied LM head left out, as published)."""
    from safetensors.torch import save_file

    from speechgrpo.models.hf_speech_lm import module_to_published_name
    from speechgrpo.models.loading import speech_lm_class

    prefixes = speech_lm_class(family).published_prefixes  # type: ignore[attr-defined]
    tied = model.config.get_text_config().tie_word_embeddings
    state = {module_to_published_name(prefixes, name): value.detach().contiguous().cpu()
             for name, value in model.state_dict().items() if not (tied and name == "lm_head.weight")}
    for old in [*directory.glob("model*.safetensors"), *directory.glob("model.safetensors.index.json")]:
        old.unlink()
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})


def _write_shipped_adapter(model: Any, directory: Path, seed: int) -> None:
    """Granite Speech's audio LoRA as published: ``adapter_config.json`` and ``adapter_model.safetensors`` with
    random non-zero factors under the published module names."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed + 1)
    rank = GRANITE_ADAPTER_CONFIG["r"]
    tensors = {}
    for index, layer in enumerate(model.model.language_model.layers):
        for name in GRANITE_ADAPTER_CONFIG["target_modules"]:
            linear = getattr(layer.self_attn, name)
            key = f"base_model.model.language_model.model.layers.{index}.self_attn.{name}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(rank, linear.in_features, generator=generator) * 0.05
            tensors[f"{key}.lora_B.weight"] = torch.randn(linear.out_features, rank, generator=generator) * 0.05
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    (directory / "adapter_config.json").write_text(json.dumps(GRANITE_ADAPTER_CONFIG, indent=2) + "\n",
                                                   encoding="utf-8")


def _sized(values: dict[str, Any], family: str, published_size: bool) -> dict[str, Any]:
    if published_size:
        for part, sizes in PUBLISHED_SIZES[family].items():
            values[part] = {**values[part], **sizes}
        if family == "qwen2_audio":
            values["vocab_size"] = values["text_config"]["vocab_size"]
    return values


FAMILIES = ["granite_speech", "qwen2_audio"]


def build_families(root: Path) -> dict[str, Path]:
    """Both families at test size under ``root``; Granite in its published layout (the audio LoRA beside the
    weights, merged by speechgrpo at load)."""
    return {family: build(family, root / family, shipped_adapter=family == "granite_speech") for family in FAMILIES}


def clip(seconds: float, seed: int) -> np.ndarray:
    """``seconds`` of Gaussian noise at 16 kHz, a stand-in for speech the random-weight models cannot tell apart."""
    return np.random.default_rng(seed).normal(0, 0.1, int(16_000 * seconds)).astype(np.float32)

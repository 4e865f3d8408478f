"""LoRA for every :class:`SpeechLM`: adapters injected into the language model's linear layers (peft).

The adapter is injected in place (``peft.inject_adapter_in_model``), so ``model.module`` keeps its own class
and its forward: the trainer, DDP and ``save`` see the same model with a few extra trainable matrices. All
other weights are frozen. The reference policy of GRPO is the same module with the adapter switched off
(:func:`adapter_disabled`), so no second copy of the model is held.

A saved model with LoRA holds its base weights in the usual layout (loadable without peft) and the adapter
in ``lora_adapter/`` (peft's ``adapter_config.json`` + ``adapter_model.safetensors``); loading re-attaches it,
trainable, so a checkpoint resumes LoRA training. :func:`merge_lora` folds the adapter into the weights
for export.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

ADAPTER_NAME = "speechgrpo"
LORA_DIRECTORY = "lora_adapter"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# The attention and MLP projections of Llama-style decoders (Qwen2, Granite, the bundled model's Llama).
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _tuner_layers(module: torch.nn.Module) -> list[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in module.modules() if isinstance(m, BaseTunerLayer)]


def has_lora(module: torch.nn.Module) -> bool:
    """Whether speechgrpo's adapter is injected in ``module``."""
    return any(".lora_A." + ADAPTER_NAME + "." in name for name, _ in module.named_parameters())


def lora_config(rank: int, alpha: float | None, dropout: float, target_modules: Iterable[str],
                prefix: str) -> Any:
    """peft's ``LoraConfig`` for linear layers named ``target_modules`` under ``prefix`` (the LM's module path)."""
    from peft import LoraConfig

    names = sorted(set(target_modules))
    if rank < 1 or not names:
        raise ValueError(f"LoRA needs rank >= 1 and target modules, got rank {rank} and {names}")
    pattern = "|".join(re.escape(name) for name in names)
    scope = f"{re.escape(prefix)}\\." if prefix else "(?:.*\\.)?"
    config_class: Any = LoraConfig  # peft annotates lora_alpha as int; floats work
    return config_class(r=rank, lora_alpha=float(2 * rank if alpha is None else alpha), lora_dropout=dropout,
                        target_modules=f"{scope}(?:.*\\.)?(?:{pattern})")


def inject_lora(module: torch.nn.Module, config: Any) -> torch.nn.Module:
    """Inject the adapter described by ``config`` into ``module`` (in place); only the adapter stays trainable."""
    from peft import inject_adapter_in_model

    if has_lora(module):
        raise ValueError("the model already has LoRA adapters")
    module = inject_adapter_in_model(config, module, adapter_name=ADAPTER_NAME)  # raises when no layer matches
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(f".lora_A.{ADAPTER_NAME}." in name or f".lora_B.{ADAPTER_NAME}." in name)
    return module


@contextmanager
def adapter_disabled(module: torch.nn.Module) -> Iterator[None]:
    """Run ``module`` without speechgrpo's adapter (the base model: GRPO's reference policy)."""
    layers = [layer for layer in _tuner_layers(module) if ADAPTER_NAME in layer.active_adapters]
    trainable = {name: p.requires_grad for name, p in module.named_parameters()}
    saved = [(layer, list(layer.active_adapters)) for layer in layers]
    for layer, active in saved:
        rest = [name for name in active if name != ADAPTER_NAME]
        if rest:
            layer.set_adapter(rest)
        else:
            layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer, active in saved:
            layer.enable_adapters(True)
            layer.set_adapter(active)
        for name, parameter in module.named_parameters():  # peft's switches also flip requires_grad
            parameter.requires_grad_(trainable[name])


def base_state_dict(module: torch.nn.Module, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The weights without the adapter (of ``state``, default ``module.state_dict()``), under their names in
    the model without peft."""
    state = module.state_dict() if state is None else state
    return {key.replace(".base_layer", ""): value for key, value in state.items() if ".lora_" not in key}


def save_adapter(module: torch.nn.Module, config: Any, directory: Path,
                 state: dict[str, torch.Tensor] | None = None) -> None:
    """The adapter's config and weights (from ``state``, default the module's own) in peft's layout
    (``adapter_config.json``, ``adapter_model.safetensors``)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(module, state_dict=state, adapter_name=ADAPTER_NAME)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(directory / ADAPTER_WEIGHTS))
    values = config.to_dict()
    values["target_modules"] = config.target_modules  # to_dict turns a set into a list; a regex stays a string
    (directory / ADAPTER_CONFIG).write_text(json.dumps(values, indent=2, default=str) + "\n", encoding="utf-8")


def load_adapter(module: torch.nn.Module, directory: Path) -> tuple[torch.nn.Module, Any]:
    """Inject the adapter saved in ``directory`` into ``module`` (trainable) and load its weights."""
    from peft import LoraConfig, set_peft_model_state_dict
    from safetensors.torch import load_file

    values = json.loads((directory / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    known = set(LoraConfig.__dataclass_fields__)
    config = LoraConfig(**{k: v for k, v in values.items() if k in known and k not in ("peft_type", "task_type")})
    module = inject_lora(module, config)
    device = next(module.parameters()).device
    state = load_file(str(directory / ADAPTER_WEIGHTS), device=str(device))
    result = set_peft_model_state_dict(module, state, adapter_name=ADAPTER_NAME)
    missing = [k for k in getattr(result, "unexpected_keys", []) if ".lora_" in k]
    if missing:
        raise ValueError(f"{directory}: adapter weights {missing[:3]} match no layer of the model")
    return module, config


def merge_peft_adapter(module: torch.nn.Module, directory: Path, module_name: Any) -> int:
    """Fold the LoRA adapter saved in ``directory`` (peft's ``adapter_config.json`` +
    ``adapter_model.safetensors``, as checkpoints ship it) into the weights of ``module``: ``W += scale * B @ A``
    with ``scale = lora_alpha / r`` (``/ sqrt(r)`` with rsLoRA), computed in float32. ``module_name`` maps a
    key's module path (after peft's ``base_model.model.`` prefix) to the path in ``module``. Without peft;
    options that change the adapter's function beyond that (DoRA, biases, per-layer ranks) are refused.
    Returns the number of layers merged."""
    from safetensors.torch import load_file

    config_path, weights_path = directory / ADAPTER_CONFIG, directory / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        raise FileNotFoundError(f"{directory}: {ADAPTER_CONFIG} without {ADAPTER_WEIGHTS} (only safetensors "
                                "adapters are read)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    unsupported = {"peft_type": config.get("peft_type", "LORA") != "LORA", "use_dora": bool(config.get("use_dora")),
                   "bias": config.get("bias", "none") != "none",
                   "fan_in_fan_out": bool(config.get("fan_in_fan_out")),
                   "rank_pattern": bool(config.get("rank_pattern")), "alpha_pattern": bool(config.get("alpha_pattern")),
                   "modules_to_save": bool(config.get("modules_to_save"))}
    refused = [name for name, bad in unsupported.items() if bad]
    if refused:
        raise ValueError(f"{config_path}: cannot merge an adapter with {', '.join(refused)} "
                         f"({', '.join(f'{n}={config.get(n)!r}' for n in refused)})")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    state = load_file(str(weights_path))
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        match = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight", key)
        if match is None:
            raise ValueError(f"{weights_path}: {key!r} is not a LoRA A/B weight")
        pairs.setdefault(match.group(1), {})[match.group(2)] = value
    for path, factors in sorted(pairs.items()):
        if set(factors) != {"A", "B"}:
            raise ValueError(f"{weights_path}: layer {path!r} has lora_{''.join(factors)} only")
        name = module_name(path)
        try:
            layer = module.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{weights_path}: adapter layer {path!r} ({name!r}) is not in the model") from None
        weight = layer.weight if isinstance(layer, torch.nn.Linear) else None
        a, b = factors["A"].float(), factors["B"].float()
        if weight is None or a.shape != (rank, weight.shape[1]) or b.shape != (weight.shape[0], rank):
            raise ValueError(f"{weights_path}: {path!r} A {tuple(a.shape)} / B {tuple(b.shape)} do not fit "
                             f"{type(layer).__name__} {tuple(weight.shape) if weight is not None else ''} at rank "
                             f"{rank}")
        with torch.no_grad():
            merged = weight.float() + scale * (b.to(weight.device) @ a.to(weight.device))
            weight.copy_(merged.to(weight.dtype))
    return len(pairs)


def merged_lora_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights of the layers speechgrpo's adapter modifies, with the adapter merged (``W + scale * B @ A``),
    under their names in the model without peft; the module is not changed."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, layer in module.named_modules():
            if isinstance(layer, BaseTunerLayer) and ADAPTER_NAME in getattr(layer, "lora_A", {}):
                base = layer.get_base_layer()
                delta = layer.get_delta_weight(ADAPTER_NAME)  # type: ignore[attr-defined]  # peft's LoRA layers
                merged[f"{name}.weight"] = (base.weight + delta.to(base.weight.dtype)).detach()
    return merged


def merge_lora(module: torch.nn.Module) -> torch.nn.Module:
    """Fold the adapter into the base weights and remove it: a plain model with the same outputs."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    targets: list[tuple[str, Any]] = [
        (name, layer) for name, layer in module.named_modules()
        if isinstance(layer, BaseTunerLayer) and ADAPTER_NAME in getattr(layer, "lora_A", {})]
    for name, layer in targets:
        layer.merge(adapter_names=[ADAPTER_NAME])
        if [other for other in layer.lora_A if other != ADAPTER_NAME]:
            layer.delete_adapter(ADAPTER_NAME)
            continue
        parent_name, _, attribute = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, attribute, layer.get_base_layer())
    return module

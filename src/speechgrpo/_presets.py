"""Named presets for the frozen config dataclasses of advantages and losses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

Config = TypeVar("Config")


def resolve_preset(preset: str | Config | None, presets: Mapping[str, Config], config_type: type[Config],
                   kind: str, overrides: Mapping[str, Any]) -> Config:
    """``preset`` as a config (a name from ``presets``, a config, or ``None`` for the defaults), with
    ``overrides`` applied; the dataclass re-checks the result."""
    if preset is None:
        config = config_type()
    elif isinstance(preset, config_type):
        config = preset
    elif isinstance(preset, str) and preset in presets:
        config = presets[preset]
    else:
        raise ValueError(f"unknown {kind} preset {preset!r}; choose from {', '.join(sorted(presets))}")
    return dataclasses.replace(config, **overrides) if overrides else config  # type: ignore[type-var]


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Reject a config field value outside its literal choices, naming the field."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")

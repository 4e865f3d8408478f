"""Checkpoints that survive ``kill -9``: written to a temporary folder, then renamed into place.

A checkpoint holds the model (its own ``save`` format), the optimizer and scheduler states, every random
number generator the run uses and the data sampler's position, so that a resumed run continues exactly
where the checkpoint was taken.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechgrpo.models import SpeechLM

COMPLETE = "COMPLETE"  # written last: a folder without it is an interrupted write and is ignored


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step:08d}"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or ``None``."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    complete = sorted(p for p in root.glob("step-*") if (p / COMPLETE).is_file())
    return complete[-1] if complete else None


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output_dir: str | Path, step: int, model: SpeechLM, trainer_state: dict[str, Any],
                    keep: int, model_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` (with ``model_state`` as its weights when given) and ``trainer_state`` (optimizer,
    scheduler, RNGs, sampler, ...) for ``step``."""
    final = checkpoint_dir(output_dir, step)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save(partial / "model", model_state)
    torch.save(trainer_state, partial / "trainer_state.pt")
    (partial / COMPLETE).write_text(str(step), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    for old in sorted(p for p in final.parent.glob("step-*") if (p / COMPLETE).is_file())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    return state

"""Checkpoints that survive ``kill -9``: written to a temporary folder, then renamed into place.

A checkpoint holds the model (its own ``save`` format), the optimizer and scheduler states, every random
number generator the run uses and the data sampler's position, so that a resumed run continues exactly
where the checkpoint was taken.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechgrpo.models import SpeechLM

COMPLETE = "COMPLETE"  # written last: a folder without it is an interrupted write and is ignored
CONFIG = "config.yaml"  # the run's config, in every checkpoint
RUN = "run.json"  # what a resumed run keeps from its start (the reference policy's model)


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step:08d}"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or ``None``."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    complete = _complete(root)
    return complete[-1] if complete else None


def _complete(root: Path) -> list[Path]:
    """The complete checkpoints under ``root``, oldest first (not the ``.partial`` / ``.old`` folders of a write)."""
    return sorted(p for p in root.glob("step-*") if re.fullmatch(r"step-\d+", p.name) and (p / COMPLETE).is_file())


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
                    keep: int, model_state: dict[str, torch.Tensor] | None = None,
                    config: dict[str, Any] | None = None, run: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (with ``model_state`` as its weights when given), ``trainer_state`` (optimizer,
    scheduler, RNGs, sampler, ...), the run's ``config`` (``config.yaml``) and facts about the run that a
    resume keeps (``run.json``: the model its reference policy comes from) for ``step``."""
    final = checkpoint_dir(output_dir, step)

    def write(partial: Path) -> None:
        model.save(partial / "model", model_state)
        torch.save(trainer_state, partial / "trainer_state.pt")
        if config is not None:
            import yaml

            (partial / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        if run is not None:
            (partial / RUN).write_text(json.dumps(run) + "\n", encoding="utf-8")
        (partial / COMPLETE).write_text(str(step), encoding="utf-8")

    write_atomically(final, write)
    for old in _complete(final.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_atomically(folder: Path, write: Any) -> None:
    """``write(partial)`` fills a temporary sibling folder, which then replaces ``folder``: a kill at any point
    leaves the old folder (or none), never a half-written one. The old folder is moved aside first and
    removed after the rename (a crash in between leaves it as ``<name>.old``, found again below)."""
    partial = folder.with_name(folder.name + ".partial")
    stale = folder.with_name(folder.name + ".old")
    shutil.rmtree(partial, ignore_errors=True)
    if stale.is_dir() and not folder.exists():  # a crash between the two renames of an earlier write
        os.replace(stale, folder)
    partial.mkdir(parents=True)
    write(partial)
    if folder.exists():
        shutil.rmtree(stale, ignore_errors=True)
        os.replace(folder, stale)
    os.replace(partial, folder)
    shutil.rmtree(stale, ignore_errors=True)


def run_facts(checkpoint: Path) -> dict[str, Any]:
    """``run.json`` of ``checkpoint`` (empty for checkpoints that have none)."""
    path = checkpoint / RUN
    facts: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return facts


def run_config(checkpoint: Path) -> dict[str, Any] | None:
    """The config the run that wrote ``checkpoint`` trained with (``None`` for checkpoints of speechgrpo
    versions that did not record it)."""
    import yaml

    path = checkpoint / CONFIG
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    return state

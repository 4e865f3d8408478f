"""Per-step training metrics as JSONL and CSV, safe to resume, and to the trackers ``report_to`` names.

``report_to`` takes TRL's values: ``"tensorboard"`` (event files under ``output_dir/tensorboard``),
``"wandb"`` (Weights & Biases; ``WANDB_MODE=offline`` keeps the run in ``output_dir/wandb``) and
``"trackio"`` (Hugging Face's local-first tracker: a database on this machine, nothing sent unless you
configure a Space). Each gets the run's config once and every logged row's numbers at its step.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# report_to name -> (module to import, extra that installs it)
TRACKERS = {"tensorboard": ("torch.utils.tensorboard", "report"), "wandb": ("wandb", "report"),
            "trackio": ("trackio", "report")}


def check_trackers(names: Sequence[str]) -> None:
    """Raise, naming the extra to install, where a tracker in ``names`` cannot be imported."""
    import importlib

    for name in names:
        module, extra = TRACKERS[name]
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"report_to {name} needs its package: pip install 'speechgrpo[{extra}]' ({err})") from None


class RunLog:
    """Appends one row per logged step to ``metrics.jsonl`` and ``metrics.csv`` in ``output_dir``.

    On resume from step ``s``, rows after ``s`` (written after the checkpoint, before the interruption)
    are dropped, so that every step appears once.
    """

    def __init__(self, output_dir: str | Path, resume_step: int = 0, report_to: Sequence[str] = (),
                 run_config: dict[str, Any] | None = None) -> None:
        output_dir = Path(output_dir)
        self.jsonl = output_dir / "metrics.jsonl"
        self.csv = output_dir / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []
        if self.jsonl.is_file():
            self.rows = [row for row in map(json.loads, self.jsonl.read_text(encoding="utf-8").splitlines())
                         if row["step"] <= resume_step]
        self._rewrite()
        check_trackers(report_to)
        self.trackers = [_open(name, output_dir, run_config or {}) for name in report_to]

    def _rewrite(self) -> None:
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        self.jsonl.write_text("".join(json.dumps(row) + "\n" for row in self.rows), encoding="utf-8")
        self.columns = []
        for row in self.rows:
            self.columns.extend(k for k in row if k not in self.columns)
        with self.csv.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def log(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with self.jsonl.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if set(row) - set(self.columns):
            self._rewrite()  # a new column: rewrite the CSV with the wider header
        else:
            with self.csv.open("a", newline="", encoding="utf-8") as handle:
                csv.DictWriter(handle, fieldnames=self.columns).writerow(row)
        numbers = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        for tracker in self.trackers:
            tracker.log(numbers, int(row["step"]))

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []


class _TensorBoard:
    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(directory / "tensorboard"))
        self.writer.add_text("config", json.dumps(config, indent=2, default=str))

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(project="speechgrpo", name=directory.name, dir=str(directory), config=config,
                              reinit="finish_previous")

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class _Trackio:
    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project="speechgrpo", name=directory.name, config=config)

    def log(self, values: dict[str, float], step: int) -> None:
        self.trackio.log(values, step=step)

    def close(self) -> None:
        self.trackio.finish()  # type: ignore[no-untyped-call]


def _open(name: str, directory: Path, config: dict[str, Any]) -> Any:
    return {"tensorboard": _TensorBoard, "wandb": _WandB, "trackio": _Trackio}[name](directory, config)

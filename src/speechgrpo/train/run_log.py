"""Per-step training metrics as JSONL and CSV (and TensorBoard when asked), safe to resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


class RunLog:
    """Appends one row per logged step to ``metrics.jsonl`` and ``metrics.csv`` in ``output_dir``.

    On resume from step ``s``, rows after ``s`` (written after the checkpoint, before the interruption)
    are dropped, so that every step appears once.
    """

    def __init__(self, output_dir: str | Path, resume_step: int = 0, tensorboard: bool = False) -> None:
        self.jsonl = Path(output_dir) / "metrics.jsonl"
        self.csv = Path(output_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []
        if self.jsonl.is_file():
            self.rows = [row for row in map(json.loads, self.jsonl.read_text(encoding="utf-8").splitlines())
                         if row["step"] <= resume_step]
        self._rewrite()
        self.writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(output_dir) / "tensorboard"))

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
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, row["step"])
            self.writer.flush()

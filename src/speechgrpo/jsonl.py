"""JSON Lines input with errors that name the file and line (manifests, groups files)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def jsonl_records(path: Path, error: type[Exception]) -> Iterator[tuple[int, str, Any]]:
    """``(line number, "<path>:<line>", parsed value)`` for every non-blank line; invalid JSON raises
    ``error`` with that location."""
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{where}: invalid JSON ({err.msg} at column {err.colno})") from err
            yield number, where, record

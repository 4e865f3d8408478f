"""JSON Lines input with errors that name the file, line and field (manifests, groups files)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
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


class RecordCheck:
    """Checks of one parsed line; a failed one raises ``error`` prefixed with the line's location."""

    def __init__(self, error: type[Exception], where: str) -> None:
        self.error, self.where = error, where

    def __call__(self, condition: bool, message: str) -> None:
        if not condition:
            raise self.error(f"{self.where}: {message}")

    def object(self, record: Any) -> Mapping[str, Any]:
        self(isinstance(record, dict), f"expected a JSON object, got {type(record).__name__}")
        return record  # type: ignore[no-any-return]

    def strings(self, record: Mapping[str, Any], key: str, one_string: bool = False) -> list[str]:
        """``record[key]`` as a non-empty list of strings (a lone string accepted with ``one_string``)."""
        values = record.get(key)
        if one_string and isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values:
            raise self.error(f"{self.where}: '{key}' must be {'a string or ' if one_string else ''}a non-empty "
                             "list of strings")
        for j, value in enumerate(values):
            self(isinstance(value, str), f"{key}[{j}] must be a string, got {type(value).__name__}")
        return values

    def references(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        """The ``references`` field: one string or a non-empty list of them."""
        return tuple(self.strings(record, "references", one_string=True))

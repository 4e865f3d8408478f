"""GRPO groups stored as JSON Lines: one prompt per line with its references and G completions.

Each line is an object with

    id           string (optional; defaults to the line number)
    prompt       string (optional)
    task         string (optional, e.g. "sqa", "ast")
    references   a string or a non-empty list of strings
    completions  a non-empty list of strings
    off_policy   optional list of booleans, one per completion (MP-GRPO's injected ground truth)

Errors name the file, the line number and the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from speechgrpo.data._jsonl import RecordCheck, jsonl_records
from speechgrpo.rewards.base import RewardBatch


@dataclass(frozen=True)
class Group:
    """One prompt's references and completions; empty ``off_policy`` means every completion is on-policy."""

    id: str
    references: tuple[str, ...]
    completions: list[str]
    off_policy: list[bool] = field(default_factory=list)
    prompt: str = ""
    task: str = ""


class GroupFileError(ValueError):
    """A malformed groups file; the message names the file, line and field."""


def parse_group(record: Any, where: str, default_id: str) -> Group:
    """Validate one decoded JSON line (``where`` prefixes error messages, e.g. ``file:line``)."""
    check = RecordCheck(GroupFileError, where)
    record = check.object(record)
    references = check.references(record)
    completions = check.strings(record, "completions")
    off_policy = record.get("off_policy", [False] * len(completions))
    check(isinstance(off_policy, list) and len(off_policy) == len(completions),
          f"'off_policy' must be a list of {len(completions)} booleans (one per completion)")
    for j, flag in enumerate(off_policy):
        check(isinstance(flag, bool), f"off_policy[{j}] must be true or false, got {flag!r}")
    for key in ("id", "prompt", "task"):
        check(isinstance(record.get(key, ""), str), f"'{key}' must be a string")
    return Group(id=record.get("id") or default_id, references=references, completions=completions,
                 off_policy=off_policy, prompt=record.get("prompt", ""), task=record.get("task", ""))


def read_groups(path: str | Path) -> list[Group]:
    """Read a groups JSONL file (blank lines are skipped)."""
    path = Path(path)
    groups = [parse_group(record, where, default_id=f"line-{number}")
              for number, where, record in jsonl_records(path, GroupFileError)]
    if not groups:
        raise GroupFileError(f"{path}: no groups found")
    return groups


def example_groups() -> list[Group]:
    """The bundled example batch: spoken QA and En→De translation groups of 8 completions."""
    source = resources.files("speechgrpo.data") / "example_groups.jsonl"
    with resources.as_file(source) as path:
        return read_groups(path)


def flatten(groups: Iterable[Group]) -> RewardBatch:
    """The groups as one reward batch: every completion with its group's references, group id and
    off-policy flag."""
    completions: list[str] = []
    references: list[tuple[str, ...]] = []
    group_ids: list[int] = []
    off_policy: list[bool] = []
    for index, group in enumerate(groups):
        completions += group.completions
        references += [group.references] * len(group.completions)
        group_ids += [index] * len(group.completions)
        off_policy += group.off_policy or [False] * len(group.completions)  # no flags: all on-policy
    return RewardBatch(completions, references, np.array(group_ids, dtype=np.int64), np.array(off_policy, dtype=bool))

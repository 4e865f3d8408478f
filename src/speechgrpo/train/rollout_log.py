"""GRPO rollouts as a groups JSONL file (the format of :mod:`speechgrpo.data.groups_file`), for
``speechgrpo bench signal`` and for reading what the policy said; safe to resume."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def rollout_file(output_dir: str | Path, rank: int = 0, world: int = 1) -> Path:
    """``rollouts.jsonl``, or ``rollouts.rank<k>.jsonl`` per process when there are several."""
    return Path(output_dir) / ("rollouts.jsonl" if world == 1 else f"rollouts.rank{rank}.jsonl")


def rollout_groups(step: int, examples: Sequence[Any], texts: Sequence[str], prompt_index: Sequence[int],
                   off_policy: Sequence[bool], rewards: Sequence[float]) -> list[dict[str, Any]]:
    """One group record per prompt: its completions in sampling order, their off-policy flags and rewards."""
    groups: list[dict[str, Any]] = []
    for i, example in enumerate(examples):
        rows = [k for k, p in enumerate(prompt_index) if p == i]
        groups.append({"id": f"{example.id}@{step}", "step": step, "task": example.task, "prompt": example.prompt,
                       "references": list(example.references), "completions": [texts[k] for k in rows],
                       "off_policy": [bool(off_policy[k]) for k in rows],
                       "rewards": [float(rewards[k]) for k in rows]})
    return groups


class RolloutLog:
    """Appends each step's groups to :func:`rollout_file`; on resume from step ``s`` drops later rows."""

    def __init__(self, path: Path, resume_step: int = 0) -> None:
        self.path = path
        kept = []
        if path.is_file():
            kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                    if line and json.loads(line)["step"] <= resume_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def log(self, groups: Sequence[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(group, ensure_ascii=False) + "\n" for group in groups)

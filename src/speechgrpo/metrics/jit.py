"""Optional compiled kernels: numba when installed (``pip install 'speechgrpo[fast]'``), else none.

Every compiled path has an exact pure-Python twin, and the two are tested against each other and
against the reference implementations. ``SPEECHGRPO_NO_NUMBA=1`` forces the pure-Python paths.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


@cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def compiled_available() -> bool:
    """Whether the numba kernels are used (installed and not disabled by ``SPEECHGRPO_NO_NUMBA``).

    Modules holding kernels are imported only once this is true, so importing speechgrpo never
    imports numba (which takes a second and pulls scipy).
    """
    return _numba_installed() and os.environ.get("SPEECHGRPO_NO_NUMBA", "") in ("", "0")


def njit(fn: F) -> F:
    """Compile ``fn`` with numba, cached on disk."""
    numba: Any = importlib.import_module("numba")
    return cast(F, numba.njit(cache=True, nogil=True)(fn))


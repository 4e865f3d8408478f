"""Optional compiled kernels: numba when installed (``pip install 'speechgrpo[fast]'``), else none.

Every compiled path has an exact pure-Python twin, and the two are tested against each other and
against the reference implementations. ``SPEECHGRPO_NO_NUMBA=1`` forces the pure-Python paths.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

numba: Any
try:
    numba = importlib.import_module("numba")
except ImportError:  # pragma: no cover - depends on the environment
    numba = None


def compiled_available() -> bool:
    """Whether the numba kernels are used (installed and not disabled by ``SPEECHGRPO_NO_NUMBA``)."""
    return numba is not None and os.environ.get("SPEECHGRPO_NO_NUMBA", "") in ("", "0")


def njit(fn: F) -> F:
    """Compile ``fn`` with numba (cached on disk) when numba is installed; callers check
    :func:`compiled_available` before calling a kernel."""
    if numba is None:  # pragma: no cover - depends on the environment
        return fn
    return cast(F, numba.njit(cache=True, nogil=True)(fn))

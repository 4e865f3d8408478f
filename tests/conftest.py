from __future__ import annotations

from pathlib import Path

import pytest
from toy_demo import build_toy_base


@pytest.fixture(scope="session")
def toy_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny base model built by `speechgrpo build-base` for the toy demo's splits."""
    return build_toy_base(tmp_path_factory.mktemp("base"))

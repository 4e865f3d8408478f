"""Packaging promises: a light import, typed, versioned."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import speechgrpo


def test_importing_metrics_and_rewards_pulls_no_heavy_dependency() -> None:
    code = ("import sys, speechgrpo.metrics, speechgrpo.rewards; "
            "print(sorted(m for m in ('torch', 'transformers', 'bert_score', 'nltk', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_package_is_typed_and_versioned() -> None:
    assert (resources.files("speechgrpo") / "py.typed").is_file()
    assert speechgrpo.__version__ == "0.1.0"

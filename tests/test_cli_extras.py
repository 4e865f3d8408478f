"""A command that needs a missing extra refuses in one line naming it; a reward whose extra is missing
is left out of ``bench signal`` and ``bench speed`` with a note. (The real core-only install is checked
by ``scripts/check_core_install.py``, run by ``make test``.)"""

from __future__ import annotations

import importlib
import sys

import pytest

from speechgrpo._extras import missing_extra, unavailable_reason
from speechgrpo.cli import main


@pytest.mark.parametrize("argv,module,extra", [
    (["demo"], "yaml", "train"),
    (["bench", "train"], "yaml", "train"),
    (["serve", "--reward", "bleu"], "aiohttp", "server"),
])
def test_a_missing_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                               argv: list[str], module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` now raises ModuleNotFoundError
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"speechgrpo {' '.join(argv[:2] if argv[0] == 'bench' else argv[:1])}: needs the "
                                f"{extra!r} extra: pip install 'speechgrpo[{extra}]' (missing module {module!r})"]


def test_a_missing_module_that_is_not_an_extra_is_a_real_error() -> None:
    assert missing_extra(ModuleNotFoundError("x", name="speechgrpo.nothing")) is None
    assert missing_extra(ModuleNotFoundError("x", name="bert_score.utils")) == "bertscore"
    assert missing_extra(ImportError("not a missing module")) is None
    assert "needs the 'meteor' extra" in unavailable_reason(ModuleNotFoundError("x", name="nltk"))
    assert unavailable_reason(OSError("\n  no WordNet here\nmore")) == "no WordNet here"


def test_bench_leaves_out_a_reward_whose_extra_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    meteor = importlib.import_module("speechgrpo.metrics.meteor")  # the package's `meteor` is the function

    def no_nltk(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'nltk'", name="nltk")

    monkeypatch.setattr(meteor.METEOR, "__init__", no_nltk)
    assert main(["bench", "signal", "--rewards", "bleu,meteor"]) == 0
    out = capsys.readouterr().out
    assert "meteor: left out, needs the 'meteor' extra (pip install 'speechgrpo[meteor]'" in out
    assert main(["bench", "speed", "--groups", "4", "--repeats", "1", "--rewards", "bleu,meteor"]) == 0
    out = capsys.readouterr().out
    assert "meteor: left out, needs the 'meteor' extra" in out and "nltk" not in out.split("meteor: left out")[0]
    assert main(["bench", "signal", "--rewards", "bleu", "--target", "meteor"]) == 2  # the target is needed
    assert "the target reward 'meteor' cannot run here" in capsys.readouterr().err
    assert main(["bench", "speed", "--groups", "4", "--repeats", "1", "--rewards", "meteor"]) == 2
    assert "none of the rewards could run here" in capsys.readouterr().err

"""The code blocks of the quickstart and the reward catalogue run as written (their asserts compare
speechgrpo with sacrebleu, jiwer and rouge-score)."""

from __future__ import annotations

import pytest
from doc_blocks import doc_block

from speechgrpo.rewards import registry


@pytest.mark.parametrize(("page", "block"), [("quickstart.md", "quickstart-metrics"),
                                             ("quickstart.md", "coming-from"),
                                             ("rewards.md", "python-rewards")])
def test_doc_block_runs(page: str, block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # a block may register a reward
    exec(compile(doc_block(page, block), f"docs/{page}:{block}", "exec"), {})
    if block == "python-rewards":
        assert "brevity" in registry.available_rewards()

"""The TRL adapter: TRL's calling convention, and a real GRPOTrainer run that logs our rewards."""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from doc_blocks import doc_block
from tiny_lm import build_tiny_lm

from speechgrpo.grpo_adapters import LabelError
from speechgrpo.grpo_adapters.trl import TRLReward, completion_text, trl_async_reward, trl_reward
from speechgrpo.rewards import parse_reward

PROMPTS = ["translate: the cat"] * 3 + ["translate: a dog"] * 3
COMPLETIONS = ["die katze", "die katze sat", "", "ein hund", "der hund", "ein hund"]
REFERENCES = ["die katze"] * 3 + [["ein hund", "der hund"]] * 3


def test_scores_equal_the_reward_called_directly() -> None:
    direct = parse_reward("0.5*bleu + 0.5*chrf")(COMPLETIONS, REFERENCES).scores
    metrics: dict[str, float] = {}
    columns: dict[str, list[Any]] = {}
    out = trl_reward("0.5*bleu + 0.5*chrf")(
        prompts=PROMPTS, completions=COMPLETIONS, completion_ids=[[1]] * 6, reference=REFERENCES,
        trainer_state=None, log_metric=metrics.__setitem__, log_extra=columns.__setitem__, task=["x"] * 6)
    assert out == direct.tolist()
    assert set(metrics) == {"0.5*bleu+0.5*chrf/bleu", "0.5*bleu+0.5*chrf/chrf"}
    bleu = parse_reward("bleu")(COMPLETIONS, REFERENCES).scores
    assert metrics["0.5*bleu+0.5*chrf/bleu"] == pytest.approx(bleu.mean())
    assert columns["0.5*bleu+0.5*chrf/chrf"] == pytest.approx(parse_reward("chrf")(COMPLETIONS, REFERENCES).scores)


def test_conversational_completions_and_custom_reference_column() -> None:
    conversational = [[{"role": "assistant", "content": text}] for text in COMPLETIONS]
    conversational[1] = [{"role": "assistant", "content": [{"type": "text", "text": "die katze sat"}]}]
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    out = trl_reward("bleu", reference_column="solution")(prompts=prompts, completions=conversational,
                                                          completion_ids=None, solution=REFERENCES)
    assert out == parse_reward("bleu")(COMPLETIONS, REFERENCES).scores.tolist()
    assert completion_text("plain") == "plain"


def test_groups_are_the_runs_of_identical_prompts() -> None:
    # gdpo z-scores within groups: a mistake in the groups changes the numbers.
    out = trl_reward("gdpo(1*bleu)")(prompts=PROMPTS, completions=COMPLETIONS, reference=REFERENCES)
    expected = parse_reward("gdpo(1*bleu)")(COMPLETIONS, REFERENCES, group_ids=[0, 0, 0, 1, 1, 1]).scores
    np.testing.assert_allclose(out, expected)
    wrong = parse_reward("gdpo(1*bleu)")(COMPLETIONS, REFERENCES, group_ids=[0] * 6).scores
    assert not np.allclose(out, wrong)


def test_off_policy_column_reaches_the_reward() -> None:
    reward = trl_reward("bleu(off_policy_value=0.25)", off_policy_column="is_reference")
    out = reward(prompts=PROMPTS, completions=COMPLETIONS, reference=REFERENCES,
                 is_reference=[False, False, True, False, False, True])
    assert out[2] == 0.25 and out[5] == 0.25 and out[0] == 1.0


def test_bad_input_raises_by_default_and_gives_none_on_request() -> None:
    reward = trl_reward("bleu")
    with pytest.raises(KeyError, match=r"no dataset column 'reference'.*solution"):
        reward(prompts=PROMPTS, completions=COMPLETIONS, solution=REFERENCES)
    labels = [*REFERENCES[:5], 42]
    with pytest.raises(LabelError, match=r"labels\[5\]"):
        reward(prompts=PROMPTS, completions=COMPLETIONS, reference=labels)
    lenient = trl_reward("bleu", on_error="none")
    out = lenient(prompts=PROMPTS, completions=[*COMPLETIONS[:4], None, COMPLETIONS[5]], reference=labels)
    assert out[4] is None and out[5] is None
    assert out[:4] == parse_reward("bleu")(COMPLETIONS[:4], REFERENCES[:4]).scores.tolist()
    with pytest.raises(ValueError, match="on_error"):
        TRLReward("bleu", on_error="skip")  # type: ignore[arg-type]


def test_async_variant_is_a_coroutine_function_with_the_right_name() -> None:
    reward = trl_async_reward("chrf", name="my_chrf")
    assert inspect.iscoroutinefunction(reward) and reward.__name__ == "my_chrf"
    out = asyncio.run(reward(prompts=PROMPTS, completions=COMPLETIONS, reference=REFERENCES))
    assert out == parse_reward("chrf")(COMPLETIONS, REFERENCES).scores.tolist()


def test_sync_reward_pickles_for_trl_async_workers() -> None:
    reward = pickle.loads(pickle.dumps(trl_reward("0.5*bleu + 0.5*rougeL")))
    assert reward.__name__ == "0.5*bleu+0.5*rougeL"
    assert reward(prompts=PROMPTS, completions=COMPLETIONS, reference=REFERENCES) == parse_reward(
        "0.5*bleu + 0.5*rougeL")(COMPLETIONS, REFERENCES).scores.tolist()


@pytest.mark.bertscore
def test_grpo_trainer_logs_our_rewards(tmp_path: Path) -> None:
    """The documented example, run by a real trl.GRPOTrainer for 2 steps on CPU with a tiny model."""
    pytest.importorskip("trl")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets import Dataset

    import speechgrpo.grpo_adapters.trl as adapter

    calls: list[tuple[list[str], list[Any]]] = []
    original = adapter.TRLReward.__call__

    def recording_call(self: TRLReward, *args: Any, **kwargs: Any) -> list[float | None]:
        out = original(self, *args, **kwargs)
        if self.__name__ == "bleu":
            calls.append(([completion_text(c) for c in kwargs["completions"]], list(kwargs["reference"])))
        return out

    namespace: dict[str, Any] = {
        "MODEL": str(build_tiny_lm(tmp_path / "model")),
        "OUTPUT_DIR": str(tmp_path / "out"),
        "dataset": Dataset.from_dict({
            "prompt": ["the cat sat", "a dog ran", "one two three", "red green blue"],
            "reference": [["on the mat"], ["in the park"], ["four five six", "four five"], ["yellow black white"]]}),
    }
    adapter.TRLReward.__call__ = recording_call  # type: ignore[method-assign]
    try:
        exec(doc_block("adapters/trl.md", "trl-grpo"), namespace)
    finally:
        adapter.TRLReward.__call__ = original  # type: ignore[method-assign]
    logs = [entry for entry in namespace["trainer"].state.log_history if "rewards/bleu/mean" in entry]
    assert len(logs) == 2 and len(calls) == 2
    for entry, (completions, references) in zip(logs, calls, strict=True):
        assert entry["rewards/bleu/mean"] == pytest.approx(
            parse_reward("bleu")(completions, references).scores.mean(), abs=1e-6)
        assert entry["rewards/bleu_chrf/mean"] == pytest.approx(
            parse_reward("0.5*bleu + 0.5*chrf")(completions, references).scores.mean(), abs=1e-6)
        assert "bleu_chrf/chrf" in entry and "rewards/bertscore/mean" in entry


def test_signature_is_logged_when_it_first_scores_and_when_nrefs_turns_var(caplog: pytest.LogCaptureFixture) -> None:
    reward = trl_reward("0.5*bleu + 0.5*chrf")
    with caplog.at_level("INFO", logger="speechgrpo.adapters"):
        for _ in range(3):  # one reference per sample
            reward(prompts=PROMPTS[:3], completions=COMPLETIONS[:3], reference=REFERENCES[:3])
        logged = [r.getMessage() for r in caplog.records if "speechgrpo reward" in r.getMessage()]
        assert logged == [f"speechgrpo reward {reward.signature}"] and "|nrefs:1|" in logged[0]
        reward(prompts=PROMPTS[3:], completions=COMPLETIONS[3:], reference=REFERENCES[3:])  # two
        reward(prompts=PROMPTS[:3], completions=COMPLETIONS[:3], reference=REFERENCES[:3])
    logged = [r.getMessage() for r in caplog.records if "speechgrpo reward" in r.getMessage()]
    assert len(logged) == 2 and logged[1] == f"speechgrpo reward {reward.signature}" and "|nrefs:var|" in logged[1]

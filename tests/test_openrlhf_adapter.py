"""The OpenRLHF reward file: loaded and called exactly as OpenRLHF does, per sample and in chunks."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from doc_blocks import doc_block  # noqa: E402

from speechgrpo.grpo_adapters.openrlhf import (  # noqa: E402
    DEFAULT_SPECIAL_TOKENS,
    OpenRLHFReward,
    add_cli,
    cli_main,
    extract_response,
    write_reward_file,
)
from speechgrpo.rewards import SpecError, parse_reward  # noqa: E402

SPEC = "0.5*bleu + 0.5*chrf"


def chat(text: str) -> str:
    """A Qwen-style templated prompt, as OpenRLHF's --data.apply_chat_template makes it."""
    return f"<|im_start|>system\nYou translate.<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


PROMPTS = [chat("Hallo Welt"), chat("Hallo Welt"), chat("Der Zug ist spät."), chat("Der Zug ist spät."),
           chat("Guten Morgen")]
RESPONSES = ["hello world", "Hello, world!", "The train is late.", "train late", ""]
QUERIES = [p + r + "<|im_end|>" for p, r in zip(PROMPTS, RESPONSES, strict=True)]
QUERIES[1] += "<|endoftext|>"
LABELS: list[Any] = ["hello world", ["Hello world", "hello, world"], {"text": ["The train is late."]},
                     {"answer": "The train is delayed."}, "good morning"]
REFERENCES = [("hello world",), ("Hello world", "hello, world"), ("The train is late.",),
              ("The train is delayed.",), ("good morning",)]


def load_like_openrlhf(path: Path) -> Any:
    """What OpenRLHF's SingleTurnAgentExecutor (and v0.8.x's experience maker) does with the file."""
    spec = importlib.util.spec_from_file_location("reward_func", path)
    assert spec is not None and spec.loader is not None
    reward_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reward_module)
    return reward_module.reward_func


@pytest.fixture(scope="module")
def reward_func(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_like_openrlhf(write_reward_file(tmp_path_factory.mktemp("openrlhf") / "reward.py", SPEC))


@pytest.fixture(scope="module")
def expected() -> np.ndarray:
    return parse_reward(SPEC)(RESPONSES, REFERENCES).scores


def check_output(out: dict[str, Any], n: int) -> None:
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert set(out["extra_logs"]) == {"bleu", "chrf"}
    for value in (out["rewards"], out["scores"], *out["extra_logs"].values()):
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float32 and value.shape == (n,)


def test_per_sample_calls_match_the_reward(reward_func: Any, expected: np.ndarray) -> None:
    direct = parse_reward(SPEC)(RESPONSES, REFERENCES)
    for i in range(len(QUERIES)):
        out = reward_func([QUERIES[i]], [PROMPTS[i]], [LABELS[i]])  # v0.9.1+: one sample, positional
        check_output(out, 1)
        assert out["rewards"].item() == pytest.approx(expected[i], abs=1e-6)
        assert torch.equal(out["rewards"], out["scores"])
        # v0.11 consumers: Experience.rewards = torch.tensor([reward_val]); extra_logs value.flatten()[0].item()
        assert torch.tensor([out["rewards"]]).flatten()[0].item() == pytest.approx(expected[i], abs=1e-6)
        for name, value in out["extra_logs"].items():
            assert value.flatten()[0].item() == pytest.approx(direct.components[name][i], abs=1e-6)


def test_chunked_call_matches_per_sample_and_the_reward(reward_func: Any, expected: np.ndarray) -> None:
    out = reward_func(QUERIES, PROMPTS, LABELS)  # v0.8.x: a chunk of micro_rollout_batch_size
    check_output(out, len(QUERIES))
    assert out["rewards"].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    singles = [reward_func([q], [p], [lab])["rewards"] for q, p, lab in zip(QUERIES, PROMPTS, LABELS, strict=True)]
    assert torch.equal(torch.cat(singles), out["rewards"])  # v0.8.x: torch.cat over chunks
    assert out["rewards"].max().item() == 1.0  # "hello world" against itself


def test_called_from_threads_like_openrlhf(reward_func: Any) -> None:
    """v0.11 runs reward_func in asyncio.to_thread, all samples of a rollout at once."""
    async def all_samples() -> list[Any]:
        return await asyncio.gather(*(asyncio.to_thread(reward_func, [QUERIES[i % 5]], [PROMPTS[i % 5]],
                                                        [LABELS[i % 5]]) for i in range(80)))
    outs = asyncio.run(all_samples())
    sequential = reward_func(QUERIES, PROMPTS, LABELS)["rewards"]
    assert [o["rewards"].item() for o in outs] == [sequential[i % 5].item() for i in range(80)]


@pytest.mark.parametrize(("query", "prompt", "response", "method"), [
    ("PROMPT the answer</s>", "PROMPT", "the answer", "prompt"),
    ("<pad><pad><s>PROMPT the answer</s><pad><pad>", "PROMPT", "the answer", "prompt"),  # v0.8.x batch decode
    ("PROMPT ok <|im_end|>\n<|endoftext|> ", "PROMPT", "ok", "prompt"),
    ("PROMPT", "PROMPT", "", "prompt"),
    ("just text<eos>", "", "just text", "prompt"),
    (chat("x" * 60)[25:] + "answer<|im_end|>", chat("x" * 60), "answer", "truncated-prompt"),
    (chat("a  b  c").replace("  ", " ") + "answer<|im_end|>", chat("a  b  c"), "answer", "prompt-end"),
    ("a different text<|im_end|>", chat("question"), "a different text", "whole-query"),
])
def test_extract_response(query: str, prompt: str, response: str, method: str) -> None:
    assert extract_response(query, prompt) == (response, method)


def test_extract_response_custom_special_tokens() -> None:
    assert extract_response("Q: A: yes<END><END>", "Q: A:", ["<END>"]) == ("yes", "prompt")
    assert extract_response("Q: A: yes</s>", "Q: A:", ["<END>"]) == ("yes</s>", "prompt")
    assert "<|im_end|>" in DEFAULT_SPECIAL_TOKENS and "</s>" in DEFAULT_SPECIAL_TOKENS


def test_fallback_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    reward = OpenRLHFReward("bleu")
    with caplog.at_level(logging.DEBUG, logger="speechgrpo"):
        for _ in range(3):
            reward(["a different text<|im_end|>"], [chat("question")], ["a different text"])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "whole-query" in r.getMessage()]
    assert len(warnings) == 1


GOOD = (QUERIES[0], PROMPTS[0], "hello world")


@pytest.mark.parametrize(("queries", "prompts", "labels", "n", "reason"), [
    ([GOOD[0]], [GOOD[1]], [3], 1, "labels[0] must be a string"),
    ([GOOD[0]], [GOOD[1]], [None], 1, "NoneType"),
    ([GOOD[0]], [GOOD[1]], [{"id": 7}], 1, "dict without any of the reference keys"),
    ([GOOD[0]], [GOOD[1]], [[]], 1, "empty sequence"),
    ([GOOD[0], GOOD[0]], [GOOD[1], GOOD[1]], [GOOD[2]], 2, "labels has 1 entries for 2 queries"),
    ([GOOD[0]], [GOOD[1], GOOD[1]], [GOOD[2]], 1, "prompts has 2 entries for 1 queries"),
    (None, None, None, 1, "queries must be a list"),
    (GOOD[0], GOOD[1], GOOD[2], 1, "queries must be a list, got str"),
    ([GOOD[0]], None, [GOOD[2]], 1, "prompts must be a list"),
    ([GOOD[0]], [GOOD[1]], None, 1, "labels must be a list"),
    ([None], [GOOD[1]], [GOOD[2]], 1, "queries[0] is NoneType"),
    ([b"bytes"], [GOOD[1]], [GOOD[2]], 1, "queries[0] is bytes"),
    ([GOOD[0]], [None], [GOOD[2]], 1, "prompts[0] is NoneType"),
    ([], [], [], 0, None),
])
def test_bad_input_gets_error_value_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture, queries: Any,
                                                 prompts: Any, labels: Any, n: int, reason: str | None) -> None:
    reward_func = load_like_openrlhf(write_reward_file(tmp_path / "reward.py", SPEC, error_value=-1.0))
    with caplog.at_level(logging.ERROR, logger="speechgrpo"):
        out = reward_func(queries, prompts, labels)
    check_output(out, n)
    assert out["rewards"].tolist() == [-1.0] * n
    if reason:
        assert reason in caplog.text


def test_bad_sample_does_not_spoil_its_batch(reward_func: Any, expected: np.ndarray) -> None:
    out = reward_func([*QUERIES, QUERIES[0]], [*PROMPTS, PROMPTS[0]], [*LABELS, 42])
    assert out["rewards"][:-1].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert out["rewards"][-1].item() == 0.0
    assert out["extra_logs"]["bleu"][-1].item() == 0.0


CRASH = "RuntimeError: metric crashed"


@pytest.mark.parametrize(("labels", "errors"), [
    (["a"], [CRASH]),  # one sample a call (v0.9.1+): the per-sample fast path
    (["a", "b"], [CRASH, CRASH]),  # a group: scored with its group ids
    (["a", 42], [CRASH, "labels[1] must be a string"]),  # a bad label beside it: the checked path
], ids=["one-sample", "group", "bad-label"])
def test_a_reward_that_raises_gives_error_value_and_logs_why(caplog: pytest.LogCaptureFixture, labels: list[Any],
                                                            errors: list[str]) -> None:
    """The reward's own failure (a metric bug, a missing model): every sample gets error_value, each its reason."""
    def broken(completions: list[str], references: list[tuple[str, ...]]) -> list[float]:
        raise RuntimeError("metric crashed")

    n = len(labels)
    with caplog.at_level(logging.ERROR, logger="speechgrpo"):
        result = OpenRLHFReward(broken, error_value=-1.0).score(["p:a", "p:b"][:n], ["p:"] * n, labels)
    assert result.scores == [-1.0] * n
    assert [result.errors[i][:len(error)] for i, error in enumerate(errors)] == errors
    assert f"failed on a batch of {errors.count(CRASH)}" in caplog.text
    assert f"sample 0 gets -1: {CRASH}" in caplog.text


def test_same_extra_logs_keys_when_nothing_can_be_scored() -> None:
    """OpenRLHF collects extra_logs per key across samples: a failed first call still has every key."""
    out = OpenRLHFReward(SPEC)([GOOD[0]], [GOOD[1]], [None])
    assert set(out["extra_logs"]) == {"bleu", "chrf"}


def test_empty_label_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="speechgrpo"):
        out = OpenRLHFReward("bleu")([GOOD[0]], [GOOD[1]], [""])
    assert out["rewards"].item() == 0.0
    assert "--data.label_key" in caplog.text


def test_reward_func_pickles_for_ray(tmp_path: Path) -> None:
    """v0.8.x wraps reward_func in ray.remote: cloudpickle by value, then called in a fresh worker."""
    cloudpickle = pytest.importorskip("cloudpickle")
    reward_func = load_like_openrlhf(write_reward_file(tmp_path / "reward.py", SPEC))
    blob = tmp_path / "reward_func.pkl"
    blob.write_bytes(cloudpickle.dumps(reward_func))
    code = ("import pickle, sys; f = pickle.load(open(sys.argv[1], 'rb')); "
            f"print(f([{QUERIES[0]!r}], [{PROMPTS[0]!r}], ['hello world'])['rewards'].item())")
    out = subprocess.run([sys.executable, "-c", code, str(blob)], capture_output=True, text=True, check=True)
    assert float(out.stdout) == 1.0


def test_write_reward_file_rejects_a_bad_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        write_reward_file(tmp_path / "reward.py", "0.5*bleu + nonsense")
    assert not (tmp_path / "reward.py").exists()
    with pytest.raises(ValueError, match="non-empty"):
        write_reward_file(tmp_path / "reward.py", "bleu", special_tokens=["</s>", ""])


@pytest.mark.parametrize("spec", ["gdpo(0.5*bleu + 0.5*chrf)", "0.5*gdpo(1*bleu) + 0.5*chrf",
                                  "gate(nonempty, gdpo(1*bleu))"])
def test_group_normalized_specs_are_refused_when_the_file_is_written(tmp_path: Path, spec: str) -> None:
    """OpenRLHF calls the file with one sample at a time, where a per-group z-score is 0 for any sample."""
    with pytest.raises(ValueError, match=r"one sample at a time.*--algo\.advantage\.estimator group_norm"):
        write_reward_file(tmp_path / "reward.py", spec)
    assert not (tmp_path / "reward.py").exists()


def test_file_records_spec_options_and_signature(tmp_path: Path) -> None:
    path = write_reward_file(tmp_path / "reward.py", "chrf", error_value=0.25, special_tokens=["<END>"])
    text = path.read_text(encoding="utf-8")
    assert "SPEC = 'chrf'" in text and "'error_value': 0.25" in text and "('<END>',)" in text
    assert OpenRLHFReward("chrf").signature in text
    assert load_like_openrlhf(path)(["Q yes<END>"], ["Q"], ["yes"])["rewards"].item() == 1.0


def test_cli_functions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    out = tmp_path / "reward.py"
    args = parser.parse_args(["openrlhf-reward-file", "--reward", "bleu", "-o", str(out), "--error-value", "-1",
                              "--special-tokens", "<END>", "</s>"])
    assert args.run(args) == cli_main(args) == 0
    assert "--reward.remote_url" in capsys.readouterr().out
    assert load_like_openrlhf(out)(["Q yes</s><END>"], ["Q"], [None])["rewards"].item() == -1.0


@pytest.mark.parametrize("name", ["reward-file", "extract"])
def test_docs_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(doc_block("adapters/openrlhf.md", name), {})

"""The adapter commands of the ``speechgrpo`` CLI, run as the docs show them."""

from __future__ import annotations

import importlib.util
import json
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from doc_blocks import doc_block

from speechgrpo.cli import main
from speechgrpo.rewards import parse_reward


def speechgrpo_commands(page: str, block: str) -> list[list[str]]:
    """The ``speechgrpo ...`` lines of a documented shell block, as argument lists."""
    return [shlex.split(line)[1:] for line in doc_block(page, block).splitlines() if line.startswith("speechgrpo ")]


def test_openrlhf_reward_file_command_from_the_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    (command,) = speechgrpo_commands("adapters/openrlhf.md", "reward-file-cli")
    assert main(command) == 0
    assert "--reward.remote_url" in capsys.readouterr().out
    spec = importlib.util.spec_from_file_location("reward_func", tmp_path / "reward.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.reward_func(["<s>Q: cat?\nA: the cat sat</s>"], ["<s>Q: cat?\nA:"], ["the cat sat on the mat"])
    expected = parse_reward("0.7*bleu + 0.3*chrf")(["the cat sat"], ["the cat sat on the mat"]).scores[0]
    assert out["rewards"].tolist() == pytest.approx([expected])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_command_from_the_docs_answers_over_http() -> None:
    pytest.importorskip("aiohttp")
    (command,) = speechgrpo_commands("adapters/openrlhf.md", "server-cli")
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    process = subprocess.Popen([sys.executable, "-m", "speechgrpo.cli", *command], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    health = json.load(response)
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.2)
        assert health["status"] == "ok"
        body = json.dumps({"query": ["Q: dog?\nA: a dog ran"], "prompts": ["Q: dog?\nA:"],
                           "labels": [["a dog ran", "the dog ran"]]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/get_reward", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            rewards = json.load(response)["rewards"]
        expected = parse_reward("0.7*bleu + 0.3*chrf")(["a dog ran"], [["a dog ran", "the dog ran"]]).scores[0]
        assert rewards == pytest.approx([expected])
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_module_path_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["module-path", "verl"]) == 0
    verl_path = Path(capsys.readouterr().out.strip())
    assert verl_path.name == "verl.py" and verl_path.is_file()
    assert main(["module-path", "evaluate", "chrf"]) == 0
    module_dir = Path(capsys.readouterr().out.strip())
    assert (module_dir / "chrf.py").is_file() and (module_dir / "README.md").is_file()
    assert main(["module-path", "evaluate"]) == 2
    assert "needs a metric name" in capsys.readouterr().err
    assert main(["module-path", "evaluate", "blue"]) == 2


def test_bad_spec_is_a_clear_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openrlhf-reward-file", "--reward", "bleu +", "-o", str(tmp_path / "r.py")]) == 2
    assert "cannot parse reward spec" in capsys.readouterr().err
    assert not (tmp_path / "r.py").exists()

"""speechgrpo's ms-swift ORMs, called the way ms-swift 4.6 calls them.

Always: the call convention (``completions`` positional, dataset columns and ``prompt_id`` by keyword,
``orms[name](args=...)``) against the reward called directly, bad rows, components and the CLI. With
ms-swift installed into a throwaway folder (``pip install --no-deps --target``, next to this environment's
torch, transformers and trl; skipped when the registry cannot be reached, except on CI): ms-swift's own
plugin loader (``import_external_file``), registry lookup (``resolve_reward_funcs``) and reward call
(``compute_rewards_per_func`` on ``GRPOSample`` rows with ``audios``), and the documented ``swift rlhf``
command parsed by ms-swift's own argument parser.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from doc_blocks import doc_block

from speechgrpo.cli import main
from speechgrpo.grpo_adapters.adapter_core import AdapterReward
from speechgrpo.grpo_adapters.swift import group_ids_of_keys, register, swift_orm, write_plugin
from speechgrpo.rewards import parse_reward

PAGE = "adapters/swift.md"
HARNESS = Path(__file__).with_name("swift_harness.py")
#: ms-swift and the packages its reward path imports that this environment lacks, pinned
SWIFT_PACKAGES = ["ms-swift==4.6.0", "modelscope==1.40.2", "modelscope-hub==0.5.1", "cryptography==50.0.2",
                  "json-repair==0.64.6", "msgspec==0.23.0", "dacite==1.9.2"]


def doc_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in doc_block(PAGE, "swift-data").splitlines() if line.strip()]


def columns(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """ms-swift's reward kwargs for ``rows``: each column batched, plus prompt ids and the trainer state."""
    keys = {key for row in rows for key in row if key != "messages"}
    batched = {key: [row.get(key) for row in rows] for key in keys}
    return {"trainer_state": None, "messages": [row["messages"] for row in rows], **batched, **extra}


def test_the_orm_follows_ms_swifts_call_and_scores_like_the_reward() -> None:
    rows = doc_rows()
    orms: dict[str, Any] = {}
    (name,) = register("bleu", orms=orms)
    assert name == "speechgrpo_bleu"
    reward = orms[name](args=object())  # ms-swift: orms[name](args=grpo_config)
    completions = ["Clara drives a brown car.", "Clara's car is green.", "She is twenty.", "Tom is twenty years old."]
    batch = [rows[0], rows[0], rows[1], rows[1]]
    got = reward(completions, **columns(batch, prompt_id=["a", "a", "b", "b"]))
    expected = parse_reward("bleu")(completions, [r["solution"] for r in batch]).scores
    assert got == pytest.approx(list(expected)) and all(isinstance(x, float) for x in got)
    assert type(reward).__name__ == "speechgrpo_bleu" and "sacrebleu" in reward.signature


def test_groups_come_from_prompt_id_wherever_the_samples_sit() -> None:
    assert group_ids_of_keys(["p", "q", "p", "q", 3, 3]) == [0, 1, 0, 1, 2, 2]
    orms: dict[str, Any] = {}
    (name,) = register("gdpo(0.5*bleu + 0.5*chrf)", name="gdpo", orms=orms)  # z-scored within each group
    reward = orms[name]()
    completions = ["the cat sat", "a dog ran", "the cat", "a dog"]
    refs = ["the cat sat", "a dog ran", "the cat sat", "a dog ran"]
    interleaved = reward(completions, solution=refs, prompt_id=["p", "q", "p", "q"])
    expected = parse_reward("gdpo(0.5*bleu + 0.5*chrf)")(completions, refs, group_ids=[0, 1, 0, 1]).scores
    assert interleaved == pytest.approx(list(expected))
    as_runs = parse_reward("gdpo(0.5*bleu + 0.5*chrf)")(completions, refs, group_ids=[0, 0, 1, 1]).scores
    assert interleaved != pytest.approx(list(as_runs))  # contiguous runs would be the wrong groups


def test_a_sample_that_cannot_be_scored_gets_none_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    reward = swift_orm("bleu")()
    with caplog.at_level(logging.ERROR, logger="speechgrpo.adapters"):
        got = reward(["the cat", None, [{"type": "text", "text": "a dog"}]],
                     solution=["the cat", "the cat", {"bad": 1}], prompt_id=[0, 0, 1])
    assert got[0] == pytest.approx(parse_reward("bleu")(["the cat"], ["the cat"]).scores[0])
    assert got[1:] == [None, None]
    assert "sample 1" in caplog.text and "sample 2" in caplog.text
    missing = reward(["the cat"], answer=["the cat"])  # no `solution` column: every sample None, named
    assert missing == [None]
    assert "no column 'solution'" in caplog.text and "'answer'" in caplog.text
    zero = swift_orm("bleu", on_error="zero")()  # for --scale_rewards gdpo, which a None turns to NaN
    assert zero(["the cat", None], solution=["the cat", "the cat"])[1] == 0.0
    with pytest.raises(KeyError, match="no column 'solution'"):
        swift_orm("bleu", on_error="raise")()(["the cat"], answer=["the cat"])
    with pytest.raises(TypeError, match=r"completions\[0\] must be str"):
        swift_orm("bleu", on_error="raise")()([None], solution=["the cat"])


def test_components_are_scored_once_and_logged_as_their_own_rewards(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    score = AdapterReward.score
    monkeypatch.setattr(AdapterReward, "score", lambda self, texts, *a, **k: calls.append(len(texts)) or score(
        self, texts, *a, **k))
    orms: dict[str, Any] = {}
    names = register("0.5*bleu + 0.5*chrf", name="mix", components=True, orms=orms)
    assert names == ["mix", "mix.bleu", "mix.chrf"]
    calls.clear()  # registration scores one dummy sample to learn the components' names
    completions, refs = ["the cat sat", "a dog"], ["the cat sat", "the cat sat"]
    total, bleu, chrf = (orms[n]()(completions, solution=refs, prompt_id=["p", "p"]) for n in names)
    assert calls == [2]  # ms-swift calls the three in turn with the same batch: one engine call
    direct = parse_reward("0.5*bleu + 0.5*chrf")(completions, refs)
    assert total == pytest.approx(list(direct.scores))
    assert bleu == pytest.approx(list(direct.components["bleu"]))
    assert chrf == pytest.approx(list(direct.components["chrf"]))
    orms["mix.bleu"]()(["a dog"], solution=["a dog"], prompt_id=["q"])  # a new batch is scored anew
    assert calls == [2, 1]
    with pytest.raises(ValueError, match="has no components"):
        register("bleu", components=True, orms={})


def test_the_async_variant_is_detected_by_ms_swifts_check_and_scores_the_same() -> None:
    sync, asynchronous = swift_orm("chrf")(), swift_orm("chrf", is_async=True)()
    assert inspect.iscoroutinefunction(type(asynchronous).__call__)  # ms-swift checks func.__call__
    kwargs = {"solution": ["the cat sat", "a dog"], "prompt_id": ["p", "q"]}
    assert asyncio.run(asynchronous(["the cat", "a dog"], **kwargs)) == sync(["the cat", "a dog"], **kwargs)


def test_plugin_command_from_the_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (line,) = [line for line in doc_block(PAGE, "swift-plugin-cli").splitlines() if line.startswith("speechgrpo ")]
    assert main(shlex.split(line)[1:]) == 0
    out = capsys.readouterr().out
    assert "--external_plugins" in out and "--reward_funcs speechgrpo_bleu" in out
    assert main(["swift-plugin", "--reward", "blue", "-o", str(tmp_path / "x.py")]) == 2
    assert "unknown reward 'blue'" in capsys.readouterr().err and not (tmp_path / "x.py").exists()


def test_components_command_from_the_docs_prints_the_documented_flags(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    block = doc_block(PAGE, "swift-components")
    (line,) = [line for line in block.splitlines() if line.startswith("speechgrpo ")]
    assert main(shlex.split(line)[1:]) == 0
    documented = " ".join(block.replace("\\\n", " ").split("--external_plugins plugin.py")[1].split())
    assert documented in " ".join(capsys.readouterr().out.split())  # the names and weights the docs list


@pytest.fixture(scope="session")
def swift_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ms-swift importable from this interpreter (its heavy dependencies come from here)."""
    target = tmp_path_factory.mktemp("ms_swift")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                           *SWIFT_PACKAGES], capture_output=True, text=True)
    if done.returncode != 0:
        message = f"could not install ms-swift: {done.stderr.strip().splitlines()[-1:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return target


BATCH_COMPLETIONS = ["Clara drives a brown car.", "Clara's car is green.", "She is twenty.", "Tom is twenty."]


def batch_rows() -> list[dict[str, Any]]:
    """The docs' rows as a GRPO batch: two samples per prompt, the last one without a reference."""
    rows = doc_rows()
    return [{**rows[0], "prompt_id": "a"}, {**rows[0], "prompt_id": "a"}, {**rows[1], "prompt_id": "b"},
            {**rows[1], "prompt_id": "b", "solution": None}]


@pytest.fixture(scope="session")
def through_swift(swift_site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every ms-swift job of this file, run in one process (ms-swift and torch import once)."""
    work = tmp_path_factory.mktemp("swift_jobs")
    batch = batch_rows()
    write_plugin(work / "plugin.py", "0.5*bleu + 0.5*chrf", name="speechgrpo_mix", components=True)
    write_plugin(work / "async_plugin.py", "chrf", name="speechgrpo_chrf_async", is_async=True)
    (work / "python_block.py").write_text(doc_block(PAGE, "swift-python"), encoding="utf-8")
    (plugin_line,) = [line for line in doc_block(PAGE, "swift-plugin-cli").splitlines()
                      if line.startswith("speechgrpo ")]
    argv = shlex.split(plugin_line)[1:]
    argv[argv.index("-o") + 1] = str(work / argv[argv.index("-o") + 1])
    assert main(argv) == 0
    command = shlex.split(doc_block(PAGE, "swift-rlhf").replace("\\\n", " "))
    assert command[:2] == ["swift", "rlhf"]
    rlhf = command[2:]
    jobs = {
        "mix": {"plugin": str(work / "plugin.py"), "rows": batch, "completions": BATCH_COMPLETIONS,
                "reward_funcs": ["speechgrpo_mix", "speechgrpo_mix.bleu", "speechgrpo_mix.chrf"]},
        "async": {"plugin": str(work / "async_plugin.py"), "rows": batch[:3], "completions": BATCH_COMPLETIONS[:3],
                  "reward_funcs": ["speechgrpo_chrf_async"]},
        "python": {"plugin": str(work / "python_block.py"), "rows": batch[:3], "completions": BATCH_COMPLETIONS[:3],
                   "reward_funcs": ["bleu_chrf", "bleu_chrf.bleu"]},
        "rlhf": {"plugin": str(work / rlhf[rlhf.index("--external_plugins") + 1]), "rows": doc_rows(),
                 "completions": [r["solution"] for r in doc_rows()],
                 "reward_funcs": rlhf[rlhf.index("--reward_funcs") + 1:rlhf.index("--reward_funcs") + 2],
                 "argv": rlhf, "argv_keys": ["rlhf_type", "reward_funcs", "num_generations", "beta", "temperature",
                                             "max_completion_length", "external_plugins"]},
    }
    path = work / "jobs.json"
    path.write_text(json.dumps(jobs), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(swift_site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(HARNESS), str(path)], capture_output=True, text=True, env=env,
                          cwd=work, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("HARNESS ")]
    results: dict[str, Any] = json.loads(line.removeprefix("HARNESS "))
    return results


def column(result: dict[str, Any], j: int) -> list[float | None]:
    return [row[j] for row in result["rewards"]]


def test_through_ms_swifts_own_loader_registry_and_reward_call(through_swift: dict[str, Any]) -> None:
    batch, completions = batch_rows(), BATCH_COMPLETIONS
    mix = through_swift["mix"]
    assert mix["names"] == ["speechgrpo_mix", "speechgrpo_mix.bleu", "speechgrpo_mix.chrf"]
    assert mix["is_async"] == [False, False, False]
    direct = parse_reward("0.5*bleu + 0.5*chrf")(completions[:3], [r["solution"] for r in batch[:3]])
    for j, values in enumerate((direct.scores, direct.components["bleu"], direct.components["chrf"])):
        assert column(mix, j)[:3] == pytest.approx(list(values), abs=1e-6)  # float32 in ms-swift's tensor
        assert column(mix, j)[3] is None  # None (no reference) -> NaN in ms-swift
    assert through_swift["async"]["is_async"] == [True]  # ms-swift's own check, then its asyncio.gather path
    chrf = parse_reward("chrf")(completions[:3], [r["solution"] for r in batch[:3]]).scores
    assert column(through_swift["async"], 0) == pytest.approx(list(chrf), abs=1e-6)
    mixed = parse_reward("0.7*bleu + 0.3*chrf")(completions[:3], [r["solution"] for r in batch[:3]])
    assert column(through_swift["python"], 0) == pytest.approx(list(mixed.scores), abs=1e-6)  # the docs' Python
    assert column(through_swift["python"], 1) == pytest.approx(list(mixed.components["bleu"]), abs=1e-6)


def test_the_documented_swift_rlhf_command_parses_with_ms_swifts_parser(through_swift: dict[str, Any]) -> None:
    parsed = through_swift["rlhf"]["argv"]
    assert parsed["rlhf_type"] == "grpo" and parsed["reward_funcs"] == ["speechgrpo_bleu"]
    assert parsed["num_generations"] == 8 and parsed["beta"] == 0.02  # the paper's G and beta
    assert parsed["temperature"] == 1.0 and parsed["max_completion_length"] == 200
    assert column(through_swift["rlhf"], 0) == pytest.approx([1.0] * len(doc_rows()))  # the reference scores 1

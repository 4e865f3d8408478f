"""speechgrpo's verl reward functions, called the way verl calls them.

Without verl (always): a reproduction of verl 0.9.1's loader (``load_extern_object``, ``partial(_call_with_kwargs,
fn, reward_kwargs)``), of the reward loop's per-sample keyword call (``run_in_executor`` for a plain function,
``await`` for a coroutine function), of the legacy batch manager's call and of the ``prime`` manager's positional
call in a process pool. With verl importable: verl's own loader and managers. Every score is checked against the
speechgrpo reward called directly, and the docs' marked examples are what runs.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.util
import inspect
import logging
import os
import pickle
import shlex
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from doc_blocks import doc_block

import speechgrpo.grpo_adapters.verl as sv
from speechgrpo.grpo_adapters.adapter_core import AdapterReward, LabelError
from speechgrpo.rewards import SpecError, as_reward, parse_reward

PAGE = "adapters/verl.md"
#: The file path the docs' legacy blocks show; tests put module_path() in its place.
PLACEHOLDER = "/path/to/speechgrpo/grpo_adapters/verl.py"

ROWS: list[dict[str, Any]] = [
    {"data_source": "covost2", "reward_model": {"style": "rule", "ground_truth": "The train is late today."},
     "extra_info": {"index": 0}},
    {"data_source": "covost2", "reward_model": {"style": "rule", "ground_truth": "The train is late today."},
     "extra_info": {"index": 0}},
    {"data_source": "covost2", "reward_model": {"style": "rule", "ground_truth": ["the cat sat", "a cat sat"]},
     "extra_info": {"index": 1}},
    {"data_source": "covost2", "reward_model": {"style": "rule", "ground_truth": ["the cat sat", "a cat sat"]},
     "extra_info": {"index": 1}},
    {"data_source": "squad", "reward_model": {"style": "rule", "ground_truth": {"answers": np.array(["Paris"])}},
     "extra_info": {"index": 2}},
    {"data_source": "squad", "reward_model": {"style": "rule", "ground_truth": {"ground_truth": "Paris"}},
     "extra_info": {"index": 3}},
]
RESPONSES = ["The train is late today.", "Train late", "a cat sat", "", "Paris, France", "paris"]


@pytest.fixture(autouse=True)
def _clean_defaults(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv(sv.ENV_VAR, raising=False)
    sv.configure()
    yield
    sv.configure()


# -- verl 0.9.1's calling convention, reproduced --------------------------------------------------------------------
def load_extern_object(module_path: str, object_name: str) -> Any:
    """``verl.utils.import_utils.load_extern_object``: ``pkg://`` imports the module; a file path runs the file as
    a new module named ``custom_module_<hash>`` that is not put in ``sys.modules``."""
    if module_path.startswith("pkg://"):
        module: Any = importlib.import_module(module_path[len("pkg://"):].replace("/", "."))
    else:
        module_path = module_path.removeprefix("file://")
        if not os.path.exists(module_path):
            raise FileNotFoundError(module_path)
        spec = importlib.util.spec_from_file_location(f"custom_module_{hash(os.path.abspath(module_path))}",
                                                      module_path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return getattr(module, object_name)


def _call_with_kwargs(raw_fn: Callable[..., Any], extra_kwargs: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
    return raw_fn(*args, **{**kwargs, **extra_kwargs})  # reward_kwargs win over call-time keywords


async def _call_with_kwargs_async(raw_fn: Callable[..., Any], extra_kwargs: Mapping[str, Any], *args: Any,
                                  **kwargs: Any) -> Any:
    return await raw_fn(*args, **{**kwargs, **extra_kwargs})


def get_custom_reward_fn(fn_config: Mapping[str, Any]) -> Callable[..., Any]:
    """``verl.trainer.ppo.reward.get_custom_reward_fn`` for one ``custom_reward_function`` section."""
    raw_fn = load_extern_object(fn_config["path"], fn_config["name"])
    reward_kwargs = dict(fn_config.get("reward_kwargs") or {})
    wrapper = _call_with_kwargs_async if inspect.iscoroutinefunction(raw_fn) else _call_with_kwargs
    return partial(wrapper, raw_fn, reward_kwargs)


async def run_single(compute_score: Callable[..., Any], row: Mapping[str, Any], response: str) -> dict[str, Any]:
    """The reward loop's ``NaiveRewardManager.run_single`` after decoding: one keyword call per response."""
    extra_info = dict(row.get("extra_info", {}))
    extra_info.update(num_turns=None, rollout_reward_scores={})
    kwargs = {"data_source": row["data_source"], "solution_str": response,
              "ground_truth": row["reward_model"]["ground_truth"], "extra_info": extra_info}
    if inspect.iscoroutinefunction(compute_score):
        result = await compute_score(**kwargs)
    else:
        result = await asyncio.get_running_loop().run_in_executor(None, lambda: compute_score(**kwargs))
    score = result["score"] if isinstance(result, dict) else result
    return {"reward_score": score, "reward_extra_info": dict(result) if isinstance(result, dict) else {"acc": score}}


def reward_loop(compute_score: Callable[..., Any], rows: Sequence[Mapping[str, Any]],
                responses: Sequence[str]) -> list[dict[str, Any]]:
    """``RewardLoopWorker.compute_score_batch``: every sample's ``run_single`` gathered on one event loop."""
    async def gather() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(run_single(compute_score, r, s) for r, s in zip(rows, responses,
                                                                                             strict=True))))
    return asyncio.run(gather())


def batch_manager(compute_score: Callable[..., Any], rows: Sequence[Mapping[str, Any]], responses: Sequence[str],
                  **reward_kwargs: Any) -> tuple[list[float], dict[str, list[float]]]:
    """The legacy ``BatchRewardManager.verify`` call and how ``__call__`` reads its result."""
    extras = np.empty(len(rows), dtype=object)
    extras[:] = [dict(row.get("extra_info", {}), rollout_reward_scores={}) for row in rows]
    scores = compute_score(data_sources=np.array([r["data_source"] for r in rows], dtype=object),
                           solution_strs=list(responses),
                           ground_truths=[r["reward_model"].get("ground_truth", None) for r in rows],
                           extra_infos=extras, **reward_kwargs)
    rewards, extra_info = [], defaultdict(list)
    for score in scores:
        if isinstance(score, dict):
            rewards.append(score["score"])
            for key, value in score.items():
                extra_info[key].append(value)
        else:
            rewards.append(score)
    return rewards, dict(extra_info)


def _refs(row: Mapping[str, Any]) -> tuple[str, ...]:
    label = row["reward_model"]["ground_truth"]
    if isinstance(label, dict):
        label = next(iter(label.values()))
    return (label,) if isinstance(label, str) else tuple(label)


def expected_per_sample(spec: str, rows: Sequence[Mapping[str, Any]],
                        responses: Sequence[str]) -> list[dict[str, float]]:
    """The speechgrpo reward called directly, one sample at a time (what a per-sample manager gives)."""
    reward = parse_reward(spec)
    out = []
    for row, response in zip(rows, responses, strict=True):
        result = reward([response], [_refs(row)])
        out.append({"score": float(result.scores[0]), **{k: float(v[0]) for k, v in result.components.items()}})
    return out


def _yaml_block(name: str) -> dict[str, Any]:
    text = doc_block(PAGE, name)
    if PLACEHOLDER in text:
        text = text.replace(PLACEHOLDER, sv.module_path())
    config = yaml.safe_load(text)
    assert isinstance(config, dict)
    return config


def _fn_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``custom_reward_function`` section of either layout."""
    return config["reward"]["custom_reward_function"] if "reward" in config else config["custom_reward_function"]


# -- the docs' examples -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("block", "manager"), [("verl-config", "naive"), ("verl-config-legacy", "naive")])
def test_config_blocks_score_through_the_reward_loop(block: str, manager: str) -> None:
    config = _yaml_block(block)
    section = _fn_section(config)
    managers = config["reward"]["reward_manager"]["name"] if "reward" in config else config["reward_model"][
        "reward_manager"]
    assert managers == manager
    spec = section["reward_kwargs"]["reward"]
    results = reward_loop(get_custom_reward_fn(section), ROWS, RESPONSES)
    expected = expected_per_sample(spec, ROWS, RESPONSES)
    assert [r["reward_extra_info"] for r in results] == expected
    assert [r["reward_score"] for r in results] == pytest.approx([e["score"] for e in expected])
    assert {tuple(r["reward_extra_info"]) for r in results} == {("score", "bleu", "chrf")}


def test_legacy_blocks_show_the_placeholder_path() -> None:
    for block in ("verl-config-legacy", "verl-config-batch"):
        assert PLACEHOLDER in doc_block(PAGE, block)
    assert Path(sv.module_path()).is_file() and sv.module_path().endswith("verl.py")


def test_async_name_through_the_reward_loop() -> None:
    section = dict(_fn_section(_yaml_block("verl-config")), name="compute_score_async")
    fn = get_custom_reward_fn(section)
    assert inspect.iscoroutinefunction(sv.compute_score_async) and inspect.iscoroutinefunction(fn)
    results = reward_loop(fn, ROWS, RESPONSES)
    expected = expected_per_sample(section["reward_kwargs"]["reward"], ROWS, RESPONSES)
    assert [r["reward_extra_info"] for r in results] == expected


def test_async_scores_off_the_event_loop_thread() -> None:
    threads: list[int] = []

    def record(completions: list[str], references: list[tuple[str, ...]], **_: Any) -> list[float]:
        threads.append(threading.get_ident())
        return [1.0] * len(completions)

    sv.configure(as_reward(record))
    threads.clear()  # configure's probe ran on this thread

    async def main() -> tuple[Any, int]:
        return await sv.compute_score_async("x", "a", "a"), threading.get_ident()

    result, loop_thread = asyncio.run(main())
    assert result["score"] == 1.0 and threads and loop_thread not in threads


def test_batch_block_one_engine_call(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _yaml_block("verl-config-batch")
    assert config["reward_model"]["reward_manager"] == "batch" and config["reward_model"]["use_reward_loop"] is False
    calls: list[int] = []
    original = AdapterReward.score

    def counting(self: AdapterReward, completions: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(len(completions))
        return original(self, completions, *args, **kwargs)

    monkeypatch.setattr(AdapterReward, "score", counting)
    section = _fn_section(config)
    rewards, extra_info = batch_manager(get_custom_reward_fn(section), ROWS, RESPONSES)
    assert calls == [len(ROWS)]
    reward = parse_reward(section["reward_kwargs"]["reward"])
    direct = reward(RESPONSES, [_refs(r) for r in ROWS], group_ids=[r["extra_info"]["index"] for r in ROWS])
    assert rewards == direct.scores.tolist()
    assert extra_info == {"score": direct.scores.tolist(), **{k: v.tolist() for k, v in direct.components.items()}}


def test_cli_block_matches_the_yaml_block() -> None:
    tokens = shlex.split(doc_block(PAGE, "verl-cli").replace("\\\n", " "))
    assert tokens[:3] == ["python", "-m", "verl.trainer.main_ppo"]
    overrides = {}
    for token in tokens[3:]:
        key, value = token.split("=", 1)
        overrides[key] = value[1:-1] if value[:1] == value[-1:] == '"' else value
    section = _fn_section(_yaml_block("verl-config"))
    assert overrides == {"reward.custom_reward_function.path": section["path"],
                         "reward.custom_reward_function.name": section["name"],
                         "+reward.custom_reward_function.reward_kwargs.reward": section["reward_kwargs"]["reward"]}


def test_row_block_through_the_reward_loop() -> None:
    namespace: dict[str, Any] = {}
    exec(doc_block(PAGE, "verl-row"), namespace)
    row = namespace["row"]
    responses = ["Today the train is late.", "The train is late", "train"]
    results = reward_loop(sv.compute_score, [row] * 3, responses)
    expected = expected_per_sample(row["extra_info"][sv.EXTRA_INFO_KEY], [row] * 3, responses)
    assert [r["reward_extra_info"] for r in results] == expected
    assert results[0]["reward_score"] == pytest.approx(1.0)


def test_configure_block() -> None:
    exec(doc_block(PAGE, "verl-configure"), {})
    result = sv.compute_score("x", "a cat sat", "the cat sat")
    row = {"reward_model": {"ground_truth": "the cat sat"}}
    assert result == expected_per_sample("0.5*bleu + 0.5*chrf", [row], ["a cat sat"])[0]
    assert sv.compute_score("x", "a", None) == {"score": 0.0, "bleu": 0.0, "chrf": 0.0}  # safe=True in the block


def test_direct_block_prints_what_its_comment_says(capsys: pytest.CaptureFixture[str]) -> None:
    block = doc_block(PAGE, "verl-direct")
    namespace: dict[str, Any] = {}
    exec(block, namespace)
    comment = block.rsplit("#", 1)[1].strip()
    assert namespace["result"] == ast.literal_eval(comment)
    assert capsys.readouterr().out.strip() == str(namespace["result"])


# -- choosing the reward ----------------------------------------------------------------------------------------
def test_precedence_keyword_extra_info_configure_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    def keys(**kwargs: Any) -> set[str]:
        return set(sv.compute_score("x", "a b", "a b", kwargs.pop("extra_info", None), **kwargs)) - {"score"}

    assert keys() == {"bleu"}
    monkeypatch.setenv(sv.ENV_VAR, "ter")
    assert keys() == {"1-ter"}  # an error-rate reward's component says it is 1 - rate
    sv.configure("wer")
    assert keys() == {"1-wer"}
    assert keys(extra_info={sv.EXTRA_INFO_KEY: "cer"}) == {"1-cer"}
    assert keys(extra_info={sv.EXTRA_INFO_KEY: "cer"}, reward="chrf") == {"chrf"}
    # verl merges reward_kwargs over call keywords, so the config's reward wins over a caller's
    fn = partial(_call_with_kwargs, sv.compute_score, {"reward": "rouge1"})
    assert set(fn(data_source="x", solution_str="a", ground_truth="a", reward="chrf")) == {"score", "rouge1"}


def test_rewards_are_built_once_per_spec_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    class Counting(AdapterReward):
        def __init__(self, reward: Any, error_value: float = 0.0) -> None:
            built.append(str(reward))
            super().__init__(reward, error_value)

    monkeypatch.setattr(sv, "AdapterReward", Counting)
    monkeypatch.setattr(sv, "_cache", {})
    specs = ["bleu", "0.5*bleu + 0.5*chrf", "0.5*bleu  +  0.5*chrf"]  # the last two are one spec
    jobs = [(specs[i % 3], ROWS[i % len(ROWS)], RESPONSES[i % len(ROWS)]) for i in range(96)]

    def call(job: tuple[str, dict[str, Any], str]) -> Any:
        spec, row, response = job
        return sv.compute_score(row["data_source"], response, row["reward_model"]["ground_truth"], reward=spec)

    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(call, jobs))
    assert sorted(built) == ["0.5*bleu + 0.5*chrf", "bleu"]
    assert concurrent == [call(job) for job in jobs]
    assert concurrent[:3] == [expected_per_sample(s, [r], [c])[0] for s, r, c in jobs[:3]]


# -- labels, keys, outputs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ground_truth", ["the cat sat", ["the cat sat"], ("the cat sat",), np.array(["the cat sat"]),
                                          {"ground_truth": "the cat sat"}, {"answers": ["the cat sat"]},
                                          {"text": np.array(["the cat sat"])}])
def test_ground_truth_forms(ground_truth: Any) -> None:
    row = {"reward_model": {"ground_truth": "the cat sat"}}
    assert sv.compute_score("x", "a cat sat", ground_truth) == expected_per_sample("bleu", [row], ["a cat sat"])[0]


def test_same_keys_for_every_sample_including_errors() -> None:
    spec = "min(bleu, chrf) + overlong(ter, max_length=5, cache_length=2, unit='words')"
    outputs = [sv.compute_score(r["data_source"], c, r["reward_model"]["ground_truth"], reward=spec)
               for r, c in zip(ROWS, RESPONSES, strict=True)]
    outputs.append(sv.compute_score("x", "y", None, reward=spec, safe=True, error_value=-1.0))
    keys = {tuple(o) for o in outputs}
    assert len(keys) == 1 and next(iter(keys))[0] == "score"
    assert set(outputs[-1].values()) == {-1.0}


def test_as_float() -> None:
    assert sv.compute_score("x", "a cat sat", "a cat sat", as_float=True) == 1.0
    scores = sv.compute_score_batch(["x", "x"], ["a", "b"], ["a", "a"], None, as_float=True)
    assert scores == [1.0, pytest.approx(expected_per_sample("bleu", [ROWS[0]], ["b"])[0]["score"])]


@pytest.mark.parametrize("safe", [False, True])
def test_compute_score_refuses_a_group_normalized_reward(safe: bool) -> None:
    """verl's per-sample managers pass one response: gdpo would score it 0 whatever it is."""
    with pytest.raises(ValueError, match=r"alone in its group.*compute_score_batch"):
        sv.compute_score("x", "a cat", "a cat", reward="gdpo(0.5*bleu + 0.5*chrf)", safe=safe)
    with pytest.raises(ValueError, match="alone in its group"):
        asyncio.run(sv.compute_score_async("x", "a cat", "a cat", reward="0.5*gdpo(1*bleu) + 0.5*chrf"))


def test_building_a_group_normalized_reward_does_not_warn() -> None:
    """The probe that learns a reward's component keys passes its one group: no "no group_ids given" warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = sv.compute_score_batch(["x", "x"], ["a cat", "a dog"], ["a cat", "a cat"],
                                        [{"uid": "u"}, {"uid": "u"}], reward="gdpo(0.25*bleu + 0.75*chrf)",
                                        as_float=True)
    assert scores[0] > 0 > scores[1]


def test_the_component_probe_does_not_count_in_nrefs() -> None:
    """Learning a reward's keys scores a one-reference probe: it must not make a two-reference run 'var'."""
    spec = "0.3*bleu + 0.7*chrf"
    sv.compute_score_batch(["x", "x"], ["a b c", "a b"], [["a b c", "a b d"]] * 2, [{"uid": 0}] * 2, reward=spec)
    assert "|nrefs:2|" in sv._build(spec, 0.0).adapter.reward.signature


def test_batch_groups_by_uid_then_index_then_references() -> None:
    spec = "gdpo(0.5*bleu + 0.5*chrf)"
    reward = parse_reward(spec)
    refs = [_refs(r) for r in ROWS]

    def direct(group_ids: Any) -> list[float]:
        return [float(x) for x in reward(RESPONSES, refs, group_ids=group_ids).scores]

    by_index = [r["extra_info"] for r in ROWS]
    assert sv.compute_score_batch([""] * 6, RESPONSES, [r["reward_model"]["ground_truth"] for r in ROWS], by_index,
                                  reward=spec, as_float=True) == pytest.approx(direct([0, 0, 1, 1, 2, 3]))
    by_uid = [dict(info, uid=u) for info, u in zip(by_index, "aabbbb", strict=True)]
    assert sv.compute_score_batch([""] * 6, RESPONSES, [r["reward_model"]["ground_truth"] for r in ROWS], by_uid,
                                  reward=spec, as_float=True) == pytest.approx(direct([0, 0, 1, 1, 1, 1]))
    assert sv.compute_score_batch([""] * 6, RESPONSES, [r["reward_model"]["ground_truth"] for r in ROWS],
                                  [{}] * 6, reward=spec, as_float=True) == pytest.approx(direct(None))


def test_batch_scores_rows_with_different_specs() -> None:
    infos = [{sv.EXTRA_INFO_KEY: "chrf"}, {}, {sv.EXTRA_INFO_KEY: "chrf"}]
    out = sv.compute_score_batch(["x"] * 3, ["a b", "c", "a"], ["a b", "c d", "a b"], infos)
    assert [set(o) for o in out] == [{"score", "chrf"}, {"score", "bleu"}, {"score", "chrf"}]
    assert out[1] == sv.compute_score("x", "c", "c d")


# -- bad input --------------------------------------------------------------------------------------------------
def test_bad_samples_raise_naming_the_field() -> None:
    with pytest.raises(LabelError, match=r"^ground_truth must be .* got NoneType None \(ground_truth is the row's"):
        sv.compute_score("x", "a", None)
    with pytest.raises(LabelError, match=r"^ground_truth\['answers'\] is an empty sequence"):
        sv.compute_score("x", "a", {"answers": []})
    with pytest.raises(TypeError, match=r"^solution_str must be the decoded response string, got bytes"):
        sv.compute_score("x", b"a", "a")
    with pytest.raises(LabelError, match=r"^ground_truths\[1\] must be .*\(ground_truths\[1\] is the row's"):
        sv.compute_score_batch(["x", "x"], ["a", "b"], ["a", None], None)
    with pytest.raises(TypeError, match=r"^solution_strs\[0\] must be"):
        sv.compute_score_batch(["x", "x"], [None, "b"], ["a", "b"], None)


def test_safe_scores_error_value_and_keeps_the_others(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="speechgrpo.adapters"):
        out = sv.compute_score_batch(["x"] * 3, ["a b c", 7, "a b c"], ["a b c", "a", {"bad": 1}], None,
                                     reward="0.5*bleu + 0.5*chrf", safe=True, error_value=-1.0)
    assert out[0] == {"score": 1.0, "bleu": 1.0, "chrf": 1.0}
    assert out[1] == out[2] == {"score": -1.0, "bleu": -1.0, "chrf": -1.0}
    assert "sample 1" in caplog.text and "sample 2" in caplog.text


def test_configuration_errors_raise_even_when_safe() -> None:
    with pytest.raises(SpecError):
        sv.compute_score("x", "a", "a", reward="bleu +* chrf", safe=True)
    with pytest.raises(SpecError):
        sv.configure("no_such_reward")
    with pytest.raises(ValueError, match=r"cannot score a response and its references alone.*completion_ids"):
        sv.compute_score("x", "a", "a", reward="overlong(bleu, max_length=5, cache_length=2, unit='tokens')")
    with pytest.raises(TypeError, match="extra_info must be a dict"):
        sv.compute_score("x", "a", "a", ["not", "a", "dict"], safe=True)
    with pytest.raises(TypeError, match=r"extra_info\['speechgrpo_reward'\] must be a spec string"):
        sv.compute_score("x", "a", "a", {sv.EXTRA_INFO_KEY: 3}, safe=True)
    with pytest.raises(TypeError, match=r"reward_kwargs\.reward"):
        sv.compute_score("x", "a", "a", reward=["bleu"])
    with pytest.raises(TypeError, match="safe must be true or false"):
        sv.compute_score("x", "a", "a", safe="yes")
    with pytest.raises(ValueError, match="error_value must be a finite number"):
        sv.compute_score("x", "a", "a", error_value=float("nan"))
    with pytest.raises(ValueError, match="1 ground_truths for 2 solution_strs"):
        sv.compute_score_batch(["x", "x"], ["a", "b"], ["a"], None, safe=True)


def test_unknown_keywords_warn_once_and_verls_own_are_silent(caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sv, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="speechgrpo.adapters.verl"):
        for _ in range(3):
            sv.compute_score("x", "a", "a", rewrd="chrf", reward_router_address=None, reward_model_tokenizer=None)
    assert [r.getMessage() for r in caplog.records if r.name == "speechgrpo.adapters.verl"] == [
        "speechgrpo verl reward: ignoring unknown keyword argument 'rewrd'"]


# -- loading by file path and across processes ------------------------------------------------------------------
def test_file_loaded_module_hands_out_the_installed_functions() -> None:
    loaded = load_extern_object(sv.module_path(), "compute_score")
    assert loaded is sv.compute_score
    assert load_extern_object("pkg://speechgrpo.grpo_adapters.verl", "compute_score_batch") is sv.compute_score_batch
    sv.configure("chrf")  # shared with the file-loaded copy
    assert set(loaded("x", "a", "a")) == {"score", "chrf"}
    assert pickle.loads(pickle.dumps(partial(_call_with_kwargs, loaded, {"reward": "bleu"}))).args[0] is loaded


def test_prime_manager_positional_call_in_a_process_pool() -> None:
    fn = get_custom_reward_fn({"path": sv.module_path(), "name": "compute_score",
                               "reward_kwargs": {"reward": "chrf", "as_float": True}})
    rows, responses = ROWS[:3], RESPONSES[:3]
    with ProcessPoolExecutor(2) as pool:
        futures = [pool.submit(fn, r["data_source"], c, r["reward_model"]["ground_truth"], r["extra_info"])
                   for r, c in zip(rows, responses, strict=True)]
        scores = [f.result(timeout=120) for f in futures]
    assert scores == pytest.approx([e["score"] for e in expected_per_sample("chrf", rows, responses)])


# -- verl's own code (where verl is importable) -----------------------------------------------------------------
class _WordTokenizer:
    """Enough of a tokenizer for verl's managers: ids are word positions in a fixed vocabulary."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.vocab = ["<pad>", *sorted({w for t in texts for w in t.split()})]

    def encode(self, text: str, width: int) -> list[int]:
        ids = [self.vocab.index(w) for w in text.split()]
        return ids + [0] * (width - len(ids))

    def decode(self, ids: Any, skip_special_tokens: bool = True) -> str:
        return " ".join(self.vocab[int(i)] for i in ids if int(i) != 0)


def _data_proto(rows: Sequence[Mapping[str, Any]], responses: Sequence[str], tokenizer: _WordTokenizer) -> Any:
    import torch
    from verl import DataProto

    width = max(len(r.split()) for r in responses) + 1
    response_ids = torch.tensor([tokenizer.encode(r, width) for r in responses])
    prompts = torch.ones(len(rows), 2, dtype=torch.long)
    mask = torch.cat([torch.ones_like(prompts), (response_ids != 0).long()], dim=1)
    column = np.empty(len(rows), dtype=object)

    def objects(values: list[Any]) -> np.ndarray:
        out = column.copy()
        out[:] = values
        return out

    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": response_ids, "attention_mask": mask},
        non_tensors={"data_source": objects([r["data_source"] for r in rows]),
                     "reward_model": objects([dict(r["reward_model"]) for r in rows]),
                     "extra_info": objects([dict(r["extra_info"]) for r in rows])})


def _verl_config(block: str) -> Any:
    """The docs block merged over verl's own default reward config (legacy blocks migrated by verl)."""
    pytest.importorskip("verl")
    import verl
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop import migrate_legacy_reward_impl

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    defaults = OmegaConf.merge(OmegaConf.load(config_dir / "legacy_reward_impl.yaml"),
                               {"reward": OmegaConf.load(config_dir / "reward" / "reward.yaml")})
    config = OmegaConf.merge(defaults, _yaml_block(block))
    return migrate_legacy_reward_impl(config)


# Responses made of vocabulary words, so that verl's decode gives them back.
VERL_RESPONSES = ["The train is late today.", "train late", "a cat sat", "cat", "Paris", "Paris"]


@pytest.mark.parametrize(("block", "name"), [("verl-config", "compute_score"), ("verl-config", "compute_score_async"),
                                             ("verl-config-legacy", "compute_score")])
def test_verl_loader_and_reward_loop_manager(block: str, name: str) -> None:
    config = _verl_config(block)
    from verl.trainer.ppo.reward import load_reward_manager

    config.reward.custom_reward_function.name = name
    tokenizer = _WordTokenizer(VERL_RESPONSES)
    manager = load_reward_manager(config, tokenizer)
    assert type(manager).__name__ == "NaiveRewardManager"
    assert manager.is_async_reward_score is (name == "compute_score_async")
    data = _data_proto(ROWS, VERL_RESPONSES, tokenizer)

    async def gather() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(manager.run_single(data[i:i + 1]) for i in range(len(data)))))

    results = manager.loop.run_until_complete(gather())
    expected = expected_per_sample(config.reward.custom_reward_function.reward_kwargs.reward, ROWS, VERL_RESPONSES)
    assert [r["reward_extra_info"] for r in results] == expected
    assert [r["reward_score"] for r in results] == pytest.approx([e["score"] for e in expected])


def test_verl_legacy_batch_manager() -> None:
    config = _verl_config("verl-config-batch")
    from verl.trainer.ppo.reward import get_custom_reward_fn as verl_get_custom_reward_fn
    from verl.workers.reward_manager.batch import BatchRewardManager

    tokenizer = _WordTokenizer(VERL_RESPONSES)
    manager = BatchRewardManager(tokenizer, 0, verl_get_custom_reward_fn(config))
    out = manager(_data_proto(ROWS, VERL_RESPONSES, tokenizer), return_dict=True)
    reward = parse_reward(config.reward.custom_reward_function.reward_kwargs.reward)
    direct = reward(VERL_RESPONSES, [_refs(r) for r in ROWS], group_ids=[r["extra_info"]["index"] for r in ROWS])
    assert out["reward_tensor"].sum(dim=1).tolist() == pytest.approx(direct.scores.tolist())
    assert dict(out["reward_extra_info"]) == {"score": direct.scores.tolist(),
                                              **{k: v.tolist() for k, v in direct.components.items()}}


def test_verl_cli_block_parses_with_hydra() -> None:
    pytest.importorskip("verl")
    parser_module = pytest.importorskip("hydra.core.override_parser.overrides_parser")
    tokens = shlex.split(doc_block(PAGE, "verl-cli").replace("\\\n", " "))[3:]
    overrides = parser_module.OverridesParser.create().parse_overrides(tokens)
    section = _fn_section(_yaml_block("verl-config"))
    assert {o.key_or_group: o.value() for o in overrides} == {
        "reward.custom_reward_function.path": section["path"], "reward.custom_reward_function.name": section["name"],
        "reward.custom_reward_function.reward_kwargs.reward": section["reward_kwargs"]["reward"]}
    assert overrides[2].is_add()


def test_adapter_core_per_sample_fields_of_another_length_are_refused_whether_or_not_a_sample_is_bad() -> None:
    """A group id list one too long used to be cut short silently when some sample was invalid and refused when
    none was; now both are refused (every sample gets error_value with safe=True, an error otherwise)."""
    from speechgrpo.grpo_adapters.adapter_core import AdapterReward

    adapter = AdapterReward("bleu", error_value=-1.0)
    for completions in (["a", "b"], ["a", None]):
        scored = adapter.score(completions, ["a", "b"], group_ids=[0, 0, 1], safe=True)
        assert scored.scores == [-1.0, -1.0]
        assert scored.errors[0] == "3 group_ids for 2 completions"
        with pytest.raises(ValueError, match="3 group_ids for 2 completions"):
            adapter.score(completions, ["a", "b"], group_ids=[0, 0, 1])
    with pytest.raises(ValueError, match="1 off_policy for 2 completions"):
        adapter.score(["a", "b"], ["a", "b"], off_policy=[False])
    assert adapter.score(["a", None], ["a", "b"], group_ids=[0, 1], safe=True).scores == [1.0, -1.0]

"""The OpenRLHF-protocol reward server, over real HTTP on loopback."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")

from doc_blocks import doc_block  # noqa: E402

from speechgrpo.grpo_adapters import reward_server  # noqa: E402
from speechgrpo.grpo_adapters.openrlhf import OpenRLHFReward, extract_response  # noqa: E402
from speechgrpo.grpo_adapters.reward_server import ServerThread, add_cli, cli_main, create_app  # noqa: E402
from speechgrpo.rewards import FunctionReward, parse_reward  # noqa: E402

SPEC = "0.5*bleu + 0.5*chrf"
PROMPT = "<|im_start|>user\nTranslate: Der Hund schläft.<|im_end|>\n<|im_start|>assistant\n"
RESPONSES = ["The dog sleeps.", "the dog is sleeping", "A dog sleeps", "cat", "", "The dog sleeps. The dog."]
REFERENCE = "The dog is sleeping."


def sample(i: int) -> tuple[str, str, str]:
    """(query, prompt, label) of sample i, as OpenRLHF sends it."""
    response = RESPONSES[i % len(RESPONSES)] + (f" {i}" if i >= len(RESPONSES) else "")
    return PROMPT + response + "<|im_end|>", PROMPT, REFERENCE


def body(indices: Sequence[int]) -> dict[str, list[str]]:
    samples = [sample(i) for i in indices]
    return {"query": [s[0] for s in samples], "prompts": [s[1] for s in samples], "labels": [s[2] for s in samples]}


def expected(indices: Sequence[int], spec: str = SPEC) -> list[float]:
    """The reward called directly on the extracted responses."""
    responses = [extract_response(*sample(i)[:2]).response for i in indices]
    return [float(x) for x in parse_reward(spec)(responses, [REFERENCE] * len(indices)).scores]


class CountingReward:
    """A batched reward function that records the size of every engine call."""

    def __init__(self, spec: str = SPEC) -> None:
        self.reward = parse_reward(spec)
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, completions: list[str], references: list[tuple[str, ...]]) -> list[float]:
        with self.lock:
            self.calls.append(len(completions))
        return [float(x) for x in self.reward(completions, references).scores]


async def post_all(url: str, bodies: Sequence[Any], concurrency: int) -> list[tuple[int, Any]]:
    """POST every body with at most ``concurrency`` requests in flight: [(status, json)]."""
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one(payload: Any) -> tuple[int, Any]:
            async with semaphore:
                kwargs = {"data": payload} if isinstance(payload, (bytes, str)) else {"json": payload}
                async with session.post(url + "/get_reward", **kwargs) as response:
                    return response.status, await response.json()
        return await asyncio.gather(*(one(b) for b in bodies))


def post(url: str, payload: Any) -> tuple[int, Any]:
    return asyncio.run(post_all(url, [payload], 1))[0]


def get(url: str, path: str) -> tuple[int, Any]:
    async def run() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.get(url + path) as response:
            return response.status, await response.json()
    return asyncio.run(run())


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(create_app(SPEC, max_items=64, max_body_bytes=20_000)) as running:
        yield running


def test_scores_match_the_reward(server: ServerThread) -> None:
    status, result = post(server.url, body(range(6)))
    assert status == 200
    assert result["rewards"] == result["scores"] == expected(range(6))  # exact: JSON floats round-trip
    assert set(result["extra_logs"]) == {"bleu", "chrf"}
    assert all(len(v) == 6 for v in result["extra_logs"].values())


def test_empty_lists_get_empty_lists(server: ServerThread) -> None:
    assert post(server.url, {"query": [], "prompts": [], "labels": []}) == (
        200, {"rewards": [], "scores": [], "extra_logs": {}})


def test_bad_labels_get_the_error_value(server: ServerThread) -> None:
    payload = body(range(3))
    payload["labels"][1] = None  # type: ignore[call-overload]
    status, result = post(server.url, payload)
    assert status == 200
    assert result["rewards"][1] == 0.0
    assert [result["rewards"][0], result["rewards"][2]] == [expected([0])[0], expected([2])[0]]


@pytest.mark.parametrize(("payload", "status", "message"), [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    ([1, 2], 400, "must be a JSON object"),
    ({"query": ["a"], "prompts": ["a"]}, 400, "missing field 'labels'"),
    ({"query": "a", "prompts": ["a"], "labels": ["a"]}, 400, "field 'query' must be a list, got str"),
    ({"query": ["a", "b"], "prompts": ["a"], "labels": ["a", "b"]}, 400,
     "field 'prompts' has 1 items but 'query' has 2"),
    ({"query": ["a"], "prompts": ["a"], "labels": []}, 400, "field 'labels' has 0 items"),
    ({"query": [3], "prompts": ["a"], "labels": ["a"]}, 400, "query[0] must be a string, got int"),
    ({"query": ["a"], "prompts": [None], "labels": ["a"]}, 400, "prompts[0] must be a string, got NoneType"),
    (body([0] * 65), 413, "at most 64 per request"),
    (b"[" * 9_000 + b"]" * 9_000, 400, "nests JSON deeper"),
    ({"query": ["a"], "prompts": ["a"], "labels": [[[[["a"]]]]]}, 200, None),
    ({"query": ["x" * 30_000], "prompts": [""], "labels": ["a"]}, 413, "Maximum request body size"),
])
def test_malformed_requests_get_json_4xx(server: ServerThread, payload: Any, status: int, message: str) -> None:
    got_status, result = post(server.url, payload)
    assert got_status == status
    assert message is None or message in result["error"]


def test_other_paths_and_methods_get_json_errors(server: ServerThread) -> None:
    status, result = get(server.url, "/get_reward")
    assert status == 405 and "error" in result
    status, result = get(server.url, "/nowhere")
    assert status == 404 and "error" in result


def test_health(server: ServerThread) -> None:
    status, result = get(server.url, "/health")
    assert status == 200
    assert result["status"] == "ok" and result["reward"] == SPEC
    # the run's signature: with nrefs once the server has scored (other tests of this module post first)
    assert re.sub(r"\|nrefs:\w+", "", result["signature"]) == OpenRLHFReward(SPEC).signature
    assert result["max_items"] == 64
    assert {"requests", "samples", "engine_calls", "error_samples"} <= set(result)


def test_binds_loopback_by_default() -> None:
    assert inspect.signature(reward_server.serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(ServerThread).parameters["host"].default == "127.0.0.1"
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    assert parser.parse_args(["serve", "--reward", "bleu"]).host == "127.0.0.1"


def test_concurrent_requests_share_engine_calls() -> None:
    counting = CountingReward()
    with ServerThread(create_app(FunctionReward(counting, name="score"), max_wait_ms=50)) as server:
        results = asyncio.run(post_all(server.url, [body([i]) for i in range(64)], concurrency=64))
    assert [status for status, _ in results] == [200] * 64
    assert [r["rewards"][0] for _, r in results] == expected(range(64))
    assert sum(counting.calls) == 64
    assert len(counting.calls) <= 8, counting.calls  # 64 single-sample requests, a handful of engine calls


def test_batches_stop_at_max_batch_size() -> None:
    counting = CountingReward()
    with ServerThread(create_app(FunctionReward(counting, name="score"), max_batch_size=8, max_wait_ms=50)) as server:
        results = asyncio.run(post_all(server.url, [body([i, i + 100]) for i in range(40)], concurrency=40))
    assert [r["rewards"] for _, r in results] == [expected([i, i + 100]) for i in range(40)]
    assert sum(counting.calls) == 80 and max(counting.calls) <= 8


def test_batching_never_changes_group_relative_scores() -> None:
    """gdpo normalises per group: each request keeps its own groups inside a shared engine call."""
    spec = "gdpo(0.5*bleu + 0.5*chrf)"
    scorer = OpenRLHFReward(spec)
    bodies = [body([i, i + 1, i + 2, i + 3]) for i in range(0, 48, 4)]
    alone = [scorer.score(b["query"], b["prompts"], b["labels"]).scores for b in bodies]
    with ServerThread(create_app(spec, max_wait_ms=50)) as server:
        results = asyncio.run(post_all(server.url, bodies, concurrency=len(bodies)))
        engine_calls = get(server.url, "/health")[1]["engine_calls"]
    assert engine_calls < len(bodies)
    assert [r["rewards"] for _, r in results] == alone


def test_group_normalized_rewards_refuse_a_sample_alone_in_its_group() -> None:
    """One sample per request (OpenRLHF v0.9.1+) would score 0 under gdpo whatever it is: 422, with the reason."""
    spec = "gdpo(0.5*bleu + 0.5*chrf)"
    with ServerThread(create_app(spec, max_wait_ms=1)) as server:
        status, result = post(server.url, body([0]))
        assert status == 422 and "sample 0 is alone in its group" in result["error"]
        assert "--algo.advantage.estimator group_norm" in result["error"]
        whole = body([0, 1, 2, 3])
        mixed = {"query": [*whole["query"], "Other prompt: an answer"], "prompts": [*whole["prompts"], "Other prompt:"],
                 "labels": [*whole["labels"], REFERENCE]}  # a last prompt with one sample
        status, result = post(server.url, mixed)
        assert status == 422 and "sample 4 is alone" in result["error"]
        status, result = post(server.url, whole)
        assert status == 200 and result["rewards"] == OpenRLHFReward(spec).score(
            whole["query"], whole["prompts"], whole["labels"]).scores


def test_load_2000_requests_16_concurrent() -> None:
    n = 2000
    with ServerThread(create_app(SPEC)) as server:
        results = asyncio.run(post_all(server.url, [body([i]) for i in range(n)], concurrency=16))
        health = get(server.url, "/health")[1]
    assert [status for status, _ in results] == [200] * n
    assert [r["rewards"][0] for _, r in results] == expected(range(n))
    assert health["requests"] == health["samples"] == n and health["error_samples"] == 0
    assert health["engine_calls"] < n / 2


def test_cli_main_passes_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(reward_server, "serve", lambda *args, **kwargs: calls.append((args, kwargs)))
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(["serve", "--reward", "bleu", "--port", "5001", "--max-wait-ms", "0",
                              "--max-body-mb", "0.5", "--special-tokens", "<END>"])
    assert args.run is cli_main and cli_main(args) == 0
    (reward, ), options = calls[0]
    assert reward == "bleu" and options["port"] == 5001 and options["host"] == "127.0.0.1"
    assert options["max_wait_ms"] == 0.0 and options["max_body_bytes"] == 2**19
    assert options["special_tokens"] == ["<END>"]


@pytest.mark.parametrize(("options", "message"), [
    ({"max_batch_size": 0}, "max_batch_size"), ({"max_wait_ms": -1.0}, "max_wait_ms"),
    ({"max_items": 0}, "max_items"), ({"max_body_bytes": 0}, "max_body_bytes"),
])
def test_create_app_rejects_bad_limits(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_app("bleu", **options)


def test_docs_example() -> None:
    exec(doc_block("adapters/openrlhf.md", "server"), {})

"""An HTTP reward server speaking OpenRLHF's remote reward-model protocol (aiohttp).

    POST /get_reward  {"query": [str], "prompts": [str], "labels": [any]}
                   -> {"rewards": [float], "scores": [float], "extra_logs": {component: [float]}}
    GET  /health   -> {"status": "ok", "reward": spec, "signature": ..., counters}

OpenRLHF (v0.9.1+) sends one sample per request, many at a time; the server queues concurrent
requests and scores them in one engine call (up to ``max_batch_size`` samples, after waiting at
most ``max_wait_ms`` for company when idle), in a worker thread so that the event loop keeps
accepting requests. Responses are extracted from queries and bad samples get ``error_value``
exactly as in the reward file (:class:`~speechgrpo.grpo_adapters.openrlhf.OpenRLHFReward`); a
malformed request gets a 4xx JSON ``{"error": ...}`` naming the field.

aiohttp (the ``server`` extra) is imported only when an app is built, so registering the CLI
subcommand costs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from speechgrpo._group_ids import group_ids_of_runs
from speechgrpo.grpo_adapters.adapter_core import logger
from speechgrpo.grpo_adapters.openrlhf import DEFAULT_SPECIAL_TOKENS, OpenRLHFReward
from speechgrpo.rewards import Reward

if TYPE_CHECKING:
    from aiohttp import web

FIELDS = ("query", "prompts", "labels")


class PayloadError(ValueError):
    """A request body that does not follow the protocol; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_payload(body: Any, max_items: int) -> tuple[list[str], list[str], list[Any]]:
    """``(queries, prompts, labels)`` of a decoded request body, or :class:`PayloadError` naming the field.

    Labels are checked later, per sample: a bad label gets ``error_value`` like in the reward file.
    """
    if not isinstance(body, dict):
        raise PayloadError('the body must be a JSON object {"query": [...], "prompts": [...], "labels": [...]}, '
                           f"got a JSON {type(body).__name__}")
    for key in FIELDS:
        if key not in body:
            raise PayloadError(f"missing field {key!r}: the body needs {', '.join(FIELDS)}")
        if not isinstance(body[key], list):
            raise PayloadError(f"field {key!r} must be a list, got {type(body[key]).__name__}")
    n = len(body["query"])
    for key in FIELDS[1:]:
        if len(body[key]) != n:
            raise PayloadError(f"field {key!r} has {len(body[key])} items but 'query' has {n}")
    if n > max_items:
        raise PayloadError(f"field 'query' has {n} items; this server takes at most {max_items} per request", 413)
    for key in FIELDS[:2]:
        for i, item in enumerate(body[key]):
            if not isinstance(item, str):
                raise PayloadError(f"{key}[{i}] must be a string, got {type(item).__name__}")
    return body["query"], body["prompts"], body["labels"]


@dataclass
class _Request:
    queries: list[str]
    prompts: list[str]
    labels: list[Any]
    future: asyncio.Future[dict[str, Any]]


class RewardBatcher:
    """Collects concurrent requests into one engine call, run in a worker thread.

    When idle, the first request waits up to ``max_wait_ms`` for others; while the engine is busy,
    requests pile up and form the next batch. Requests are never split; a batch stops growing at
    ``max_batch_size`` samples (a larger request is scored alone). Each request keeps its own groups
    (runs of equal prompts), so batching never changes a score.
    """

    def __init__(self, reward: OpenRLHFReward, *, max_batch_size: int = 512, max_wait_ms: float = 2.0) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
        if not (math.isfinite(max_wait_ms) and max_wait_ms >= 0):
            raise ValueError(f"max_wait_ms must be a finite number >= 0, got {max_wait_ms!r}")
        self.reward = reward
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.stats = {"requests": 0, "samples": 0, "engine_calls": 0, "error_samples": 0}
        self._pending: deque[_Request] = deque()
        self._pending_samples = 0
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="speechgrpo-reward-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while self._pending:
            request = self._pending.popleft()
            if not request.future.done():
                request.future.set_exception(RuntimeError("the reward server is shutting down"))
        self._pending_samples = 0

    async def score(self, queries: list[str], prompts: list[str], labels: list[Any]) -> dict[str, Any]:
        """The response body for one request (already validated by :func:`parse_payload`)."""
        self.stats["requests"] += 1
        if not queries:  # OpenRLHF shards each request over all servers: the others get empty lists
            return {"rewards": [], "scores": [], "extra_logs": {}}
        if self._task is None or self._arrived is None:
            raise RuntimeError("the batcher is not started")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(queries, prompts, labels, future))
        self._pending_samples += len(queries)
        self._arrived.set()
        return await future

    async def _next_batch(self) -> list[_Request]:
        assert self._arrived is not None
        if not self._pending:  # idle: wait for a request, then give others up to max_wait to join it
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = asyncio.get_running_loop().time() + self.max_wait_s
            while self._pending_samples < self.max_batch_size:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
        batch = [self._pending.popleft()]
        size = len(batch[0].queries)
        while self._pending and size + len(self._pending[0].queries) <= self.max_batch_size:
            batch.append(self._pending.popleft())
            size += len(batch[-1].queries)
        self._pending_samples -= size
        return [request for request in batch if not request.future.done()]

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            try:
                outputs = await asyncio.to_thread(self._score_batch, batch)
            except Exception as err:  # not expected: OpenRLHFReward.score does not raise
                logger.exception("speechgrpo reward server: scoring a batch of %d requests failed", len(batch))
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(err)
                continue
            for request, output in zip(batch, outputs, strict=True):
                if not request.future.done():
                    request.future.set_result(output)

    def _score_batch(self, batch: list[_Request]) -> list[dict[str, Any]]:
        """One engine call for the whole batch, split back into one response body per request."""
        queries: list[str] = []
        prompts: list[str] = []
        labels: list[Any] = []
        group_ids: list[int] = []
        for request in batch:
            offset = group_ids[-1] + 1 if group_ids else 0
            group_ids.extend((group_ids_of_runs(request.prompts) + offset).tolist())
            queries += request.queries
            prompts += request.prompts
            labels += request.labels
        result = self.reward.score(queries, prompts, labels, group_ids=group_ids)
        self.stats["engine_calls"] += 1
        self.stats["samples"] += len(queries)
        self.stats["error_samples"] += len(result.errors)
        outputs = []
        start = 0
        for request in batch:
            end = start + len(request.queries)
            scores = result.scores[start:end]
            outputs.append({"rewards": scores, "scores": scores,
                            "extra_logs": {name: values[start:end] for name, values in result.components.items()}})
            start = end
        return outputs


def check_whole_groups(prompts: list[str], spec: str) -> None:
    """A group-normalized reward (``gdpo``) scores each request's groups (runs of equal prompts) on their own: a
    group of one sample would score 0 whatever it is, so such a request is refused (422)."""
    ids = group_ids_of_runs(prompts)
    sizes = np.bincount(ids) if len(ids) else np.zeros(0, dtype=int)
    lone = [int(np.flatnonzero(ids == group)[0]) for group in np.flatnonzero(sizes == 1)]
    if lone:
        raise PayloadError(
            f"reward {spec!r} normalizes within GRPO groups, and sample {lone[0]} is alone in its group (a run "
            "of equal prompts in the request), where it would score 0 whatever it is. Send all the samples of a "
            "prompt in one request; OpenRLHF v0.9.1+ sends one sample per request, so there use a plain weighted "
            "sum with --algo.advantage.estimator group_norm.",
            422)


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def create_app(reward: str | Reward | Callable[..., Any] | OpenRLHFReward, *, error_value: float = 0.0,
               special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS, max_batch_size: int = 512,
               max_wait_ms: float = 2.0, max_items: int = 4096, max_body_bytes: int = 64 * 2**20) -> web.Application:
    """The aiohttp application: ``POST /get_reward`` and ``GET /health``.

    Args:
        reward: a spec string, a :class:`~speechgrpo.rewards.Reward`, a batched function, or an
            :class:`~speechgrpo.grpo_adapters.openrlhf.OpenRLHFReward` (then ``error_value`` and
            ``special_tokens`` are its own).
        error_value: the score of a sample that cannot be scored.
        special_tokens: stripped from both ends of each extracted response.
        max_batch_size: most samples per engine call.
        max_wait_ms: how long an idle server waits for more requests to join the first one.
        max_items: most samples per request (more: 413).
        max_body_bytes: largest request body (aiohttp's ``client_max_size``; more: 413).
    """
    from aiohttp import web

    scorer = reward if isinstance(reward, OpenRLHFReward) else OpenRLHFReward(
        reward, error_value=error_value, special_tokens=special_tokens)
    batcher = RewardBatcher(scorer, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
    max_items = _positive(max_items, "max_items")

    def error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    @web.middleware
    async def json_errors(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """aiohttp's own 4xx (404, 405, 413) as JSON too, and a JSON 500 for the unexpected."""
        try:
            return await handler(request)
        except web.HTTPException as err:
            if err.status < 400:
                raise
            return error(err.status, err.text or err.reason)
        except Exception as err:
            logger.exception("speechgrpo reward server: %s %s failed", request.method, request.path)
            return error(500, f"{type(err).__name__}: {err}")

    async def get_reward(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError
            return error(400, f"the body is not valid JSON: {err}")
        except RecursionError:
            return error(400, "the body nests JSON deeper than Python's parser goes")
        try:
            queries, prompts, labels = parse_payload(body, max_items)
            if scorer.adapter.reward.group_dependent:
                check_whole_groups(prompts, scorer.adapter.reward.spec)
        except PayloadError as err:
            return error(err.status, str(err))
        return web.json_response(await batcher.score(queries, prompts, labels))

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "reward": scorer.adapter.reward.spec, "signature": scorer.signature,
                                  "error_value": scorer.error_value, "max_batch_size": batcher.max_batch_size,
                                  "max_wait_ms": batcher.max_wait_s * 1000, "max_items": max_items,
                                  **batcher.stats})

    async def run_batcher(app: web.Application) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    app = web.Application(client_max_size=_positive(max_body_bytes, "max_body_bytes"), middlewares=[json_errors])
    app.router.add_post("/get_reward", get_reward)
    app.router.add_get("/health", health)
    app.cleanup_ctx.append(run_batcher)
    return app


def serve(reward: str | Reward | Callable[..., Any] | OpenRLHFReward, host: str = "127.0.0.1", port: int = 5000,
          **options: Any) -> None:
    """Run the server until interrupted; ``options`` go to :func:`create_app`. No access log (one line per
    request is too much at training rates); the reward's signature is logged on the first request."""
    from aiohttp import web

    app = create_app(reward, **options)
    web.run_app(app, host=host, port=port, access_log=None,
                print=lambda line: print(f"{line}\nOpenRLHF: --reward.remote_url http://{host}:{port}/get_reward",
                                          flush=True))


class ServerThread:
    """An app served on its own event loop in a daemon thread (tests, notebooks, a trainer's process).

    ``port=0`` picks a free port; :attr:`url` is the base address. Use as a context manager or call
    :meth:`stop`.
    """

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        from aiohttp import web

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="speechgrpo-reward-server", daemon=True)
        self._thread.start()
        self._runner = web.AppRunner(app, access_log=None)

        async def start() -> None:
            await self._runner.setup()
            await web.TCPSite(self._runner, host, port).start()

        try:
            asyncio.run_coroutine_threadsafe(start(), self._loop).result()
        except BaseException:
            self.stop()
            raise
        bound_host, self.port = self._runner.addresses[0][:2]
        self.url = f"http://[{bound_host}]:{self.port}" if ":" in bound_host else f"http://{bound_host}:{self.port}"

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``speechgrpo serve`` (runs :func:`cli_main` through ``args.run``)."""
    parser = subparsers.add_parser("serve", help="serve a reward over OpenRLHF's remote reward-model HTTP protocol",
                                   description="Serve a reward at POST /get_reward (OpenRLHF's --reward.remote_url "
                                               "http://HOST:PORT/get_reward) and GET /health.")
    parser.add_argument("--reward", required=True, help="reward spec, e.g. '0.7*bleu + 0.3*chrf'")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    parser.add_argument("--error-value", type=float, default=0.0,
                        help="score of a sample that cannot be scored (default: 0.0)")
    parser.add_argument("--special-tokens", nargs="+", metavar="TOKEN",
                        help="tokens stripped from both ends of each response (default: common EOS/pad tokens)")
    parser.add_argument("--max-batch-size", type=int, default=512, help="most samples per engine call (default: 512)")
    parser.add_argument("--max-wait-ms", type=float, default=2.0,
                        help="how long an idle server waits for requests to batch with the first (default: 2)")
    parser.add_argument("--max-items", type=int, default=4096, help="most samples per request (default: 4096)")
    parser.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body in MiB (default: 64)")
    parser.set_defaults(run=cli_main, extra="server")
    return parser


def cli_main(args: argparse.Namespace) -> int:
    """Serve from parsed arguments (the options of :func:`add_cli`); logs at INFO to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.reward, host=args.host, port=args.port, error_value=args.error_value,
          special_tokens=args.special_tokens or DEFAULT_SPECIAL_TOKENS, max_batch_size=args.max_batch_size,
          max_wait_ms=args.max_wait_ms, max_items=args.max_items, max_body_bytes=int(args.max_body_mb * 2**20))
    return 0

"""Load test of the OpenRLHF-protocol reward server (``speechgrpo serve``): throughput, latency, batching.

Why: OpenRLHF v0.9.1+ sends one HTTP request per generated response, many at once; the server must keep
up and should turn concurrent requests into few engine calls. For each reward spec this starts the
server in a subprocess (``reward_server.serve`` on 127.0.0.1, a free port), sends ``--warmup`` requests,
then ``--requests`` requests of ``--samples-per-request`` samples (1, as OpenRLHF v0.9.1+ sends them)
with at most ``--concurrency`` in flight, the way OpenRLHF's client does: a new ``aiohttp.ClientSession``,
so a new connection, per request (``--keep-alive`` reuses one session). Samples are ``make_generated_corpus`` news
sentences as chat-templated queries (prompt + hypothesis + ``<|im_end|>``) with the reference as label.

Reported per spec: requests/s and samples/s over the timed wall clock, p50/p99 request latency, errors
(non-200 answers or failed requests), mismatches (requests whose scores differ from calling the reward
directly on the extracted responses; must be 0) and the engine calls the server made (from ``/health``), with the
batching ratio (samples per engine call). Exit status 1 on any error or mismatch.

    .venv/bin/python benchmarks/reward_server_load.py                                  # bleu; 0.5*bleu + 0.5*chrf
    .venv/bin/python benchmarks/reward_server_load.py --rewards "chrf" --requests 5000 --concurrency 64
    .venv/bin/python benchmarks/reward_server_load.py --keep-alive --markdown server_load.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
from common import format_table, machine_info, report

from speechgrpo.bench.generated_corpus import make_generated_corpus
from speechgrpo.grpo_adapters.openrlhf import extract_response
from speechgrpo.rewards import parse_reward

DEFAULT_REWARDS = "bleu; 0.5*bleu + 0.5*chrf"


@dataclass
class Row:
    spec: str
    seconds: float
    requests: int
    samples: int
    latencies: np.ndarray
    errors: int
    mismatches: int
    engine_calls: int


def make_requests(n: int, per_request: int, seed: int) -> list[dict[str, list[Any]]]:
    """``n`` request bodies of ``per_request`` samples (groups of 8 samples share a prompt)."""
    groups = make_generated_corpus(max(1, -(-n * per_request // 8)), 8, seed=seed)
    queries, prompts, labels = [], [], []
    for i, hypothesis in enumerate(groups.hypotheses[:n * per_request]):
        reference = groups.references[i // 8]
        prompt = f"<|im_start|>user\nRepeat after me: {reference}<|im_end|>\n<|im_start|>assistant\n"
        queries.append(prompt + hypothesis + "<|im_end|>")
        prompts.append(prompt)
        labels.append(reference)
    return [{"query": queries[i:i + per_request], "prompts": prompts[i:i + per_request],
             "labels": labels[i:i + per_request]} for i in range(0, n * per_request, per_request)]


def expected_rewards(spec: str, bodies: Sequence[dict[str, list[Any]]]) -> list[list[float]]:
    """Per request, the reward called directly on the extracted responses."""
    return [[float(x) for x in parse_reward(spec)(
        [extract_response(q, p).response for q, p in zip(b["query"], b["prompts"], strict=True)], b["labels"]).scores]
        for b in bodies]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(spec: str, port: int, options: dict[str, Any]) -> subprocess.Popen[bytes]:
    code = ("import json, sys; from speechgrpo.grpo_adapters.reward_server import serve; "
            "serve(sys.argv[1], port=int(sys.argv[2]), **json.loads(sys.argv[3]))")
    return subprocess.Popen([sys.executable, "-c", code, spec, str(port), json.dumps(options)],
                            stdout=subprocess.DEVNULL)


async def health(url: str, timeout: float = 60.0) -> dict[str, Any]:
    """The server's /health, waiting for it to come up."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/health") as response:
                    result: dict[str, Any] = await response.json()
                    return result
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def load(url: str, bodies: Sequence[dict[str, list[Any]]], concurrency: int,
               keep_alive: bool) -> tuple[float, list[float], list[list[float] | None]]:
    """Post every body, ``concurrency`` at a time: (wall seconds, latencies, rewards or None on error)."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = [0.0] * len(bodies)
    rewards: list[list[float] | None] = [None] * len(bodies)
    shared = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) if keep_alive else None

    async def post(session: aiohttp.ClientSession, i: int) -> None:
        async with session.post(url + "/get_reward", json=bodies[i]) as response:
            if response.status == 200:
                rewards[i] = (await response.json())["rewards"]

    async def one(i: int) -> None:
        async with semaphore:
            start = time.perf_counter()
            try:
                if shared is not None:
                    await post(shared, i)
                else:  # OpenRLHF's _fetch_rewards_via_http: a new session per request
                    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
                        await post(session, i)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            latencies[i] = time.perf_counter() - start

    start = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(len(bodies))))
    finally:
        if shared is not None:
            await shared.close()
    return time.perf_counter() - start, latencies, rewards


def run_spec(spec: str, args: argparse.Namespace, bodies: list[dict[str, list[Any]]],
             warmup: list[dict[str, list[Any]]]) -> Row:
    options = {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(spec, port, options)
    try:
        asyncio.run(health(url))
        asyncio.run(load(url, warmup, args.concurrency, args.keep_alive))
        before = asyncio.run(health(url))["engine_calls"]
        seconds, latencies, rewards = asyncio.run(load(url, bodies, args.concurrency, args.keep_alive))
        engine_calls = asyncio.run(health(url))["engine_calls"] - before
    finally:
        server.terminate()
        server.wait(timeout=30)
    expected = expected_rewards(spec, bodies)
    errors = sum(r is None for r in rewards)
    mismatches = sum(r is not None and r != e for r, e in zip(rewards, expected, strict=True))
    return Row(spec, seconds, len(bodies), sum(len(b["query"]) for b in bodies), np.array(latencies), errors,
               mismatches, engine_calls)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rewards", default=DEFAULT_REWARDS,
                        help=f"reward specs separated by ';' (default: {DEFAULT_REWARDS})")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per spec (default: 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default: 16)")
    parser.add_argument("--samples-per-request", type=int, default=1,
                        help="1 as OpenRLHF >= 0.9.1 sends (default); more for v0.8.x-style chunks")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first (default: 100)")
    parser.add_argument("--keep-alive", action="store_true",
                        help="one client session for all requests (default: a new one per request, as OpenRLHF)")
    parser.add_argument("--max-batch-size", type=int, default=512, help="server option (default: 512)")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="server option (default: 2)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--markdown", help="also write the results as Markdown to this file")
    args = parser.parse_args(argv)
    specs = [s.strip() for s in args.rewards.split(";") if s.strip()]
    bodies = make_requests(args.requests, args.samples_per_request, args.seed)
    warmup = make_requests(args.warmup, args.samples_per_request, args.seed + 1)  # other texts: no warm caches
    rows = []
    for spec in specs:
        row = run_spec(spec, args, bodies, warmup)
        rows.append(row)
        print(f"{spec}: {row.requests / row.seconds:.0f} requests/s, {row.errors} errors, "
              f"{row.mismatches} mismatches", file=sys.stderr)

    def render(markdown: bool) -> str:
        headers = ["reward", "requests/s", "samples/s", "p50 ms", "p99 ms", "errors", "mismatches",
                   "engine calls", "samples/call"]
        table = [[f"`{r.spec}`" if markdown else r.spec, f"{r.requests / r.seconds:.0f}",
                  f"{r.samples / r.seconds:.0f}", f"{np.percentile(r.latencies, 50) * 1e3:.1f}",
                  f"{np.percentile(r.latencies, 99) * 1e3:.1f}", str(r.errors), str(r.mismatches),
                  str(r.engine_calls), f"{r.samples / max(r.engine_calls, 1):.1f}"] for r in rows]
        return format_table(headers, table, markdown)

    client = "one keep-alive session" if args.keep_alive else "a new session per request (as OpenRLHF)"
    notes = [f"{args.requests} requests of {args.samples_per_request} sample(s) per reward, {args.concurrency} "
             f"in flight, {client}; {args.warmup} warm-up requests (other texts) first.",
             f"Server: reward_server.serve in a subprocess on 127.0.0.1, max_batch_size={args.max_batch_size}, "
             f"max_wait_ms={args.max_wait_ms:g}; client and server share the machine's cores.",
             "mismatches: requests whose scores differ from the reward called directly on the extracted responses."]
    command = "benchmarks/reward_server_load.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report("Reward server load test", command.strip(), machine_info(), render, notes, names=[],
           markdown_path=args.markdown)
    return int(any(r.errors or r.mismatches for r in rows))


if __name__ == "__main__":
    sys.exit(main())

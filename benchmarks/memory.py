"""Memory and throughput on a million pairs: one metric per fresh process, peak RSS per metric.

Each metric runs in its own subprocess (``--worker NAME``), so ``ru_maxrss`` (the process's peak
resident set) belongs to that metric alone. The worker

1. imports the metric and warms it up on 512 small pairs (numba compilation, lazy tables), and
   records the RSS then;
2. builds the input, ``--corpus`` pairs in groups of 16 (``speechgrpo.bench.speed.corpus_pairs``: by default
   the real-text manual-page corpus where the machine has it), and records the RSS after that (the
   strings alone are a large share of the total);
3. scores all pairs with one ``metric.score(hyps, refs)`` call, timed, and records the peak RSS;
4. checks a random sample of pairs against the reference implementation (after the peak was taken).

``metric share = peak RSS - RSS after the input``: what scoring adds on top of the strings. The
library dedupes the pairs (WER's and ROUGE's compiled paths score repeats again instead) and scores
them in chunks of ``Metric.chunk_size`` (32768), so
the engine's arrays are bounded by one chunk; what still grows with the input is the dedupe
bookkeeping (the list of pairs, the dict of distinct pairs, the inverse index) and the float64 scores.
A second run at ``--compare-pairs`` (default 250,000) shows how the share grows with the input.

Run from the repository root::

    .venv/bin/python benchmarks/memory.py                                  # bleu,chrf,wer at 1M and 250k pairs
    .venv/bin/python benchmarks/memory.py --metrics bleu --pairs 200000 --compare-pairs 0 --markdown mem.md
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

from common import SPECS, format_machine, format_table, machine_info, parse_names

HERE = os.path.dirname(os.path.abspath(__file__))
GROUP_SIZE = 16


def _status_mib(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def rss_mib() -> float:
    """Current resident set size (VmRSS) in MiB."""
    return _status_mib("VmRSS")


def hwm_mib() -> float:
    """Peak resident set size of this process's own address space (VmHWM) in MiB.

    A cross-check on ``ru_maxrss``: after ``fork``/``vfork`` + ``exec`` the child's ``ru_maxrss`` starts
    at the *parent's* peak (the kernel carries the old address space's high-water mark into
    ``signal->maxrss``), while VmHWM starts from the new program. The parent therefore stays small
    (it imports no torch before the workers are done), and the two numbers should agree.
    """
    return _status_mib("VmHWM")


def peak_rss_mib() -> float:
    """Peak resident set size of this process (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- worker: one metric, one process -----------------------------------------------------------------------

def worker(name: str, pairs: int, seed: int, sample: int, corpus: str) -> dict[str, object]:
    from speechgrpo.bench.corpus import corpus_pairs
    from speechgrpo.bench.generated_corpus import make_generated_corpus

    spec = SPECS[name]
    metric = spec.ours()
    start = time.perf_counter()
    small = make_generated_corpus(64, GROUP_SIZE, seed + 1)
    metric.score(small.hypotheses, small.pair_references)
    warm_up_s = time.perf_counter() - start
    del small
    rss_ready = rss_mib()

    start = time.perf_counter()
    hyps, refs, note = corpus_pairs(corpus, pairs // GROUP_SIZE, GROUP_SIZE, seed, "news")
    input_s = time.perf_counter() - start
    rss_input = rss_mib()
    peak_input = peak_rss_mib()
    hwm_input = hwm_mib()

    start = time.perf_counter()
    scores = metric.score(hyps, refs)
    seconds = time.perf_counter() - start
    peak = peak_rss_mib()
    hwm = hwm_mib()
    rss_after = rss_mib()

    reference = spec.reference()
    rng = random.Random(seed)
    indices = rng.sample(range(len(hyps)), min(sample, len(hyps)))
    identical, max_diff, worst = 0, 0.0, None
    for i in indices:
        expected = float(reference(hyps[i], refs[i]))
        got = float(scores[i])
        if got == expected or (got != got and expected != expected):
            identical += 1
        elif abs(got - expected) > max_diff or worst is None:
            max_diff = max(max_diff, abs(got - expected))
            worst = {"hyp": hyps[i], "ref": refs[i], "ours": got, "reference": expected}
    distinct = len(set(zip(hyps, refs, strict=True)))
    return {
        "metric": name, "pairs": len(hyps), "distinct": distinct, "seconds": seconds, "warm_up_s": warm_up_s,
        "input_s": input_s, "rss_ready": rss_ready, "rss_input": rss_input, "peak_input": peak_input,
        "hwm_input": hwm_input, "peak": peak, "hwm": hwm, "rss_after": rss_after,
        "sample": len(indices), "identical": identical,
        "max_diff": max_diff, "worst": worst, "reference_text": spec.reference_text,
        "chunk_size": type(metric).chunk_size, "corpus": note,
    }


def run_worker(name: str, pairs: int, seed: int, sample: int, corpus: str) -> dict[str, object]:
    command = [sys.executable, os.path.join(HERE, "memory.py"), "--worker", name, "--pairs", str(pairs),
               "--seed", str(seed), "--sample", str(sample), "--corpus", corpus]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {name} ({pairs} pairs) failed with {done.returncode}:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


# --- report ------------------------------------------------------------------------------------------------

def main_table(results: list[dict], markdown: bool) -> str:
    headers = ["metric", "pairs", "distinct pairs", "seconds", "pairs/s", "RSS ready MiB", "RSS after input MiB",
               "peak before scoring MiB", "peak RSS MiB", "VmHWM MiB", "metric share MiB", "RSS after MiB",
               "sample identical", "max |diff|"]
    rows = [[r["metric"], f"{r['pairs']:,}", f"{r['distinct']:,}", f"{r['seconds']:.2f}",
             f"{r['pairs'] / r['seconds']:,.0f}", f"{r['rss_ready']:,.0f}", f"{r['rss_input']:,.0f}",
             f"{r['peak_input']:,.0f}", f"{r['peak']:,.0f}", f"{r['hwm']:,.0f}", f"{r['peak'] - r['rss_input']:,.0f}",
             f"{r['rss_after']:,.0f}", f"{r['identical']:,}/{r['sample']:,}", f"{r['max_diff']:g}"]
            for r in results]
    return format_table(headers, rows, markdown)


def growth_table(pairs_big: list[dict], pairs_small: list[dict], markdown: bool) -> str:
    headers = ["metric", "pairs (small)", "share small MiB", "pairs (large)", "share large MiB",
               "share ratio", "pairs ratio", "input ratio", "extra bytes per extra pair"]
    rows = []
    for big, small in zip(pairs_big, pairs_small, strict=True):
        share_big, share_small = big["peak"] - big["rss_input"], small["peak"] - small["rss_input"]
        input_big, input_small = big["rss_input"] - big["rss_ready"], small["rss_input"] - small["rss_ready"]
        per_pair = (share_big - share_small) * 2**20 / (big["pairs"] - small["pairs"])
        rows.append([big["metric"], f"{small['pairs']:,}", f"{share_small:,.0f}", f"{big['pairs']:,}",
                     f"{share_big:,.0f}", f"{share_big / share_small:.2f}", f"{big['pairs'] / small['pairs']:.2f}",
                     f"{input_big / input_small:.2f}", f"{per_pair:,.0f}"])
    return format_table(headers, rows, markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", default="bleu,chrf,wer", help=f"comma-separated, from {', '.join(SPECS)}")
    parser.add_argument("--pairs", type=int, default=1_000_000, help="pairs (groups of 16; rounded down to 16)")
    parser.add_argument("--corpus", default="auto", choices=("auto", "manpages", "generated"),
                        help="the pairs, as speechgrpo bench speed --corpus (default auto: real text where available)")
    parser.add_argument("--compare-pairs", type=int, default=250_000,
                        help="second, smaller run per metric to see how memory grows (0: skip)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--sample", type=int, default=2000, help="pairs checked against the reference")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown")
    parser.add_argument("--worker", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.pairs, args.seed, args.sample, args.corpus)))
        return 0

    names = parse_names(args.metrics)
    pairs = args.pairs // GROUP_SIZE * GROUP_SIZE
    small_pairs = args.compare_pairs // GROUP_SIZE * GROUP_SIZE
    wall = time.perf_counter()
    results, smalls = [], []
    for name in names:
        for size, bucket in [(pairs, results), (small_pairs, smalls)]:
            if size <= 0 or (bucket is smalls and size == pairs):
                continue
            r = run_worker(name, size, args.seed, args.sample, args.corpus)
            bucket.append(r)
            print(f"{name:6s} {r['pairs']:>9,} pairs: {r['seconds']:7.2f} s scoring, {r['input_s']:.1f} s building "
                  f"the input, {r['warm_up_s']:.1f} s warm-up, {r['process_s']:.1f} s process; peak RSS "
                  f"{r['peak']:,.0f} MiB (after input {r['rss_input']:,.0f}); sample {r['identical']}/{r['sample']}"
                  f" identical", flush=True)
    print()
    info = machine_info()  # imports torch: only now, so that no worker inherits its RSS (see hwm_mib)
    print(format_machine(info, markdown=False))
    print()
    print(f"{results[0]['corpus'] if results else args.corpus}; one metric.score(hyps, refs) call per process; "
          f"chunk_size {results[0]['chunk_size'] if results else '-'}")
    print("RSS ready: after imports and a 512-pair warm-up; peak RSS: ru_maxrss; VmHWM: the same from "
          "/proc/self/status (cross-check); metric share = peak RSS - RSS after input")
    print(main_table(results, markdown=False))
    if smalls:
        print()
        print("growth of the metric share with the input (same metric, fresh process)")
        print(main_table(smalls, markdown=False))
        print()
        print(growth_table(results, smalls, markdown=False))
    bad = [r for r in results + smalls if r["identical"] != r["sample"]]
    for r in bad:
        print(f"{r['metric']}: {r['sample'] - r['identical']} of {r['sample']} sampled pairs differ from "
              f"{r['reference_text']}; worst: {r['worst']}")
    print()
    for r in results:
        print(f"{r['metric']}: reference {r['reference_text']}")
    print(f"wall time: {time.perf_counter() - wall:.1f} s")

    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write("# Memory on large inputs\n\n" + format_machine(info, markdown=True) + "\n\n")
            handle.write(f"Pairs: {results[0]['corpus'] if results else args.corpus}\n\n")
            handle.write(main_table(results, markdown=True) + "\n\n")
            if smalls:
                handle.write(main_table(smalls, markdown=True) + "\n\n")
                handle.write(growth_table(results, smalls, markdown=True) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

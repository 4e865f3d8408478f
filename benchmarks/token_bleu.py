"""Token-id BLEU: ``speechgrpo.metrics.token_bleu`` vs a dense TensorBLEU-style baseline.

The baseline follows TensorBLEU (Filipek, arXiv:2510.05485; RxLM's ``tensorbleu``): per order, n-grams
are taken with ``unfold``, n-grams containing padding are masked out, one ``torch.unique(dim=0,
return_inverse=True)`` over the candidate and reference n-grams of the whole batch builds a batch
dictionary of ``U`` n-grams, and counts come from one offset ``torch.bincount`` (``row * U + id``,
``minlength=rows * U``) reshaped to a dense ``(rows, U)`` table; reference counts are the maximum over
references, clipped counts ``minimum(candidate, reference max)`` summed per row. The baseline is used
only for the statistics: its ``[hyp_len, ref_len, correct_1..4, total_1..4]`` rows go through the same
``bleu_from_statistics_torch`` as ours, and the script checks that both give the same statistics as
``token_bleu_statistics`` (and so the same scores).

The dense table costs ``rows x U`` counters per order; ``U`` grows with the batch, so the table grows
with the square of the batch size. Where the estimate exceeds ``--dense-limit-gib`` the baseline is
skipped for that size and the output says so.

Run from the repository root::

    .venv/bin/python benchmarks/token_bleu.py                     # main run + sweep, CPU
    .venv/bin/python benchmarks/token_bleu.py --device cuda --batch 512 --refs 4 --markdown tb.md
    .venv/bin/python benchmarks/token_bleu.py --no-sweep --batch 64 --length 2048
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from common import format_machine, format_table, machine_info

from speechgrpo.metrics.token_bleu import bleu_from_statistics_torch, token_bleu, token_bleu_statistics

PAD = 0


# --- data ------------------------------------------------------------------------------------------------

def zipf_ids(shape: tuple[int, ...], vocab: int, generator: torch.Generator) -> torch.Tensor:
    """Token ids in ``1..vocab-1`` (0 is padding) with a Zipf(1) frequency profile, like subword text."""
    weights = 1.0 / torch.arange(1, vocab, dtype=torch.float64)
    flat = torch.multinomial(weights, int(torch.tensor(shape).prod()), replacement=True, generator=generator)
    return (flat + 1).reshape(shape)


def make_batch(batch: int, length: int, n_refs: int, vocab: int, seed: int,
               span: int = 32, copy_fraction: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates ``(B, L)`` and references ``(B, R, L)`` shaped like RL rollouts and their targets.

    Each reference is built from its candidate in spans of ``span`` tokens: a span is copied from the
    candidate with probability ``copy_fraction`` (so about half the positions are shared, in long runs)
    and is fresh Zipf-distributed text otherwise. Candidate and reference lengths are drawn uniformly in
    ``[L/2, L]`` and the rest of each row is right-padded with ``PAD``.
    """
    gen = torch.Generator().manual_seed(seed)
    candidates = zipf_ids((batch, length), vocab, gen)
    fresh = zipf_ids((batch, n_refs, length), vocab, gen)
    n_spans = -(-length // span)
    copy = torch.rand(batch, n_refs, n_spans, generator=gen) < copy_fraction
    copy = copy.repeat_interleave(span, dim=2)[:, :, :length]
    references = torch.where(copy, candidates.unsqueeze(1), fresh)
    positions = torch.arange(length)
    cand_len = torch.randint(length // 2, length + 1, (batch, 1), generator=gen)
    ref_len = torch.randint(length // 2, length + 1, (batch, n_refs, 1), generator=gen)
    candidates = candidates.masked_fill(positions >= cand_len, PAD)
    references = references.masked_fill(positions >= ref_len, PAD)
    return candidates, references


# --- dense baseline (TensorBLEU-style) -------------------------------------------------------------------

class TooBig(Exception):
    """The dense table of some order would exceed the memory limit."""


def dense_statistics(candidates: torch.Tensor, references: torch.Tensor, pad_id: int = PAD, max_order: int = 4,
                     limit_bytes: float = float("inf")) -> tuple[torch.Tensor, int]:
    """``[hyp_len, ref_len, correct_1..N, total_1..N]`` per row with dense per-batch n-gram tables.

    Returns the statistics and the largest ``U`` (batch dictionary size) over the orders.
    """
    batch, n_refs, _ = references.shape
    device = candidates.device
    cand_ok_tok = candidates != pad_id
    ref_ok_tok = references != pad_id
    hyp_len = cand_ok_tok.sum(dim=1)
    ref_lens = ref_ok_tok.sum(dim=2)
    longest = int(ref_lens.max().item()) + 1
    rank = (ref_lens - hyp_len.unsqueeze(1)).abs() * longest + ref_lens  # closest length, ties to the shorter
    ref_len = ref_lens.gather(1, rank.argmin(dim=1, keepdim=True)).squeeze(1)

    correct = torch.zeros(batch, max_order, dtype=torch.long, device=device)
    total = torch.zeros(batch, max_order, dtype=torch.long, device=device)
    largest = 0
    for n in range(1, max_order + 1):
        if candidates.shape[1] < n or references.shape[2] < n:
            continue
        cand_ngrams = candidates.unfold(1, n, 1)                      # (B, Nc, n)
        ref_ngrams = references.unfold(2, n, 1)                       # (B, R, Nr, n)
        cand_ok = cand_ok_tok.unfold(1, n, 1).all(dim=-1)             # no padding inside the n-gram
        ref_ok = ref_ok_tok.unfold(2, n, 1).all(dim=-1)
        cand_row = torch.arange(batch, device=device).unsqueeze(1).expand_as(cand_ok)
        ref_row = torch.arange(batch * n_refs, device=device).reshape(batch, n_refs, 1).expand_as(ref_ok)
        n_cand = int(cand_ok.sum().item())
        all_ngrams = torch.cat([cand_ngrams[cand_ok], ref_ngrams[ref_ok]], dim=0)
        unique, inverse = torch.unique(all_ngrams, dim=0, return_inverse=True)
        size = unique.shape[0]
        largest = max(largest, size)
        # bincount output, the (B, U) / (B, R, U) views, the max over references and the minimum
        # live int64 tables at the peak: counts (B, U) + reference counts (B, R, U) + their max (B, U),
        # then counts + max + minimum(...)
        need = 8.0 * batch * size * max(n_refs + 2, 3)
        if need > limit_bytes:
            raise TooBig(f"order {n}: U={size:,}, dense tables would take ~{need / 2**30:.1f} GiB "
                         f"(limit {limit_bytes / 2**30:.1f} GiB)")
        cand_index = cand_row[cand_ok] * size + inverse[:n_cand]
        ref_index = ref_row[ref_ok] * size + inverse[n_cand:]
        cand_counts = torch.bincount(cand_index, minlength=batch * size).view(batch, size)
        ref_counts = torch.bincount(ref_index, minlength=batch * n_refs * size).view(batch, n_refs, size)
        ref_max = ref_counts.amax(dim=1)
        del ref_counts
        correct[:, n - 1] = torch.minimum(cand_counts, ref_max).sum(dim=1)
        total[:, n - 1] = cand_ok.sum(dim=1)
        del cand_counts, ref_max
    stats = torch.cat([hyp_len.unsqueeze(1), ref_len.unsqueeze(1), correct, total], dim=1)
    return stats, largest


def dense_bleu(candidates: torch.Tensor, references: torch.Tensor, limit_bytes: float) -> torch.Tensor:
    return bleu_from_statistics_torch(dense_statistics(candidates, references, limit_bytes=limit_bytes)[0])


# --- timing ----------------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    seconds: float                # median over repeats
    runs: list[float]
    peak_bytes: int | None        # CUDA: peak allocated during one run, above what was allocated before


def time_it(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int, warm_up: bool = True) -> Timing:
    if warm_up:  # kernels, allocator, lazy init; run_case's correctness check already did this
        fn()
        sync(device)
    peak = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - before
    runs = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        runs.append(time.perf_counter() - start)
    return Timing(statistics.median(runs), runs, peak)


@dataclass
class Result:
    batch: int
    length: int
    refs: int
    ours: Timing
    dense: Timing | None
    dense_note: str
    unique: int
    mismatched_rows: int | None
    max_score_diff: float | None


def run_case(batch: int, length: int, n_refs: int, vocab: int, seed: int, repeats: int, device: torch.device,
             limit_bytes: float) -> Result:
    candidates, references = make_batch(batch, length, n_refs, vocab, seed)
    candidates, references = candidates.to(device), references.to(device)

    ours_stats = token_bleu_statistics(candidates, references, pad_id=PAD)
    ours_scores = token_bleu(candidates, references, pad_id=PAD)
    try:
        dense_stats, unique = dense_statistics(candidates, references, limit_bytes=limit_bytes)
    except TooBig as exc:
        ours = time_it(lambda: token_bleu(candidates, references, pad_id=PAD), device, repeats, warm_up=False)
        return Result(batch, length, n_refs, ours, None, f"skipped: {exc}", 0, None, None)
    mismatched = int((ours_stats != dense_stats).any(dim=1).sum().item())
    dense_scores = bleu_from_statistics_torch(dense_stats)
    max_diff = float((ours_scores - dense_scores).abs().max().item())
    if mismatched:
        bad = (ours_stats != dense_stats).any(dim=1).nonzero().flatten()[:3].tolist()
        for row in bad:
            print(f"  MISMATCH row {row}: ours {ours_stats[row].tolist()} dense {dense_stats[row].tolist()}",
                  file=sys.stderr)

    ours = time_it(lambda: token_bleu(candidates, references, pad_id=PAD), device, repeats, warm_up=False)
    dense = time_it(lambda: dense_bleu(candidates, references, limit_bytes), device, repeats, warm_up=False)
    return Result(batch, length, n_refs, ours, dense, "", unique, mismatched, max_diff)


# --- report ----------------------------------------------------------------------------------------------

def fmt_rate(pairs: int, seconds: float) -> str:
    return f"{pairs / seconds:,.0f}"


def fmt_mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.1f}"


def table(results: list[Result], device: torch.device, markdown: bool) -> str:
    headers = ["batch", "length", "refs", "U (max)", "ours s", "ours pairs/s", "dense s", "dense pairs/s",
               "speedup (dense s / ours s)", "rows differing", "max |score diff|"]
    if device.type == "cuda":
        headers += ["ours peak MiB", "dense peak MiB"]
    rows = []
    for r in results:
        row = [str(r.batch), str(r.length), str(r.refs), f"{r.unique:,}" if r.dense else "-",
               f"{r.ours.seconds:.4f}", fmt_rate(r.batch, r.ours.seconds)]
        if r.dense is not None:
            row += [f"{r.dense.seconds:.4f}", fmt_rate(r.batch, r.dense.seconds),
                    f"{r.dense.seconds / r.ours.seconds:.2f}x", str(r.mismatched_rows), f"{r.max_score_diff:g}"]
        else:
            row += ["skipped", "-", "-", "-", "-"]
        if device.type == "cuda":
            row += [fmt_mib(r.ours.peak_bytes), fmt_mib(r.dense.peak_bytes if r.dense else None)]
        rows.append(row)
    return format_table(headers, rows, markdown, left=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=1024, help="padded length of candidates and references")
    parser.add_argument("--refs", type=int, default=1, help="references per candidate")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sweep-batches", default="16,64,256,512",
                        help="batch sizes of the sweep (comma-separated; empty: no sweep)")
    parser.add_argument("--sweep-lengths", default="1024,256")
    parser.add_argument("--sweep-repeats", type=int, default=3)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--dense-limit-gib", type=float, default=None,
                        help="skip the dense baseline where its tables would exceed this "
                             "(default: 4 GiB on CPU, 80%% of the GPU's free memory on CUDA)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch.set_num_threads on CPU (default 1; 0: leave torch's default). On the shared "
                             "2-core VM, 2 threads made torch.sort/unique 10-20x slower whenever another process ran")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    device = torch.device(args.device)
    if args.torch_threads and device.type == "cpu":
        torch.set_num_threads(args.torch_threads)
    if args.dense_limit_gib is not None:
        limit = args.dense_limit_gib * 2**30
    elif device.type == "cuda":
        limit = 0.8 * torch.cuda.mem_get_info(device)[0]
    else:
        limit = 4 * 2**30

    info = machine_info()
    info["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({info['cpu']})"
    info["dense limit"] = f"{limit / 2**30:.1f} GiB"
    print(format_machine(info, markdown=False))
    print()

    wall = time.perf_counter()
    main_result = run_case(args.batch, args.length, args.refs, args.vocab, args.seed, args.repeats, device, limit)
    print(f"main: batch={args.batch} length={args.length} refs={args.refs} vocab={args.vocab} "
          f"device={device} repeats={args.repeats} (pad id {PAD}, right padding, half the reference copied "
          f"from the candidate in 32-token spans)")
    print(table([main_result], device, markdown=False))
    if main_result.dense_note:
        print(f"dense baseline {main_result.dense_note}")
    print(f"ours runs (s): {', '.join(f'{t:.4f}' for t in main_result.ours.runs)}")
    if main_result.dense:
        print(f"dense runs (s): {', '.join(f'{t:.4f}' for t in main_result.dense.runs)}")
    print()

    sweep: list[Result] = []
    batches = [int(b) for b in args.sweep_batches.split(",") if b.strip()]
    if not args.no_sweep and batches:
        print(f"sweep: refs={args.refs} vocab={args.vocab} repeats={args.sweep_repeats}")
        for length in (int(x) for x in args.sweep_lengths.split(",") if x.strip()):
            for batch in batches:
                if (batch, length) == (args.batch, args.length):
                    result = main_result  # same data (same seed): reuse the main run's measurements
                else:
                    result = run_case(batch, length, args.refs, args.vocab, args.seed, args.sweep_repeats, device,
                                      limit)
                sweep.append(result)
                note = f"  [dense {result.dense_note}]" if result.dense_note else ""
                note += "  (main run, reused)" if result is main_result else ""
                print(f"  batch {batch:4d} length {length:5d}: ours {result.ours.seconds:.4f}s"
                      + (f", dense {result.dense.seconds:.4f}s" if result.dense else "") + note, flush=True)
        print()
        print(table(sweep, device, markdown=False))
        for r in sweep:
            if r.dense_note:
                print(f"batch {r.batch} length {r.length}: dense baseline {r.dense_note}")
        print()

    problems = sum(r.mismatched_rows or 0 for r in [main_result, *sweep])
    print(f"statistics identical to token_bleu_statistics: {'yes' if problems == 0 else f'NO ({problems} rows)'}"
          f" (over {sum(1 for r in [main_result, *sweep] if r.dense)} compared cases)")
    if device.type == "cpu":
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"process peak RSS (ru_maxrss, both methods and all sizes): {peak:,.0f} MiB")
    print(f"wall time: {time.perf_counter() - wall:.1f} s")

    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write("# Token-id BLEU: speechgrpo vs dense TensorBLEU-style counting\n\n")
            handle.write(format_machine(info, markdown=True) + "\n\n")
            handle.write(f"## Main run (repeats {args.repeats})\n\n" + table([main_result], device, True) + "\n\n")
            if sweep:
                handle.write(f"## Sweep (repeats {args.sweep_repeats})\n\n" + table(sweep, device, True) + "\n\n")
            skipped = [r for r in [main_result, *sweep] if r.dense_note]
            for r in skipped:
                handle.write(f"- batch {r.batch}, length {r.length}: dense baseline {r.dense_note}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

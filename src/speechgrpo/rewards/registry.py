"""The registry of named rewards: ``get_reward("bleu", tokenize="intl")``.

Each entry records what a user choosing a reward needs to know (what it measures, its reference
implementation and its cost); ``docs/rewards.md`` is the same catalogue in prose.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from speechgrpo.metrics import BLEU, CER, CHRF, METEOR, ROUGE, TER, WER, BERTScore, ExactMatch, TokenF1
from speechgrpo.metrics.base import Metric
from speechgrpo.rewards.base import Reward, format_call
from speechgrpo.rewards.gate import NonEmpty, RegexMatch, Script, WordCount
from speechgrpo.rewards.metric_reward import MetricReward

#: Options every reward accepts (see :class:`speechgrpo.rewards.Reward`); the rest go to the metric.
REWARD_OPTIONS = ("off_policy_value", "off_policy_in_group_stats", "invalid_value")


@dataclass(frozen=True)
class RewardInfo:
    name: str
    factory: Callable[..., Reward]
    description: str
    reference: str
    cost: str


_REGISTRY: dict[str, RewardInfo] = {}


def register_reward(name: str, factory: Callable[..., Reward], description: str, reference: str = "",
                    cost: str = "") -> None:
    """Make ``factory(**options)`` available as ``name`` in :func:`get_reward` and spec strings."""
    if not name.isidentifier():
        raise ValueError(f"reward names must be identifiers (usable in spec strings), got {name!r}")
    _REGISTRY[name] = RewardInfo(name, factory, description, reference, cost)


def available_rewards() -> dict[str, RewardInfo]:
    return dict(_REGISTRY)


def did_you_mean(name: str) -> str:
    """`` (did you mean 'bleu'?)`` for a misspelt or wrongly cased reward name, else ``""``."""
    if not isinstance(name, str):
        return ""
    by_case = {key.lower(): key for key in _REGISTRY}
    close = [by_case[name.lower()]] if name.lower() in by_case else difflib.get_close_matches(name, _REGISTRY, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def get_reward(name: str, **options: Any) -> Reward:
    """Build the registered reward ``name`` with ``options`` (metric options and reward options)."""
    info = _REGISTRY.get(name)
    if info is None:
        raise KeyError(f"unknown reward {name!r}{did_you_mean(name)}; available: {', '.join(sorted(_REGISTRY))}")
    try:
        reward = info.factory(**options)
    except TypeError as err:
        raise TypeError(f"bad options for reward {name!r}: {err}") from err
    reward._spec = format_call(name, options)
    return reward


def _metric_reward(metric_cls: type[Metric], name: str, **fixed: Any) -> Callable[..., Reward]:
    def factory(**options: Any) -> Reward:
        reward_options = {k: options.pop(k) for k in REWARD_OPTIONS if k in options}
        return MetricReward(metric_cls(**fixed, **options), name=name, **reward_options)

    return factory


_CHEAP = "cheap: about 4-40 µs per pair on one CPU core (see docs/benchmarks.md)"
register_reward("bleu", _metric_reward(BLEU, "bleu"), "sentence BLEU / 100 (13a, exp smoothing, effective order)",
                "sacrebleu BLEU(effective_order=True).sentence_score", _CHEAP)
register_reward("chrf", _metric_reward(CHRF, "chrf"), "chrF / 100", "sacrebleu CHRF().sentence_score", _CHEAP)
register_reward("chrfpp", _metric_reward(CHRF, "chrfpp", word_order=2), "chrF++ / 100 (word bigrams too)",
                "sacrebleu CHRF(word_order=2).sentence_score", _CHEAP)
register_reward("ter", _metric_reward(TER, "ter"), "1 - min(TER / 100, 1)", "sacrebleu TER().sentence_score",
                "moderate: sacrebleu's shift search, ~1-2 ms per pair")
for _n in ("1", "2", "L", "Lsum"):
    register_reward(f"rouge{_n}", _metric_reward(ROUGE, f"rouge{_n}", rouge_type=f"rouge{_n}"),
                    f"ROUGE-{_n} F-measure", "rouge-score RougeScorer", _CHEAP)
register_reward("meteor", _metric_reward(METEOR, "meteor"), "METEOR (WordNet synonyms and stems)",
                "nltk meteor_score", "moderate: NLTK with WordNet lookups, ~0.1-1 ms per pair")
register_reward("wer", _metric_reward(WER, "wer"), "1 - min(WER, 1)", "jiwer.wer", _CHEAP)
register_reward("cer", _metric_reward(CER, "cer"), "1 - min(CER, 1)", "jiwer.cer", _CHEAP)
register_reward("exact_match", _metric_reward(ExactMatch, "exact_match"),
                "1 if the SQuAD-normalised answer equals a reference", "SQuAD v2.0 evaluation script", _CHEAP)
register_reward("token_f1", _metric_reward(TokenF1, "token_f1"), "SQuAD token F1",
                "SQuAD v2.0 evaluation script", _CHEAP)
register_reward("bertscore", _metric_reward(BERTScore, "bertscore"),
                "BERTScore F1 clipped to [0, 1] (local encoder; default all-MiniLM-L6-v2 layer 6)",
                "bert_score.BERTScorer", "expensive: a transformer forward pass, ~20-50 ms per pair on CPU")
register_reward("nonempty", NonEmpty, "1 if the completion has a non-whitespace character", "", "negligible")
register_reward("regex", RegexMatch, "1 if the completion matches a regular expression", "", "negligible")
register_reward("word_count", WordCount, "1 if the word count is within bounds", "", "negligible")
register_reward("script", Script, "1 if the letters are mostly in the given Unicode scripts", "", "negligible")

"""Evaluation as in the paper: sampled decoding (T=0.9, top-p 0.9) averaged over several seeds, and greedy.

Metrics: corpus BLEU (as sacrebleu's ``corpus_bleu``: no effective order), and the per-sample mean of
BERTScore-F1, ROUGE-1/2/L, METEOR and, for ASR, WER, all from ``speechgrpo.metrics`` (exact to their
reference implementations), on a 0-100 scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from speechgrpo.data import AudioCache, Example
from speechgrpo.metrics import BLEU, Metric
from speechgrpo.models import SamplingConfig, SpeechLM
from speechgrpo.rewards import MetricReward, get_reward
from speechgrpo.train.config import EVAL_METRICS, PAPER_METRICS


@dataclass(frozen=True)
class EvalConfig:
    """``seeds`` sampled passes at ``temperature``/``top_p`` plus one greedy pass (when ``greedy``)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    temperature: float = 0.9
    top_p: float = 0.9
    greedy: bool = True
    max_new_tokens: int = 200
    batch_size: int = 16
    metrics: tuple[str, ...] = PAPER_METRICS


def generate_answers(model: SpeechLM, examples: Sequence[Example], sampling: SamplingConfig, seed: int,
                     batch_size: int, audio: AudioCache, progress: bool = False) -> list[str]:
    """One completion per example."""
    generator = torch.Generator().manual_seed(seed)
    answers: list[str] = []
    model.unwrapped().eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(examples), batch_size), disable=not progress, desc="generate", leave=False):
            part = examples[start:start + batch_size]
            batch = model.encode_prompts([audio.prompt(e) for e in part])
            answers += model.generate(batch, 1, sampling, generator).texts
    return answers


def higher_is_better(metric: str) -> bool:
    """Every evaluation metric but the error rate (and the training reward, ``"reward"``) rises with quality."""
    return metric != "wer"


def corpus_bleu_metric() -> BLEU:
    """Corpus BLEU as sacrebleu's ``corpus_bleu`` computes it (``effective_order=False``)."""
    return BLEU(effective_order=False)


def evaluation_metric(name: str) -> Metric:
    """The metric behind an evaluation name, as the reward of that name measures it (``bleu`` is corpus
    BLEU as sacrebleu computes it)."""
    if name not in EVAL_METRICS:
        raise ValueError(f"unknown evaluation metric {name!r}; use one of {', '.join(EVAL_METRICS)}")
    if name == "bleu":
        return corpus_bleu_metric()
    reward = get_reward(name)
    assert isinstance(reward, MetricReward)
    return reward.metric


def score_answers(answers: Sequence[str], examples: Sequence[Example], metrics: Sequence[str]) -> dict[str, float]:
    """Each metric on 0-100: corpus BLEU and corpus WER; per-sample means x 100 for the others."""
    references = [tuple(e.references) for e in examples]
    scores: dict[str, float] = {}
    for name in metrics:
        metric = evaluation_metric(name)
        if name in ("bleu", "wer"):
            value = float(metric.corpus_score(answers, refs=references))
            scores[name] = value * 100 if name == "wer" else value
        else:
            scores[name] = 100 * float(np.mean(metric.score(answers, references))) if answers else 0.0
    return scores


def evaluate_model(model: SpeechLM, examples: Sequence[Example], config: EvalConfig | None = None,
                   progress: bool = False) -> dict[str, dict[str, float]]:
    """``{"sampled": mean over seeds, "sampled_std": std over seeds, "greedy": ...}`` of every metric
    (the sampled keys only when there are seeds, ``greedy`` only when asked)."""
    config = config or EvalConfig()
    audio = AudioCache()
    sampled = [score_answers(generate_answers(model, examples, SamplingConfig(config.max_new_tokens, config.temperature,
                                                                              config.top_p), seed,
                                              config.batch_size, audio, progress), examples, config.metrics)
               for seed in config.seeds]
    results: dict[str, dict[str, float]] = {}
    if sampled:
        results["sampled"] = {k: float(np.mean([s[k] for s in sampled])) for k in config.metrics}
        results["sampled_std"] = {k: float(np.std([s[k] for s in sampled])) for k in config.metrics}
    if config.greedy:
        answers = generate_answers(model, examples, SamplingConfig(config.max_new_tokens, greedy=True), 0,
                                   config.batch_size, audio, progress)
        results["greedy"] = score_answers(answers, examples, config.metrics)
    return results

"""Evaluation as in the paper: sampled decoding (T=0.9, top-p 0.9) averaged over several seeds, and greedy.

Scores, 0-100, from ``speechgrpo.metrics`` (exact to their reference implementations): corpus-level where the
metric defines one (:data:`CORPUS_LEVEL`: BLEU as sacrebleu's ``corpus_bleu``, without effective order; chrF,
chrF++ and TER as sacrebleu's corpus scores; WER and CER as jiwer over the whole set), else the mean of the
per-sample scores (BERTScore F1, ROUGE-1/2/L, METEOR).

Each example samples from its own random stream, seeded from the pass's seed and the example's id
(:func:`example_stream`): its answer does not depend on the batch size, on the order or company of the
other examples, nor on how many processes share the set, so dev scores and best-checkpoint choices
reproduce.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from speechgrpo.data import AudioCache, Example
from speechgrpo.metrics import BLEU, Metric
from speechgrpo.models import SamplingConfig, SpeechLM
from speechgrpo.rewards import MetricReward, get_reward
from speechgrpo.train.config import EVAL_METRICS, PAPER_METRICS

#: metrics scored over the whole set; the others are means of per-sample scores
CORPUS_LEVEL = ("bleu", "chrf", "chrfpp", "ter", "wer", "cer")
#: error rates, where lower is better (checked against each metric's ``higher_is_better`` in the tests)
LOWER_IS_BETTER = ("ter", "wer", "cer")


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

    def __post_init__(self) -> None:
        check_metric_names(self.metrics)
        if not self.seeds and not self.greedy:
            raise ValueError("nothing to evaluate: no seeds and no greedy pass")
        if any(seed < 0 for seed in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {self.batch_size} and "
                             f"{self.max_new_tokens}")

    def sampling(self) -> SamplingConfig:
        """The sampled passes' decoding."""
        return SamplingConfig(self.max_new_tokens, self.temperature, self.top_p)


def check_metric_names(metrics: Sequence[str]) -> None:
    """Refuse an empty list or a name outside :data:`~speechgrpo.train.config.EVAL_METRICS`, before any work."""
    unknown = [name for name in metrics if name not in EVAL_METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown evaluation metric(s) {unknown or metrics!r}; use some of {', '.join(EVAL_METRICS)}")


def example_stream(seed: int, example_id: str) -> torch.Generator:
    """The random stream of one example in the pass ``seed``: a CPU generator seeded from
    ``sha256(seed, id)``."""
    digest = hashlib.sha256(f"{seed}\0{example_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def generate_answers(model: SpeechLM, examples: Sequence[Example], sampling: SamplingConfig, seed: int,
                     batch_size: int, audio: AudioCache, progress: bool = False) -> list[str]:
    """One completion per example, each drawn from its own stream (:func:`example_stream`)."""
    answers: list[str] = []
    model.unwrapped().eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(examples), batch_size), disable=not progress, desc="generate", leave=False):
            part = examples[start:start + batch_size]
            batch = model.encode_prompts([audio.prompt(e) for e in part])
            answers += model.generate(batch, 1, sampling, [example_stream(seed, e.id) for e in part]).texts
    return answers


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of an evaluation metric (or of the training reward, ``"reward"``) is better."""
    return metric not in LOWER_IS_BETTER


def corpus_bleu_metric() -> BLEU:
    """Corpus BLEU as sacrebleu's ``corpus_bleu`` computes it (``effective_order=False``)."""
    return BLEU(effective_order=False)


def sentence_metric(name: str) -> Metric:
    """The per-sample metric of an evaluation name: the reward of that name's metric (sentence BLEU with
    effective order, as sacrebleu's ``sentence_bleu``)."""
    check_metric_names([name])
    reward = get_reward(name)
    assert isinstance(reward, MetricReward)
    return reward.metric


def evaluation_metric(name: str) -> Metric:
    """The metric behind an evaluation score: :func:`sentence_metric`, but corpus BLEU without effective
    order for ``bleu``."""
    return corpus_bleu_metric() if name == "bleu" else sentence_metric(name)


def score_answers(answers: Sequence[str], examples: Sequence[Example], metrics: Sequence[str]) -> dict[str, float]:
    """Each metric on 0-100: the corpus score for :data:`CORPUS_LEVEL`, else the mean per-sample score."""
    references = [tuple(e.references) for e in examples]
    scores: dict[str, float] = {}
    for name in metrics:
        metric = evaluation_metric(name)
        if name in CORPUS_LEVEL:
            value = metric.corpus_score(answers, refs=references)
        else:
            value = float(np.mean(metric.score(answers, references))) if answers else 0.0
        scores[name] = 100 / metric.scale * float(value)
    return scores


def sample_scores(answers: Sequence[str], examples: Sequence[Example],
                  metrics: Sequence[str]) -> dict[str, list[float]]:
    """Each metric's per-sample scores on 0-100 (:func:`sentence_metric`): what a corpus score aggregates."""
    references = [tuple(e.references) for e in examples]
    scores: dict[str, list[float]] = {}
    for name in metrics:
        metric = sentence_metric(name)
        scores[name] = [100 / metric.scale * float(v) for v in metric.score(answers, references)]
    return scores


def metric_records(examples: Sequence[Example], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """For each metric: the signature of its reported score and of its per-sample scores, how the set's score
    is formed, and its direction."""
    references = [tuple(e.references) for e in examples]
    return {name: {"signature": evaluation_metric(name).signature_for(references),
                   "level": "corpus" if name in CORPUS_LEVEL else "mean of per-sample scores",
                   "per_sample_signature": sentence_metric(name).signature_for(references),
                   "higher_is_better": higher_is_better(name)}
            for name in metrics}


@dataclass
class Evaluation:
    """The scores (``{"sampled": mean over seeds, "sampled_std": std over seeds, "greedy": ...}``, the sampled
    keys only when there are seeds, ``greedy`` only when asked) and every pass's answers (``"seed 0"``, ...,
    ``"greedy"``), in the examples' order."""

    scores: dict[str, dict[str, float]]
    answers: dict[str, list[str]] = field(default_factory=dict)


def evaluate_model(model: SpeechLM, examples: Sequence[Example], config: EvalConfig | None = None,
                   progress: bool = False) -> Evaluation:
    """Sample ``config.seeds`` passes and a greedy one over ``examples`` and score them."""
    config = config or EvalConfig()
    audio = AudioCache()
    answers = {f"seed {seed}": generate_answers(model, examples, config.sampling(), seed, config.batch_size, audio,
                                                progress)
               for seed in config.seeds}
    sampled = [score_answers(texts, examples, config.metrics) for texts in answers.values()]
    scores: dict[str, dict[str, float]] = {}
    if sampled:
        scores["sampled"] = {k: float(np.mean([s[k] for s in sampled])) for k in config.metrics}
        scores["sampled_std"] = {k: float(np.std([s[k] for s in sampled])) for k in config.metrics}
    if config.greedy:
        answers["greedy"] = generate_answers(model, examples, SamplingConfig(config.max_new_tokens, greedy=True), 0,
                                             config.batch_size, audio, progress)
        scores["greedy"] = score_answers(answers["greedy"], examples, config.metrics)
    return Evaluation(scores, answers)


def sample_rows(examples: Sequence[Example], evaluation: Evaluation, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One record per example for a samples file (as lm-evaluation-harness's): id, manifest line, audio,
    prompt, references, each pass's answer and its per-sample scores (0-100)."""
    per_pass = {name: sample_scores(texts, examples, metrics) for name, texts in evaluation.answers.items()}
    return [{"id": e.id, "source": e.source, "audio": None if e.audio is None else str(e.audio_path),
             "prompt": e.prompt, "references": list(e.references),
             "answers": {name: texts[i] for name, texts in evaluation.answers.items()},
             "scores": {name: {m: values[m][i] for m in metrics} for name, values in per_pass.items()}}
            for i, e in enumerate(examples)]

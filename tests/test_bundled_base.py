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
from speechgrpo.train.base_model import BaseConfig, asr_wer, read_build_record
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

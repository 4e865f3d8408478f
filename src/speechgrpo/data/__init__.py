"""Speech task data: manifests (JSONL of audio + prompt + references), GRPO groups files (JSONL of a prompt's
references and completions), 16 kHz audio loading, readers for local LibriSQA / CoVoST 2 copies, and the
synthetic spoken benchmark built with espeak-ng.

Importing this package needs only the core dependencies; ``soundfile``, ``scipy`` and ``tqdm`` (the
``train`` extra) are imported when audio is read, resampled, synthesized or a progress bar is shown.
"""

from speechgrpo.data.audio import SAMPLE_RATE, AudioError, decode_audio, load_audio, resample, write_wav
from speechgrpo.data.cli import add_cli
from speechgrpo.data.groups_file import Group, GroupFileError, example_groups, flatten, read_groups
from speechgrpo.data.manifest import AudioCache, Example, ManifestError, corpus_texts, read_manifest, write_manifest
from speechgrpo.data.prompts import ASR_PROMPTS, AST_PROMPTS, PROMPTS, SQA_PROMPTS, pick_prompt
from speechgrpo.data.public_datasets import (
    DatasetError,
    covost2_manifests,
    librisqa_manifests,
    read_covost2,
    read_librisqa,
)
from speechgrpo.data.synthetic import (
    SyntheticError,
    TTSError,
    build_synthetic,
    dataset_stats,
    synthesize_examples,
    synthetic_examples,
)

__all__ = [
    "ASR_PROMPTS",
    "AST_PROMPTS",
    "PROMPTS",
    "SAMPLE_RATE",
    "SQA_PROMPTS",
    "AudioCache",
    "AudioError",
    "DatasetError",
    "Example",
    "Group",
    "GroupFileError",
    "ManifestError",
    "SyntheticError",
    "TTSError",
    "add_cli",
    "build_synthetic",
    "corpus_texts",
    "covost2_manifests",
    "dataset_stats",
    "decode_audio",
    "example_groups",
    "flatten",
    "librisqa_manifests",
    "load_audio",
    "pick_prompt",
    "read_covost2",
    "read_groups",
    "read_librisqa",
    "read_manifest",
    "resample",
    "synthesize_examples",
    "synthetic_examples",
    "write_manifest",
    "write_wav",
]

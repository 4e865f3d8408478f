"""``speechgrpo data ...``: build the synthetic benchmark, convert local LibriSQA / CoVoST 2 copies into
manifests, list a manifest's text corpus. Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _sizes(args: argparse.Namespace) -> dict[str, int]:
    return {"train": args.train, "dev": args.dev, "test": args.test}


def _synth(args: argparse.Namespace) -> int:
    import soundfile  # noqa: F401  (the 'train' extra writes the WAVs: fail before synthesizing anything)

    from speechgrpo.data.synthetic.benchmark import build_synthetic
    from speechgrpo.data.synthetic.tts import DEFAULT_VOICES

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    voices = [v.strip() for v in args.voices.split(",") if v.strip()] if args.voices else DEFAULT_VOICES
    start = time.perf_counter()
    paths = build_synthetic(args.out, seed=args.seed, sizes=_sizes(args), tasks=tasks, difficulty=args.difficulty,
                            voices=voices, jobs=args.jobs, progress=not args.quiet)
    seconds = time.perf_counter() - start
    count = sum(1 for p in paths.values() for line in p.read_text(encoding="utf-8").splitlines() if line.strip())
    for split, path in paths.items():
        print(f"{split}: {path}")
    print(f"{count} utterances in {seconds:.1f} s ({count / max(seconds, 1e-9):.1f} utt/s); "
          f"statistics in {Path(args.out) / 'stats.json'}")
    return 0


def _librisqa(args: argparse.Namespace) -> int:
    from speechgrpo.data.public_datasets import librisqa_manifests

    paths = librisqa_manifests(args.librisqa, args.librispeech, args.out, dev_fraction=args.dev_fraction,
                               seed=args.seed, missing="skip" if args.skip_missing else "error")
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


def _covost2(args: argparse.Namespace) -> int:
    from speechgrpo.data.public_datasets import covost2_manifests

    paths = covost2_manifests(args.tsv_dir, args.clips, args.out, task=args.task, seed=args.seed,
                              audio_suffix=args.audio_suffix, missing="skip" if args.skip_missing else "error")
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


def _corpus(args: argparse.Namespace) -> int:
    from speechgrpo.data.manifest import corpus_texts, read_manifest

    texts = corpus_texts(e for path in args.manifests for e in read_manifest(path))
    body = "".join(text.replace("\n", " ") + "\n" for text in texts)
    if args.output:
        Path(args.output).write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body)
    return 0


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``speechgrpo data`` with the ``synth``, ``librisqa``, ``covost2`` and ``corpus`` commands
    (each runs through ``args.run`` and returns an exit status)."""
    parser = subparsers.add_parser("data", help="build or convert speech task manifests",
                                   description="Build the synthetic spoken benchmark or convert local copies of "
                                               "LibriSQA / CoVoST 2 into manifests.")
    commands = parser.add_subparsers(dest="data_command", required=True)

    synth = commands.add_parser("synth", help="build the synthetic spoken QA / En->De / ASR benchmark (espeak-ng)")
    synth.add_argument("--out", required=True, help="output folder (manifests, audio/, stats.json)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--train", type=int, default=2000, help="examples per task in train (default 2000)")
    synth.add_argument("--dev", type=int, default=200, help="examples per task in dev (default 200)")
    synth.add_argument("--test", type=int, default=200, help="examples per task in test (default 200)")
    synth.add_argument("--tasks", default="sqa,ast,asr", help="comma-separated tasks (default sqa,ast,asr)")
    synth.add_argument("--difficulty", type=int, choices=(1, 2, 3), default=2,
                       help="1 short/simple, 2 mixed (default), 3 long passages and complex sentences")
    synth.add_argument("--voices", help="comma-separated espeak-ng voices (default: 8 English accents x 11 variants)")
    synth.add_argument("--jobs", type=int, default=2, help="espeak-ng processes in parallel (default 2)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(run=_synth, extra="train")

    librisqa = commands.add_parser("librisqa", help="manifests from a local LibriSQA Part I + LibriSpeech copy")
    librisqa.add_argument("--librisqa", required=True, help="folder with LibriSQA-PartI/LibriSQA-PartI-*.json")
    librisqa.add_argument("--librispeech", required=True, help="folder with [LibriSpeech/]train-clean-360 etc.")
    librisqa.add_argument("--out", required=True, help="output folder for train/dev/test.jsonl")
    librisqa.add_argument("--dev-fraction", type=float, default=0.2,
                          help="share of the training audio held out as dev (default 0.2, as in the paper)")
    librisqa.add_argument("--seed", type=int, default=0)
    librisqa.add_argument("--skip-missing", action="store_true", help="drop records whose audio is missing")
    librisqa.set_defaults(run=_librisqa)

    covost = commands.add_parser("covost2", help="manifests from local CoVoST 2 En->De TSVs + Common Voice clips")
    covost.add_argument("--tsv-dir", required=True, help="folder with covost_v2.en_de.{train,dev,test}.tsv")
    covost.add_argument("--clips", required=True, help="Common Voice English clips folder (en/clips)")
    covost.add_argument("--out", required=True, help="output folder for train/dev/test.jsonl")
    covost.add_argument("--task", choices=("ast", "asr"), default="ast")
    covost.add_argument("--audio-suffix", help="replace the clips' extension (e.g. .wav for converted clips)")
    covost.add_argument("--seed", type=int, default=0)
    covost.add_argument("--skip-missing", action="store_true", help="drop rows whose clip is missing")
    covost.set_defaults(run=_covost2)

    corpus = commands.add_parser("corpus", help="print the prompts, references and transcripts of manifests, "
                                                "one per line (for tokenizer training)")
    corpus.add_argument("manifests", nargs="+")
    corpus.add_argument("-o", "--output", help="write to this file instead of stdout")
    corpus.set_defaults(run=_corpus)
    return parser

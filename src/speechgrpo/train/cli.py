"""``speechgrpo demo``, ``speechgrpo train`` and ``speechgrpo eval``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from speechgrpo.train.config import EVAL_METRICS, PAPER_METRICS, TrainConfig, load_config


def _override(text: str) -> str:
    """``key=value``, checked for its shape; the value is parsed later (:func:`_overrides`), inside the command,
    where a missing extra (PyYAML) gets its one-line message."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"overrides look like key=value, got {text!r}")
    return text


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``KEY=VALUE`` arguments, each value parsed as YAML (numbers, lists, null)."""
    import yaml

    pairs = (text.split("=", 1) for text in args.overrides)
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


def _add_config_arguments(parser: argparse.ArgumentParser, config_class: type, what: str) -> None:
    """``--config FILE`` and ``KEY=VALUE`` overrides of a config dataclass's fields."""
    parser.add_argument("--config", help=f"YAML file (keys: the {what} fields)")
    fields = ", ".join(f.name for f in dataclasses.fields(config_class))
    parser.add_argument("overrides", nargs="*", type=_override, metavar="KEY=VALUE",
                        help=f"config fields on top of the file: {fields}")


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``demo``, ``train`` and ``eval``."""
    from speechgrpo.train.base_model import BaseConfig
    from speechgrpo.train.pipeline import PipelineConfig

    demo = subparsers.add_parser("demo", help="the paper's comparison on the bundled spoken task: SFT, GRPO, "
                                 "MP-GRPO and SFT->GRPO per task from a base that hears, tables and plots",
                                 description="Synthesize the bundled spoken task, then per task (spoken QA, "
                                             "speech translation) train SFT, GRPO, MP-GRPO and SFT->GRPO from the "
                                             "bundled base model with validation on dev, evaluate the best-dev "
                                             "checkpoints on test and write results.md/csv and plots. Re-running "
                                             "resumes finished runs.")
    _add_config_arguments(demo, PipelineConfig, "PipelineConfig")
    demo.add_argument("--protocol", choices=("quick", "full"), default=None,
                      help="quick (default): one seed at the last full run's learning rates and best-dev steps, "
                           "~8 min on 2 cores; full: SFT learning-rate search on dev, every run until its dev "
                           "score stops rising, 3 seeds, + MP-GRPO with LUFFY shaping and SFT with GRPO's compute, "
                           "~64 min")
    demo.add_argument("--from-scratch", action="store_true",
                      help="build the base model here (speechgrpo build-base, ~63 min on 2 cores) instead of "
                           "using the bundled one")
    demo.set_defaults(run=_demo, extra="train")
    base = subparsers.add_parser("build-base", help="train the demo's base model from scratch (the bundled "
                                 "checkpoint's recipe: a reading stage on text, then a CTC hearing stage)",
                                 description="Synthesize fresh clips, train the bundled small speech LM's "
                                             "language model on another domain's text QA and translation "
                                             "(reading), then its audio side with CTC on the clips, the language "
                                             "model frozen (hearing). Writes OUTPUT_DIR/model "
                                             "(with build.json: settings, times, dev and test WER).")
    _add_config_arguments(base, BaseConfig, "BaseConfig")
    base.add_argument("--no-progress", action="store_true", help="no progress bars")
    base.set_defaults(run=_build_base, extra="train")
    train = subparsers.add_parser("train", help="run SFT, GRPO or MP-GRPO from a YAML config",
                                  description="Train from a YAML config (keys: the TrainConfig fields). "
                                              "Re-running resumes from the output directory's last checkpoint.")
    _add_config_arguments(train, TrainConfig, "TrainConfig")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=_train, extra="train")
    evaluation = subparsers.add_parser("eval", help="evaluate a model on manifests (sampled T=0.9, top-p 0.9; greedy)")
    evaluation.add_argument("--model", required=True, help="model directory (or 'bundled')")
    evaluation.add_argument("--manifest", required=True, nargs="+", help="manifest JSONL file(s)")
    evaluation.add_argument("--seeds", type=int, default=3, help="sampled passes (default 3)")
    evaluation.add_argument("--metrics", default=",".join(PAPER_METRICS),
                            help=f"comma-separated, from {', '.join(EVAL_METRICS)} (default: the paper's six)")
    evaluation.add_argument("--max-new-tokens", type=int, default=200)
    evaluation.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (default 16)")
    evaluation.add_argument("--device", default=None, help="torch device, e.g. cuda or cuda:1 (default: cuda when "
                            "available, else cpu)")
    evaluation.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                            help="weights' dtype (default float32)")
    evaluation.add_argument("--output", help="write the report (settings, metric signatures, scores) as JSON here")
    evaluation.add_argument("--samples", help="write one JSON line per example (answers and per-sample scores) "
                            "here (default: next to --output, as <name>.samples.jsonl)")
    evaluation.set_defaults(run=_eval, extra="train")


def _demo(args: argparse.Namespace) -> int:
    from speechgrpo.train.pipeline import load_pipeline_config, run_pipeline

    overrides = _overrides(args)
    if args.protocol is not None:
        overrides["protocol"] = args.protocol
    if args.from_scratch:
        overrides["base"] = "scratch"
    results = run_pipeline(load_pipeline_config(args.config, **overrides))
    print(f"results: {results}")
    return 0


def _build_base(args: argparse.Namespace) -> int:
    from speechgrpo.train.base_model import build_base, load_base_config

    model = build_base(load_base_config(args.config, **_overrides(args)), show_progress=not args.no_progress)
    print(f"base model: {model}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from speechgrpo.train.trainer import train

    config = load_config(args.config, **_overrides(args))
    final = train(config, show_progress=not args.no_progress)
    print(f"final model: {final}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    """Metric names, settings and manifests (audio, lengths, empty references; words outside a word-level
    vocabulary are a warning) are checked before the model loads."""
    from importlib.metadata import version

    import torch

    from speechgrpo.models.loading import load_speech_lm, model_path
    from speechgrpo.train.evaluation import EvalConfig, evaluate_model, metric_records, sample_rows
    from speechgrpo.train.input_check import check_inputs, model_input_limits
    from speechgrpo.train.trainer import read_examples, torch_dtype

    config = EvalConfig(seeds=tuple(range(args.seeds)), max_new_tokens=args.max_new_tokens,
                        batch_size=args.batch_size,
                        metrics=tuple(m.strip() for m in args.metrics.split(",") if m.strip()))
    examples = check_inputs({"manifest": read_examples(args.manifest)}, model_input_limits(args.model), None,
                            allow_empty_references=False, allow_unknown_words=True)["manifest"]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_speech_lm(args.model, device=device, dtype=torch_dtype(args.dtype))
    evaluation = evaluate_model(model, examples, config, progress=True)
    sampling = config.sampling()
    report = {"model": str(model_path(args.model).resolve()),
              "manifests": [str(Path(m).resolve()) for m in args.manifest], "examples": len(examples),
              "seeds": list(config.seeds),
              "decoding": {"sampled": {"temperature": sampling.temperature, "top_p": sampling.top_p},
                           "greedy": config.greedy, "max_new_tokens": config.max_new_tokens,
                           "random_streams": "one per example, seeded from sha256(seed, example id)"},
              "batch_size": config.batch_size, "device": str(device), "dtype": args.dtype,
              "metrics": metric_records(examples, config.metrics), "speechgrpo": version("speechgrpo"),
              **evaluation.scores}
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    samples = args.samples or (Path(args.output).with_suffix(".samples.jsonl") if args.output else None)
    if samples:
        rows = sample_rows(examples, evaluation, config.metrics)
        Path(samples).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                                 encoding="utf-8")
        print(f"samples: {samples}", file=sys.stderr)
    return 0

"""`speechgrpo build-base` and `speechgrpo demo` end to end at a toy size: a tiny base (CTC stage, then
ASR + text tasks), then the full protocol (learning-rate search, two seeds, every method, bootstrap
intervals, report). About four minutes on 2 CPU cores."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from toy_demo import TOY, needs_espeak

from speechgrpo.cli import main
from speechgrpo.data import read_manifest
from speechgrpo.data.synthetic.benchmark import split_sentences
from speechgrpo.models import TinySpeechLM
from speechgrpo.models.loading import bundled_base
from speechgrpo.train import pipeline
from speechgrpo.train.base_model import (
    BaseConfig,
    asr_wer,
    build_base,
    load_base_config,
    other_domain,
    read_build_record,
)
from speechgrpo.train.pipeline import (
    QUICK_BUDGETS,
    QUICK_BUDGETS_BASE,
    PipelineConfig,
    check_held_out,
    load_pipeline_config,
    method_settings,
    model_fingerprint,
    run_pipeline,
    search_folder,
)


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(TOY))
    config = load_pipeline_config(path, seed=3, tasks=["sqa"])
    assert config.seed == 3 and config.tasks == ("sqa",) and config.eval_metrics == ("bleu", "rougeL")
    with pytest.raises(ValueError, match="unknown demo config keys"):
        load_pipeline_config(path, base_steps=3)
    with pytest.raises(ValueError, match="eval_passes must be an integer"):
        load_pipeline_config(path, eval_passes="many")
    merged = load_pipeline_config(None, grpo={"steps": 7}, sizes={"test": 9})
    assert merged.grpo == {**PipelineConfig().grpo, "steps": 7}
    assert merged.sizes == {**PipelineConfig().sizes, "test": 9}
    from_file = load_pipeline_config(path, grpo={"steps": 7}).grpo  # defaults < file < overrides
    assert from_file == {**PipelineConfig().grpo, **TOY["grpo"], "steps": 7}
    with pytest.raises(ValueError, match="protocol must be one of"):
        PipelineConfig(protocol="fast")
    with pytest.raises(ValueError, match="unknown method"):
        PipelineConfig(methods=["sft", "ppo"])
    with pytest.raises(ValueError, match="sft_grpo starts from the sft run"):
        PipelineConfig(methods=["grpo", "sft_grpo"])
    with pytest.raises(ValueError, match="tuned has no learning rates for task"):
        PipelineConfig(tuned={"sqa": {"sft": 1e-3, "grpo": 1e-4}})
    assert load_base_config(None, ctc={"steps": 5}).ctc["learning_rate"] == BaseConfig().ctc["learning_rate"]
    with pytest.raises(ValueError, match="read_asr"):
        BaseConfig(asr_clips=10, read_asr=20)


def test_methods_protocols_and_their_settings() -> None:
    quick, full = PipelineConfig(), PipelineConfig(protocol="full")
    every = ["base", "sft", "grpo", "sft_compute", "mp_grpo", "mp_grpo_luffy", "sft_grpo"]
    assert full.method_list == every and quick.training_seeds == [0]
    assert quick.method_list == ["base", "sft", "grpo", "mp_grpo", "sft_grpo"]  # cut to fit 20 minutes
    for group, patience, cap in (("sft", 4, 400), ("grpo", 6, 1600)):  # the stopping rule of docs/demo.md
        for config in (full, PipelineConfig(budgets={})):  # the full protocol, or a quick run without budgets
            settings = method_settings(group, config, "sqa", None)
            assert (settings["patience"], settings["steps"], settings["eval_every"]) == (patience, cap, 25)
        settings = method_settings(group, quick, "ast", None)  # quick: the full run's best-dev steps, fixed
        assert (settings["steps"], settings["patience"]) == (QUICK_BUDGETS["ast"][group], 0)
    assert full.step_budgets == {} and quick.step_budgets == QUICK_BUDGETS and quick.unbudgeted_changes == []
    # QUICK_BUDGETS are the full run's steps at the default settings: changed settings train by the stopping rule
    patient_quick = PipelineConfig(grpo={**quick.grpo, "patience": 10})
    assert patient_quick.unbudgeted_changes == ["grpo"] and patient_quick.step_budgets == {}
    assert method_settings("grpo", patient_quick, "sqa", None)["patience"] == 10
    assert PipelineConfig(seeds=[1]).unbudgeted_changes == ["seeds"]
    assert PipelineConfig(base="build/other_base").unbudgeted_changes == ["base"]

    assert PipelineConfig(tuned={**quick.tuned, "ast": {"sft": 1e-3, "grpo": 2e-4}}).step_budgets == {}
    given = PipelineConfig(grpo={**quick.grpo, "patience": 10}, budgets={"ast": {"grpo": 30}})
    assert given.step_budgets == {"ast": {"grpo": 30}}  # given budgets hold whatever the settings
    with pytest.raises(ValueError, match="budgets name task"):
        PipelineConfig(budgets={"sqx": {"grpo": 30}})
    with pytest.raises(ValueError, match="budgets must map tasks"):
        PipelineConfig(budgets={"sqa": 300})  # type: ignore[dict-item]
    assert quick.grpo["steps"] * quick.grpo["prompts_per_step"] >= quick.sft["steps"] * quick.sft["prompts_per_step"]
    assert full.training_seeds == [0, 1, 2] and PipelineConfig(seeds=[4]).training_seeds == [4]
    assert PipelineConfig(methods=["sft", "grpo"]).method_list == ["base", "sft", "grpo"]
    tuned = PipelineConfig(tuned={"sqa": {"sft": 1e-3, "grpo": 3e-4}, "ast": {"sft": 2e-3, "grpo": 4e-4}})
    assert method_settings("sft", tuned, "ast", None)["learning_rate"] == 2e-3
    assert method_settings("sft_grpo", tuned, "sqa", None)["learning_rate"] == 3e-4
    assert method_settings("grpo", tuned, "sqa", 5e-5)["learning_rate"] == 5e-5
    assert method_settings("mp_grpo_luffy", tuned, "sqa", None)["off_policy_shaping"] == 0.1
    assert "off_policy_shaping" not in method_settings("mp_grpo", tuned, "sqa", None)
    patient = PipelineConfig(sft={**PipelineConfig().sft, "patience": 4}, budgets={})
    matched = method_settings("sft_compute", patient, "sqa", None, {"completions": 6_401})
    assert matched["steps"] == 401 and matched["patience"] == 0  # 6,401 sequences at 16 a step, every step trained
    assert method_settings("sft", patient, "sqa", None)["patience"] == 4
    with pytest.raises(ValueError, match="needs the same seed's grpo run"):
        method_settings("sft_compute", patient, "sqa", None)
    with pytest.raises(ValueError, match="methods must include grpo"):
        PipelineConfig(methods=["sft", "sft_compute"])
    fixed = PipelineConfig(budgets={"sqa": {"sft_compute": 90}})  # a quick budget needs no grpo run
    assert (method_settings("sft_compute", fixed, "sqa", None)["steps"],
            method_settings("sft_compute", fixed, "sqa", None, {"completions": 6_401})["patience"]) == (90, 0)
    budgeted = PipelineConfig(budgets={"sqa": {"grpo": 350}}, grpo={**PipelineConfig().grpo, "patience": 6})
    assert (method_settings("grpo", budgeted, "sqa", None)["steps"],
            method_settings("grpo", budgeted, "sqa", None)["patience"]) == (350, 0)
    assert method_settings("grpo", budgeted, "ast", None)["patience"] == 6  # no budget for that task
    with pytest.raises(ValueError, match="budgets are the quick protocol's"):
        PipelineConfig(protocol="full", budgets={"sqa": {"grpo": 350}})
    with pytest.raises(ValueError, match=r"budgets\['sqa'\] must map methods"):
        PipelineConfig(budgets={"sqa": {"ppo": 350}})


def test_quick_budgets_are_void_for_another_bundled_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """QUICK_BUDGETS were measured from one bundled base: rebuilt, its quick run trains by the stopping rule."""
    assert model_fingerprint(bundled_base()) == QUICK_BUDGETS_BASE  # rebundled: a new full run (docs/demo.md)
    monkeypatch.setattr(pipeline, "QUICK_BUDGETS_BASE", "0" * 64)
    quick = PipelineConfig()
    assert quick.unbudgeted_changes == ["the bundled base"] and quick.step_budgets == {}
    assert PipelineConfig(budgets={"ast": {"grpo": 30}}).step_budgets == {"ast": {"grpo": 30}}


def test_a_base_with_other_held_out_splits_is_refused() -> None:
    config = PipelineConfig()
    record = {"config": {"seed": 0, "difficulty": 1, "held_out": {"dev": 100, "test": 200},
                         "voices": list(config.voices), "tasks": ["sqa", "ast", "asr"]}}
    check_held_out(record, config, Path("base"))
    for key, value in (("seed", 1), ("held_out", {"dev": 100, "test": 100}), ("tasks", ["sqa", "asr"])):
        with pytest.raises(ValueError, match=f"other held-out splits \\({key}"):
            check_held_out({"config": {**record["config"], key: value}}, config, Path("base"))


def test_build_base_records_its_stages_and_wers(toy_base: Path) -> None:
    record = read_build_record(toy_base)
    assert record["config"]["held_out"] == {"dev": 4, "test": 4} and record["dev_clips"] == 4
    assert set(record["seconds"]) >= {"synthesis", "tokenizer", "text", "ctc", "total"}
    seeds = {stage: yaml.safe_load((toy_base.parent / stage / "config.yaml").read_text(encoding="utf-8"))["seed"]
             for stage in ("text", "ctc")}
    assert seeds == {"text": 2, "ctc": 0}  # text.seed trains the reading stage; the data and hearing keep seed
    assert record["config"]["text"]["seed"] == 2 and record["config"]["seed"] == 0
    text = [json.loads(line) for line in (toy_base.parent / "text" / "metrics.jsonl").open()]
    assert len(text) == 3 and all("loss" in row and "ctc_loss" not in row for row in text)  # reading: text only
    ctc = [json.loads(line) for line in (toy_base.parent / "ctc" / "metrics.jsonl").open()]
    assert len(ctc) == 4 and all("ctc_loss" in row and "loss" not in row for row in ctc)  # hearing: CTC only
    assert [row["step"] for row in ctc if "eval_wer" in row] == [2, 4]
    assert record["curves"]["ctc_dev_wer"] == [[r["step"], round(r["eval_wer"], 2)] for r in ctc if "eval_wer" in r]
    # a stage's time is its training loop's, summed over resumed runs (tests/test_trainer.py: the resume)
    assert [record["seconds"][s] for s in ("text", "ctc")] == [round(text[-1]["elapsed_s"], 1),
                                                              round(ctc[-1]["elapsed_s"], 1)]
    read = Counter(e.task for e in read_manifest(toy_base.parent / "data" / "text.jsonl"))
    assert read == {"qa_other_text": 16, "mt_other_text": 16, "asr_text": 16 + 8, "ast_other_text": 8}
    heard = read_manifest(toy_base.parent / "data" / "heard.jsonl")
    assert Counter(e.task for e in heard) == {"asr": 32 + 8, "ast_other": 8}  # no spoken QA, no demo AST audio
    passages = [e for e in heard if e.meta.get("source") == "passage"]
    assert len(passages) == 8 and all("question" not in e.meta and e.references == (e.meta["transcript"],)
                                      for e in passages)  # a whole passage heard and transcribed, nothing asked
    initial, built = (TinySpeechLM.load(p).net() for p in (toy_base.parent / "initial", toy_base))
    lm = {k: v for k, v in initial.state_dict().items() if k.startswith("lm.")}
    reading = TinySpeechLM.load(toy_base.parent / "text" / "final").net().state_dict()
    assert any(not torch.equal(v, reading[k]) for k, v in lm.items())  # reading trains the language model
    assert all(torch.equal(reading[k], built.state_dict()[k]) for k in lm)  # hearing leaves it as reading made it
    assert record["translation_hours"] >= 0 and 0 < record["translation_vocabulary"]["types_covered"] <= 1
    dev = read_manifest(toy_base.parent / "data" / "asr_dev.jsonl")
    assert round(asr_wer(toy_base, dev), 2) == record["dev_wer"]  # loading it reproduces its dev WER


def test_build_base_refuses_to_resume_with_other_settings(toy_base: Path) -> None:
    settings = json.loads((toy_base.parent / "base_config.json").read_text(encoding="utf-8"))
    with pytest.raises(ValueError, match=r"other settings \(asr_clips\)"):
        build_base(BaseConfig(**{**settings, "asr_clips": settings["asr_clips"] + 1}), show_progress=False)


def test_other_domain_examples_hold_no_held_out_sentence() -> None:
    """A short other-domain statement can be one of the demo's (*A baker was lazy.*, an AST test source, in a QA
    passage): an example holding a dev or test sentence is left out, and the counts still hold."""
    config = BaseConfig(translation_clips=20, qa_examples=20, mt_examples=20)
    translations, qa, mt = other_domain(config, {"dev": [], "test": []})
    assert (len(translations), len(qa), len(mt)) == (20, 20, 20)
    held = [dataclasses.replace(qa[3], meta={"transcript": split_sentences(qa[3].meta["transcript"])[1]},
                                references=()),
            dataclasses.replace(mt[5], meta={"transcript": ""}, references=mt[5].references)]  # its German
    kept = other_domain(config, {"dev": held[:1], "test": held[1:]})
    assert [len(rows) for rows in kept] == [20, 20, 20] and kept[0] == translations
    assert qa[3] not in kept[1] and mt[5] not in kept[2]
    assert kept[1][:3] == qa[:3] and kept[2][:5] == mt[:5]


@needs_espeak
def test_demo_full_protocol_runs_every_method_and_writes_the_report(toy_base: Path, tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    methods = ["sft", "grpo", "sft_compute", "mp_grpo", "mp_grpo_luffy", "sft_grpo"]
    path.write_text(yaml.safe_dump({**TOY, "base": str(toy_base), "seeds": [0, 1], "methods": methods}))
    out = tmp_path / "out"
    assert main(["demo", "--config", str(path), "--protocol", "full", f"output_dir={out}"]) == 0
    results = out / "results"
    table = pd.read_csv(results / "results.csv")
    assert set(table["method"]) == {"base", *methods} and set(table["task"]) == {"sqa", "ast"}
    assert len(table) == 2 * (1 + 6 * 2)  # per task: the base, and 6 methods x 2 seeds
    trained = table[table["method"] != "base"]
    assert set(trained["seed"]) == {0, 1} and {"bleu", "rougeL", "avg", "words", "wall_s"} <= set(table.columns)
    grpo = trained[trained["method"] == "grpo"].iloc[0]
    assert grpo["prompts_seen"] == 2 * 2 and grpo["completions"] == 2 * 2 * 4 and grpo["steps_trained"] == 2
    sft = trained[trained["method"] == "sft"].iloc[0]
    assert sft["prompts_seen"] == 2 * 4 and sft["completions"] == 0
    matched = trained[trained["method"] == "sft_compute"]  # SFT on as many sequences as GRPO generated
    assert set(matched["prompts_seen"]) == {2 * 2 * 4} and set(matched["steps_trained"]) == {4}
    search = pd.read_csv(results / "search.csv")
    summary = json.loads((results / "summary.json").read_text())
    for task in ("sqa", "ast"):  # the rate with the best best-dev score is the one trained
        rows = search[(search["task"] == task) & (search["method"] == "sft")]
        best = rows.loc[rows["best_dev"].idxmax(), "learning_rate"]
        assert summary["learning_rates"][task]["sft"] == best
        assert set(trained[(trained["task"] == task) & (trained["method"] == "sft")]["learning_rate"]) == {best}
    run = json.loads((out / "runs" / "sqa" / "sft_grpo-seed1" / "run.json").read_text())
    assert run["start"] == str(out / "runs" / "sqa" / "sft-seed1" / "best")  # SFT -> GRPO starts from SFT
    # the first seed's SFT and GRPO runs are the search's runs at the chosen rates, not trained twice
    assert not (out / "runs" / "sqa" / "sft-seed0").exists() and not (out / "runs" / "sqa" / "grpo-seed0").exists()
    first = json.loads((out / "runs" / "sqa" / "sft_grpo-seed0" / "run.json").read_text())
    assert first["start"] == str(out / "search" / "sqa" / f"sft-lr{summary['learning_rates']['sqa']['sft']:g}" / "best")
    luffy = yaml.safe_load((out / "runs" / "sqa" / "mp_grpo_luffy-seed0" / "config.yaml").read_text())
    assert luffy["off_policy_shaping"] == 0.1 and luffy["stage"] == "mp_grpo"
    cached = json.loads((out / "answers" / "sqa" / "grpo-seed0.json").read_text())
    answers = cached["answers"]
    assert len(answers) == 2 and all(len(a) == 4 for a in answers)  # passes x test examples
    assert cached["key"]["passes"] == 2 and len(cached["key"]["model"]) == 64
    report = (results / "results.md").read_text()
    assert "Paired bootstrap" in report and report.count("| GRPO | ") == 6  # per task: scores, bootstrap, diagnostics
    assert "greedy ASR WER on the 4 test clips" in report and "Learning-rate search" in report
    for name in ("reward_curves_sqa.png", "dev_curves_ast.png", "metrics_sqa.png", "diagnostics.csv"):
        assert (results / name).is_file(), name
    assert summary["hearing"]["build"]["dev_wer"] == read_build_record(toy_base)["dev_wer"]
    assert summary["stopping_steps"]["sqa"] == {"sft": 2, "grpo": 2, "sft_compute": 4, "mp_grpo": 2,
                                                "mp_grpo_luffy": 2, "sft_grpo": 2}
    for task in ("sqa", "ast"):
        seed0 = trained[(trained["seed"] == 0) & (trained["task"] == task)]
        assert summary["best_steps"][task] == dict(zip(seed0["method"], seed0["best_step"].astype(int), strict=True))

    # the quick run with the full run's rates and best-dev steps as budgets ends at the full run's seed-0 models
    quick_out = tmp_path / "quick"
    quick = load_pipeline_config(path, output_dir=str(quick_out), methods=["sft", "grpo", "sft_grpo"], seeds=[0],
                                 tuned=summary["learning_rates"], budgets=summary["best_steps"])
    run_pipeline(quick, False)
    full = load_pipeline_config(path, protocol="full", output_dir=str(out))
    for task in ("sqa", "ast"):
        rates = summary["learning_rates"][task]
        for method, full_run in (("sft", search_folder(full, task, "sft", rates["sft"])),
                                 ("grpo", search_folder(full, task, "grpo", rates["grpo"])),
                                 ("sft_grpo", out / "runs" / task / "sft_grpo-seed0")):
            full_model = full_run / "best"
            quick_run = json.loads((quick_out / "runs" / task / f"{method}-seed0" / "run.json").read_text())
            assert quick_run["steps_trained"] == summary["best_steps"][task][method] and quick_run["patience"] == 0
            assert model_fingerprint(Path(quick_run["model"])) == model_fingerprint(full_model), (task, method)

    # a second run reuses every finished run and answer file
    stamp = (out / "runs" / "sqa" / "grpo-seed1" / "run.json").stat().st_mtime
    assert main(["demo", "--config", str(path), "--protocol", "full", f"output_dir={out}"]) == 0
    assert (out / "runs" / "sqa" / "grpo-seed1" / "run.json").stat().st_mtime == stamp
    answers_file = out / "answers" / "sqa" / "grpo-seed1.json"
    answers_stamp = answers_file.stat().st_mtime

    # a finished run trained with other settings is refused, not silently reused (the search's runs come first)
    with pytest.raises(ValueError, match=r"search/sqa/grpo-lr\S+ was trained with other settings \(steps\)"):
        run_pipeline(load_pipeline_config(path, protocol="full", output_dir=str(out),
                                          grpo={**TOY["grpo"], "steps": TOY["grpo"]["steps"] + 1}), False)
    # answers cached for another model are not reused: the cache is keyed by the model's fingerprint
    stale = json.loads(answers_file.read_text())
    stale["key"]["model"] = "0" * 64
    answers_file.write_text(json.dumps(stale))
    answers_stamp = answers_file.stat().st_mtime
    assert main(["demo", "--config", str(path), "--protocol", "full", f"output_dir={out}"]) == 0
    assert answers_file.stat().st_mtime > answers_stamp
    model = out / "runs" / "sqa" / "grpo-seed1" / "best"
    assert json.loads(answers_file.read_text())["key"]["model"] == model_fingerprint(model)


@needs_espeak
def test_demo_refuses_a_base_built_for_other_splits(toy_base: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump({**TOY, "base": str(toy_base), "sizes": {"train": 24, "dev": 4, "test": 5}}))
    assert main(["demo", "--config", str(path), f"output_dir={tmp_path / 'out'}"]) == 2
    assert "other held-out splits (held_out" in capsys.readouterr().err

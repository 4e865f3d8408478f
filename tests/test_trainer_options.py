"""Every trainer option shows its effect (precision, LoRA, dropout, temperature, num_iterations, loss presets,
reward options, validation, generation batches, gradient checkpointing, eval flags), and combinations that
cannot work fail before training."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_lm import PAIRS, build_tiny_lm, trainable_fraction

from speechgrpo.advantages import group_advantages
from speechgrpo.data import Example, write_manifest
from speechgrpo.losses import LOSS_PRESETS
from speechgrpo.models import SamplingConfig, SpeechPrompt
from speechgrpo.models.loading import load_speech_lm
from speechgrpo.models.lora import LORA_DIRECTORY
from speechgrpo.rewards import parse_reward
from speechgrpo.rollout import HFEngine
from speechgrpo.train import TrainConfig
from speechgrpo.train import trainer as T


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("options")
    examples = [Example(id=f"t{i}", audio=None, prompt=p, references=(r,), task="ast_text")
                for i, (p, r) in enumerate(PAIRS)]
    return build_tiny_lm(root / "model"), write_manifest(root / "train.jsonl", examples)


def config(task: tuple[Path, Path], out: Path, **overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {"model": str(task[0]), "train_manifests": [str(task[1])], "output_dir": str(out),
                              "steps": 2, "prompts_per_step": 3, "max_new_tokens": 5,
                              "micro_batch_size": 6, "learning_rate": 1e-2, "checkpoint_every": 50, "reward": "chrf"}
    if overrides.get("stage", "grpo") != "sft":
        values["num_generations"] = 4
    values.update(overrides)
    return TrainConfig(**values)


def rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in load_speech_lm(path).module.state_dict().items()}


# -- precision -----------------------------------------------------------------------------------------------
def test_mixed_precision_keeps_float32_master_weights(task: tuple[Path, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One SFT step at lr 1e-6: pure bf16 rounds most updates away, bf16 autocast over fp32 weights does not."""
    seen: dict[str, set[torch.dtype]] = {}
    load_policy = T.load_policy

    def recording(settings: TrainConfig, *args: Any) -> Any:
        model = load_policy(settings, *args)
        linear = next(m for m in model.module.modules() if isinstance(m, torch.nn.Linear))
        dtypes = seen.setdefault(settings.output_dir, set())
        linear.register_forward_hook(lambda _m, _i, output: dtypes.add(output.dtype))
        return model

    monkeypatch.setattr(T, "load_policy", recording)
    initial = weights(task[0])
    fractions = {}
    for name, overrides in {"fp32": {}, "pure_bf16": {"dtype": "bfloat16"},
                            "mixed_bf16": {"mixed_precision": "bf16"}}.items():
        final = T.train(config(task, tmp_path / name, stage="sft", steps=1, learning_rate=1e-6, prompts_per_step=6,
                               **overrides), show_progress=False)
        tuned = weights(final)
        start = {k: v.bfloat16().float() for k, v in initial.items()} if name == "pure_bf16" else initial
        fractions[name] = (sum(int((tuned[k] != start[k]).sum()) for k in initial)
                           / sum(v.numel() for v in initial.values()))
    print(f"changed-weight fraction after one step at lr 1e-6: {fractions}")
    assert fractions["fp32"] > 0.9 and fractions["mixed_bf16"] > 0.9 and fractions["pure_bf16"] < 0.2
    assert seen[str(tmp_path / "mixed_bf16")] == {torch.bfloat16} and seen[str(tmp_path / "fp32")] == {torch.float32}


# -- LoRA ----------------------------------------------------------------------------------------------------
def test_lora_trains_adapters_only_resumes_and_merges(task: tuple[Path, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    original = T.load_speech_lm
    monkeypatch.setattr(T, "load_speech_lm", lambda path, **kw: (loads.append(str(path)), original(path, **kw))[1])
    lora = {"lora_rank": 4, "lora_alpha": 8.0, "beta": 0.04, "checkpoint_every": 2}
    final = T.train(config(task, tmp_path / "whole", steps=4, **lora), show_progress=False)
    assert loads == [str(task[0])]  # no second copy: the reference is the policy with its adapter off
    assert (final / LORA_DIRECTORY / "adapter_config.json").is_file()
    assert all(np.isfinite(r["kl"]) for r in rows(tmp_path / "whole"))
    base = type(load_speech_lm(task[0]).module).from_pretrained(final)  # base weights alone, without peft
    initial = load_speech_lm(task[0]).module.state_dict()
    assert all(torch.equal(base.state_dict()[k], initial[k]) for k in initial)
    tuned = load_speech_lm(final)
    assert tuned.lora is not None and 0 < trainable_fraction(tuned.module) < 0.3
    assert any(float(p.abs().max()) > 0 for n, p in tuned.module.named_parameters() if "lora_B" in n)

    # resume: 2 steps, then the same run to 4 steps, equals the uninterrupted 4 steps
    T.train(config(task, tmp_path / "resumed", steps=2, **lora), show_progress=False)
    T.train(config(task, tmp_path / "resumed", steps=4, **lora), show_progress=False)
    assert [r["step"] for r in rows(tmp_path / "resumed")] == [1, 2, 3, 4]
    resumed, whole = weights(tmp_path / "resumed" / "final"), weights(final)
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)

    # merge_lora: final/ is a plain model with the same outputs
    merged = T.train(config(task, tmp_path / "merged", steps=4, merge_lora=True, **lora), show_progress=False)
    assert not (merged / LORA_DIRECTORY).exists() and load_speech_lm(merged).lora is None
    batch = tuned.encode_prompts([SpeechPrompt(None, PAIRS[0][0])])
    targets = tuned.encode_completions(["die katze"], torch.tensor([0]))
    with torch.no_grad():
        torch.testing.assert_close(load_speech_lm(merged).completion_log_probs(batch, targets),
                                   tuned.completion_log_probs(batch, targets), rtol=1e-4, atol=1e-5)


def test_freeze_keeps_the_named_parameters_fixed_and_refuses_names_it_cannot_find(task: tuple[Path, Path],
                                                                                  tmp_path: Path) -> None:
    initial = load_speech_lm(task[0]).module
    names = [name for name, _ in initial.named_parameters()]
    frozen = names[0].rsplit(".", 1)[0] + "."  # the module of the first parameter (the word embeddings)
    before = weights(task[0])
    after = weights(T.train(config(task, tmp_path / "frozen", stage="sft", freeze=[frozen]), show_progress=False))
    fixed = [k for k in before if k.startswith(frozen)]
    assert fixed and all(torch.equal(after[k], before[k]) for k in fixed)
    assert any(not torch.equal(after[k], before[k]) for k in before if not k.startswith(frozen))
    every = sorted({name.split(".")[0] + "." for name in names})
    for prefixes, message in ((["encoder."], r"freeze: \['encoder.'\] name\(s\) no parameter"),
                              (every, "leaves no parameter to train")):
        with pytest.raises(ValueError, match=message):
            T.train(config(task, tmp_path / f"bad{len(prefixes)}", stage="sft", freeze=prefixes), show_progress=False)
        assert not (tmp_path / f"bad{len(prefixes)}" / "metrics.jsonl").exists()
    for settings, message in (({"freeze": "lm."}, "freeze must be a list"), ({"freeze": [""]}, "freeze must be a list"),
                              ({"freeze": [frozen], "lora_rank": 4}, "freeze with lora_rank")):
        with pytest.raises(ValueError, match=message):
            config(task, tmp_path / "refused", stage="sft", **settings)
    with pytest.raises(ValueError, match="cannot resume with another freeze"):
        T.train(config(task, tmp_path / "frozen", stage="sft", steps=3, freeze=[], resume="force"),
                show_progress=False)


# -- dropout -------------------------------------------------------------------------------------------------
def _with_dropout(model_dir: Path, out: Path, rate: float) -> Path:
    import shutil

    shutil.copytree(model_dir, out)
    values = json.loads((out / "config.json").read_text())
    values["attention_dropout"] = rate
    (out / "config.json").write_text(json.dumps(values))
    return out


def test_dropout_is_off_in_rl_stages_and_on_in_sft(task: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir = _with_dropout(task[0], tmp_path / "dropout_model", 0.5)
    for stage, deterministic in (("grpo", True), ("sft", False)):
        model = T.load_policy(config(task, tmp_path, model=str(model_dir), stage=stage), None, torch.device("cpu"))
        model.module.train()
        batch = model.encode_prompts([SpeechPrompt(None, PAIRS[0][0])])
        targets = model.encode_completions(["die katze ein hund"], torch.tensor([0]))
        with torch.no_grad():
            first, second = (model.completion_log_probs(batch, targets) for _ in range(2))
        assert torch.equal(first, second) == deterministic, stage
    forced = T.load_policy(config(task, tmp_path, model=str(model_dir), stage="sft", disable_dropout=True), None,
                           torch.device("cpu"))
    assert all(getattr(m, "attention_dropout", 0.0) == 0.0 for m in forced.module.modules())
    # an adapter's own dropout was asked for explicitly: it stays
    lora = T.load_policy(config(task, tmp_path, model=str(model_dir), lora_rank=2, lora_dropout=0.05), None,
                         torch.device("cpu"))
    rates = {name: m.p for name, m in lora.module.named_modules() if isinstance(m, torch.nn.Dropout)}
    assert rates and all(p == (0.05 if ".lora_dropout." in name + "." else 0.0) for name, p in rates.items())
    assert any(".lora_dropout." in name + "." for name in rates)


# -- temperature ---------------------------------------------------------------------------------------------
def test_log_probs_are_taken_at_the_sampling_temperature() -> None:
    from speechgrpo.models import TinySpeechLM, TinySpeechLMConfig
    from speechgrpo.models.word_tokenizer import build_tokenizer

    torch.manual_seed(0)
    model = TinySpeechLM.create(TinySpeechLMConfig(encoder_dim=32, encoder_layers=1, lm_dim=32, lm_layers=1,
                                                   lm_ffn_dim=64), build_tokenizer(["the cat sat on a mat"]))
    prompts = [SpeechPrompt(np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), "the cat"),
               SpeechPrompt(None, "a mat")]
    for temperature in (1.0, 0.6):
        completions, sampled = model.generate_with_log_probs(model.encode_prompts(prompts), 3,
                                                             SamplingConfig(6, temperature),
                                                             torch.Generator().manual_seed(1))
        with torch.no_grad():
            scored, _ = T.score(model, prompts, completions, temperature)
        torch.testing.assert_close(scored, sampled, rtol=1e-4, atol=1e-5)
        if temperature != 1.0:
            assert not torch.allclose(T.score(model, prompts, completions, 1.0)[0], sampled, atol=1e-3)


# -- num_iterations ------------------------------------------------------------------------------------------
def test_num_iterations_reuses_each_rollout_and_makes_the_clip_act(task: tuple[Path, Path], tmp_path: Path) -> None:
    T.train(config(task, tmp_path, steps=4, num_iterations=2, checkpoint_every=2, learning_rate=0.1, beta=0.0),
            show_progress=False)
    logged = rows(tmp_path)
    for first, second in (logged[0:2], logged[2:4]):
        assert first["ratio_mean"] == 1.0 and first["clip_frac"] == 0.0  # the policy that sampled the rollout
        assert second["reward_mean"] == first["reward_mean"]  # the same rollout
        assert second["ratio_mean"] != 1.0
    assert max(r["clip_frac"] for r in logged) > 0
    for key in ("pg_loss", "entropy", "clip_frac_low", "clip_frac_high", "loss"):
        assert all(np.isfinite(r[key]) for r in logged), key


# -- loss presets and the fields on top of them --------------------------------------------------------------
def test_loss_fields_default_to_the_preset(task: tuple[Path, Path], tmp_path: Path) -> None:
    assert T.loss_settings(config(task, tmp_path, loss_preset="grpo")).beta == 0.04
    assert T.loss_settings(config(task, tmp_path, loss_preset="grpo", beta=0.1)).beta == 0.1
    luffy = T.loss_settings(config(task, tmp_path, loss_preset="luffy", stage="mp_grpo"))
    assert (luffy.off_policy_shaping, luffy.entropy_coef, luffy.beta) == (0.1, 0.01, 0.0)
    assert T.loss_settings(config(task, tmp_path, loss_preset="dr_grpo", max_new_tokens=7)).max_completion_length == 7
    custom = T.loss_settings(config(task, tmp_path, epsilon_low=0.1, epsilon_high=0.3, kl_estimator="k2",
                                    off_policy_kl=False, entropy_coef=0.02))
    assert (custom.epsilon_low, custom.clip_high, custom.kl_estimator, custom.off_policy_kl, custom.entropy_coef,
            custom.beta) == (0.1, 0.3, "k2", False, 0.02, 0.02)


@pytest.mark.parametrize("preset", sorted(LOSS_PRESETS))
def test_every_loss_preset_trains(task: tuple[Path, Path], tmp_path: Path, preset: str) -> None:
    stage = "mp_grpo" if preset in ("luffy", "paper") else "grpo"
    T.train(config(task, tmp_path, stage=stage, loss_preset=preset, steps=1), show_progress=False)
    row = rows(tmp_path)[0]
    assert np.isfinite(row["loss"]) and np.isfinite(row["entropy"])
    assert ("kl" in row) == (LOSS_PRESETS[preset].beta > 0)


def test_reward_options_reach_the_advantages(task: tuple[Path, Path], tmp_path: Path) -> None:
    settings = config(task, tmp_path, stage="mp_grpo", beta=0.0)
    reward = parse_reward("chrf")
    reward.off_policy_in_group_stats = False
    model = load_speech_lm(task[0])
    examples = [Example(id=f"t{i}", audio=None, prompt=p, references=(r,), task="t") for i, (p, r) in enumerate(PAIRS)]
    chosen = examples[:3]
    rollout = T.make_rollout(model, HFEngine(model), None, [SpeechPrompt(None, e.prompt) for e in chosen], chosen,
                             [0, 1, 2], reward,
                             settings, T.loss_settings(settings), T_accelerator(), 1)
    index = rollout.completions.prompt_index.numpy()
    scores = reward(rollout.completions.texts, [chosen[i].references for i in index], group_ids=index,
                    off_policy=rollout.off_policy.numpy()).scores
    expected = group_advantages(scores, index, preset="paper", off_policy=rollout.off_policy.numpy(),
                                off_policy_in_stats=False).advantages
    included = group_advantages(scores, index, preset="paper", off_policy=rollout.off_policy.numpy()).advantages
    np.testing.assert_allclose(rollout.advantages.numpy(), expected, rtol=1e-6)
    assert not np.allclose(expected, included)


def T_accelerator() -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    return Accelerator(cpu=True)


# -- validation and the best checkpoint ----------------------------------------------------------------------
def test_validation_logs_dev_metrics_and_keeps_the_best_checkpoint(task: tuple[Path, Path], tmp_path: Path) -> None:
    T.train(config(task, tmp_path, steps=4, eval_manifests=[str(task[1])], eval_every=2, reward="bleu",
                   eval_metrics=["bleu", "rougeL"]), show_progress=False)
    evaluated = [r for r in rows(tmp_path) if "eval_bleu" in r]
    assert [r["step"] for r in evaluated] == [2, 4]
    assert all({"eval_bleu", "eval_rougeL", "eval_reward"} <= set(r) for r in evaluated)
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["metric"] == "bleu" and best["value"] == max(r["eval_bleu"] for r in evaluated)
    assert best["step"] == max(evaluated, key=lambda r: r["eval_bleu"])["step"]
    assert load_speech_lm(tmp_path / "best") is not None
    assert T.best_metric(config(task, tmp_path, reward="0.5*bleu + 0.5*chrf")) == "reward"
    assert T.best_metric(config(task, tmp_path, eval_manifests=["x"], best_metric="rougeL",
                                eval_metrics=["rougeL"])) == "rougeL"


# -- scale options -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_patience_stops_a_run_whose_dev_score_stops_rising(task: tuple[Path, Path], tmp_path: Path,
                                                           stage: str) -> None:
    """Learning rate 0: every validation (seeded) repeats the first one's score, so the run stops after
    ``patience`` validations without a better one, stays stopped when resumed, and trains on with more patience."""
    settings: dict[str, Any] = {"stage": stage, "steps": 20, "learning_rate": 0.0, "eval_manifests": [str(task[1])],
                                "eval_every": 2, "reward": "bleu"}
    T.train(config(task, tmp_path, **settings, patience=2), show_progress=False)
    logged = rows(tmp_path)
    assert [r["step"] for r in logged if "eval_bleu" in r] == [2, 4, 6]
    assert logged[-1]["step"] == 6 and logged[-1]["stopped_early"] == 1.0
    assert json.loads((tmp_path / "best" / "best.json").read_text())["step"] == 2
    assert (tmp_path / "final").is_dir() and (tmp_path / "checkpoints" / "step-00000006").is_dir()
    T.train(config(task, tmp_path, **settings, patience=2), show_progress=False)  # resumed: nothing more to train
    assert rows(tmp_path) == logged
    T.train(config(task, tmp_path, **settings, patience=3), show_progress=False)  # more patience: one more validation
    assert [r["step"] for r in rows(tmp_path) if "eval_bleu" in r] == [2, 4, 6, 8]
    T.train(config(task, tmp_path / "no-patience", **{**settings, "steps": 8}), show_progress=False)
    assert [r["step"] for r in rows(tmp_path / "no-patience") if "eval_bleu" in r] == [2, 4, 6, 8]


def test_generation_batch_size_splits_sampling(task: tuple[Path, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from speechgrpo.models.causal_lm import CausalLM

    calls: list[int] = []
    generate = CausalLM.generate
    monkeypatch.setattr(CausalLM, "generate", lambda self, batch, n, *a: (calls.append(batch.size * n),
                                                                          generate(self, batch, n, *a))[1])
    T.train(config(task, tmp_path / "split", steps=1, generation_batch_size=4), show_progress=False)
    assert calls == [4, 4, 4]
    calls.clear()
    T.train(config(task, tmp_path / "whole", steps=1), show_progress=False)
    assert calls == [12]


def test_gradient_checkpointing_goes_through_transformers_and_keeps_the_gradient(task: tuple[Path, Path]) -> None:
    gradients = []
    for checkpointing in (False, True):
        model = load_speech_lm(task[0])
        if checkpointing:
            model.enable_gradient_checkpointing()
        calls: list[int] = []
        for layer in model.module.model.layers:  # type: ignore[union-attr]
            function = getattr(layer, "_gradient_checkpointing_func", None)
            if function is not None:
                layer._gradient_checkpointing_func = lambda *a, f=function, c=calls, **k: (c.append(1), f(*a, **k))[1]
        model.module.train()
        batch = model.encode_prompts([SpeechPrompt(None, p) for p, _ in PAIRS[:2]])
        targets = model.encode_completions([r for _, r in PAIRS[:2]], torch.tensor([0, 1]))
        model.completion_log_probs(batch, targets).sum().backward()
        assert len(calls) == (2 if checkpointing else 0)  # each of the 2 decoder layers is checkpointed
        gradients.append(torch.cat([p.grad.flatten() for p in model.module.parameters() if p.grad is not None]))
    torch.testing.assert_close(gradients[0], gradients[1])


# -- combinations that cannot work ---------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "message"), [
    ({"lora_alpha": 16.0}, "need lora_rank > 0"),
    ({"mixed_precision": "bf16", "dtype": "bfloat16"}, "keeps float32 master weights"),
    ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
    ({"stage": "sft", "beta": 0.1}, "only apply to GRPO stages"),
    ({"stage": "sft", "num_iterations": 2, "checkpoint_every": 2}, "only apply to GRPO stages"),
    ({"ctc_weight": 1.0}, "ctc_weight only apply to the sft stage, not grpo"),
    ({"off_policy_shaping": 0.1}, "off_policy_shaping only apply to mp_grpo, not grpo"),
    ({"generation_batch_size": 6}, "multiple of num_generations"),
    ({"num_iterations": 3, "checkpoint_every": 50}, "multiple of num_iterations"),
    ({"eval_every": 5}, "eval_every needs eval_manifests"),
    ({"eval_manifests": ["x"], "best_metric": "meteor"}, "best_metric must be one of"),
    ({"patience": 2}, "patience counts validations"),
    ({"patience": -1}, "patience must be >= 0"),
    ({"eval_manifests": ["x"], "eval_every": 3, "num_iterations": 2, "checkpoint_every": 2, "patience": 1},
     "must be a multiple of num_iterations"),
    ({"kl_estimator": "k4"}, "kl_estimator must be one of"),
    ({"lora_rank": 2, "lora_dropout": 1.0}, "lora_dropout"),
    ({"eval_metrics": ["blue"]}, "eval_metrics must be a non-empty list"),
    ({"vllm_gpu_memory_utilization": 0.5}, "only apply to rollout_engine: vllm"),
    ({"vllm_importance_sampling_correction": False}, "only apply to rollout_engine: vllm"),
    ({"rollout_engine": "vllm", "vllm_importance_sampling_mode": "token"}, "vllm_importance_sampling_mode must be"),
    ({"rollout_engine": "vllm", "vllm_gpu_memory_utilization": 1.5}, r"must be in \(0, 1\]"),
    ({"rollout_engine": "sglang"}, "rollout_engine must be one of"),
    ({"stage": "sft", "rollout_engine": "vllm"}, "rollout_engine only apply to GRPO stages"),
    ({"stage": "sft", "mask_truncated_completions": True}, "mask_truncated_completions only apply to GRPO"),
    ({"max_audio_seconds": 0}, "max_audio_seconds must be positive"),
    ({"report_to": "mlflow"}, "report_to takes 'none' or any of"),
    ({"report_to": []}, "report_to takes 'none' or any of"),
])
def test_unsupported_settings_fail_before_training(task: tuple[Path, Path], tmp_path: Path,
                                                   overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(task, tmp_path, **overrides)


def test_lora_on_a_resumed_full_model_and_unknown_targets_fail(task: tuple[Path, Path], tmp_path: Path) -> None:
    model = load_speech_lm(task[0])
    with pytest.raises(ValueError, match="no_such_layer"):
        model.apply_lora(2, target_modules=["no_such_layer"])
    lora_model = load_speech_lm(task[0])
    lora_model.apply_lora(2)
    lora_model.save(tmp_path / "adapter_model")
    lora_model.save(tmp_path / "resumed" / "model")
    for rank in (0, 2):  # its "adapter off" reference would be the model before that adapter
        with pytest.raises(ValueError, match="holds a LoRA adapter: start from a merged model"):
            T.load_policy(config(task, tmp_path, model=str(tmp_path / "adapter_model"), lora_rank=rank), None,
                          torch.device("cpu"))
    with pytest.raises(ValueError, match="rank-2 LoRA adapter but lora_rank is 4"):  # a resumed checkpoint
        T.load_policy(config(task, tmp_path, lora_rank=4), tmp_path / "resumed", torch.device("cpu"))
    with pytest.raises(ValueError, match="holds a LoRA adapter but lora_rank is 0"):
        T.load_policy(config(task, tmp_path), tmp_path / "resumed", torch.device("cpu"))


def test_reference_dtype_needs_a_separate_reference(task: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reference_dtype only apply to GRPO stages"):
        config(task, tmp_path, reference_dtype="bfloat16", stage="sft")
    for overrides in ({"beta": 0.0}, {"lora_rank": 2}):
        with pytest.raises(ValueError, match="reference_dtype applies to a separate reference model"):
            T.train(config(task, tmp_path, reference_dtype="bfloat16", **overrides), show_progress=False)
    T.train(config(task, tmp_path / "ok", reference_dtype="bfloat16", steps=1), show_progress=False)
    assert np.isfinite(rows(tmp_path / "ok")[0]["kl"])


def test_eval_cli_device_dtype_and_batch_size(task: tuple[Path, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import speechgrpo.models.loading as loading
    from speechgrpo.cli import main
    from speechgrpo.models.causal_lm import CausalLM

    loaded: list[tuple[str, torch.dtype]] = []
    sizes: list[int] = []
    original, generate = loading.load_speech_lm, CausalLM.generate
    monkeypatch.setattr(loading, "load_speech_lm", lambda path, device="cpu", dtype=torch.float32: (
        loaded.append((str(device), dtype)), original(path, device=device, dtype=dtype))[1])
    monkeypatch.setattr(CausalLM, "generate", lambda self, batch, *a: (sizes.append(batch.size),
                                                                       generate(self, batch, *a))[1])
    assert main(["eval", "--model", str(task[0]), "--manifest", str(task[1]), "--seeds", "1", "--metrics", "bleu",
                 "--max-new-tokens", "4", "--device", "cpu", "--dtype", "bfloat16", "--batch-size", "4"]) == 0
    assert loaded == [("cpu", torch.bfloat16)] and sizes == [4, 2, 4, 2]  # 6 examples: sampled pass, greedy pass


def test_distributed_set_ups_that_cannot_run_are_refused() -> None:
    """FSDP and ZeRO-3 would shard weights the unwrapped model reads; DeepSpeed must accumulate as we do.
    (Neither runs on these CPUs, so the guard is checked on accelerate-shaped stand-ins.)"""
    from types import SimpleNamespace

    def accel(kind: str, stage: int = 2, steps: int = 3) -> Any:
        return SimpleNamespace(distributed_type=SimpleNamespace(name=kind), gradient_accumulation_steps=steps,
                               state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=stage)))

    with pytest.raises(ValueError, match="FSDP is not supported"):
        T.check_distributed(accel("FSDP"), 3)
    with pytest.raises(ValueError, match="ZeRO-3 is not supported"):
        T.check_distributed(accel("DEEPSPEED", stage=3), 3)
    with pytest.raises(ValueError, match="gradient_accumulation_steps is 1"):
        T.check_distributed(accel("DEEPSPEED", steps=1), 3)
    for fine in (accel("DEEPSPEED"), accel("MULTI_CPU"), accel("NO")):
        T.check_distributed(fine, 3)


def test_validation_options_and_lora_targets_take_effect(task: tuple[Path, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, float]] = []
    generate_answers = T.generate_answers

    def recording(model: Any, examples: Any, sampling: Any, seed: int, batch_size: int, audio: Any) -> list[str]:
        calls.append((len(examples), batch_size, sampling.temperature))
        return generate_answers(model, examples, sampling, seed, batch_size, audio)

    monkeypatch.setattr(T, "generate_answers", recording)
    T.train(config(task, tmp_path, steps=1, eval_manifests=[str(task[1])], eval_seeds=2, eval_max_examples=4,
                   eval_batch_size=3), show_progress=False)
    assert calls == [(4, 3, 0.9), (4, 3, 0.9)]  # 2 passes over the first 4 dev examples, at the paper's T 0.9
    model = T.load_policy(config(task, tmp_path, lora_rank=2, lora_target_modules=["q_proj"]), None,
                          torch.device("cpu"))
    layers = {n.split(".lora_")[0].rsplit(".", 1)[1] for n, p in model.module.named_parameters() if p.requires_grad}
    assert layers == {"q_proj"}
    with pytest.raises(ValueError, match="CausalLM has no CTC head"):
        model.transcript_ctc_losses(model.encode_prompts([SpeechPrompt(None, "a")]), ["a"])


# -- rollouts: truncation, importance sampling, precision ---------------------------------------------------------
def test_truncation_is_a_missing_stop_token_and_mask_truncated_completions_drops_those_rows(
        task: tuple[Path, Path], tmp_path: Path) -> None:
    model = load_speech_lm(task[0])
    examples = [Example(id=f"t{i}", audio=None, prompt=p, references=(r,), task="t") for i, (p, r) in enumerate(PAIRS)]
    chosen = examples[:3]
    head = model.unwrapped().get_output_embeddings()
    head.register_forward_hook(lambda _m, _i, output: output.index_add(  # the end token about as likely as the rest
        -1, torch.tensor([model.eos_token_id]), torch.full((*output.shape[:-1], 1), 2.0)))
    results = {}
    for masked in (False, True):
        settings = config(task, tmp_path, mask_truncated_completions=masked, max_new_tokens=3, num_generations=8,
                          beta=0.0)
        rollout = T.make_rollout(model, HFEngine(model), None, [SpeechPrompt(None, e.prompt) for e in chosen],
                                 chosen, [0, 1, 2], parse_reward("chrf"), settings, T.loss_settings(settings),
                                 T_accelerator(), 1)
        results[masked] = rollout
    plain, masked_rollout = results[False], results[True]
    stopped = plain.completions.stopped(model.stop_token_ids)
    lengths = plain.completions.mask.sum(1)
    assert bool(stopped.any()) and not bool(stopped.all())
    assert bool((lengths[~stopped] == 3).all())  # cut at max_new_tokens
    assert plain.metrics["frac_truncated"] == pytest.approx(float((~stopped).float().mean()))
    assert torch.equal(plain.loss_mask, plain.completions.mask)
    assert torch.equal(masked_rollout.loss_mask.any(1), stopped) and torch.equal(masked_rollout.completions.ids,
                                                                                plain.completions.ids)
    # the masked loss does not depend on the truncated rows at all
    def gradient(rollout: T.Rollout) -> torch.Tensor:
        model.module.zero_grad(set_to_none=True)
        T.policy_update(model, rollout, settings, T.loss_settings(settings), T_accelerator())
        return torch.cat([p.grad.flatten() for p in model.module.parameters() if p.grad is not None])

    for rollout, depends in ((plain, True), (masked_rollout, False)):
        first = gradient(rollout)
        rollout.advantages = torch.where(stopped, rollout.advantages, rollout.advantages + 3.0)
        assert (not torch.allclose(first, gradient(rollout))) == depends


@pytest.mark.parametrize(("mode", "expected"), [
    ("token_truncate", [[1.0, 3.0, 0.5], [2.0, 1.0, 1.0]]), ("token_mask", [[1.0, 0.0, 0.5], [2.0, 1.0, 1.0]]),
    ("sequence_truncate", [[1.5], [3.0]]), ("sequence_mask", [[1.5], [0.0]])])
def test_importance_sampling_ratio_modes_follow_trl(mode: str, expected: list[list[float]]) -> None:
    """exp(trainer - sampler log-prob), per token or summed per sequence, clipped (truncate) or zeroed (mask)
    above clip_max, padding ignored."""
    import math

    trainer = torch.tensor([[0.0, math.log(4.0), math.log(0.5)], [math.log(2.0), 0.0, 7.0]])
    sampler = torch.zeros(2, 3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    if mode.startswith("sequence"):  # sequence sums: log(4 * 0.5) = log 2... scaled to 1.5 and 4 below
        trainer = torch.tensor([[math.log(1.5), 0.0, 0.0], [math.log(2.0), math.log(2.0), 7.0]])
    ratio = T.importance_sampling_ratio(trainer, sampler, mask, mode, clip_max=3.0)
    torch.testing.assert_close(ratio, torch.tensor(expected))


def test_hf_rollouts_run_in_the_training_precision(task: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """mixed_precision bf16: sampling runs under the same autocast as the training forwards."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    model = load_speech_lm(task[0])
    linear = next(m for m in model.module.modules() if isinstance(m, torch.nn.Linear))
    seen: set[torch.dtype] = set()
    linear.register_forward_hook(lambda _m, _i, output: seen.add(output.dtype))
    for precision, dtype in (("bf16", torch.bfloat16), ("no", torch.float32)):
        seen.clear()
        AcceleratorState._reset_state()
        accelerator = Accelerator(cpu=True, mixed_precision=precision)
        engine = T.make_engine(config(task, Path("unused"), mixed_precision=precision), model, accelerator)
        engine.sample([SpeechPrompt(None, PAIRS[0][0])], 2, SamplingConfig(3), [0])
        assert seen == {dtype}, precision


# -- start-up checks of the data ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def word_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundled-style model (word-level vocabulary) with room for 7.04 s of audio."""
    from speechgrpo.models.tiny_speech_lm import TinySpeechLM
    from speechgrpo.models.tiny_speech_net import TinySpeechLMConfig
    from speechgrpo.models.word_tokenizer import build_tokenizer

    directory = tmp_path_factory.mktemp("word_model") / "model"
    tokenizer = build_tokenizer(["Say it.", "The dog is called Rex.", "Der Hund ist da."])
    TinySpeechLM.create(TinySpeechLMConfig(max_positions=600), tokenizer).save(directory)
    return directory


def write_examples(root: Path, rows: list[tuple[float | None, str, tuple[str, ...]]], name: str = "m") -> Path:
    from speechgrpo.data import write_wav

    examples = []
    for i, (seconds, prompt, references) in enumerate(rows):
        audio = None
        if seconds is not None:
            audio = f"{name}{i}.wav"
            write_wav(root / audio, np.zeros(int(16_000 * seconds), dtype=np.float32))
        examples.append(Example(id=f"a{i}", audio=audio, prompt=prompt, references=references, task="t", root=root))
    return write_manifest(root / f"{name}.jsonl", examples)


def test_the_manifests_are_checked_before_the_model_loads(word_model: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing and unreadable clips, clips over the model's limit, empty references, words outside the
    vocabulary and texts that do not survive tokenization, in train and dev manifests alike: all in one error,
    with their manifest lines, before anything loads."""
    from speechgrpo.models.tiny_speech_lm import TinySpeechLM

    assert TinySpeechLM.input_limits(word_model).max_audio_seconds == pytest.approx(7.04)  # (600 - 512) x 80 ms
    train_manifest = write_examples(tmp_path, [(1.0, "Say it.", ("The dog is called Rex.",)),
                                               (9.0, "Say it.", ("Der Hund ist da.",)),
                                               (1.0, "Say it.", ("",)),
                                               (1.0, "Say it.", ("The dog is called Max.", "Der Hund ist da .")),
                                               (1.0, "Say it .", ("Max is called Max.",))])
    (tmp_path / "m0.wav").write_bytes(b"not audio")
    dev_manifest = write_examples(tmp_path, [(1.0, "Say it.", ("Der Hund ist da.",))], "dev")
    (tmp_path / "dev0.wav").unlink()
    monkeypatch.setattr(T, "load_policy", lambda *a: pytest.fail("the model was loaded"))
    settings = TrainConfig(model=str(word_model), train_manifests=[str(train_manifest)],
                           eval_manifests=[str(dev_manifest)], output_dir=str(tmp_path / "out"), stage="sft")
    with pytest.raises(ValueError) as error:
        T.train(settings, show_progress=False)
    message = str(error.value)
    assert message.startswith("6 problems in the manifests, found before training")
    for expected in (r"m\.jsonl:1: .*m0\.wav: cannot read audio", r"m\.jsonl:2: 9\.0 s of audio, over the 7\.04 s",
                     r"m\.jsonl:3: reference 0 is empty", r"m\.jsonl:4: 'Der Hund ist da \.' does not survive "
                     r"tokenization: it decodes as 'Der Hund ist da\.'",
                     r"dev\.jsonl:1: .*dev0\.wav: no such audio file",
                     r"1 words outside the model's vocabulary \(3 occurrences, 7\.5% of the words\).*'Max' x3 "
                     r"\(.*m\.jsonl:4\)"):
        assert re.search(expected, message), expected
    assert "Say it ." not in message  # a prompt is only read: its round trip does not matter


def test_explicit_flags_accept_what_the_check_refuses(word_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from speechgrpo.train.input_check import check_inputs, model_input_limits

    manifest = write_examples(tmp_path, [(1.0, "Say it.", ("The dog is called Max.",)), (9.0, "Say it.", ("",)),
                                         (None, "Say it.", ("Der Hund ist da.",))])
    examples = T.read_examples([str(manifest)])
    limits = model_input_limits(word_model)
    with pytest.raises(ValueError, match="3 problems"):
        check_inputs({"train": examples}, limits, None, False, False)
    kept = check_inputs({"train": examples}, limits, 5.0, True, True)
    assert [e.id for e in kept["train"]] == ["a0", "a2"]
    err = capsys.readouterr().err
    assert "train: dropped 1 of 3 examples with audio over 5 s" in err
    assert "warning: 1 words outside the model's vocabulary (1 occurrences, 7.7% of the words)" in err


def test_a_transformers_tokenizer_is_checked_for_round_trips(task: tuple[Path, Path], tmp_path: Path) -> None:
    from speechgrpo.train.input_check import check_inputs, model_input_limits

    limits = model_input_limits(task[0])
    assert limits.tokenize is not None and limits.max_audio_seconds is None
    examples = [Example(id="a", audio=None, prompt="the cat", references=("der hund",), task="t", source="m:1")]
    assert check_inputs({"train": examples}, limits, None, False, False)["train"] == examples


# -- report_to ---------------------------------------------------------------------------------------------------
def test_report_to_tensorboard_wandb_and_trackio_offline(task: tuple[Path, Path], tmp_path: Path) -> None:
    """TRL's report_to: each tracker gets the logged steps; wandb in offline mode, trackio in a local folder."""
    import os
    import sqlite3
    import subprocess
    import sys

    pytest.importorskip("wandb")
    pytest.importorskip("trackio")
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "TRACKIO_DIR": str(tmp_path / "trackio")}
    result = subprocess.run([sys.executable, "-m", "speechgrpo.cli", "train", "--no-progress", f"model={task[0]}",
                             f"train_manifests=[{task[1]}]", f"output_dir={out}", "steps=2", "prompts_per_step=2",
                             "num_generations=2", "max_new_tokens=3", "report_to=[tensorboard, wandb, trackio]"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("reward_mean")] == [1, 2]
    (run,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    assert b"reward_mean" in run.read_bytes()
    rows_logged = sqlite3.connect(tmp_path / "trackio" / "speechgrpo.db").execute(
        "select step, metrics from metrics").fetchall()
    assert [step for step, _ in rows_logged] == [1, 2] and all(b"reward_mean" in m for _, m in rows_logged)


def test_report_to_a_missing_tracker_fails_before_anything_loads(task: tuple[Path, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    monkeypatch.setattr(T, "load_policy", lambda *a: pytest.fail("the model was loaded"))
    with pytest.raises(ValueError, match=r"report_to wandb needs its package: pip install 'speechgrpo\[report\]'"):
        T.train(config(task, tmp_path, report_to="wandb"), show_progress=False)


# -- fields per stage ---------------------------------------------------------------------------------------------
def test_every_stage_specific_field_is_refused_on_other_stages(task: tuple[Path, Path], tmp_path: Path) -> None:
    """Field by field: a value other than the default on a stage the field does not apply to fails at once."""
    import dataclasses

    from speechgrpo.train.config import STAGE_FIELDS

    changed = {"ce_weight": 0.5, "ctc_weight": 1.0, "num_generations": 4, "temperature": 0.7, "top_p": 0.9,
               "generation_batch_size": 8, "rollout_engine": "vllm", "vllm_gpu_memory_utilization": 0.5,
               "vllm_max_model_length": 512, "vllm_importance_sampling_correction": False,
               "vllm_importance_sampling_mode": "token_mask", "vllm_importance_sampling_clip_max": 2.0,
               "num_iterations": 2, "advantage_preset": "trl", "loss_preset": "dapo", "beta": 0.1, "epsilon_low": 0.1,
               "epsilon_high": 0.3, "kl_estimator": "k1", "off_policy_kl": False, "entropy_coef": 0.01,
               "mask_truncated_completions": True, "save_rollouts": True, "reference_dtype": "bfloat16",
               "off_policy_shaping": 0.1}
    assert set(changed) == set(STAGE_FIELDS)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, value in changed.items():
        assert value != defaults[name], name
        for stage in ("sft", "grpo", "mp_grpo"):
            extra: dict[str, Any] = {"checkpoint_every": 2} if name == "num_iterations" else {}
            if name.startswith("vllm_"):
                extra["rollout_engine"] = "vllm"
            if stage in STAGE_FIELDS[name]:
                config(task, tmp_path, stage=stage, **{name: value}, **extra)
            else:
                with pytest.raises(ValueError, match=rf"{name}[^;]* only apply to .*, not {stage}"):
                    config(task, tmp_path, stage=stage, **{name: value}, **extra)


def test_the_bundled_model_goes_by_its_short_name(tmp_path: Path) -> None:
    from speechgrpo.models.loading import BUNDLED, bundled_base, load_speech_lm
    from speechgrpo.train.input_check import model_input_limits

    assert BUNDLED == "bundled"
    assert load_speech_lm("bundled").tokenizer.vocab_size == load_speech_lm(bundled_base()).tokenizer.vocab_size
    assert model_input_limits("bundled").max_audio_seconds == pytest.approx((2048 - 512) * 0.08)


def test_dev_scores_do_not_depend_on_the_eval_batch_size(task: tuple[Path, Path], tmp_path: Path) -> None:
    """Each dev example samples from its own stream: the same scores at 2 and at 16 prompts per batch."""
    scores = []
    for size in (2, 16):
        T.train(config(task, tmp_path / str(size), steps=2, eval_manifests=[str(task[1])], eval_every=1,
                       eval_batch_size=size, eval_seeds=2, eval_metrics=["bleu", "chrf"]), show_progress=False)
        scores.append([{k: v for k, v in r.items() if k.startswith("eval_")} for r in rows(tmp_path / str(size))
                       if "eval_bleu" in r])
    assert len(scores[0]) == 2 and scores[0] == scores[1]

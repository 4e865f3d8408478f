"""The demo's report: per-task tables (mean +- std over seeds, lengths, compute), paired bootstrap
intervals against SFT, the learning-rate search, GRPO diagnostics, and plots.

Every score is on 0-100: BLEU is corpus BLEU of each sampled pass (as sacrebleu's ``corpus_bleu``), the
others per-example means; a seed's value is the mean of its passes, a method's the mean and std of its
seeds'.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechgrpo.data import Example
from speechgrpo.data.synthetic.benchmark import words
from speechgrpo.train.significance import Interval, RunScores, paired_bootstrap

LABELS = {"base": "base", "sft": "SFT", "grpo": "GRPO", "sft_compute": "SFT (GRPO's compute)", "mp_grpo": "MP-GRPO",
          "mp_grpo_luffy": "MP-GRPO (LUFFY shaping 0.1)", "sft_grpo": "SFT -> GRPO"}
TASK_TITLES = {"sqa": "Spoken question answering", "ast": "Speech translation (English -> German)"}
Answers = dict[tuple[str, str, int], list[list[str]]]


def per_sample(runs: list[list[list[str]]], examples: Sequence[Example], metric: str) -> list[RunScores]:
    """The per-example material of several models' passes (``runs[model][pass][example]``) for ``metric``:
    a per-sample metric scores all of them in one call, so that answers repeated across passes and
    models (and the shared references) are scored once."""
    from speechgrpo.train.evaluation import evaluation_metric

    references = [tuple(e.references) for e in examples]
    if metric == "bleu":
        return [RunScores.of_bleu(passes, references) for passes in runs]
    flat = [answer for passes in runs for run in passes for answer in run]
    if any(len(run) != len(references) for passes in runs for run in passes):
        raise ValueError(f"every pass needs one answer per test example ({len(references)})")
    scores = 100 * np.asarray(evaluation_metric(metric).score(flat, references * sum(map(len, runs))))
    out, start = [], 0
    for passes in runs:
        out.append(RunScores.of_samples(scores[start:start + len(passes) * len(references)].reshape(
            len(passes), len(references))))
        start += len(passes) * len(references)
    return out


def score_table(answers: Answers, tests: dict[str, list[Example]], metrics: Sequence[str]
                ) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], list[RunScores]]]:
    """One row per (task, method, seed) with each metric's mean over passes and the mean answer length,
    and the per-sample material of every run for the bootstrap."""
    material: dict[tuple[str, str, str], list[RunScores]] = {}
    rows: dict[tuple[str, str, int], dict[str, Any]] = {
        key: {"task": key[0], "method": key[1], "seed": key[2]} for key in answers}
    for task in dict.fromkeys(task for task, _, _ in answers):
        keys = [key for key in answers if key[0] == task]
        for metric in metrics:
            for key, scores in zip(keys, per_sample([answers[k] for k in keys], tests[task], metric), strict=True):
                material.setdefault((task, key[1], metric), []).append(scores)
                rows[key][metric] = float(np.mean([RunScores(scores.values[i:i + 1], scores.bleu).mean()
                                                   for i in range(len(answers[key]))]))
    for key, row in rows.items():
        row["avg"] = float(np.mean([row[m] for m in metrics]))
        row["words"] = float(np.mean([len(words(a)) for run in answers[key] for a in run]))
    return list(rows.values()), material


def metric_lines(metrics: Sequence[str], tasks: Sequence[str]) -> list[str]:
    """Each metric's signature (what computed the scores), and which encoder BERTScore used for German."""
    from speechgrpo.train.evaluation import evaluation_metric

    lines = ["Metrics: " + "; ".join(f"`{evaluation_metric(m).signature}`" for m in metrics) + ".", ""]
    if "bertscore" in metrics and "ast" in tasks:
        lines += ["BERTScore scores the German translations with the same English encoder (`lang:en` above): "
                  "bert-score's German encoder (bert-base-multilingual-cased) is not packaged, so the AST BERTScore "
                  "measures overlap in an English model's subword space, not meaning.", ""]
    return lines


def stacked(parts: list[RunScores]) -> RunScores:
    """The runs of several seeds as one system."""
    return RunScores(np.concatenate([p.values for p in parts]), parts[0].bleu)


def _mean_std(values: Sequence[float]) -> str:
    return f"{np.mean(values):.2f}" if len(values) == 1 else f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def grpo_diagnostics(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per GRPO-family run: zero-variance group fraction, KL, completion length (words and tokens) and reward,
    first and last tenth of training (from its metrics.jsonl), best-dev and last step."""
    rows = []
    for run in runs:
        if run["stage"] == "sft":
            continue
        log = [json.loads(line) for line in (Path(run["model"]).parent / "metrics.jsonl").read_text(
            encoding="utf-8").splitlines()]
        log = [r for r in log if "reward_mean" in r]
        tenth = max(1, len(log) // 10)
        first, last = log[:tenth], log[-tenth:]

        def mean(rows: list[dict[str, Any]], key: str) -> float:
            return float(np.mean([r[key] for r in rows if key in r])) if rows else float("nan")

        rows.append({"task": run["task"], "method": run["method"], "seed": run["seed"],
                     "zero_std_groups": mean(log, "frac_zero_std_groups"), "kl_last": mean(last, "kl"),
                     "words_first": mean(first, "completion_words"), "words_last": mean(last, "completion_words"),
                     "tokens_first": mean(first, "completion_length"), "tokens_last": mean(last, "completion_length"),
                     "reward_first": mean(first, "reward_mean"), "reward_last": mean(last, "reward_mean"),
                     "best_step": run["best_step"], "steps_trained": run["steps_trained"], "steps": run["steps"]})
    return rows


def write_results(answers: Answers, tests: dict[str, list[Example]], runs: list[dict[str, Any]],
                  search_rows: list[dict[str, Any]], shown: list[dict[str, str]], summary: dict[str, Any],
                  config: Any, results: Path) -> Path:
    """``results.md``, ``results.csv`` (one row per task, method and seed), ``search.csv``,
    ``diagnostics.csv``, ``summary.json`` and the plots; prints the report."""
    import pandas as pd

    results.mkdir(parents=True, exist_ok=True)
    metrics = list(config.eval_metrics)
    rows, material = score_table(answers, tests, metrics)
    table = pd.DataFrame(rows)
    compute = pd.DataFrame(runs) if runs else pd.DataFrame(columns=["task", "method", "seed"])
    if runs:
        table = table.merge(compute[["task", "method", "seed", "learning_rate", "best_step", "steps_trained", "steps",
                                     "best_dev", "prompts_seen", "completions", "validation_generations", "wall_s"]],
                            on=["task", "method", "seed"], how="left")
    # scores rounded; learning rates and counts written as they are (a fixed format would print 2e-4 as 0.000)
    table.round({m: 3 for m in (*metrics, "avg", "words")}).to_csv(results / "results.csv", index=False)
    if search_rows:
        pd.DataFrame(search_rows).to_csv(results / "search.csv", index=False)
    diagnostics = pd.DataFrame(grpo_diagnostics(runs))
    diagnostics.round(4).to_csv(results / "diagnostics.csv", index=False)

    hearing = summary["hearing"]
    seconds = summary["seconds"]
    seeds = summary["seeds"]
    lines = [f"# The demo on the bundled task ({config.protocol} protocol, {seconds['total'] / 60:.1f} min)", "",
             f"Training seeds {seeds}; test: {config.eval_passes} sampled passes at T 0.9, top-p 0.9 per model, "
             f"{config.sizes['test']} examples per task; validation on {config.dev_examples} dev examples, the "
             "best-dev (BLEU) checkpoint evaluated. Scores 0-100, mean ± std over seeds; BLEU is corpus BLEU; "
             "steps, prompts, completions and minutes are means over seeds.", "",
             "Minutes: " + ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items() if k != "total") + ".", "",
             *metric_lines(metrics, config.tasks),
             f"**Hearing.** The base model's greedy ASR WER on the {hearing['asr_test_clips']} test clips: "
             f"{hearing['base_asr_test_wer']:.1f}% (dev {hearing['build']['dev_wer']:.1f}% when it was built).", ""]
    for task in config.tasks:
        part = table[table["task"] == task]
        reference_words = float(np.mean([len(words(e.references[0])) for e in tests[task]]))
        lines += [f"## {TASK_TITLES.get(task, task)}", "",
                  f"Learning rates: {summary['learning_rates'][task]}. Reference length: {reference_words:.1f} words.",
                  ""]
        header = ["method", *metrics, "avg", "words", "steps: best / stop / cap", "prompts", "completions",
                  "train min"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method in config.method_list:
            seeds_rows = part[part["method"] == method]
            if seeds_rows.empty:
                continue
            cells = [LABELS[method], *[_mean_std(seeds_rows[m].tolist()) for m in [*metrics, "avg"]],
                     f"{seeds_rows['words'].mean():.1f}"]
            if method == "base":
                cells += ["-", "-", "-", "-"]
            else:
                own = compute[(compute["task"] == task) & (compute["method"] == method)]
                prompts, completions, wall = own["prompts_seen"].mean(), own["completions"].mean(), own["wall_s"].mean()
                if method == "sft_grpo":  # its SFT start is part of its cost
                    sft = compute[(compute["task"] == task) & (compute["method"] == "sft")]
                    prompts, wall = prompts + sft["prompts_seen"].mean(), wall + sft["wall_s"].mean()
                cells += [f"{own['best_step'].mean():.0f} / {own['steps_trained'].mean():.0f} / "
                          f"{own['steps'].mean():.0f}", f"{prompts:.0f}", f"{completions:.0f}", f"{wall / 60:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if ("sft" in config.method_list) and any(m in config.method_list for m in ("grpo", "mp_grpo", "sft_grpo")):
            lines += [f"Paired bootstrap ({config.bootstrap_resamples} resamples of the test examples, all seeds and "
                      "passes), difference to SFT with its 95% interval:", "",
                      "| method - SFT | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
            for method in config.method_list:
                if method in ("base", "sft"):
                    continue
                intervals: list[Interval] = [paired_bootstrap(stacked(material[(task, method, m)]),
                                                              stacked(material[(task, "sft", m)]),
                                                              config.bootstrap_resamples) for m in metrics]
                lines.append(f"| {LABELS[method]} | " + " | ".join(str(i) for i in intervals) + " |")
            lines.append("")
        task_diag = diagnostics[diagnostics["task"] == task] if not diagnostics.empty else diagnostics
        if not task_diag.empty:
            lines += ["GRPO diagnostics (mean over seeds): zero-variance groups, KL, completion length in words "
                      "(whitespace-separated) and in tokens (the stop token included), reward (first -> last tenth "
                      "of training), best-dev step / last step trained:", "",
                      "| method | zero-std groups | KL (end) | length (words) | length (tokens) | reward | "
                      "best step / stop |", "|---|---|---|---|---|---|---|"]
            for method, group in task_diag.groupby("method", sort=False):
                lines.append(f"| {LABELS[str(method)]} | {group['zero_std_groups'].mean():.2f} | "
                             f"{group['kl_last'].mean():.4f} | {group['words_first'].mean():.1f} -> "
                             f"{group['words_last'].mean():.1f} | {group['tokens_first'].mean():.1f} -> "
                             f"{group['tokens_last'].mean():.1f} | {group['reward_first'].mean():.3f} -> "
                             f"{group['reward_last'].mean():.3f} | {group['best_step'].mean():.0f} / "
                             f"{group['steps_trained'].mean():.0f} |")
            lines.append("")
    if search_rows:
        lines += ["## Learning-rate search (dev, first seed)", "",
                  pd.DataFrame(search_rows).to_markdown(index=False, floatfmt=".4g"), ""]
    lines += ["## Greedy answers on the first test examples", ""]
    shown_frame = pd.DataFrame(shown)
    by_id = {e.id: e for examples in tests.values() for e in examples}
    for example_id, group in (shown_frame.groupby("id", sort=False) if shown else []):
        example = by_id[str(example_id)]
        lines += [f"**{example_id}**: {example.meta.get('transcript', '')} / *{example.prompt}*", "",
                  f"- reference: {example.references[0]}"]
        lines += [f"- {LABELS[row.model]}: {row.answer}" for row in group.itertuples()]
        lines.append("")
    (results / "results.md").write_text("\n".join(lines), encoding="utf-8")
    (results / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    plot_results(table, runs, config, results)
    print("\n".join(lines), flush=True)
    return results


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (fewer at the start)."""
    data = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(data)
    out = np.empty_like(data)
    for i in range(len(data)):
        start = max(0, i - window + 1)
        out[i] = (sums[i] - (sums[start - 1] if start else 0.0)) / (i - start + 1)
    return out


def plot_results(table: Any, runs: list[dict[str, Any]], config: Any, results: Path) -> None:
    """``reward_curves_<task>.png`` (on-policy reward per step, moving average of 10, seeds averaged),
    ``dev_curves_<task>.png`` (validation BLEU) and ``metrics_<task>.png`` (bars with std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs: dict[tuple[str, str], list[list[dict[str, Any]]]] = {}
    for run in runs:
        path = Path(run["model"]).parent / "metrics.jsonl"
        logs.setdefault((run["task"], run["method"]), []).append(
            [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])
    for task in config.tasks:
        for kind, key, ylabel in (("reward_curves", "reward_mean", "mean reward of on-policy samples"),
                                  ("dev_curves", "eval_bleu", "dev BLEU (validation)")):
            fig, ax = plt.subplots(figsize=(7, 4))
            for (log_task, method), seeds in logs.items():
                if log_task != task or (key == "reward_mean" and method == "sft"):
                    continue
                curves = [[(r["step"], r[key]) for r in log if key in r] for log in seeds]
                length = min(len(c) for c in curves)
                if length == 0:
                    continue
                steps = [s for s, _ in curves[0][:length]]
                mean = np.mean([[v for _, v in c[:length]] for c in curves], axis=0)
                if key == "reward_mean":
                    line, = ax.plot(steps, mean, alpha=0.25)
                    ax.plot(steps, moving_average(mean, 10), color=line.get_color(), label=LABELS[method])
                else:
                    ax.plot(steps, mean, marker="o", markersize=3, label=LABELS[method])
            ax.set_xlabel("step")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{task}: {ylabel} (mean over seeds)")
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(results / f"{kind}_{task}.png", dpi=120)
            plt.close(fig)
        part = table[table["task"] == task]
        metrics = list(config.eval_metrics)
        means = part.groupby("method", sort=False)[metrics].mean()
        stds = part.groupby("method", sort=False)[metrics].std(ddof=1).fillna(0.0)
        means.index = [LABELS[m] for m in means.index]
        stds.index = means.index
        fig, ax = plt.subplots(figsize=(8, 4))
        means.T.plot.bar(ax=ax, yerr=stds.T)
        ax.set_ylabel("score (0-100)")
        ax.set_title(f"{task}: test, sampled decoding (T 0.9, top-p 0.9); error bars: std over seeds")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(results / f"metrics_{task}.png", dpi=120)
        plt.close(fig)


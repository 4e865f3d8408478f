"""Groups JSONL files (the input of `speechgrpo bench`, tested in test_bench_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from speechgrpo._group_ids import as_group_ids, dense_ids, group_ids_of_runs
from speechgrpo.cli import main
from speechgrpo.data.groups_file import Group, GroupFileError, example_groups, flatten, read_groups


def write(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_bundled_example_groups_are_valid() -> None:
    groups = example_groups()
    assert len(groups) >= 6 and all(len(g.completions) == 8 for g in groups)
    batch = flatten(groups)
    assert len(batch.completions) == len(batch.references) == len(batch.group_ids) == len(batch.off_policy)
    assert batch.off_policy.sum() == 1  # one MP-GRPO group with the reference injected
    injected = int(np.flatnonzero(batch.off_policy)[0])
    assert batch.completions[injected] == batch.references[injected][0]


@pytest.mark.parametrize("line,message", [
    ("{not json", ":2: invalid JSON"),
    ([1, 2], "expected a JSON object"),
    ({"completions": ["a"]}, "'references' must be a string or a non-empty list"),
    ({"references": "r", "completions": []}, "'completions' must be a non-empty list"),
    ({"references": "r", "completions": ["a", 3]}, r"completions\[1\] must be a string"),
    ({"references": ["r", None], "completions": ["a"]}, r"references\[1\] must be a string"),
    ({"references": "r", "completions": ["a"], "off_policy": [True, False]}, "list of 1 booleans"),
    ({"references": "r", "completions": ["a"], "off_policy": ["yes"]}, r"off_policy\[0\] must be true or false"),
])
def test_bad_lines_name_file_line_and_field(tmp_path: Path, line: object, message: str) -> None:
    path = write(tmp_path / "g.jsonl", [{"references": "r", "completions": ["a"]}, line])
    with pytest.raises(GroupFileError, match=message) as err:
        read_groups(path)
    assert f"{path}:2" in str(err.value)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GroupFileError, match="no groups"):
        read_groups(write(tmp_path / "g.jsonl", [""]))


def test_group_ids_inferred_and_validated() -> None:
    np.testing.assert_array_equal(as_group_ids(None, 4, [("a",), ("a",), ("b",), ("a",)]), [0, 0, 1, 0])
    with pytest.raises(ValueError, match="group_ids has 2 entries but there are 3"):
        as_group_ids([0, 1], 3)
    with pytest.raises(TypeError, match="integers"):
        as_group_ids([0.5, 1.5], 2)


def test_cli_lists_rewards(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rewards"]) == 0
    out = capsys.readouterr().out
    assert "bleu" in out and "bertscore" in out and "chrfpp" in out


def test_flatten_treats_missing_off_policy_flags_as_on_policy() -> None:
    batch = flatten([Group("a", ("x",), ["x", "y"]), Group("b", ("z",), ["z"], off_policy=[True])])
    assert batch.off_policy.tolist() == [False, False, True] and batch.group_ids.tolist() == [0, 0, 1]


def test_dense_ids_number_keys_by_first_appearance_on_every_path() -> None:
    expected = [0, 1, 0, 2, 1]
    assert dense_ids([7, 3, 7, 9, 3]).tolist() == expected  # a list: the dict path
    assert dense_ids(np.array([7, 3, 7, 9, 3])).tolist() == expected  # an array: np.unique, renumbered
    assert dense_ids(np.array(["b", "a", "b", "c", "a"])).tolist() == expected
    assert dense_ids(np.array([("x",), ("y",), ("x",), ("z",), ("y",)], dtype=object)[:, 0]).tolist() == expected
    assert dense_ids([]).tolist() == [] and dense_ids(np.array([], dtype=np.int64)).tolist() == []
    with pytest.raises(ValueError, match="one-dimensional"):
        dense_ids(np.zeros((2, 2), dtype=np.int64))
    assert group_ids_of_runs(["p", "p", "q", "p"]).tolist() == [0, 0, 1, 2]  # runs: the third p is a new group


"""Report files: unique names, a folder checked before any check, write failures as warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gradcheck import InputError, check
from gradcheck.report.files import (
    MAX_NAME,
    ReportNames,
    check_writable,
    safe_name,
    write_reports,
    write_reports_or_warn,
)


def failing_report():
    return check(
        lambda p: float(np.sum(p["w"] ** 2)),
        lambda p: {"w": np.array([2.0, 40.0])},
        {"w": np.array([1.0, -2.0])},
    )


# issue 12.13: labels that sanitise alike must not overwrite each other's files
@pytest.mark.parametrize(
    "labels",
    [
        ["a/b.py:make", "a-b.py:make", "a b.py:make", "a:b.py:make"],
        ["tests/t.py::test[a/b]", "tests/t.py::test[a-b]", "tests/t.py::test[a b]"],
        ["Net.py:make", "net.py:make"],  # one file on case-insensitive file systems
        ["x" * MAX_NAME + "1", "x" * MAX_NAME + "2", "x" * (MAX_NAME + 50)],
        ["", "-", "report", "///"],
    ],
)
def test_labels_that_sanitise_alike_get_distinct_file_names(labels):
    names = ReportNames()
    stems = [names.stem(label) for label in labels]
    assert len({s.casefold() for s in stems}) == len(labels)
    assert stems[0] == safe_name(labels[0])  # the first keeps the plain name
    assert all(len(s) <= MAX_NAME for s in stems)
    assert [names.stem(label) for label in labels] == stems  # the same label, the same file


def test_distinct_stems_mean_distinct_files(tmp_path):
    report = failing_report()
    names = ReportNames()
    for label in ("a/b.py:make", "a-b.py:make"):
        write_reports(report, label, tmp_path, stem=names.stem(label))
    titles = sorted(p.read_text().splitlines()[0] for p in tmp_path.glob("*.md"))
    assert titles == ["# a-b.py:make", "# a/b.py:make"]


# issue 12.14: an unwritable folder is refused up front; a write that fails later is a warning
def test_check_writable_creates_the_folder(tmp_path):
    assert check_writable(tmp_path / "new" / "deep", "--out").is_dir()


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_check_writable_refuses_what_cannot_hold_reports(tmp_path, where):
    (tmp_path / "plain").write_text("x")
    folder = tmp_path / "plain" if where == "a file" else tmp_path / "plain" / "sub"
    with pytest.raises(InputError, match=r"^--out .*plain.*: cannot write reports there \("):
        check_writable(folder, "--out")


def test_a_write_failure_is_a_warning_not_an_exception(tmp_path):
    (tmp_path / "net.json").mkdir()  # a folder where the JSON file should go
    warnings: list[str] = []
    paths = write_reports_or_warn(failing_report(), "net", tmp_path, warnings.append)
    assert paths == []
    (line,) = warnings
    assert line.startswith("could not write the reports of net (")
    assert "net.json" in line
    assert line.endswith("); the verdict stands")


def test_json_report_file_is_strict_json(tmp_path):
    paths = write_reports(failing_report(), "net", tmp_path)
    assert json.loads(paths[1].read_text())["passed"] is False

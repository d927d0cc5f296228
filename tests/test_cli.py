"""The command line, in-process."""

from __future__ import annotations

import json

from gradcheck.cli import main


def test_list_names_reference_nets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "asker-meant" in out
    assert "fails" in out


def test_check_all_exits_zero_when_every_verdict_matches_and_writes_reports(tmp_path, capsys):
    assert main(["check", "--all", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reference nets behaved as declared" in out
    data = json.loads((tmp_path / "asker-meant.json").read_text())
    assert data["passed"] is False
    assert (tmp_path / "asker-meant.md").read_text().startswith("# asker-meant")
    assert "asker-first" in (tmp_path / "index.md").read_text()


def test_check_one_buggy_net_exits_one(capsys):
    assert main(["check", "asker-meant"]) == 1
    assert "gradcheck FAILED" in capsys.readouterr().out


def test_unknown_net_is_bad_usage(capsys):
    assert main(["check", "no-such-net"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gradcheck: error: unknown reference net(s) no-such-net")
    assert "Traceback" not in err


FLOAT32_TARGET = """
import numpy as np

def make():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    params = {"w": rng.normal(size=3).astype(np.float32)}

    def loss(p):
        return np.sum((x @ p["w"]) ** 2)

    def grad(p):
        return {"w": x.T @ (x @ p["w"])}  # the factor 2 is missing

    return loss, grad, params
"""


def test_float64_flag_rechecks_a_float32_target(tmp_path, capsys):
    target = tmp_path / "net32.py"
    target.write_text(FLOAT32_TARGET)
    assert main(["check", f"{target}:make", "--float64", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    again = data["recheck_float64"]
    assert again["notes"][0] == "float64 re-check: cast w, x from float32"
    assert [p["dtype"] for p in again["params"]] == ["float64"]
    assert main(["check", f"{target}:make"]) == 1
    assert "recheck_float64=True" in capsys.readouterr().out

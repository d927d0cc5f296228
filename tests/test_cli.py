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


NONFINITE_NET = """
import numpy as np

def make():
    params = {"w": np.array([0.5, -1.0, 2.0])}

    def loss(p):
        return float(np.sum(p["w"] ** 2))

    def grad(p):
        g = 2 * p["w"]
        g[1] = np.inf
        return {"w": g}

    return loss, grad, params
"""


def _strict(text):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_and_out_work_on_a_report_with_nonfinite_values(tmp_path, capsys):
    # issue 12 item 7: --format json printed nothing, --out wrote only the .md
    net = tmp_path / "net.py"
    net.write_text(NONFINITE_NET)
    out = tmp_path / "out"
    for mode in ("full", "fast"):
        assert main(["check", f"{net}:make", "--format", "json", "--mode", mode]) == 1
        data = _strict(capsys.readouterr().out)
        assert data["params"][0]["status"] == "nonfinite"
        assert data["params"][0]["max_abs_err"] is None
    assert main(["check", f"{net}:make", "--out", str(out)]) == 1
    written = sorted(p.suffix for p in out.iterdir() if p.stem != "index")
    assert written == [".html", ".json", ".md"]
    assert _strict(next(out.glob("*.json")).read_text())["passed"] is False

"""The command line, in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points

import pytest

import gradcheck.cli
import gradcheck.protocol
from gradcheck.cli import EXIT_USAGE, main
from gradcheck.protocol import Reference


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


# issue 12.16: registries (third-party code) are loaded only when reference nets are asked for
def broken_registries(monkeypatch, calls=None):
    def fake(group):
        if calls is not None:
            calls.append(group)
        broken = EntryPoint("broken", "no_such_registry_module:REGISTRY", group)
        return [broken, *entry_points(group=group)]

    monkeypatch.setattr(gradcheck.protocol, "entry_points", fake)


def test_user_target_does_not_load_registries(monkeypatch, tmp_path, capsys):
    calls: list[str] = []
    broken_registries(monkeypatch, calls)
    net = tmp_path / "net.py"
    net.write_text(
        "import numpy as np\n"
        "def make():\n"
        "    return (lambda p: float(np.sum(p['w'] ** 2)), lambda p: {'w': 2 * p['w']},\n"
        "            {'w': np.array([1.0, -2.0])})\n"
    )
    assert main(["check", f"{net}:make"]) == 0
    assert calls == []
    assert capsys.readouterr().err == ""


def test_broken_registry_is_a_warning_naming_it(monkeypatch, capsys):
    broken_registries(monkeypatch)
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    assert "asker-meant" in captured.out
    (line,) = captured.err.splitlines()
    assert line.startswith(
        "gradcheck: warning: registry 'broken' (no_such_registry_module:REGISTRY, a "
        "gradcheck.registries entry point) could not be loaded: ModuleNotFoundError"
    )
    assert line.endswith("its nets are left out")
    assert main(["check", "asker-meant"]) == 1
    assert "registry 'broken'" in capsys.readouterr().err


def test_registry_with_a_wrong_entry_is_a_warning(monkeypatch, capsys):
    monkeypatch.setattr(
        gradcheck.protocol,
        "entry_points",
        lambda group: [EntryPoint("odd", "json:__dict__", group)],
    )
    assert main(["list"]) == 0
    err = capsys.readouterr().err
    assert "registry 'odd' (json:__dict__, a gradcheck.registries entry point): entry" in err
    assert "is not a gradcheck Reference; its nets are left out" in err


# issue 12.3, sibling: a registry's net that calls sys.exit() while it is built
def test_sys_exit_in_a_reference_nets_build_is_exit_2(monkeypatch, capsys):
    def build():
        raise SystemExit(0)

    exiting = Reference("exits-on-build", build, True, "calls sys.exit(0) when built")
    monkeypatch.setattr(gradcheck.cli, "load_references", lambda warn: {exiting.name: exiting})
    assert main(["check", "exits-on-build"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gradcheck: error: sys.exit(0) (")
    assert "test_cli.py, line" in err
    assert err.count("\n") == 1


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


def test_a_reader_that_goes_away_costs_no_report_file(tmp_path):
    # `gradcheck check A B --out D | head -1`: printing stops, every report file is written
    (tmp_path / "pair.py").write_text(
        "import numpy as np\n"
        "def make(bug=0.0):\n"
        "    w = np.linspace(-1.0, 1.0, 400)\n"
        "    return (lambda p: float(np.sum(p['w'] ** 3)),\n"
        "            lambda p: {'w': 3 * p['w'] ** 2 + bug}, {'w': w})\n"
        "def right():\n"
        "    return make()\n"
        "def wrong():\n"
        "    return make(1e-3)\n"
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "gradcheck",
        "check",
        "pair.py:right",
        "pair.py:wrong",
        "--full",
        "--out",
        str(out),
    ]
    with subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        proc.stdout.close()  # the reader has gone before the first (40 kB) report is printed
        proc.wait(timeout=120)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 141, stderr
    written = sorted(p.name for p in out.iterdir())
    assert len([n for n in written if n.endswith((".md", ".json", ".html"))]) == 6, written


ROUTE_TARGET = """
import numpy as np
import gradcheck

def forward(x, w):
    return x @ w, (x, w)

def backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout * FACTOR

def layer():
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(4, 3)), "w": rng.normal(size=(3, 2))}
    return gradcheck.check_layer(forward, backward, inputs)
"""


@pytest.mark.parametrize(("factor", "code"), [(1, 0), (2, 1)])
def test_a_target_may_run_a_route_and_return_its_report(tmp_path, capsys, factor, code):
    target = tmp_path / "route.py"
    target.write_text(ROUTE_TARGET.replace("FACTOR", str(factor)))
    assert main(["check", f"{target}:layer", "--format", "json"]) == code
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is (code == 0)
    wrong = [p["name"] for p in data["params"] if p["status"] != "ok"]
    assert wrong == ([] if factor == 1 else ["w"])


@pytest.mark.parametrize("flag", [["--mode", "fast"], ["--richardson"], ["--float64"]])
def test_check_options_are_refused_for_a_finished_report(tmp_path, capsys, flag):
    target = tmp_path / "route.py"
    target.write_text(ROUTE_TARGET.replace("FACTOR", "1"))
    assert main(["check", f"{target}:layer", *flag]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "returned a finished Report" in err
    assert flag[0] in err

"""The command line on users' own code: targets, formats, exit codes, progress bar."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradcheck.progress
from gradcheck import InputError
from gradcheck.cli import EXIT_INTERRUPTED, EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, main, one_line
from gradcheck.report.files import safe_name

ROOT = Path(__file__).resolve().parents[2]
ASKER = str(ROOT / "examples" / "asker_style.py")

GOOD = """
import numpy as np

X = np.linspace(-1, 1, 12).reshape(4, 3)

def loss(p):
    return float(np.sum(np.tanh(X @ p["w"]) ** 2) + p["c"] ** 2)

def grad(p):
    t = np.tanh(X @ p["w"])
    return {"w": X.T @ (2 * t * (1 - t ** 2)), "c": 2 * p["c"]BUG}

def make():
    return loss, grad, {"w": np.array([0.3, -0.2, 0.5]), "c": 0.7}

class Net:
    def __init__(self):
        self.params = {"w": np.array([0.3, -0.2, 0.5]), "c": 0.7}
    loss = staticmethod(loss)
    grad = staticmethod(grad)

triple = make()
"""


def write(tmp_path: Path, body: str, name: str = "user_net.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def user_module(path: str):
    """The module the CLI loaded from ``path`` (kept in sys.modules under a unique name)."""
    (module,) = [
        m
        for n, m in list(sys.modules.items())
        if n.startswith("gradcheck_user_") and getattr(m, "__file__", None) == path
    ]
    return module


@pytest.fixture
def good(tmp_path):
    return write(tmp_path, GOOD.replace("BUG", ""))


@pytest.fixture
def buggy(tmp_path):
    return write(tmp_path, GOOD.replace("BUG", " * 2"), "buggy_net.py")


def test_asker_style_file_names_every_wrong_weight(capsys):
    assert main(["check", f"{ASKER}:make"]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "gradcheck FAILED: 14 of 14 parameters" in out
    for name in ("w1", "w2", "w8", "b1", "b2", "w9", "w12"):
        assert f"X   {name} " in out
    assert "the gradient has shape (2,), the parameter ()" in out


@pytest.mark.parametrize("attr", ["make", "Net", "triple"])
def test_factory_class_or_object(good, attr, capsys):
    assert main(["check", f"{good}:{attr}"]) == EXIT_OK
    assert "gradcheck PASSED" in capsys.readouterr().out


def test_module_target_from_the_current_folder(tmp_path, monkeypatch, capsys):
    write(tmp_path, GOOD.replace("BUG", ""), "netmod_for_cli.py")
    monkeypatch.chdir(tmp_path)
    saved = list(sys.path)
    try:
        assert main(["check", "netmod_for_cli:make"]) == EXIT_OK
    finally:
        sys.modules.pop("netmod_for_cli", None)
    assert sys.path == saved  # the folder added for the import is taken out again
    assert "PASSED" in capsys.readouterr().out


def test_mismatch_names_the_parameter(buggy, capsys):
    assert main(["check", f"{buggy}:make"]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "X   c " in out
    assert "X   w " not in out


def test_formats(buggy, capsys):
    assert main(["check", f"{buggy}:make", "--format", "json"]) == EXIT_MISMATCH
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False
    assert data["options"]["seed"] == 0
    assert [p["name"] for p in data["params"] if p["status"] != "ok"] == ["c"]
    assert main(["check", f"{buggy}:make", "--format", "markdown"]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert out.startswith(f"## {buggy}:make\n\ngradcheck FAILED")
    assert "|----" in out
    assert main(["check", f"{buggy}:make", "--format", "html"]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>")
    assert 'class="heat"' in out


def test_out_writes_markdown_json_html(buggy, good, tmp_path, capsys):
    out = tmp_path / "reports"
    code = main(["check", f"{buggy}:make", f"{good}:make", "--out", str(out), "--format", "json"])
    assert code == EXIT_MISMATCH
    both = json.loads(capsys.readouterr().out)
    assert [v["passed"] for v in both.values()] == [False, True]
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 6
    assert {Path(n).suffix for n in names} == {".md", ".json", ".html"}


def test_seed_controls_user_initialisation(capsys):
    losses = []
    for seed in ("0", "1", "0"):
        main(["check", f"{ASKER}:make", "--seed", seed, "--format", "json"])
        losses.append(json.loads(capsys.readouterr().out)["loss"])
    assert losses[0] == losses[2] != losses[1]


BAD_INPUTS = {
    "missing file": ("{tmp}/nope.py:make", "no such file"),
    "missing name": ("{good}:nothing", "has no 'nothing'; it defines"),
    "no name": ("{good}", "name a function in it as FILE.py:NAME"),
    "syntax error": ("{syntax}:make", "syntax error"),
    "import error": ("{importerr}:make", "ModuleNotFoundError"),
    "factory raises": ("{raising}:make", "calling make() raised ValueError: no data"),
    "bad return": ("{wrongtype}:make", "make() is a list; expected a (loss, grad, params)"),
    "not callable": ("{wrongtype}:NUMBER", "NUMBER is a int; expected a zero-argument factory"),
    "nan loss": ("{nanloss}:make", "loss is nan at the starting parameters"),
    "unknown module": ("no_such_module_xyz:make", "no module named 'no_such_module_xyz'"),
    "unknown reference": ("no-such-net", "unknown reference net"),
    "sys.exit at import": ("{exits}:make", "SystemExit"),
    "mutating loss": ("{mutating}:make", "calling the loss changed parameter(s) 'w'"),
}


@pytest.fixture
def bad_files(tmp_path, good):
    return {
        "tmp": str(tmp_path),
        "good": good,
        "syntax": write(tmp_path, "def make(:\n    pass\n", "syntax.py"),
        "importerr": write(tmp_path, "import not_a_module_anywhere\n", "importerr.py"),
        "raising": write(tmp_path, "def make():\n    raise ValueError('no data')\n", "raising.py"),
        "wrongtype": write(tmp_path, "NUMBER = 3\ndef make():\n    return [1, 2]\n", "wt.py"),
        "nanloss": write(
            tmp_path,
            "import math\ndef make():\n    return (lambda p: math.nan, "
            "lambda p: {'a': 0.0}, {'a': 1.0})\n",
            "nanloss.py",
        ),
        "exits": write(tmp_path, "import sys\nsys.exit(3)\n", "exits.py"),
        "mutating": write(
            tmp_path,
            """
            import numpy as np
            def loss(p):
                p["w"] += 1.0
                return float(p["w"].sum())
            def make():
                return loss, lambda p: {"w": np.ones(2)}, {"w": np.zeros(2)}
            """,
            "mutating.py",
        ),
    }


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_every_bad_input_is_exit_2_with_one_line(case, bad_files, capsys):
    target, reason = BAD_INPUTS[case]
    assert main(["check", target.format(**bad_files)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("gradcheck: error: ")
    assert reason in err
    assert "Traceback" not in err


def test_interrupt_is_130_and_parameters_are_restored(tmp_path, capsys):
    path = write(
        tmp_path,
        """
        import numpy as np
        W = np.arange(4.0)
        calls = []
        def loss(p):
            calls.append(1)
            if len(calls) == 6:
                raise KeyboardInterrupt
            return float(np.sum(p["W"] ** 2))
        def make():
            return loss, lambda p: {"W": 2 * p["W"]}, {"W": W}
        """,
        "interrupted.py",
    )
    assert main(["check", f"{path}:make"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "gradcheck: interrupted\n"
    module = user_module(path)
    assert module.W.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_unexpected_errors_still_get_one_line():
    line = one_line(TypeError("unsupported operand\n  in a weird place"))
    assert line == (
        "unexpected TypeError: unsupported operand in a weird place (rerun with "
        "--debug for the traceback; if your input looks fine, please report it)"
    )


def test_debug_shows_the_traceback(bad_files):
    with pytest.raises(InputError, match="no data"):
        main(["check", f"{bad_files['raising']}:make", "--debug"])


def test_usage_errors_are_exit_2(capsys):
    assert main(["check", "--seed", "minus-one", "x.py:f"]) == EXIT_USAGE
    assert "--seed: expected a non-negative integer" in capsys.readouterr().err
    assert main(["check", "--format", "pdf", "x.py:f"]) == EXIT_USAGE
    assert main(["check", "a:b", "c:d", "--format", "html"]) == EXIT_USAGE
    assert "--format html prints one report" in capsys.readouterr().err
    assert main(["--help"]) == EXIT_OK


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_progress_bar_only_on_a_terminal(good, tty, monkeypatch, capsys):
    ticks = iter(range(10**6))
    monkeypatch.setattr(gradcheck.progress, "clock", lambda: next(ticks) * 0.25)  # slow check
    stream = FakeTTY() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert main(["check", f"{good}:make"]) == EXIT_OK
    drawn = stream.getvalue()
    if tty:
        assert "loss evaluations" in drawn
        assert "] 100%" in drawn
        assert drawn.endswith("\r\x1b[K")  # erased before the report
    else:
        assert drawn == ""
    assert "PASSED" in capsys.readouterr().out


def test_progress_bar_waits_a_second():
    bar = gradcheck.progress.ProgressBar(FakeTTY(), label="x")
    bar.start = gradcheck.progress.clock()  # a fast check: under DELAY, nothing drawn
    bar(1, 10)
    assert bar.stream.getvalue() == ""
    assert gradcheck.progress.render_bar(5, 20, "net") == (
        "net [#######.......................]  25%  5/20 loss evaluations"
    )


def test_python_dash_m_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck", "check", f"{ASKER}:make"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_MISMATCH
    assert "14 of 14 parameters" in done.stdout
    assert done.stderr == ""


def test_fast_mode_from_the_command_line_names_the_wrong_tensor(capsys):
    from gradcheck.cli import main

    assert main(["check", "bug-dense-dw-transposed", "--mode", "fast"]) == 1
    out = capsys.readouterr().out
    assert "declared to fail; it did fail at w" in out
    assert "- w: 3 of 3 random-direction probe(s) passed" in out
    assert "12 proven wrong" in out
    assert "fast mode: 12 planned evaluations for a correct net against 102 full" in out


# issue 12.1: two targets whose files `import helpers` from their own folders
NEIGHBOUR_NET = """
import numpy as np
import helpers

def make():
    w = np.array([0.5, -1.5, 2.0])
    return (lambda p: float(np.sum(p["w"] ** 3)), lambda p: {"w": helpers.dcube(p["w"])},
            {"w": w})
"""


def test_each_target_sees_its_own_neighbours(tmp_path, capsys):
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.mkdir()
    wrong.mkdir()
    (right / "helpers.py").write_text("def dcube(w):\n    return 3 * w ** 2\n")
    (wrong / "helpers.py").write_text("def dcube(w):\n    return 2 * w ** 2\n")
    nets = [write(folder, NEIGHBOUR_NET, "net.py") for folder in (right, wrong)]
    saved = list(sys.path)
    assert main(["check", f"{nets[0]}:make", f"{nets[1]}:make"]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert out.count("gradcheck PASSED") == 1
    assert out.count("gradcheck FAILED") == 1
    assert out.index("PASSED") < out.index("FAILED")  # the second, wrong one fails
    assert main(["check", f"{nets[1]}:make", f"{nets[0]}:make"]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert out.index("FAILED") < out.index("PASSED")
    assert sys.path == saved
    assert "helpers" not in sys.modules


def test_module_targets_see_their_own_neighbours(tmp_path, monkeypatch, capsys):
    for folder, factor in (("one", 3), ("two", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "helpers.py").write_text(
            f"def dcube(w):\n    return {factor} * w ** 2\n"
        )
        write(tmp_path / folder, NEIGHBOUR_NET, f"net_{folder}.py")
    monkeypatch.chdir(tmp_path / "one")
    assert main(["check", "net_one:make"]) == EXIT_OK
    monkeypatch.chdir(tmp_path / "two")
    try:
        assert main(["check", "net_two:make"]) == EXIT_MISMATCH
    finally:
        for name in ("net_one", "net_two"):
            sys.modules.pop(name, None)


# issue 12.3: sys.exit() inside the loss or the gradient during a check
@pytest.mark.parametrize(
    ("where", "call", "shown"),
    [
        ("loss", "sys.exit()", "sys.exit()"),
        ("loss", "sys.exit(0)", "sys.exit(0)"),
        ("grad", "sys.exit(1)", "sys.exit(1)"),
        ("loss", "sys.exit('bye')", "sys.exit('bye')"),
    ],
)
def test_sys_exit_in_user_code_is_exit_2_and_parameters_are_restored(
    tmp_path, capsys, where, call, shown
):
    path = write(
        tmp_path,
        f"""
        import sys
        import numpy as np
        W = np.array([0.1, -0.2, 0.3, 1e-300, -0.0])
        calls = []
        def loss(p):
            calls.append(1)
            if {where == "loss"} and len(calls) == 4:
                {call}
            return float(np.sum(p["W"] ** 2))
        def grad(p):
            if {where == "grad"}:
                {call}
            return {{"W": 2 * p["W"]}}
        def make():
            return loss, grad, {{"W": W}}
        """,
        "exiting.py",
    )
    assert main(["check", f"{path}:make"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"gradcheck: error: {path}:make: the loss or gradient called {shown}"
    )
    assert f"exiting.py, line {9 if where == 'loss' else 13})" in lines[0]
    assert "parameters were restored" in lines[0]
    W = user_module(path).W
    assert W.tobytes() == np.array([0.1, -0.2, 0.3, 1e-300, -0.0]).tobytes()


# issue 12.17: a tabulate.py or html.py beside the user's file is never gradcheck's
def test_modules_beside_the_users_file_do_not_replace_gradchecks_own(tmp_path):
    for shadow in ("tabulate", "html", "json"):
        (tmp_path / f"{shadow}.py").write_text(
            f"raise RuntimeError('the user folder {shadow}.py was imported')\n"
        )
    path = write(tmp_path, GOOD.replace("BUG", " * 2"))
    out = tmp_path / "reports"
    elsewhere = tmp_path / "elsewhere"  # `python -m` puts the working folder first itself
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck", "check", f"{path}:make", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        check=False,
    )
    assert done.returncode == EXIT_MISMATCH, done.stderr
    assert done.stderr == ""
    assert "X   c " in done.stdout
    assert sorted(p.suffix for p in out.iterdir()) == [".html", ".json", ".md"]


# issue 12.13: two targets whose names sanitise alike keep both reports
def test_out_keeps_both_reports_when_names_sanitise_alike(tmp_path, monkeypatch, capsys):
    (tmp_path / "a").mkdir()
    write(tmp_path / "a", GOOD.replace("BUG", ""), "b.py")
    write(tmp_path, GOOD.replace("BUG", " * 2"), "a-b.py")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "reports"
    assert main(["check", "a/b.py:make", "a-b.py:make", "--out", str(out)]) == EXIT_MISMATCH
    capsys.readouterr()
    verdicts = {json.loads(p.read_text())["passed"]: p.read_text() for p in out.glob("*.json")}
    assert sorted(verdicts) == [False, True]
    assert len(list(out.iterdir())) == 6


# issue 12.14: --out that cannot be written is refused before any check runs
def test_unwritable_out_is_refused_up_front(buggy, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file, not a folder")
    code = main(["check", f"{buggy}:make", "--out", str(tmp_path / "taken" / "reports")])
    assert code == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""  # no check ran
    assert captured.err.startswith("gradcheck: error: --out ")
    assert "cannot write reports there" in captured.err
    assert len(captured.err.splitlines()) == 1


# issue 12.14: a report file that cannot be written never hides the verdict and its table
def test_failed_write_is_a_warning_and_the_table_is_still_shown(buggy, tmp_path, capsys):
    out = tmp_path / "reports"
    out.mkdir()
    (out / f"{safe_name(f'{buggy}:make')}.md").mkdir()  # in the way of the Markdown file
    assert main(["check", f"{buggy}:make", "--out", str(out)]) == EXIT_MISMATCH
    captured = capsys.readouterr()
    assert "gradcheck FAILED" in captured.out
    assert "X   c " in captured.out
    (line,) = captured.err.splitlines()
    assert line.startswith("gradcheck: warning: could not write the reports of ")


# issue 12.18: an error message from user code reaches stderr as one visible line
def test_hostile_error_message_is_one_visible_line(tmp_path, capsys):
    path = write(
        tmp_path,
        """
        def make():
            raise ValueError("bad\\x1b[2J\\rhidden\\n# second line\\u202e")
        """,
        "hostile.py",
    )
    assert main(["check", f"{path}:make"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.endswith("raised ValueError: bad\\x1b[2J (" + path + ", line 3)\n")
    assert not re.search("[\x00-\x09\x0b-\x1f\u202a-\u202e]", err)


def test_users_folder_is_importable_only_while_the_file_loads(tmp_path, capsys):
    path = write(
        tmp_path,
        """
        import sys
        import numpy as np
        FOLDER = sys.path[0]
        SEEN = {"load": FOLDER in sys.path}
        def loss(p):
            SEEN["check"] = FOLDER in sys.path
            return float(np.sum(p["w"] ** 2))
        def make():
            SEEN["factory"] = FOLDER in sys.path
            return loss, lambda p: {"w": 2 * p["w"]}, {"w": np.array([1.0, 2.0])}
        """,
        "scoped.py",
    )
    assert main(["check", f"{path}:make"]) == EXIT_OK
    capsys.readouterr()
    module = user_module(path)
    assert str(tmp_path) == module.FOLDER
    assert module.SEEN == {"load": True, "factory": True, "check": False}

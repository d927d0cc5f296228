"""Every example in examples/ runs and says what its docstring promises."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import pytest

from gradcheck.cli import EXIT_MISMATCH, EXIT_OK, main
from tests.helpers.isolated import run_isolated

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_functional_example_script_finds_the_hidden_layer_bug(capsys):
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(EXAMPLES / "functional.py"), run_name="__main__")
    assert stop.value.code == 1
    out = capsys.readouterr().out
    assert "gradcheck FAILED: 2 of 4 parameters" in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("X   ")][:2] == [
        "W1",
        "b1",
    ]
    assert main(["check", f"{EXAMPLES / 'functional.py'}:make_correct"]) == EXIT_OK


def test_asker_style_example_names_every_weight(capsys):
    assert main(["check", f"{EXAMPLES / 'asker_style.py'}:make"]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "14 of 14 parameters" in out
    assert "summing over it gives +0" in out  # the asker's vanishing summed gradient


def test_dict_net_example_transposed_and_one_row(tmp_path, capsys):
    target = f"{EXAMPLES / 'dict_net.py'}:make"
    assert main(["check", target, "--out", str(tmp_path)]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "W2: the hand-written gradient is the transpose of the true one" in out
    assert "group: true = 2 x hand-written for W1[3, 0], W1[3, 1]" in out
    page = next(tmp_path.glob("*.html")).read_text()
    assert page.count("<h3>W") == 3  # heatmaps of W1, W2, W3


def test_pytest_example(pytester):
    shutil.copy(EXAMPLES / "test_with_pytest.py", pytester.path / "test_with_pytest.py")
    result = pytester.runpytest("--gradcheck-seed", "5")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["gradcheck: seed 5;*"])


def test_torch_example(capsys):
    pytest.importorskip("torch")
    assert main(["check", f"{EXAMPLES / 'torch_function.py'}:make"]) == EXIT_MISMATCH
    assert "group: true = 3 x hand-written for w (all 12)" in capsys.readouterr().out


# -- the routes of issue 13: each example plants a bug, shows it caught, and a correct version
# passing; its main() returns 0 only when all of that holds.
@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("list_network.py", "X   weights[0]"),
        ("layer_pair.py", "X   prev_c"),
        ("value_and_grad_net.py", "Whh for Whh.T through time: ['Wxh', 'Whh', 'bh']"),
        ("least_squares.py", "wrong elements: [(1, 1), (2, 1)"),
        ("trust_region.py", "hess with H[0, 1] off: [(0, 1)]"),
    ],
)
def test_route_examples_catch_their_planted_bugs(script, expected, capsys):
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    out = capsys.readouterr().out
    assert stop.value.code == 0, out
    assert expected in out


def test_list_network_example_from_the_command_line(capsys):
    assert main(["check", f"{EXAMPLES / 'list_network.py'}:make"]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "weights[0][1, 1]" in out
    assert "biases[0][0, 0]" in out


def test_jax_example():
    """In a child process: a process that imported JAX must not fork (see jax_cases.py)."""
    done = run_isolated(str(EXAMPLES / "jax_custom_vjp.py"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "correct bwd: passed" in done.stdout
    assert "group: true = 3 x hand-written for w (all 12)" in done.stdout

"""The mutator on a tiny function, and the mutation runner's verdicts on a few real mutants."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.protocol import Problem, Reference
from nets import zoo
from nets.layers import relu_backward, sigmoid_backward
from tools.mutants import Outcome, baselines, classify, exercised, summary
from tools.mutants import main as mutants_main
from tools.mutate import Mutant, applied, mutants, mutated_code


def tiny_backward(dout, cache):
    """d/dx of sum(dout * 2 x.T): a docstring is never mutated."""
    (x,) = cache
    total = dout * 2.0 * x.T
    total += x.sum(axis=0)
    return -total


def test_mutator_enumerates_every_single_node_change():
    found = [(m.kind, m.before, m.after) for m in mutants(tiny_backward)]
    assert found == [
        ("operator", "dout * 2.0 * x.T", "dout * 2.0 / x.T"),
        ("drop", "dout * 2.0 * x.T", "dout * 2.0"),
        ("drop", "dout * 2.0 * x.T", "x.T"),
        ("operator", "dout * 2.0 * x.T", "dout / 2.0 * x.T"),
        ("drop", "dout * 2.0 * x.T", "dout * x.T"),
        ("drop", "dout * 2.0 * x.T", "2.0 * x.T"),
        ("constant", "dout * 2.0 * x.T", "dout * 3.0 * x.T"),
        ("constant", "dout * 2.0 * x.T", "dout * 1.0 * x.T"),
        ("transpose", "dout * 2.0 * x.T", "dout * 2.0 * x"),
        ("accumulate", "total += x.sum(axis=0)", "total = x.sum(axis=0)"),
        ("accumulate", "total += x.sum(axis=0)", "total -= x.sum(axis=0)"),
        ("drop", "total += x.sum(axis=0)", "pass"),
        ("axis", "x.sum(axis=0)", "x.sum()"),
        ("reduce", "x.sum(axis=0)", "x.mean(axis=0)"),
        ("constant", "x.sum(axis=0)", "x.sum(axis=1)"),
        ("constant", "x.sum(axis=0)", "x.sum(axis=-1)"),
        ("drop", "-total", "total"),
    ]
    first = tiny_backward.__code__.co_firstlineno  # the def; docstring and unpacking follow
    assert {m.line for m in mutants(tiny_backward)} == {first + 3, first + 4, first + 5}


def test_applied_mutant_runs_then_the_original_comes_back():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    original = tiny_backward(1.0, (x,))
    by_after = {m.after: m for m in mutants(tiny_backward)}
    with applied(tiny_backward, by_after["dout * 2.0 * x"]):
        np.testing.assert_array_equal(tiny_backward(1.0, (x,)), -(2.0 * x + x.sum(axis=0)))
    np.testing.assert_array_equal(tiny_backward(1.0, (x,)), original)
    with pytest.raises(ZeroDivisionError), applied(tiny_backward, by_after["total"]):
        raise ZeroDivisionError  # the original is restored on the way out of an exception too
    np.testing.assert_array_equal(tiny_backward(1.0, (x,)), original)


def test_mutator_refuses_closures_and_foreign_mutants():
    scale = 2.0

    def closure(dout, cache):
        return dout * scale

    with pytest.raises(ValueError, match="closure"):
        mutants(closure)
    stray = Mutant("elsewhere:f", 999, 0, "drop", 1, "a", "b")
    with pytest.raises(LookupError, match="does not match"):
        mutated_code(tiny_backward, stray)


def _bases(*names):
    return baselines({n: zoo.REGISTRY[n] for n in names})


def test_classify_kills_a_wrong_backward_and_spares_a_subgradient_choice():
    bases = _bases("zoo-sigmoid", "zoo-relu", "zoo-relu-at-kinks")
    hits = exercised(bases, [sigmoid_backward, relu_backward])
    assert hits["nets.layers:sigmoid_backward"] == ["zoo-sigmoid"]
    assert hits["nets.layers:relu_backward"] == ["zoo-relu", "zoo-relu-at-kinks"]
    dropped = next(m for m in mutants(sigmoid_backward) if m.after == "dout * s")
    outcome = classify(sigmoid_backward, dropped, [bases["zoo-sigmoid"]])
    assert (outcome.verdict, outcome.detail) == ("killed", "zoo-sigmoid: wrong at x")
    at_zero = next(m for m in mutants(relu_backward) if m.kind == "compare")
    outcome = classify(relu_backward, at_zero, [bases["zoo-relu"], bases["zoo-relu-at-kinks"]])
    assert outcome.verdict == "equivalent"
    assert "differs only at kinks" in outcome.detail


R = np.array([0.3, -1.2, 2.0])


def nearly_backward(dout, cache):
    """dL/dx of sum(x * r), off by 1e-8 relative: below what a finite difference resolves."""
    (r,) = cache
    return dout * r + dout * r * 1e-8


def _nearly() -> Problem:
    return Problem(
        lambda p: float(p["x"] @ R),
        lambda p: {"x": nearly_backward(1.0, (R,))},
        {"x": np.array([0.5, 0.1, -0.7])},
        "nearly",
    )


def test_classify_reports_a_difference_the_check_cannot_see_as_a_survivor():
    base = baselines({"nearly": Reference("nearly", _nearly, True, "linear")})["nearly"]
    dropped = next(m for m in mutants(nearly_backward) if m.after == "dout * r")
    outcome = classify(nearly_backward, dropped, [base])
    assert outcome.verdict == "survived"
    assert outcome.detail.startswith("nearly: x[2] differs: 2 vs 2")
    divided = next(m for m in mutants(nearly_backward) if m.after.startswith("dout / r +"))
    assert classify(nearly_backward, divided, [base]).verdict == "killed"


def test_unexercised_and_the_summary_score():
    mutant = mutants(tiny_backward)[0]
    assert classify(tiny_backward, mutant, []).verdict == "unexercised"
    outcomes = [
        Outcome(mutant, "killed", "a"),
        Outcome(mutant, "killed", "b", raised=True),
        Outcome(mutant, "killed", "c"),
        Outcome(mutant, "survived", "d"),
        Outcome(mutant, "equivalent", "e"),
    ]
    text = summary(outcomes, 1.0)
    assert "**Score: 3 of 4 non-equivalent mutants caught (75.0%).**" in text
    assert "2 of 3 mutants that return a gradient of the right type" in text
    assert "## Survivors (gaps): 1" in text


# issue 12.15: the entry point loads the installed copy (gradcheck_nets); the mutants are
# planted in the repository's nets.*, so the tool must run the nets of that very package
def test_the_command_kills_mutants_of_the_repositorys_nets(tmp_path, capsys):
    out = tmp_path / "mutants.md"
    assert mutants_main(["--only", "relu_backward", "--out", str(out)]) == 0
    capsys.readouterr()
    assert "| `nets.layers:relu_backward` | 6 | 5 | 1 | 0 |" in out.read_text()

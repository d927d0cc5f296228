"""Every zoo net passes; every catalogued bug fails exactly at the parameters it touches."""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np
import pytest

import nets
from gradcheck import check
from gradcheck.cli import EXIT_MISMATCH, EXIT_OK, build_parser, cmd_check
from gradcheck.protocol import load_references
from nets import bugs, bugs_spatial, zoo

CORRECT = [name for name, ref in zoo.REGISTRY.items() if ref.expect_pass]
BUGGY = [name for name, ref in zoo.REGISTRY.items() if not ref.expect_pass]
LAYERS = (
    "dense",
    "sigmoid",
    "tanh",
    "relu",
    "softmax",
    "cross-entropy",
    "mse",
    "conv2d",
    "maxpool",
    "batchnorm",
    "layernorm",
    "dropout",
    "rnn",
    "attention",
)


def _check(name):
    problem = zoo.REGISTRY[name].build()
    return check(problem.loss, problem.grad, problem.params)


@pytest.mark.parametrize("name", CORRECT)
def test_correct_net_passes(name):
    report = _check(name)
    assert report.passed, report.to_text()
    kinks = sum(p.count("uncertain") for p in report.params)
    if name.endswith("at-kinks"):
        assert kinks > 0, "inputs placed on kinks must be reported uncertain"
    else:
        assert kinks == 0, f"{name} was meant to stay away from kinks"


@pytest.mark.parametrize("name", BUGGY)
def test_bug_fails_exactly_where_it_enters(name):
    ref = zoo.REGISTRY[name]
    report = _check(name)
    assert not report.passed
    assert set(report.failed_params) == set(ref.bug_params), report.to_text()
    for param in report.params:
        if param.failed:  # a wrong value, not a shape slip: the bugs keep shapes right
            assert param.status == "wrong"


@pytest.mark.parametrize(
    "bug", [b for b in zoo.BUGS if b.classes or b.factor], ids=lambda b: b.name
)
def test_diagnosis_names_the_bug(bug):
    report = _check(bug.name)
    diagnosis = report.diagnosis
    if bug.classes:
        named = {str(c) for name in bug.touches for c in diagnosis.classes[name] if c}
        assert named == bug.classes
    if bug.factor is not None:
        factors = [g.factor for g in diagnosis.groups]
        assert any(f == pytest.approx(bug.factor, rel=1e-3) for f in factors), factors


def test_at_kinks_nets_sit_on_their_kinks():
    relu = zoo.build("relu-at-kinks")
    assert np.count_nonzero(relu.params["x"] == 0) == 4
    pool = zoo.build("maxpool-at-kinks").params["x"]
    n, c, h, w = pool.shape
    windows = (
        pool.reshape(n, c, h // 2, 2, w // 2, 2)
        .transpose(0, 1, 2, 4, 3, 5)
        .reshape(n, c, h // 2, w // 2, 4)
    )
    assert ((windows == windows.max(axis=-1, keepdims=True)).sum(axis=-1) >= 2).all()


def test_every_layer_has_at_least_two_bugs():
    for layer in LAYERS:
        assert sum(b.net == layer for b in zoo.BUGS) >= 2, layer


def test_every_bug_function_is_catalogued_once_with_a_one_line_description():
    planted = {b.backward for b in zoo.BUGS}
    for module in (bugs, bugs_spatial):
        public = {
            f
            for n, f in inspect.getmembers(module, inspect.isfunction)
            if f.__module__ == module.__name__ and not n.startswith("_")
        }
        assert public <= planted, public - planted
    for bug in zoo.BUGS:
        summary = (bug.backward.__doc__ or "").strip().split("\n\n")[0]
        assert bug.description
        assert summary == bug.description, f"{bug.name}: the summary must be one line"
        assert bug.touches
    assert len({b.name for b in zoo.BUGS}) == len(zoo.BUGS)


def test_registry_is_merged_and_published():
    assert set(zoo.REGISTRY) <= set(nets.REGISTRY)
    assert set(zoo.REGISTRY) <= set(load_references())


def test_each_zoo_build_is_fresh_and_seeded():
    a, b = zoo.build("conv2d"), zoo.build("conv2d")
    assert a.params["w"] is not b.params["w"]
    np.testing.assert_array_equal(a.params["w"], b.params["w"])
    assert a.loss(a.params) == b.loss(b.params)


def test_check_all_flags_a_bug_caught_at_other_parameters(capsys):
    right = zoo.REGISTRY["bug-dense-db-averaged"]
    wrong = replace(right, bug_params=frozenset({"w"}))
    args = build_parser().parse_args(["check", "--all"])
    assert cmd_check(args, {right.name: right}) == EXIT_OK
    assert "declared to fail; it did fail at b\n" in capsys.readouterr().out
    assert cmd_check(args, {wrong.name: wrong}) == EXIT_MISMATCH
    assert "it did fail at b, declared at w  <-- MISMATCH" in capsys.readouterr().out

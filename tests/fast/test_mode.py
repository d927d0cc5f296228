"""Fast mode: random-direction probes per tensor pass correct nets and name the wrong tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gradcheck
from gradcheck import FastOptions, InputError, LossError
from gradcheck.protocol import load_references
from nets.tanh_mlp import TanhMLP, wrong_elements

PROBES = FastOptions().probes
PER_DIRECTION = 6  # a pilot of 4 evaluations and the probe's 2
BASELINE = 2


def bits(params):
    return {k: np.asarray(v).tobytes() for k, v in params.items()}


def fast(loss, grad, params, **kwargs):
    return gradcheck.check(loss, grad, params, mode="fast", **kwargs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correct_net_passes_with_every_element_probed(dtype, seed):
    net = TanhMLP(dtype=dtype, seed=seed)
    params = net.params()
    before = bits(params)
    report = fast(net.loss, net.grad, params, seed=seed)
    assert report.passed, report.to_text()
    assert bits(params) == before
    for p in report.params:
        assert p.status == "probed"
        assert set(p.statuses.tolist()) == {"probed"}  # never "ok": nothing measured alone
        assert np.isnan(p.numeric).all()
        assert np.isnan(p.rel_err).all()
        assert len(p.probe.probes) == PROBES
        assert all(d["passed"] for d in p.probe.probes)
    assert report.evaluations == BASELINE + len(params) * PROBES * PER_DIRECTION


def test_exactly_zero_partials_pass():
    net = TanhMLP(zero_inputs=4)  # W1[:, :4] do not move the loss: partials exactly 0
    grads = net.grad(net.params())
    assert not grads["W1"][:, :4].any()
    report = fast(net.loss, net.grad, net.params())
    assert report.passed, report.to_text()


def test_evaluations_count_every_loss_call():
    net = TanhMLP()
    calls = []

    def loss(params):
        calls.append(1)
        return net.loss(params)

    report = fast(loss, wrong_elements(net.grad, {"W2": {5: 1e-3}}), net.params())
    assert report.evaluations == len(calls)


@pytest.mark.parametrize(
    ("shifts", "wrong"),
    [
        ({"W2": {5: 1e-3}}, ["W2"]),
        ({"b1": {0: -1e-4}, "W3": {79: 2e-2}}, ["b1", "W3"]),
    ],
)
def test_planted_bug_fails_naming_the_tensors(shifts, wrong):
    net = TanhMLP()
    params = net.params()
    before = bits(params)
    report = fast(net.loss, wrong_elements(net.grad, shifts), params)
    assert not report.passed
    assert report.failed_params == wrong
    assert bits(params) == before
    for name in wrong:
        assert not report[name].probe.probes[0]["passed"]
        assert report[name].probe.proven_wrong == sorted(shifts[name])


def test_missing_gradient_error_in_tensor_names_both_tensors():
    net = TanhMLP(bug="tanh_derivative")  # 1 - h instead of 1 - h**2 in the first layer
    report = fast(net.loss, net.grad, net.params())
    assert report.failed_params == ["W1", "b1"]


def test_asker_nets_with_scalar_parameters():
    refs = load_references()
    good = refs["asker-corrected"].build()
    report = fast(good.loss, good.grad, good.params)
    assert report.passed, report.to_text()
    bad_ref = refs["asker-meant"]
    bad = bad_ref.build()
    params = dict(bad.params)
    report = fast(bad.loss, bad.grad, params)
    assert set(report.failed_params) == set(bad_ref.bug_params)
    assert params == dict(bad.params)
    for name in report.failed_params:  # a scalar's probe is its own central difference
        assert report[name].probe.proven_wrong == [0]


def test_unusable_gradients_are_reported_without_probing():
    net = TanhMLP()

    def grad(params):
        g = net.grad(params)
        g["W1"][0, 0] = np.nan
        del g["b3"]
        g["W3"] = g["W3"].T
        return g

    report = fast(net.loss, grad, net.params())
    assert report["b3"].status == "no_gradient"
    assert report["b3"].probe is None
    assert report["W3"].status == "shape_mismatch"
    w1 = report["W1"]
    assert w1.statuses[0] == "nonfinite"
    assert set(w1.statuses[1:].tolist()) == {"probed"}
    assert report.failed_params == ["W1", "W3", "b3"]


def test_report_renders_new_statuses_and_is_strict_json():
    net = TanhMLP(bug="tanh_derivative")
    report = fast(net.loss, net.grad, net.params())
    text = report.to_text()
    assert "Fast mode:" in text
    assert "probed" in text
    assert "unchecked" in text
    assert "proven wrong" in text
    data = json.loads(report.to_json())
    assert data["options"]["mode"] == "fast"
    assert data["options"]["seed"] == 0
    statuses = {e["status"] for e in data["entries"]}
    assert {"probed", "unchecked", "wrong"} <= statuses
    w1 = next(p for p in data["params"] if p["name"] == "W1")
    assert w1["probe"]["localization_evaluations"] > 0
    assert w1["probe"]["proven_wrong"]
    assert "### Fast mode" in report.to_markdown()
    from gradcheck.report.html import render_html

    assert '<section id="fast"><h2>Fast mode</h2>' in render_html(report)
    assert report.diagnosis is None  # a few measured elements are no basis for one
    assert any("run the full check on the failing parameters" in n for n in report.notes)


def test_same_seed_same_report_other_seed_other_directions():
    net = TanhMLP()
    one = fast(net.loss, net.grad, net.params(), seed=3).to_json()
    assert fast(net.loss, net.grad, net.params(), seed=3).to_json() == one
    assert fast(net.loss, net.grad, net.params(), seed=4).to_json() != one


def test_full_mode_stays_the_default_and_never_probes():
    net = TanhMLP(sizes=(3, 4, 2))
    report = gradcheck.check(net.loss, net.grad, net.params())
    assert report.options["mode"] == "full"
    assert all(p.probe is None for p in report.params)
    assert set(np.concatenate([p.statuses for p in report.params]).tolist()) == {"ok"}


def test_parameters_restored_when_the_loss_raises_mid_probe():
    net = TanhMLP()
    params = net.params()
    before = bits(params)
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == 9:
            raise FloatingPointError("boom")
        return net.loss(p)

    with pytest.raises(LossError, match="boom"):
        fast(loss, net.grad, params)
    assert bits(params) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "quick"}, "mode must be"),
        ({"seed": -1}, "seed must be"),
        ({"seed": 1.5}, "seed must be"),
        ({"fast": {"probes": 2}}, "FastOptions"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    net = TanhMLP(sizes=(3, 2))
    with pytest.raises(InputError, match=message):
        gradcheck.check(net.loss, net.grad, net.params(), **kwargs)


def test_fast_options_validate():
    with pytest.raises(ValueError, match="probes"):
        FastOptions(probes=0)
    with pytest.raises(ValueError, match="false_alarm"):
        FastOptions(false_alarm=1.0)


# issue 12 items 4 and 10: FastOptions refused with ValueError/TypeError, or not at all
@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"probes": 0}, "probes"),
        ({"probes": 2.0}, "probes"),
        ({"max_wrong": True}, "max_wrong"),
        ({"fallback_samples": "4"}, "fallback_samples"),
        ({"false_alarm": float("nan")}, "false_alarm"),
        ({"false_alarm": float("inf")}, "false_alarm"),
        ({"false_alarm": 5e-324}, "false_alarm"),
        ({"false_alarm": "1e-9"}, "false_alarm"),
    ],
)
def test_bad_fast_options_are_input_errors_naming_the_option(kwargs, option):
    with pytest.raises(InputError, match=rf"FastOptions\.{option} must be"):
        FastOptions(**kwargs)

"""check(): verdicts, statuses, restoration, and the Report's schema."""

from __future__ import annotations

import json
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import numpy as np
import pytest

import gradcheck
from gradcheck import LossError, check
from tests.helpers.snapshot import assert_unchanged, snapshot

# --- from test_check.py ----------------------------------------


def quadratic():
    """L = sum(a * W**2) + b * s, with W a matrix and s a Python float."""
    a = np.arange(1.0, 7.0).reshape(2, 3)
    params = {"W": np.linspace(-1, 1, 6).reshape(2, 3), "s": 0.75}

    def loss(p):
        return float(np.sum(a * p["W"] ** 2) + 3.0 * p["s"] ** 2)

    def grad(p):
        return {"W": 2 * a * p["W"], "s": 6.0 * p["s"]}

    return loss, grad, params


def test_correct_gradient_passes():
    loss, grad, params = quadratic()
    report = check(loss, grad, params)
    assert report.passed
    assert [p.status for p in report.params] == ["ok", "ok"]
    assert report.failed_params == []


def test_one_wrong_element_is_pinpointed():
    loss, grad, params = quadratic()

    def bad(p):
        g = grad(p)
        g["W"][1, 2] *= -1
        return g

    report = check(loss, bad, params)
    assert not report.passed
    assert report.failed_params == ["W"]
    w = report["W"]
    assert w.n_wrong == 1
    assert w.worst_index == (1, 2)
    wrong = [e for e in report.entries if e.status == "wrong"]
    assert [(e.param, e.index) for e in wrong] == [("W", (1, 2))]
    assert wrong[0].rel_err == pytest.approx(2.0)


def test_shape_mismatch_is_reported_with_both_shapes_not_raised():
    loss, grad, params = quadratic()
    report = check(loss, lambda p: {**grad(p), "s": np.array([6 * p["s"], 0.0])}, params)
    s = report["s"]
    assert s.status == "shape_mismatch"
    assert s.shape == ()
    assert s.grad_shape == (2,)
    assert report["W"].status == "ok"
    assert "s: the gradient has shape (2,), the parameter ()" in report.to_text()


def test_missing_and_extra_gradient_names_are_reported_by_name():
    loss, grad, params = quadratic()
    report = check(loss, lambda p: {"W": grad(p)["W"], "bias": 1.0}, params)
    assert report["s"].status == "no_gradient"
    assert report.extra_gradients == ["bias"]
    text = report.to_text()
    assert "s: no hand-written gradient was returned" in text
    assert "bias: the gradient function returned it, but it is not a parameter" in text
    assert not report.passed


# QA: an extra entry holding a list (a Nielsen net's "weights" left out of params) raised
# "gradient for 'weights' could not be read as an array" instead of being reported by name.
@pytest.mark.parametrize("extra", [[np.ones(2), np.ones(3)], {"a": np.ones(2)}, None])
def test_an_extra_gradient_of_any_kind_is_reported_by_name(extra):
    loss, grad, params = quadratic()
    report = check(loss, lambda p: {**grad(p), "weights": extra}, params)
    assert report.passed, report.to_text()
    assert report.extra_gradients == ["weights"]


def test_nonfinite_gradient():
    loss, grad, params = quadratic()
    report = check(loss, lambda p: {**grad(p), "s": float("nan")}, params)
    assert report["s"].status == "nonfinite"


def test_zero_partials_raise_no_false_alarm():
    """A parameter the loss ignores, and partials that are exactly zero."""
    params = {"used": np.array([0.0, 1.0, -2.0]), "unused": np.array([3.0, 4.0])}
    report = check(
        lambda p: float(np.sum(p["used"] ** 3)),
        lambda p: {"used": 3 * p["used"] ** 2, "unused": np.zeros(2)},
        params,
    )
    assert report.passed
    assert report["unused"].numeric.tolist() == [0.0, 0.0]


def test_tiny_gradients_raise_no_false_alarm():
    params = {"x": np.array([1e-3, -2e-3, 5e-4])}
    report = check(
        lambda p: 1.0 + 1e-9 * float(np.sum(p["x"] ** 2)), lambda p: {"x": 2e-9 * p["x"]}, params
    )
    assert report.passed


def test_tiny_gradient_that_is_wrong_is_caught():
    params = {"x": np.array([0.5, -0.3])}
    report = check(
        lambda p: 1e-6 * float(np.sum(p["x"] ** 2)), lambda p: {"x": 1e-6 * p["x"]}, params
    )  # missing factor 2
    assert report.failed_params == ["x"]
    assert report["x"].n_wrong == 2


def test_parameters_bitwise_restored_after_success_and_failure():
    loss, grad, params = quadratic()
    params["W"][0, 0] = -0.0
    before = snapshot(params)
    check(loss, grad, params)
    assert_unchanged(before)
    check(loss, lambda p: {"W": -grad(p)["W"], "s": 0.0}, params)
    assert_unchanged(before)


def test_parameters_bitwise_restored_after_exception_in_loss():
    loss, grad, params = quadratic()
    held = params["W"]  # a reference the user keeps
    before = snapshot(params)
    calls = {"n": 0}

    def flaky(p):
        calls["n"] += 1
        if calls["n"] == 7:
            raise ZeroDivisionError("boom")
        return loss(p)

    with pytest.raises(LossError, match=r"ZeroDivisionError: boom with W\[\d, \d\] moved to"):
        check(flaky, grad, params)
    assert_unchanged(before)
    assert held is params["W"]


def test_parameters_bitwise_restored_after_keyboard_interrupt():
    loss, grad, params = quadratic()
    before = snapshot(params)
    calls = {"n": 0}

    def interrupted(p):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return loss(p)

    with pytest.raises(KeyboardInterrupt):
        check(interrupted, grad, params)
    assert_unchanged(before)


def test_closures_reading_the_users_arrays_see_perturbations():
    """The loss may ignore its argument and read the arrays it closes over."""
    w = np.array([1.0, 2.0])
    report = check(lambda _: float(np.sum(w**2)), lambda _: {"w": 2 * w}, {"w": w})
    assert report.passed
    assert np.abs(report["w"].numeric - [2.0, 4.0]).max() < 1e-8


def test_evaluations_are_counted():
    calls = {"n": 0}
    loss, grad, params = quadratic()

    def counting(p):
        calls["n"] += 1
        return loss(p)

    report = check(counting, grad, params)
    assert report.evaluations == calls["n"]


def test_json_schema():
    loss, grad, params = quadratic()
    data = json.loads(check(loss, lambda p: {**grad(p), "s": 0.0}, params).to_json())
    assert data["passed"] is False
    assert isinstance(data["evaluations"], int)
    assert {
        "name",
        "shape",
        "grad_shape",
        "status",
        "max_abs_err",
        "max_rel_err",
        "n_wrong",
    } <= set(data["params"][0])
    entry = data["entries"][0]
    assert {"param", "index", "analytic", "numeric", "abs_err", "rel_err", "status"} <= set(entry)
    assert entry["param"] == "W"
    assert entry["index"] == [0, 0]
    assert [p["status"] for p in data["params"]] == ["ok", "wrong"]
    assert len(data["entries"]) == 7


def test_json_has_null_for_missing_analytic():
    loss, grad, params = quadratic()
    data = json.loads(check(loss, lambda p: {"W": grad(p)["W"]}, params).to_json())
    s = next(e for e in data["entries"] if e["param"] == "s")
    assert s["analytic"] is None
    assert s["status"] == "no_gradient"
    assert data["params"][1]["grad_shape"] is None


def test_large_tensors_are_summarised_unless_asked():
    params = {"v": np.linspace(-1, 1, 30)}
    report = check(lambda p: float(np.sum(p["v"] ** 2)), lambda p: {"v": 2 * p["v"]}, params)
    assert "v: 20 more elements not shown (0 failing)" in report.to_text()
    assert report.to_text(max_rows=None).count("\n    v[") == 30


def test_report_has_no_truth_value():
    loss, grad, params = quadratic()
    report = check(loss, grad, params)
    with pytest.raises(TypeError, match=r"report\.passed"):
        bool(report)


# --- from test_robustness_memory.py ----------------------------------------

# bytes per parameter the whole check may hold at its peak: its per-element work arrays (steps,
# loss values, partials, errors, statuses) and the report with its diagnosis, about 250 bytes
# measured at P = 50,000; a constant, where P x P would be 8 P bytes per element
BYTES_PER_PARAM = 64 * 8


def _problem(size: int):
    w = np.linspace(-1.0, 1.0, size)
    middle = size // 2

    def loss(p):
        v = p["w"]
        return float(v[0] * v[0] + 3.0 * v[middle] - v[-1] ** 3)

    def grad(p):
        v = p["w"]
        g = np.zeros(size)
        g[0], g[middle], g[-1] = 2.0 * v[0], 3.0, -3.0 * v[-1] ** 2
        return {"w": g}

    return loss, grad, {"w": w}


def _peak(size: int) -> tuple[int, gradcheck.Report]:
    loss, grad, params = _problem(size)
    snap = snapshot(params)
    tracemalloc.start()
    try:
        report = gradcheck.check(loss, grad, params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_unchanged(snap)
    return peak, report


def test_memory_is_linear_in_the_parameter_count():
    small, big = 12_500, 50_000
    peak_small, _ = _peak(small)
    peak_big, report = _peak(big)
    assert report.passed
    assert report.evaluations >= 2 * big
    assert peak_big < BYTES_PER_PARAM * big
    # four times the parameters, at most about four times the memory (P x P would be 16x)
    assert peak_big < 5 * peak_small


# --- small parameters differentiated as one group ------------------------------------------
class ManySmall:
    """Scalars (float, NumPy float, int), small arrays of two dtypes and one gradient off."""

    params: ClassVar[dict] = {
        "w1": 0.4,
        "w2": np.float64(-0.7),
        "w3": 2,
        "v": np.array([0.3, -0.2, 0.9]),
        "f": np.array([[0.5, -1.5]], dtype=np.float32),
        "w4": 1.3,
        "g": np.array([0.2, 0.1], dtype=np.float32),
    }

    @staticmethod
    def loss(p):
        v, f, g = p["v"], p["f"].astype(np.float64), p["g"].astype(np.float64)
        core = np.sin(p["w1"] * v).sum() + p["w2"] * np.cos(v).sum() + 0.1 * p["w3"] ** 2
        return float(core + np.tanh(f).sum() * p["w4"] + (g**2).sum() + p["w1"] * p["w4"])

    @staticmethod
    def grad(p):
        v = p["v"]
        f, g = p["f"].astype(np.float64), p["g"].astype(np.float64)
        return {
            "w1": float((v * np.cos(p["w1"] * v)).sum()) + p["w4"],
            "w2": float(np.cos(v).sum()),
            "w3": 0.2 * p["w3"] + 0.01,  # planted: off by 0.01
            "v": p["w1"] * np.cos(p["w1"] * v) - p["w2"] * np.sin(v),
            "f": (1 - np.tanh(f) ** 2) * p["w4"],
            "w4": float(np.tanh(f).sum()) + p["w1"],
            "g": 2 * g,
        }


def _fresh(params):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in params.items()}


def test_grouped_small_parameters_give_the_per_parameter_report():
    net = ManySmall()
    params = _fresh(net.params)
    before = snapshot(params)
    grouped = check(net.loss, net.grad, params)  # serial: small tensors go as groups
    assert_unchanged(before)
    with ThreadPoolExecutor(max_workers=1) as pool:  # an executor: one parameter at a time
        alone = check(net.loss, net.grad, _fresh(net.params), executor=pool)
    grouped_data, alone_data = json.loads(grouped.to_json()), json.loads(alone.to_json())
    assert alone_data.pop("evaluations") == grouped_data.pop("evaluations") + 1  # spot check
    assert grouped_data == alone_data  # every number, status and name, bit for bit
    assert grouped.failed_params == ["w3"]
    assert [p.name for p in grouped.params] == list(net.params)


def test_loss_raising_inside_a_group_names_the_real_element():
    net = ManySmall()

    def loss(p):
        if p["w4"] != 1.3:
            raise ArithmeticError("w4 moved")
        return net.loss(p)

    params = _fresh(net.params)
    before = snapshot(params)
    with pytest.raises(LossError, match=r"ArithmeticError: w4 moved with w4 moved to "):
        check(loss, net.grad, params)
    assert_unchanged(before)


def test_loss_rebinding_a_scalar_of_a_group_is_refused():
    net = ManySmall()
    calls = []

    def loss(p):
        calls.append(1)
        if len(calls) == 20:  # inside the first group's pass
            p["w2"] = 5.0
        return net.loss(p)

    with pytest.raises(gradcheck.StateMutationError, match=r"'w2' changed"):
        check(loss, net.grad, _fresh(net.params))


# issue 12 item 10: check's own option validation raised TypeError (dims=[1, 2], samples=5) or
# accepted a truthy string for a flag (richardson="no")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"richardson": "no"}, "richardson must be True or False"),
        ({"richardson": 1}, "richardson must be True or False"),
        ({"dims": [1, 2]}, "dims must be a dict of name -> size"),
        ({"dims": {"batch": 0}}, "dims must map names to positive ints, got 'batch': 0"),
        ({"dims": {"batch": 2.5}}, "dims must map names to positive ints"),
        ({"dims": {3: 3}}, "dims must map names to positive ints"),
        ({"samples": 5}, "samples must be a list of Problem or"),
        ({"samples": "ab"}, "samples must be a list of Problem or"),
        ({"samples": [5]}, r"samples\[0\] must be a Problem"),
        ({"mode": ["fast"]}, "mode must be 'full' or 'fast'"),
        ({"seed": "0"}, "seed must be a non-negative int"),
        ({"progress": 3}, "progress must be callable"),
        ({"nodes": 3}, "nodes must be callable"),
        ({"tolerance": 1e-6}, r"tolerance must be a gradcheck\.Tolerance"),
        ({"fast": {"probes": 1}}, r"fast must be a gradcheck\.FastOptions"),
    ],
)
def test_bad_options_are_input_errors_naming_the_option(kwargs, message):
    loss, grad, params = quadratic()
    snap = snapshot(params)
    with pytest.raises(gradcheck.InputError, match=message):
        check(loss, grad, params, **kwargs)
    assert_unchanged(snap)


# issue 12.3: sys.exit() in user code during a check ends the check, never the restoration
@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("where", ["loss", "grad"])
def test_sys_exit_from_user_code_propagates_with_parameters_restored(where, threads):
    loss, grad, params = quadratic()
    calls = []

    def exiting_loss(p):
        calls.append(1)
        if where == "loss" and len(calls) == 5:
            raise SystemExit(3)
        return loss(p)

    def exiting_grad(p):
        if where == "grad":
            raise SystemExit(3)
        return grad(p)

    before = snapshot(params)
    pool = ThreadPoolExecutor(threads) if threads else None
    try:
        with pytest.raises(SystemExit):
            check(exiting_loss, exiting_grad, params, executor=pool)
    finally:
        if pool is not None:
            pool.shutdown()
    assert_unchanged(before)


def test_per_sample_rechecks_cover_only_the_batch_checks_failing_parameters():
    """W is right, s is wrong: each sample re-checks s alone (the loss still sees W)."""
    loss, grad, params = quadratic()

    def wrong_s(p):
        g = grad(p)
        g["s"] = 2 * g["s"]
        return g

    batch = check(loss, wrong_s, params)
    report = check(loss, wrong_s, params, samples=[(loss, wrong_s), (loss, wrong_s)])
    assert report.failed_params == ["s"]
    for sample in report.samples:
        assert [p.name for p in sample.params] == ["s"]
        assert sample.failed_params == ["s"]
        assert "re-checked only the batch check's failing parameters: s" in sample.notes
    assert report.evaluations < 3 * batch.evaluations  # two full sample checks would be 3x
    passing = check(loss, grad, params, samples=[(loss, grad)])
    assert [p.name for p in passing.samples[0].params] == ["W", "s"]


# The full check of a correct net costs 2P evaluations, the baseline's 2, and one pilot shared
# by all small tensors: a noise table (6) and a step ladder on 3 elements (2 per level, at most 3
# levels each on a smooth loss). The asker's 14 scalars once paid that pilot per scalar.
ASKER_SCALARS = 14
SHARED_PILOT_AT_MOST = 6 + 3 * 3 * 2


def test_a_correct_14_scalar_net_costs_2p_and_one_shared_pilot():
    from nets import asker

    net = asker.problem(asker.CorrectedNet)
    calls = {"n": 0}

    def loss(p):
        calls["n"] += 1
        return net.loss(p)

    report = check(loss, net.grad, net.params)
    assert report.passed
    assert len(report.params) == ASKER_SCALARS
    assert report.evaluations == calls["n"]
    assert report.evaluations <= 2 + 2 * ASKER_SCALARS + SHARED_PILOT_AT_MOST  # 52


class ReluLayer:
    """A ReLU layer and a readout, 276 parameters in tensors of 12 to 132 elements (one group
    up to OWN_PILOT_MIN), after a tensor ``E`` big enough for a pilot of its own (its pilot
    runs first, and measures the noise, grouped or not): kinks where units sit near 0, and
    ``W1``'s partials twice their size when ``wrong``, a tensor wrong almost everywhere (its
    refinement is sampled, per tensor)."""

    def __init__(self, wrong: bool = False):
        rng = np.random.default_rng(5)
        self.x = rng.normal(size=(8, 10))
        self.wrong = wrong
        self.params = {
            "E": rng.normal(size=(40, 30)),
            "W1": rng.normal(size=(10, 12)) * 0.5,
            "b1": rng.normal(size=12) * 0.1,
            "w2": rng.normal(size=12),
            "W3": rng.normal(size=(11, 12)) * 0.3,
        }

    def loss(self, p):
        h = np.maximum(self.x @ p["W1"] + p["b1"], 0.0)
        tails = 0.5 * np.sum(np.tanh(p["W3"]) ** 2) + np.sum(np.cos(p["E"]))
        return float(np.sum(h @ p["w2"]) + tails)

    def grad(self, p):
        z = self.x @ p["W1"] + p["b1"]
        dz = (z > 0) * p["w2"]  # d loss / dz, one row per sample
        t = np.tanh(p["W3"])
        return {
            "W1": self.x.T @ dz * (2.0 if self.wrong else 1.0),
            "b1": dz.sum(axis=0),
            "w2": np.maximum(z, 0.0).sum(axis=0),
            "W3": t * (1 - t**2),
            "E": -np.sin(p["E"]),
        }


@pytest.mark.parametrize("wrong", [False, True])
def test_a_group_of_tensors_over_64_elements_gives_the_per_parameter_report(wrong):
    # the group's per-tensor choices are each member's own: W1 wrong almost everywhere has its
    # refinement sampled (and says so under its own name) as it would alone
    net = ReluLayer(wrong)
    grouped = check(net.loss, net.grad, _fresh(net.params))
    with ThreadPoolExecutor(max_workers=1) as pool:  # an executor: one parameter at a time
        alone = check(net.loss, net.grad, _fresh(net.params), executor=pool)
    grouped_data, alone_data = json.loads(grouped.to_json()), json.loads(alone.to_json())
    assert alone_data.pop("evaluations") == grouped_data.pop("evaluations") + 1  # spot check
    assert grouped_data == alone_data
    assert grouped.failed_params == (["W1"] if wrong else [])
    sampled = [note for note in grouped.notes if "a sample of" in note]
    assert [note.split(":")[0] for note in sampled] == (["W1"] if wrong else [])


def test_a_group_whose_members_differ_in_main_pass_order_goes_alone(monkeypatch):
    # log(a**2 + 1e-10) at a ~ 1e-6 beside 10 sin(v): the fourth-order main pass is weighed per
    # member; made to pay for a's 8 elements only, the members are differentiated one by one,
    # each exactly as it would be alone (on an executor)
    import gradcheck.core.differences as differences
    from nets.hard_numerics import CASES

    case = CASES["tiny-log-1e-6"]()
    v0 = np.linspace(-1.0, 1.0, 70)

    def loss(p):
        return case.loss({"a": p["a"]}) + 10.0 * float(np.sum(np.sin(p["v"])))

    def grad(p):
        return {"a": case.grad({"a": p["a"]})["a"], "v": 10.0 * np.cos(p["v"])}

    pays = differences.fourth_order_pays_per

    def only_a(central, fourth, slope, analytic, starts):  # a's 8 elements come first
        return pays(central, fourth, slope, analytic, starts) & (np.diff(starts) == 8)

    monkeypatch.setattr(differences, "fourth_order_pays_per", only_a)
    uniform = []
    real = differences.FiniteDifferences.uniform_order

    def spy(self, name, analytic):
        uniform.append(real(self, name, analytic))
        return uniform[-1]

    monkeypatch.setattr(differences.FiniteDifferences, "uniform_order", spy)
    params = {"a": np.array(case.params["a"], copy=True), "v": v0.copy()}
    grouped = check(loss, grad, params)
    assert uniform == [False]
    with ThreadPoolExecutor(max_workers=1) as pool:
        alone = check(loss, grad, {"a": params["a"].copy(), "v": v0.copy()}, executor=pool)
    grouped_data, alone_data = json.loads(grouped.to_json()), json.loads(alone.to_json())
    assert alone_data.pop("evaluations") == grouped_data.pop("evaluations") + 1  # spot check
    assert grouped_data == alone_data
    assert [note.split(":")[0] for note in grouped.notes if "fourth order" in note] == ["a"]
    assert not grouped.failed_params


def test_a_loss_writing_into_a_member_between_runs_of_a_group_is_refused():
    # long runs go through each member's own writer; the member about to be perturbed must
    # still hold its snapshot (a write into it would be hidden by its own restores)
    net = ReluLayer()
    params = _fresh(net.params)
    before = snapshot(params)
    w1 = params["W1"].copy()
    wrote = []

    def loss(p):
        if not wrote and not np.array_equal(p["W1"], w1):  # W1's run: into W3, run later
            p["W3"][0, 0] += 1.0
            wrote.append(1)
        return net.loss(p)

    with pytest.raises(gradcheck.StateMutationError, match=r"'W3' changed while 'W1', .*"):
        check(loss, net.grad, params)
    assert_unchanged(before)  # the loss's write undone too


def test_grouped_results_are_read_only_and_own_their_names():
    net = ManySmall()
    report = check(net.loss, net.grad, _fresh(net.params))
    for p in report.params:  # a group's members get slices of the group's read-only arrays
        assert not p.numeric.flags.writeable
        assert not p.codes.flags.writeable
        assert p.status == ("wrong" if p.name == "w3" else "ok")
    assert report["w3"].n_wrong == 1
    assert report["w1"].n_wrong == 0


def test_default_options_are_validated_once_and_other_values_still_each_time():
    # CheckOptions.build returns one frozen default object for check()'s defaults; a value
    # that only compares equal to a default (0 for False, 0.0 or False for the seed) is still
    # validated and refused
    from gradcheck.errors import InputError
    from gradcheck.options import CheckOptions

    assert CheckOptions.build() is CheckOptions.build()
    assert CheckOptions.build() == CheckOptions()
    assert CheckOptions.build(richardson=True).richardson is True
    for bad in ({"richardson": 0}, {"seed": False}, {"seed": 0.0}):
        with pytest.raises(InputError):
            CheckOptions.build(**bad)

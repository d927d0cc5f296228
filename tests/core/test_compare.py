"""Bad hand-written gradients: a clear report status per parameter when the values are there
but unusable, a clear error when they are not numbers at all; parameters always unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck
from gradcheck import InputError
from tests.helpers import smooth
from tests.helpers.snapshot import assert_unchanged, snapshot


def _params():
    return {"W": np.array([[0.5, -1.0], [1.5, 0.25]]), "b": np.array([0.1, -0.2])}


def _with(**changes):
    """The correct gradient with some entries replaced (``...`` removes the entry)."""

    def grad(params):
        out = smooth.grad(params)
        for name, value in changes.items():
            if value is ...:
                del out[name]
            else:
                out[name] = value(out[name]) if callable(value) else value
        return out

    return grad


# (id, gradient function, status of W, status of b, a phrase the text report must contain)
STATUSES = [
    ("missing-name", _with(W=...), "no_gradient", "ok", "W: no hand-written gradient was returned"),
    ("none", _with(W=None), "no_gradient", "ok", "W: no hand-written gradient was returned"),
    ("wrong-shape", _with(b=lambda g: g.reshape(2, 1)), "ok", "shape_mismatch", "b"),
    ("transposed", _with(W=lambda g: g.T[:, :1]), "shape_mismatch", "ok", "W"),
    ("nan", _with(b=lambda g: np.array([g[0], np.nan])), "ok", "nonfinite", "b[1]"),
    ("inf", _with(W=lambda g: np.where(g > 1, np.inf, g)), "nonfinite", "ok", "W[1, 0]"),
]


@pytest.mark.parametrize(
    ("grad", "status_w", "status_b", "phrase"),
    [c[1:] for c in STATUSES],
    ids=[c[0] for c in STATUSES],
)
def test_unusable_gradient_entries_get_a_failing_status(grad, status_w, status_b, phrase):
    params = _params()
    snap = snapshot(params)
    report = gradcheck.check(smooth.loss, grad, params)
    assert (report["W"].status, report["b"].status) == (status_w, status_b)
    assert not report.passed
    assert phrase in report.to_text()
    assert_unchanged(snap)


def test_extra_name_is_reported_and_does_not_fail_the_check():
    params = _params()
    report = gradcheck.check(smooth.loss, _with(x=np.zeros(3)), params)
    assert report.passed
    assert report.extra_gradients == ["x"]
    assert "x: the gradient function returned it, but it is not a parameter" in report.to_text()


def test_misspelt_name_fails_the_real_one_and_lists_the_typo():
    params = _params()
    report = gradcheck.check(
        smooth.loss, lambda p: {"w": smooth.grad(p)["W"], "b": smooth.grad(p)["b"]}, params
    )
    assert report.failed_params == ["W"]
    assert report.extra_gradients == ["w"]


def test_integer_gradient_is_compared_as_float():
    # an int array is a legitimate gradient (d(3w)/dw = 3); only its values matter
    params = {"w": np.array([0.5, -1.5])}
    report = gradcheck.check(
        lambda p: float(np.sum(3 * p["w"])), lambda p: {"w": np.array([3, 3])}, params
    )
    assert report.passed
    wrong = gradcheck.check(
        lambda p: float(np.sum(3 * p["w"])), lambda p: {"w": np.array([3, 2])}, params
    )
    assert [e.index for e in wrong.entries if e.status == "wrong"] == [(1,)]


def test_float32_gradient_of_float32_parameters_is_fine():
    params = {k: v.astype(np.float32) for k, v in _params().items()}
    grad = _with(W=lambda g: g.astype(np.float32), b=lambda g: g.astype(np.float32))
    assert gradcheck.check(smooth.loss, grad, params).passed


# (id, gradient function, pattern of the message)
REFUSED = [
    (
        "object-dtype",
        _with(W=np.array([object(), object()])),
        r"gradient for 'W' has dtype object; expected a float or a float ndarray",
    ),
    ("string", _with(b="0.1, -0.2"), r"gradient for 'b' has dtype <U9; expected a float"),
    ("ragged", _with(W=[[1.0, 2.0], [3.0]]), r"gradient for 'W' could not be read as an array"),
    ("complex", _with(b=lambda g: g + 0j), r"gradient for 'b' is complex; expected real values"),
    (
        "not-a-dict",
        lambda p: (smooth.grad(p)["W"], smooth.grad(p)["b"]),
        r"grad must return a dict name -> array \(one entry per parameter\), got tuple",
    ),
    ("none-returned", lambda p: None, r"grad must return a dict .*got NoneType"),
]


@pytest.mark.parametrize(("grad", "pattern"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_gradient_that_is_not_numbers_is_refused(grad, pattern):
    params = _params()
    snap = snapshot(params)
    with pytest.raises(InputError, match=pattern):
        gradcheck.check(smooth.loss, grad, params)
    assert_unchanged(snap)


def test_gradient_returning_views_of_a_reused_buffer_is_copied():
    # some backward passes write every gradient into one workspace and return views of it
    workspace = np.zeros(6)
    params = _params()

    def grad(p):
        full = smooth.grad(p)
        workspace[:4] = full["W"].ravel()
        workspace[4:] = full["b"]
        out = {"W": workspace[:4].reshape(2, 2), "b": workspace[4:]}
        return out

    report = gradcheck.check(smooth.loss, grad, params)
    workspace[:] = 99.0  # scribbled over after the call: the check must hold its own copy
    assert report.passed
    assert report["b"].analytic.tolist() == smooth.grad(params)["b"].tolist()


def test_a_masked_gradient_is_refused():
    # issue 12 item 12 sibling: np.asarray dropped the mask and compared the hidden values
    params = _params()
    snap = snapshot(params)
    masked = _with(b=lambda g: np.ma.array(g, mask=[True, False]))
    with pytest.raises(InputError, match=r"gradient for 'b' is a masked array \(numpy\.ma\)"):
        gradcheck.check(smooth.loss, masked, params)
    assert_unchanged(snap)


def _differences(n, **fields):
    """TensorDifferences of ``n`` elements: numeric 1, tiny error, not refined, overridable."""
    from gradcheck.core.differences import TensorDifferences

    arrays = {
        "numeric": np.ones(n),
        "error": np.full(n, 1e-12),
        "step": np.full(n, 1e-5),
        "forward": np.full(n, np.nan),
        "backward": np.full(n, np.nan),
        "slack": np.full(n, np.nan),
        "kink": np.zeros(n, dtype=bool),
        "refined": np.zeros(n, dtype=bool),
    }
    arrays.update(fields)
    return TensorDifferences(**arrays, third=0.0, rtol=1e-8)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_an_element_whose_tolerance_is_not_finite_fails_closed(bad):
    # issue 12 item 2: an infinite tolerance passed a 10x wrong partial
    from gradcheck.core.compare import compare
    from gradcheck.core.params import ParamSet

    pset = ParamSet({"w": np.array([0.5, 0.6])})
    result = compare(
        pset["w"],
        np.array([10.0, 1.0]),
        _differences(2, error=np.array([bad, 1e-12])),
        gradcheck.Tolerance(),
    )
    assert result.statuses.tolist() == ["nonfinite", "ok"]
    assert result.failed


def test_a_kink_with_an_infinite_margin_is_not_a_subgradient():
    from gradcheck.core.compare import compare
    from gradcheck.core.params import ParamSet

    pset = ParamSet({"w": np.array([0.5])})
    fd = _differences(
        1,
        numeric=np.array([0.0]),
        forward=np.array([1.0]),
        backward=np.array([-1.0]),
        slack=np.array([np.inf]),
        kink=np.array([True]),
    )
    result = compare(pset["w"], np.array([50.0]), fd, gradcheck.Tolerance())
    assert result.statuses.tolist() == ["wrong"]


def test_a_wrong_gradient_of_a_loss_near_the_float64_limit_never_passes():
    # issue 12 item 2 sibling: the pilot's third derivative (6e307, times its margin) overflowed
    # to inf, every tolerance became inf and a factor-2 wrong gradient PASSED the full check
    scale = 1e307
    report = gradcheck.check(
        lambda p: float(scale * np.sum(p["w"] ** 3)),
        lambda p: {"w": 2.0 * (3.0 * scale * p["w"] ** 2)},  # finite: up to 2.9e307
        {"w": np.array([0.5, 0.6, 0.7])},
    )
    assert np.isfinite(report["w"].analytic).all()
    assert not report.passed
    assert set(report["w"].statuses.tolist()) <= {"wrong", "nonfinite"}


def test_a_kinked_element_is_judged_beside_a_smooth_one():
    # compare judges kinks only when the tensor has one: a tensor with one kink still gets
    # its subgradient verdicts (inside: uncertain, outside: wrong), its smooth elements theirs
    from gradcheck.core.compare import compare
    from gradcheck.core.params import ParamSet

    pset = ParamSet({"w": np.array([0.5, 0.6, 0.7])})
    fd = _differences(
        3,
        numeric=np.array([0.0, 0.0, 1.0]),
        forward=np.array([1.0, 1.0, np.nan]),
        backward=np.array([-1.0, -1.0, np.nan]),
        slack=np.array([1e-9, 1e-9, np.nan]),
        kink=np.array([True, True, False]),
    )
    result = compare(pset["w"], np.array([0.3, 5.0, 1.0]), fd, gradcheck.Tolerance())
    assert result.statuses.tolist() == ["uncertain", "wrong", "ok"]
    pset.finish()


def test_a_result_built_from_read_only_slices_is_the_one_the_constructor_builds():
    # ParamResult.of_read_only (a group member's result, without the constructor's second pass
    # over its arrays) gives the same fields, status and read-only arrays as ParamResult(...)
    from dataclasses import fields

    from gradcheck.core.compare import ParamResult, compare, read_only
    from gradcheck.core.params import ParamSet

    pset = ParamSet({"w": np.array([0.5, 0.6, 0.7, 0.8])})
    whole = compare(
        pset["w"], np.array([1.0, 1.0, 3.0, 1.0]), _differences(4), gradcheck.Tolerance()
    )
    pset.finish()
    for start, stop, status in ((0, 2, "ok"), (2, 4, "wrong")):
        values = {f.name: getattr(whole, f.name) for f in fields(ParamResult) if f.init}
        values |= {
            name: value[start:stop]
            for name, value in values.items()
            if isinstance(value, np.ndarray) and name != "raw_grad"
        }
        values |= {"shape": (stop - start,), "raw_grad": read_only(np.ones(stop - start))}
        built, fast = ParamResult(**values), ParamResult.of_read_only(values)
        assert fast.status == built.status == status
        for f in fields(ParamResult):
            a, b = getattr(built, f.name), getattr(fast, f.name)
            if isinstance(a, np.ndarray):
                assert not b.flags.writeable
                assert a.tobytes() == b.tobytes()
            else:
                assert a == b or (a != a and b != b), f.name  # (NaN noise: not measured)
        assert fast.unmeasured is not whole.unmeasured  # its own dict, as the constructor's


@pytest.mark.parametrize("value", [1.5, np.float64(-2.5), np.float64(np.nan)])
def test_a_scalar_partial_is_read_as_a_private_float64_array(value):
    from gradcheck.core.compare import analytic_array

    got = analytic_array("w", value)
    assert type(got) is np.ndarray
    assert got.dtype == np.float64
    assert got.shape == ()
    assert got.tobytes() == np.float64(value).tobytes()
    assert got.flags.owndata
    assert got.flags.writeable

"""Bad and unusual parameters: each is refused with a message naming it and saying what was
expected, or checked correctly; either way the user's parameters are bitwise unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck
from gradcheck import GradcheckError, InputError
from gradcheck.core.evaluation import Evaluator
from gradcheck.core.params import Fill, ParamSet
from tests.helpers import smooth
from tests.helpers.snapshot import assert_unchanged, snapshot


def _w():
    return np.array([0.5, -1.25, 2.0])


def _readonly(array):
    array.flags.writeable = False
    return array


def _strided_overlap():
    return np.lib.stride_tricks.as_strided(
        np.array([1.0, 2.0]), shape=(3,), strides=(0,), writeable=True
    )


# (id, params factory, pattern the message must match: the parameter and what was expected)
REFUSED = [
    (
        "int-array",
        lambda: {"w": np.array([1, 2, 3])},
        r"'w' has dtype int64; a finite difference on integers is always 0; convert it",
    ),
    (
        "bool-array",
        lambda: {"w": np.array([True, False])},
        r"'w' has dtype bool; a finite difference on integers is always 0",
    ),
    (
        "float16-array",
        lambda: {"w": _w().astype(np.float16)},
        r"'w' has dtype float16; .*use float32",
    ),
    ("float16-scalar", lambda: {"w": np.float16(0.5)}, r"'w' has dtype float16; .*use float32"),
    (
        "complex-array",
        lambda: {"w": _w().astype(np.complex128)},
        r"'w' has dtype complex128; pass the real and imaginary parts as two float parameters",
    ),
    (
        "complex-scalar",
        lambda: {"w": 1 + 2j},
        r"'w' is complex; .*pass the real and imaginary parts",
    ),
    (
        "big-endian",
        lambda: {"w": _w().astype(">f8")},
        r"'w' has dtype >f8; expected native byte order",
    ),
    ("bool", lambda: {"w": True}, r"'w' is a bool; expected a float or a float ndarray"),
    ("numpy-bool", lambda: {"w": np.bool_(True)}, r"'w' is a bool; expected a float"),
    ("string", lambda: {"w": "0.5"}, r"'w' is a str; expected a float or a float ndarray"),
    ("none", lambda: {"w": None}, r"'w' is a NoneType; expected a float or a float ndarray"),
    # a list is a pytree (gradcheck.core.tree): its leaves are refused by path
    ("list", lambda: {"w": [0.5, None]}, r"'w\[1\]' is a NoneType; expected a float"),
    (
        "object-array",
        lambda: {"w": np.array([0.5, None])},
        r"'w' has dtype object; expected float32 or float64",
    ),
    ("empty-array", lambda: {"w": np.zeros((2, 0))}, r"'w' is empty \(shape \(2, 0\)\)"),
    # issue 12 item 12: a masked array came back without its mask
    (
        "masked-array",
        lambda: {"w": np.ma.array(_w(), mask=[False, True, False])},
        r"'w' is a masked array \(numpy.ma\); .*pass w.filled\(...\) or w.data",
    ),
    (
        "masked-array-nothing-masked",
        lambda: {"w": np.ma.array(_w())},
        r"'w' is a masked array \(numpy.ma\)",
    ),
    (
        "nan",
        lambda: {"w": np.array([[0.5, 1.0], [np.nan, 2.0]])},
        r"'w' is nan at w\[1, 0\]; expected finite values",
    ),
    ("inf-scalar", lambda: {"b": float("-inf")}, r"'b' is -inf at b; expected finite values"),
    ("not-a-dict", lambda: "w", r"params must be a dict of name -> float or ndarray"),
    (  # QA: scipy users pass x0 itself, as to check_grad(f, g, x0)
        "bare-array",
        lambda: np.ones(3),
        r"got ndarray: name the array, check\(lambda p: f\(p\['x'\]\)",
    ),
    ("pairs", lambda: [("w", _w())], r"parameter '\[0\]\[0\]' is a str; expected a float"),
    ("empty-dict", dict, r"params is empty"),
    ("int-key", lambda: {1: _w()}, r"parameter names must be strings, got 1 \(int\)"),
    (
        "tuple-key",
        lambda: {("layer", "w"): _w()},
        r"parameter names must be strings, got \('layer', 'w'\) \(tuple\)",
    ),
    (
        "self-overlapping-view",
        lambda: {"w": _strided_overlap()},
        r"'w' is a view whose elements share memory",
    ),
]


@pytest.mark.parametrize(
    ("factory", "pattern"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused_with_a_clear_message_and_nothing_touched(factory, pattern):
    params = factory()
    snap = snapshot(
        params, *(v for v in getattr(params, "values", list)() if isinstance(v, np.ndarray))
    )
    with pytest.raises(InputError, match=pattern) as info:
        gradcheck.check(smooth.loss, smooth.grad, params)
    assert isinstance(info.value, GradcheckError)
    assert_unchanged(snap)


def test_longdouble_is_refused_where_it_differs_from_float64():
    if np.dtype(np.longdouble) == np.dtype(np.float64):
        pytest.skip("long double is float64 on this platform")
    params = {"w": np.longdouble(0.5)}
    with pytest.raises(InputError, match=r"'w' has dtype float(96|128); expected float32"):
        gradcheck.check(smooth.loss, smooth.grad, params)


def _alias_cases():
    a = _w()
    yield "same-array", {"a": a, "b": a}
    base = np.arange(6.0)
    yield "overlapping-slices", {"a": base[:4], "b": base[3:]}
    m = np.arange(6.0).reshape(2, 3)
    yield "transpose", {"W": m, "Wt": m.T}
    c = _w()
    yield "read-only-view-of-another", {"a": c, "b": _readonly(c[1:])}


@pytest.mark.parametrize(
    ("label", "params"), list(_alias_cases()), ids=[c[0] for c in _alias_cases()]
)
def test_aliased_parameters_are_refused(label, params):
    snap = snapshot(params, *params.values())
    first, second = params
    with pytest.raises(InputError, match=rf"parameters '{first}' and '{second}' share memory"):
        gradcheck.check(smooth.loss, smooth.grad, params)
    assert_unchanged(snap)


def test_python_and_numpy_ints_are_converted_with_a_note():
    params = {"n": 3, "m": np.int64(-2), "w": _w()}
    snap = snapshot(params)
    seen = set()

    def loss(p):
        seen.add((type(p["n"]), type(p["m"])))
        return smooth.loss(p)

    report = gradcheck.check(loss, smooth.grad, params)
    assert report.passed
    assert seen == {(float, float)}  # the loss only ever sees floats
    assert "'n' was the integer 3; checked as float64 3.0" in report.notes
    assert any(n.startswith("'m' was the integer") for n in report.notes)
    assert_unchanged(snap)


def test_int_array_is_refused_not_converted():
    # converting would check a different function: the user's code keeps integer arithmetic
    params = {"w": np.arange(3)}
    with pytest.raises(InputError, match=r"params\['w'\] = params\['w'\]\.astype\(float\)"):
        gradcheck.check(smooth.loss, smooth.grad, params)


def test_read_only_array_is_perturbed_on_a_private_copy():
    user = _readonly(_w())
    params = {"w": user}
    snap = snapshot(params)
    seen = []

    def loss(p):
        seen.append(np.array(p["w"], copy=True))
        return smooth.loss(p)

    report = gradcheck.check(loss, smooth.grad, params)
    assert report.passed
    assert report.notes == ["'w' is read-only; perturbed on a private copy"]
    moved = {i for s in seen for i in np.flatnonzero(s != user)}
    assert moved == {0, 1, 2}  # the loss saw every element move, through the dict
    assert not user.flags.writeable
    assert_unchanged(snap)


def test_view_into_a_larger_array_is_checked_and_the_base_kept_bitwise():
    base = np.linspace(-1.0, 1.0, 24).reshape(4, 6)
    base[0, 0] = -0.0
    view = base[::2, 1::2]  # non-contiguous, 2 x 3
    params = {"v": view}
    snap = snapshot(params, base)
    report = gradcheck.check(smooth.loss, smooth.planted("v", (1, 2)), params)
    assert [e.index for e in report.entries if e.status == "wrong"] == [(1, 2)]
    assert_unchanged(snap)


def test_disjoint_views_of_one_flat_vector_work_through_the_vector():
    # the "flat parameter vector" pattern: the loss reads theta, the params are views of it
    theta = np.array([0.3, -0.7, 1.1, 0.2, -0.4])
    params = {"W": theta[:4].reshape(2, 2), "b": theta[4:]}

    def loss(_):
        return float(np.sum(np.sin(theta) + 0.5 * theta * theta))

    snap = snapshot(params, theta)
    report = gradcheck.check(loss, smooth.planted("W", (1, 0)), params)
    assert report.failed_params == ["W"]
    assert report["W"].worst_index == (1, 0)
    assert report["b"].status == "ok"
    assert_unchanged(snap)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fortran_order_reports_the_right_element(dtype):
    params = {"W": np.asfortranarray(np.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3))}
    snap = snapshot(params)
    report = gradcheck.check(smooth.loss, smooth.planted("W", (1, 0)), params)
    assert [e.index for e in report.entries if e.status == "wrong"] == [(1, 0)]
    assert_unchanged(snap)


def test_read_only_broadcast_is_checked_on_a_private_copy():
    params = {"w": np.broadcast_to(np.array([0.25]), (3,))}
    snap = snapshot(params)
    report = gradcheck.check(smooth.loss, smooth.grad, params)
    assert report.passed
    assert_unchanged(snap)


def test_scalars_zero_d_arrays_and_negative_zero_are_restored_bitwise():
    params = {
        "a": 0.75,
        "b": np.float32(-0.5),
        "c": np.array(1.5),
        "d": np.array([-0.0, 0.0, 1e-300]),
    }
    snap = snapshot(params)
    report = gradcheck.check(smooth.loss, smooth.planted("c", ()), params)
    assert report.failed_params == ["c"]
    assert_unchanged(snap)


def test_invalid_options_are_input_errors():
    params = {"w": _w()}
    with pytest.raises(InputError, match=r"Tolerance\.safety must be > 0"):
        gradcheck.Tolerance(safety=0)
    with pytest.raises(InputError, match=r"tolerance must be a gradcheck\.Tolerance"):
        gradcheck.check(smooth.loss, smooth.grad, params, tolerance=1e-6)
    with pytest.raises(InputError, match="loss must be callable"):
        gradcheck.check(1.0, smooth.grad, params)
    with pytest.raises(InputError, match="grad must be callable"):
        gradcheck.check(smooth.loss, {"w": 1.0}, params)
    # a loss returning (loss, grads) passed with no grad: the error names the route for it
    with pytest.raises(InputError, match=r"got NoneType \(a function returning \(loss, grads\)"):
        gradcheck.check(smooth.loss, None, params)


def test_a_group_never_shadows_a_parameter_of_the_same_name():
    pset = ParamSet({"a": 1.0, "b": np.array([2.0, 3.0]), "[a .. b]": 4.0})
    name = pset.group(["a", "b"])
    assert name != "[a .. b]"
    assert pset["[a .. b]"].python_scalar  # the real parameter, not the group
    assert pset.flat_values(name).tolist() == [1.0, 2.0, 3.0]
    assert pset.member(name, 2) == (pset["b"], 1)


def test_a_groups_values_are_its_members_snapshots_whatever_is_done_with_a_copy():
    # the group keeps its members' snapshots end to end, taken once; flat_values hands out a
    # copy (writing it moves nothing), and an element moved in a member is not read back
    b = np.array([2.0, 3.0])
    pset = ParamSet({"a": 1.0, "b": b, "c": np.array([[4.0], [5.0]])})
    name = pset.group(["a", "b", "c"])
    values = pset.flat_values(name)
    values[:] = -1.0
    b[0] = 7.0
    assert pset.flat_values(name).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert pset.flat_values(name, np.array([1, 4])).tolist() == [2.0, 5.0]
    assert pset.changed() == ["b"]
    pset.finish()
    assert b.tolist() == [2.0, 3.0]


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_fill_point_is_written_in_place_or_materialised_and_restored_bitwise(order):
    # fast mode's points: written chunk by chunk into the parameter (no buffer of its size);
    # an array that is not C-contiguous gets the materialised values through .flat
    w = np.asfortranarray(np.arange(12.0).reshape(3, 4)) if order == "F" else np.arange(12.0)
    before = w.copy()
    pset = ParamSet({"w": w})
    seen = []

    def loss(params):
        seen.append(np.array(params["w"], copy=True).reshape(-1, order="C"))
        return float(np.sum(params["w"]))

    def fill(out):
        out[:] = -1.0

    Evaluator(pset, loss).at([("w", slice(2, 6), Fill(fill, 4, w.dtype))])
    pset.finish()
    expected = before.reshape(-1, order="C").copy()
    expected[2:6] = -1.0
    assert np.array_equal(seen[0], expected)
    assert np.array_equal(w, before)


def test_changed_compares_bits_without_copying_and_sees_a_sign_flip_of_zero():
    w = np.zeros(5)
    w[3] = -0.0
    pset = ParamSet({"w": w})
    assert pset.changed() == []
    w[3] = 0.0  # equal as numbers, not as bits
    assert pset.changed() == ["w"]
    pset.finish()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 2, -1])
def test_a_nonfinite_element_anywhere_is_refused(bad, where):
    # a NaN or an infinity of either sign, at the first element, inside, or at the last
    w = np.linspace(-1.0, 1.0, 7, dtype=np.float32)
    w[where] = bad
    with pytest.raises(InputError, match="expected finite values"):
        ParamSet({"w": w})


@pytest.mark.parametrize("size", [1, 3, 4, 5, 2 * (1 << 17) + 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_changed_sees_one_flipped_bit_in_any_byte_whatever_the_word_size(size, dtype):
    # same_bits compares 8-, 4- or 2-byte words as the array's byte length allows: a flip of
    # the lowest bit of the first, a middle or the last element (odd float32 lengths end on a
    # 4-byte word) is still seen, across a compare block's edge too
    w = np.linspace(-1.0, 1.0, size).astype(dtype)
    pset = ParamSet({"w": w})
    for k in sorted({0, size // 2, size - 1}):
        bits = w.view(np.uint32 if dtype == np.float32 else np.uint64)
        bits[k] ^= 1
        assert pset.changed() == ["w"]
        bits[k] ^= 1
        assert pset.changed() == []
    pset.finish()


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_following_point_is_written_from_the_point_before_it_and_both_restored(order):
    # fast mode's pairs: the second point's ``follow`` is handed the slice still holding the
    # first (its restore skipped) and writes from it; where the write is not in place (not
    # C-contiguous) the second point is written whole instead. Either way the loss sees each
    # point and the parameter ends as it began
    w = np.asfortranarray(np.arange(12.0).reshape(3, 4)) if order == "F" else np.arange(12.0)
    before = w.copy()
    pset = ParamSet({"w": w})
    seen, followed = [], []

    def loss(params):
        seen.append(np.array(params["w"], copy=True).reshape(-1, order="C"))
        return float(np.sum(params["w"]))

    def first(out):
        out[:] = 100.0

    def second(out):
        out[:] = 200.0

    def follow(out):
        followed.append(out.copy())  # what the slice held: the first point
        out += 100.0

    points = [
        ("w", slice(2, 6), Fill(first, 4, w.dtype)),
        ("w", slice(2, 6), Fill(second, 4, w.dtype, follow=follow)),
    ]
    Evaluator(pset, loss).at(points)
    expected = before.reshape(-1, order="C").copy()
    expected[2:6] = 100.0
    assert np.array_equal(seen[0], expected)
    expected[2:6] = 200.0
    assert np.array_equal(seen[1], expected)
    assert [f.tolist() for f in followed] == ([[100.0] * 4] if order == "C" else [])
    assert np.array_equal(w, before)
    assert pset.changed() == []
    pset.finish()


def test_a_loss_raising_at_the_first_point_of_a_pair_has_it_restored_and_never_follows():
    w = np.arange(6.0)
    pset = ParamSet({"w": w})

    def loss(params):
        raise RuntimeError("boom")

    def follow(out):  # pragma: no cover - must not run
        raise AssertionError("followed a point the loss never returned from")

    points = [
        ("w", slice(0, 6), Fill(lambda out: out.fill(7.0), 6, w.dtype)),
        ("w", slice(0, 6), Fill(lambda out: out.fill(8.0), 6, w.dtype, follow=follow)),
    ]
    with pytest.raises(gradcheck.LossError, match="boom"):
        Evaluator(pset, loss).at(points)
    assert np.array_equal(w, np.arange(6.0))
    pset.finish()


def test_a_pair_whose_loss_returns_no_float_is_refused_by_name_and_restored():
    # regression (fuzz): the pair's loop once converted its values inside its own error
    # handler, so an InputError for an unconvertible loss became an IndexError
    w = np.arange(6.0)
    pset = ParamSet({"w": w})
    points = [
        ("w", slice(0, 6), Fill(lambda out: out.fill(7.0), 6, w.dtype)),
        ("w", slice(0, 6), Fill(lambda out: out.fill(8.0), 6, w.dtype, follow=lambda out: None)),
    ]
    with pytest.raises(InputError, match="beyond float64's range"):
        Evaluator(pset, lambda params: 10**400).at(points)
    assert np.array_equal(w, np.arange(6.0))
    pset.finish()


@pytest.mark.parametrize("raise_at", [None, 1, 2])
def test_a_joint_pair_over_two_parameters_follows_in_place_and_restores_both(raise_at):
    # fast mode's joint probes: both points move every tensor at once; the second is written
    # from the first where it follows a slice, the parameters end as they began whether the
    # loss returns or raises at either point, and the calls made are counted
    a, b = np.arange(6.0), np.arange(4.0) + 10.0
    before = (a.copy(), b.copy())
    pset = ParamSet({"a": a, "b": b})
    seen, followed = [], []

    def loss(params):
        seen.append((params["a"].copy(), params["b"].copy()))
        if len(seen) == raise_at:
            raise RuntimeError("boom")
        return float(params["a"].sum() + params["b"].sum())

    def follow(out):
        followed.append(out.copy())
        out -= 2.0

    ups = [
        ("a", slice(0, 6), Fill(lambda out: out.fill(1.0), 6, a.dtype)),
        ("b", slice(0, 4), Fill(lambda out: out.fill(2.0), 4, b.dtype)),
    ]
    downs = [
        ("a", slice(0, 6), Fill(lambda out: out.fill(-1.0), 6, a.dtype, follow=follow)),
        ("b", slice(0, 4), Fill(lambda out: out.fill(0.0), 4, b.dtype)),
    ]
    evaluator = Evaluator(pset, loss)
    if raise_at is None:
        assert evaluator.pair(ups, downs) == (14.0, -6.0)
        assert [f.tolist() for f in followed] == [[1.0] * 6]  # a held the first point
        assert [s[0].tolist() for s in seen] == [[1.0] * 6, [-1.0] * 6]
        assert [s[1].tolist() for s in seen] == [[2.0] * 4, [0.0] * 4]
    else:
        with pytest.raises(gradcheck.LossError, match="boom"):
            evaluator.pair(ups, downs)
        assert len(followed) == raise_at - 1
    assert evaluator.evaluations == (raise_at or 2)
    assert np.array_equal(a, before[0])
    assert np.array_equal(b, before[1])
    assert pset.changed() == []
    with pytest.raises(ValueError, match="same parameters"):
        evaluator.pair(ups, downs[::-1])
    pset.finish()

"""The project's own fuzz target (issue 12, "Done when"): hostile inputs, bounded time.

Random parameter sets (Python floats, NumPy scalars, float32 and float64 arrays of random
shapes and layouts) with values from the awkward corners of floating point: subnormals, -0.0,
NaN with payloads, +-1e308, 1e-300, float32's extremes. A smooth loss of them, its exact
gradient, sometimes corrupted (scaled, an element replaced by NaN, inf or 1e308), loss values in
other types (float32, 0-d arrays, ints, ints beyond float64), and exceptions injected into the
loss or the gradient at a random call: a ValueError, KeyboardInterrupt, SystemExit, or an
exception class of the user's own deriving from BaseException. Full and fast mode.

For every example:

* nothing escapes but a :class:`gradcheck.GradcheckError` or what the user's code raised itself
  (a KeyboardInterrupt, SystemExit or BaseException of its own; an Exception from the user's
  code is reported as a LossError);
* the parameters are bitwise what they were (tests/helpers/snapshot.py: NaN payloads, the sign
  of zero, identity, flags);
* a report is strict JSON (no NaN or Infinity) and renders as text, Markdown and HTML;
* fail closed: a hand-written partial that is NaN or infinite never passes.

Time: ``max_examples`` keeps it to a few seconds; ``derandomize`` makes it the same examples on
every run (a fuzz that finds something new on a random day makes a red build nobody can
replay); ``FUZZ_EXAMPLES=5000`` in the environment explores at random, as long as asked.
"""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradcheck
from tests.helpers.snapshot import assert_unchanged, snapshot

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="FUZZ_EXAMPLES" not in os.environ,  # explore at random only when asked
    suppress_health_check=list(HealthCheck),
)

SPECIAL = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1e-300,
    1e308,
    -1e308,
    1.7976931348623157e308,
    3.4028234663852886e38,  # float32's largest
    1.401298464324817e-45,  # float32's smallest subnormal
    1.0,
    -2.5,
]


def _nan_with_payload(payload: int, negative: bool) -> float:
    bits = 0x7FF8000000000000 | (payload & 0x0007FFFFFFFFFFFF) | (negative << 63)
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


VALUES = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(-3.0, 3.0),
    st.floats(allow_nan=False, allow_infinity=False),
    st.builds(_nan_with_payload, st.integers(1, 2**51 - 1), st.booleans()),
    st.sampled_from([math.inf, -math.inf]),
)
# mostly finite: a NaN or inf parameter is refused up front, which says little past the first
PARAM_VALUES = st.one_of(st.floats(-3.0, 3.0), VALUES, st.sampled_from(SPECIAL))


class Boom(BaseException):
    """An exception class of the user's own, outside the Exception hierarchy."""


INJECTED = {
    "ValueError": ValueError,
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "Boom": Boom,
}
# what may come out of a check: gradcheck's own errors, and what the user's code raised itself
# (an Exception raised by the user's code comes out as a LossError, a GradcheckError)
ALLOWED = (gradcheck.GradcheckError, KeyboardInterrupt, SystemExit, Boom)


@st.composite
def parameter(draw):
    kind = draw(st.sampled_from(["float", "float32-scalar", "array64", "array32", "fortran"]))
    if kind == "float":
        return draw(PARAM_VALUES)
    if kind == "float32-scalar":
        with np.errstate(over="ignore"):
            return np.float32(draw(PARAM_VALUES))
    shape = draw(st.sampled_from([(), (1,), (3,), (2, 2), (2, 3)]))
    n = math.prod(shape)
    values = draw(st.lists(PARAM_VALUES, min_size=n, max_size=n))
    dtype = np.float32 if kind == "array32" else np.float64
    with np.errstate(over="ignore"):
        array = np.array(values, dtype=dtype).reshape(shape)
    if kind == "fortran" and array.ndim == 2:
        array = np.asfortranarray(array)
    if draw(st.integers(0, 9)) == 0:
        array.flags.writeable = False
    return array


def loss_value(x):
    """sum(sin(x) + x**2 / 2) over every parameter, float64, quiet about its own overflow."""
    total = 0.0
    with np.errstate(all="ignore"):
        for value in x.values():
            v = np.asarray(value, dtype=np.float64)
            total += float(np.sum(np.sin(v) + 0.5 * v * v))
    return total


def exact_gradient(x):
    with np.errstate(all="ignore"):
        return {
            name: np.cos(np.asarray(v, dtype=np.float64)) + np.asarray(v, dtype=np.float64)
            for name, v in x.items()
        }


@st.composite
def problem(draw):
    names = draw(st.lists(st.sampled_from(["w", "b", "W1", "s"]), min_size=1, max_size=3))
    params = {name: draw(parameter()) for name in dict.fromkeys(names)}
    corruption = draw(st.sampled_from(["none", "none", "scale", "element", "missing"]))
    replacement = draw(VALUES)
    scale = draw(st.sampled_from([0.5, 2.0, -1.0, 1 + 1e-3]))
    returns = draw(st.sampled_from(["float", "float", "float32", "0-d", "int", "huge-int"]))
    inject = draw(
        st.one_of(st.none(), st.tuples(st.sampled_from(list(INJECTED)), st.integers(1, 40)))
    )
    in_grad = draw(st.integers(0, 3)) == 0
    mode = draw(st.sampled_from(["full", "fast"]))

    calls = {"loss": 0}

    def maybe_raise(where):
        if inject is not None and (where == "grad") == in_grad:
            name, at = inject
            if where == "grad" or calls["loss"] == at:
                raise INJECTED[name](f"injected {name}")

    def loss(x):
        calls["loss"] += 1
        maybe_raise("loss")
        value = loss_value(x)
        if returns == "float32":
            with np.errstate(over="ignore"):
                return np.float32(value)
        if returns == "0-d":
            return np.array(value)
        if returns == "int" and math.isfinite(value):
            return round(value * 1e6)
        if returns == "huge-int" and calls["loss"] > 3:
            return 10**400
        return value

    def grad(x):
        maybe_raise("grad")
        out = exact_gradient(x)
        first = next(iter(out))
        if corruption == "scale":
            out[first] = out[first] * scale
        elif corruption == "element":
            g = np.array(out[first], dtype=np.float64, copy=True)
            g.flat[0] = replacement  # (reshape(-1) of a Fortran-ordered array is a copy)
            out[first] = g
        elif corruption == "missing":
            del out[first]
        return out

    planted_nonfinite = corruption == "element" and not math.isfinite(replacement)
    return params, loss, grad, mode, planted_nonfinite


def strict_loads(text):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@SETTINGS
@given(problem())
def test_fuzz_no_stray_exception_parameters_restored_strict_json(case):
    params, loss, grad, mode, planted_nonfinite = case
    snap = snapshot(params)
    try:
        report = gradcheck.check(loss, grad, params, mode=mode)
    except ALLOWED:
        assert_unchanged(snap)
        return
    assert_unchanged(snap)
    data = strict_loads(report.to_json())
    assert data["passed"] == report.passed
    report.to_text()
    report.to_markdown()
    report.to_html()
    if planted_nonfinite:
        assert not report.passed

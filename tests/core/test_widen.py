"""The float64 re-check's casts: what is reached, what is restored, what is said."""

from __future__ import annotations

import numpy as np

from gradcheck import check
from gradcheck.core.widen import widen_params, widened
from tests.helpers.snapshot import assert_unchanged, snapshot


def test_params_are_cast_on_a_copy():
    params = {"w": np.ones(3, np.float32), "b": np.float32(0.5), "c": np.ones(2), "s": 1.0}
    before = snapshot(params)
    wide, cast = widen_params(params)
    assert cast == ["w", "b"]
    assert wide["w"].dtype == np.float64
    assert isinstance(wide["b"], np.float64)
    assert wide["c"] is params["c"]
    assert wide["s"] is params["s"]
    assert_unchanged(before)


def test_closures_nested_functions_and_bound_instances_are_cast_then_restored():
    x = np.arange(3, dtype=np.float32)

    class Net:
        def __init__(self):
            self.inputs = np.ones(2, np.float32)
            self.size = 3

        def loss(self, p):
            return float(np.sum(self.inputs)) + helper(p)

    def helper(p):
        return float(np.sum(x * p["w"]))

    net = Net()
    seen = {}

    def probe(p):
        seen["x"], seen["inputs"] = x.dtype, net.inputs.dtype
        return net.loss(p)

    original_x, original_inputs = x, net.inputs
    with widened(probe, net.loss) as names:
        probe({"w": np.ones(3)})
    assert sorted(names) == ["Net.inputs", "x"]
    assert seen == {"x": np.float64, "inputs": np.float64}
    assert helper.__closure__[0].cell_contents is original_x
    assert net.inputs is original_inputs
    assert net.inputs.dtype == np.float32


def test_float32_arrays_in_lists_and_tuples_are_cast_then_restored():
    # a layer check's upstream gradients are a list of tuples of arrays: left float32, the
    # re-check's backward summed them in float32 against float64 bounds (a correct bias failed)
    from collections import namedtuple

    Pair = namedtuple("Pair", "a b")
    data = [(np.ones(2, np.float32), np.ones(2)), Pair(np.float32(2.0), "label")]
    other = [np.ones(2), 3]  # nothing float32: left alone

    def loss(p):
        seen.append((data[0][0].dtype, data[0][1].dtype, type(data[1]), type(data[1].a)))
        return float(np.sum(data[0][0]) + len(other))

    seen: list = []
    original, first = data, data[0]
    with widened(loss) as names:
        loss({})
    assert names == ["data"]
    assert seen == [(np.float64, np.float64, Pair, np.float64)]
    cell = dict(zip(loss.__code__.co_freevars, loss.__closure__, strict=True))
    assert cell["data"].cell_contents is original
    assert data[0] is first
    assert data[0][0].dtype == np.float32


def test_restored_when_the_block_raises():
    x = np.ones(2, np.float32)

    def loss(p):
        return float(np.sum(x))

    try:
        with widened(loss):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert loss.__closure__[0].cell_contents is x


def test_a_cast_inside_the_loss_is_named_with_the_cast_to_make():
    """A float32 cast inside the loss is out of reach: the re-check says the loss still
    computes in float32, and how to cast."""
    params = {"w": np.ones(4, np.float32)}

    def loss(p):
        return np.sum(np.asarray(p["w"], np.float32) ** 2)

    report = check(loss, lambda p: {"w": 2 * p["w"]}, params, recheck_float64=True)
    assert report.recheck.notes[0] == "float64 re-check: cast w from float32"
    assert any(
        "still computes in float32" in n and "astype(np.float64)" in n for n in report.recheck.notes
    )


def test_float64_nets_are_not_rechecked():
    params = {"w": np.ones(3)}
    report = check(
        lambda p: float(np.sum(p["w"] ** 2)),
        lambda p: {"w": 2 * p["w"]},
        params,
        recheck_float64=True,
    )
    assert report.recheck is None

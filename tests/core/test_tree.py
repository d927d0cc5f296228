"""Pytrees: nested dicts, lists and tuples checked element by element, named by path."""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import InputError, check, find_params, from_attributes
from gradcheck.api import check_problem
from gradcheck.core.tree import Tree, is_tree
from tests.helpers.snapshot import assert_unchanged, snapshot


class Layer(NamedTuple):
    W: np.ndarray
    b: np.ndarray


def test_paths_read_like_the_python_that_reaches_the_leaf():
    W0, W1, b = np.zeros((2, 2)), np.zeros((3, 2)), np.zeros(3)
    tree = Tree({"weights": [W0, W1], "layers": [{"W": W0.copy(), "b": 0.5}], "c": b})
    assert list(tree.leaves) == [
        "weights[0]",
        "weights[1]",
        'layers[0]["W"]',
        'layers[0]["b"]',
        "c",
    ]
    assert tree.leaves["weights[1]"] is W1
    assert list(Tree([W0, (W1, 1.0)]).leaves) == ["[0]", "[1][0]", "[1][1]"]


def test_flat_dicts_are_not_trees():
    assert not is_tree({"W1": np.zeros(2), "b": 1.0})
    assert is_tree({"W": [np.zeros(2)]})
    assert is_tree([np.zeros(2)])
    assert is_tree((1.0,))


def test_build_puts_the_users_arrays_and_the_views_floats_back_in_the_structure():
    W = np.ones((2, 2))
    params = {"layers": [Layer(W, np.zeros(2))], "scale": [2.0]}
    tree = Tree(params)
    flat = dict(tree.leaves, **{"scale[0]": 3.0})
    built = tree.build(flat)
    assert isinstance(built["layers"][0], Layer)
    assert built["layers"][0].W is W
    assert built["scale"] == [3.0]


def test_colliding_paths_are_refused():
    with pytest.raises(InputError, match=r"both named 'w\[0\]'"):
        Tree({"w[0]": np.zeros(1), "w": [np.zeros(1)]})


@pytest.mark.parametrize(
    ("grads", "message"),
    [
        (
            {"w": [np.zeros(2)], "b": 1.0},
            r"grad\['w'\] is a list of 1 where params\['w'\] is a list of 2",
        ),
        ({"w": np.zeros(2), "b": 1.0}, r"grad\['w'\] is a ndarray where params\['w'\] is a list"),
        ({"w": [np.zeros(2), {"U": 0}], "b": 1.0}, r"grad\['w\[1\]'\] is a dict where"),
        ([np.zeros(2)], r"grad must return a dict like params"),
    ],
)
def test_a_gradient_of_another_structure_names_the_first_path_that_differs(grads, message):
    params = {"w": [np.ones(2), np.ones(2)], "b": 1.0}
    with pytest.raises(InputError, match=message):
        check(lambda p: 0.0, lambda p: grads, params)


def test_missing_nested_dict_key_is_named():
    params = {"layers": [{"W": np.ones(2), "b": np.ones(2)}]}
    with pytest.raises(InputError, match=r'grad\[\'layers\[0\]\["b"\]\'\] is missing'):
        check(lambda p: 0.0, lambda p: {"layers": [{"W": np.zeros(2)}]}, params)


# -- a Nielsen-style network: weights and biases in lists ---------------------------------------
class ListNet:
    """Nielsen's network.py shape: ``self.weights``/``self.biases`` lists, column vectors,
    sigmoid layers, quadratic cost, ``backprop(x, y) -> (nabla_b, nabla_w)``."""

    def __init__(self, sizes=(3, 4, 2), bug=None):
        rng = np.random.default_rng(7)
        self.sizes = list(sizes)  # ints: not weights
        self.biases = [rng.normal(size=(n, 1)) for n in sizes[1:]]
        self.weights = [rng.normal(size=(n, m)) for m, n in itertools.pairwise(sizes)]
        self._x = rng.normal(size=(sizes[0], 1))
        self._y = rng.normal(size=(sizes[-1], 1))
        self.bug = bug

    def cost(self):
        a = self._x
        for b, w in zip(self.biases, self.weights, strict=True):
            a = 1 / (1 + np.exp(-(w @ a + b)))
        return float(0.5 * np.sum((a - self._y) ** 2))

    def backprop(self):
        activations, zs, a = [self._x], [], self._x
        for b, w in zip(self.biases, self.weights, strict=True):
            z = w @ a + b
            zs.append(z)
            a = 1 / (1 + np.exp(-z))
            activations.append(a)
        s = activations[-1]
        delta = (s - self._y) * s * (1 - s)
        nabla_b, nabla_w = [None, None], [None, None]
        nabla_b[-1], nabla_w[-1] = delta, delta @ activations[-2].T
        s = activations[1]
        delta = (self.weights[1].T @ delta) * s * (1 - s)
        nabla_b[0], nabla_w[0] = delta, delta @ self._x.T
        if self.bug == "swapped":  # two partials of one row swapped
            nabla_w[1][1, [0, 3]] = nabla_w[1][1, [3, 0]]
        return nabla_b, nabla_w


def _grad(net):
    nabla_b, nabla_w = net.backprop()
    return {"biases": nabla_b, "weights": nabla_w}


def test_find_params_discovers_list_attributes_and_skips_integer_lists():
    assert find_params(ListNet()) == ["biases", "weights"]


def test_list_network_planted_bug_is_pinned_by_path():
    net = ListNet(bug="swapped")
    report = check_problem(from_attributes(net, "cost", _grad))
    wrong = {(e.param, e.index) for e in report.entries if e.status == "wrong"}
    assert wrong == {("weights[1]", (1, 0)), ("weights[1]", (1, 3))}
    assert report.failed_params == ["weights[1]"]
    labels = {e["param"] for e in report.to_dict()["entries"]}
    assert labels == {"biases[0]", "biases[1]", "weights[0]", "weights[1]"}
    assert "weights[1][1, 3]" in report.to_text()
    assert "weights[1][1, 3]" in report.to_markdown()
    assert "weights[1][1, 3]" in report.to_html()


def test_list_network_correct_passes_and_is_restored_bitwise():
    net = ListNet()
    weights, biases = net.weights, net.biases
    snap = snapshot(vars(net), *weights, *biases)
    report = check_problem(from_attributes(net, "cost", _grad))
    assert report.passed, report.to_text()
    assert_unchanged(snap)
    assert net.weights is weights
    assert all(a is b for a, b in zip(net.weights, weights, strict=True))


def test_floats_in_lists_are_perturbed_through_the_rebuilt_structure():
    W = np.array([[1.0, 2.0], [0.5, -1.0]])

    def loss(p):
        (w,), (s, t) = p["w"], p["scales"]
        return float(s * np.sum(w**2) + t**3)

    def grad(p):
        (w,), (s, t) = p["w"], p["scales"]
        return {"w": [2 * s * w], "scales": (float(np.sum(w**2)), 2 * t**2)}  # d t^3 is 3 t^2

    params = {"w": [W], "scales": (1.5, 2.0)}
    snap = snapshot(params, W)
    report = check(loss, grad, params)
    assert [(e.param, e.index) for e in report.entries if e.status == "wrong"] == [
        ("scales[1]", ())
    ]
    assert_unchanged(snap)
    assert params["scales"] == (1.5, 2.0)


def test_top_level_list_and_nested_dicts_in_lists():
    layers = [
        {"W": np.ones((2, 2)) * 0.3, "b": np.zeros(2)},
        {"W": np.ones((1, 2)), "b": np.ones(1)},
    ]
    x = np.array([0.5, -1.0])

    def loss(p):
        h = np.tanh(p[0]["W"] @ x + p[0]["b"])
        return float(np.sum(p[1]["W"] @ h + p[1]["b"]))

    def grad(p):
        h = np.tanh(p[0]["W"] @ x + p[0]["b"])
        dh = p[1]["W"][0] * (1 - h**2)
        return [{"W": np.outer(dh, x), "b": dh * 2}, {"W": h[None, :], "b": np.ones(1)}]  # bug: b*2

    report = check(loss, grad, layers)
    assert report.failed_params == ['[0]["b"]']
    assert '[0]["b"][1]' in report.to_text()


def test_find_params_discovers_tuples_and_lists_of_dicts_and_refuses_mixed_lists():
    class Net:
        def __init__(self):
            self.pair = (np.ones(2), 0.5)
            self.layers = [{"W": np.ones((2, 2)), "b": np.zeros(2)}]
            self.names = [np.ones(2), "relu"]  # not all weights: refused unless excluded
            self.shape = (3, 4)  # ints
            self.empty = []

    with pytest.raises(InputError, match=r"'names'.*str at names\[1\].*exclude=\['names'\]"):
        find_params(Net())
    assert find_params(Net(), exclude=["names"]) == ["pair", "layers"]
    report = check_problem(
        from_attributes(
            Net(),
            lambda n: float(np.sum(n.layers[0]["W"] ** 2) + n.pair[1] * np.sum(n.pair[0])),
            lambda n: {
                "pair": (n.pair[1] * np.ones(2), float(np.sum(n.pair[0]))),
                "layers": [{"W": 2 * n.layers[0]["W"], "b": np.ones(2)}],  # bug: b is unused
            },
            exclude=["names"],
        )
    )
    assert report.failed_params == ['layers[0]["b"]']


_leaf = st.floats(-10, 10, allow_nan=False)
_trees = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.sampled_from(["W", "b", "w[0]", 'q"x']), inner, max_size=3)
    ),
    max_leaves=8,
)


def _has_leaf(node) -> bool:
    if isinstance(node, dict):
        return any(_has_leaf(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_has_leaf(v) for v in node)
    return True


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), _trees, min_size=1))
def test_build_of_the_leaves_is_the_tree_and_paths_are_distinct(params):
    """Round trip on any nesting; a path is a key of exactly one leaf, in walk order."""
    if not _has_leaf(params):  # only empty containers: refused (nested keys never collide)
        with pytest.raises(InputError, match="holds no arrays or floats"):
            Tree(params)
        return
    tree = Tree(params)
    assert tree.build(tree.leaves) == params
    assert len(set(tree.leaves)) == len(tree.leaves)
    assert tree.flatten_grad(params) == tree.leaves

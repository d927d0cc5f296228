"""Every reference net's verdict, and the asker's nets in detail."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check
from gradcheck.protocol import load_references
from nets import REGISTRY, asker

REFERENCES = load_references()


def test_registry_is_found_through_the_entry_point():
    assert set(REGISTRY) <= set(REFERENCES)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_verdict_matches_declaration(name):
    ref = REFERENCES[name]
    problem = ref.build()
    report = check(problem.loss, problem.grad, problem.params)
    assert report.passed == ref.expect_pass
    if not ref.expect_pass and ref.bug_params:
        assert set(report.failed_params) == set(ref.bug_params)


def test_literal_net_gives_fourteen_shape_mismatches():
    problem = REFERENCES["asker-literal"].build()
    report = check(problem.loss, problem.grad, problem.params)
    assert [p.name for p in report.params] == list(asker.LiteralNet.NAMES)
    assert all(p.status == "shape_mismatch" for p in report.params)
    assert all(p.grad_shape == (2,) and p.shape == () for p in report.params)


def test_meant_net_has_all_fourteen_partials_wrong_with_numbers():
    problem = REFERENCES["asker-meant"].build()
    report = check(problem.loss, problem.grad, problem.params)
    assert report.failed_params == list(asker.MeantNet.NAMES)
    for p in report.params:
        assert p.status == "wrong"
        assert np.isfinite(p.analytic).all()
        assert np.isfinite(p.numeric).all()


def test_corrected_second_architecture_equals_exact_gradient():
    """The corrected net's hand-written partials are the exact ones (closed form)."""
    net = asker.CorrectedNet(seed=3)
    x, y = asker.X[0], asker.Y_ONE_HOT[0]
    _, h1, _, _, _, o1, _, _, p = net.forward(x)
    # dL/dw9 = sum_k dL/dp_k dp_k/do1 do1/dsum_o1 h1, with dL/dp = (p - y) for a mean over 2
    d_p_d_o1 = np.array([p[0] * (1 - p[0]), -p[1] * p[0]])
    expected = (p - y) @ d_p_d_o1 * o1 * (1 - o1) * h1
    assert net.partials(x, y)["w9"] == pytest.approx(expected, rel=1e-12)


def test_asker_training_loop_applies_its_partials():
    net = asker.CorrectedNet(seed=1)
    before = net.params()
    grads = [net.partials(x, y) for x, y in zip(asker.X[:1], asker.Y_ONE_HOT[:1], strict=True)]
    net.train(asker.X[:1], asker.Y_ONE_HOT[:1], learn_rate=0.5, epochs=1)
    after = net.params()
    for name in before:
        assert after[name] == pytest.approx(before[name] - 0.5 * grads[0][name])


def test_literal_rules_turn_scalar_weights_into_vectors_after_one_step():
    """The asker's 'shape problem': one update and every weight is a length-2 array."""
    net = asker.LiteralNet(seed=0)
    net.train(asker.X[:1], asker.Y_ONE_HOT[:1], learn_rate=0.01, epochs=1)
    assert np.shape(net.w9) == (2,)


def test_literal_rules_crash_on_the_second_step_as_the_asker_reported():
    net = asker.LiteralNet(seed=0)
    with pytest.raises(ValueError, match="non-broadcastable output operand with shape \\(2,\\)"):
        net.train(asker.X, asker.Y_ONE_HOT, learn_rate=0.01, epochs=1)

"""Groups of shared ratios are reported only when unlikely to be coincidences."""

from __future__ import annotations

import numpy as np

from gradcheck import check


def test_coincidental_pairs_among_many_unrelated_ratios_are_not_groups():
    """Hand-written values with no relation to the true ones: thousands of ratios, some pairs
    within each other's error by chance, none reported."""
    rng = np.random.default_rng(0)
    target = rng.normal(size=3000)
    params = {"w": rng.normal(size=3000)}
    noise = rng.normal(size=3000)

    def loss(p):
        return 0.5 * float(np.sum((p["w"] - target) ** 2))

    report = check(loss, lambda p: {"w": noise.copy()}, params)
    assert report["w"].n_wrong == 3000
    assert report.diagnosis.groups == []


def test_a_real_factor_among_unrelated_ratios_is_a_group():
    """Ten elements share a factor 1/3 among a thousand wrong ones: that group stands out."""
    rng = np.random.default_rng(1)
    target = rng.normal(size=1000)
    params = {"w": rng.normal(size=1000)}
    noise = rng.normal(size=1000)

    def grad(p):
        g = noise.copy()
        g[:10] = 3 * (p["w"][:10] - target[:10])
        return {"w": g}

    report = check(lambda p: 0.5 * float(np.sum((p["w"] - target) ** 2)), grad, params)
    [group] = report.diagnosis.groups
    assert group.members == tuple(f"w[{i}]" for i in range(10))
    assert group.message.startswith("true = 1/3 x hand-written for ")


def test_a_shared_ratio_of_one_is_never_a_group():
    """Wrong by an offset, not a factor: no 'true = 1 x hand-written'."""
    params = {"w": np.linspace(1.0, 2.0, 8)}

    def grad(p):
        return {"w": 2 * p["w"] + 1e-4}

    report = check(lambda p: float(np.sum(p["w"] ** 2)), grad, params)
    assert not report.passed
    assert all(abs(g.factor - 1) > g.uncertainty for g in report.diagnosis.groups)
    assert "true = 1 x" not in report.to_text()

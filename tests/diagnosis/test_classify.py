"""Every diagnosis the toolkit claims, planted in several nets and asserted: the class, the
parameters and the elements flagged. And no false alarms on correct nets."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import NondeterministicLossError, StateMutationError, check
from gradcheck.diagnosis.classify import name_factor
from gradcheck.protocol import load_references
from tests.helpers import toy
from tests.helpers.snapshot import assert_unchanged, snapshot


def classes(report, name):
    return set(report.diagnosis.classes[name].tolist()) - {""}


def kinds(report):
    return {f.kind for f in report.diagnosis.findings}


# -- no false alarms -------------------------------------------------------------------------
@pytest.mark.parametrize("build", [toy.mlp, toy.regression, toy.square])
def test_correct_nets_pass_with_an_empty_diagnosis(build):
    loss, grad, params = build()[:3]
    report = check(loss, grad, params)
    assert report.passed
    assert report.diagnosis.findings == []
    assert report.diagnosis.groups == []


def test_correct_float32_net_passes_and_says_precision_was_limited():
    loss, grad, params = toy.mlp(dtype=np.float32)
    report = check(loss, grad, params)
    assert report.passed
    assert any(n.startswith("precision limited: float32") for n in report.notes)


def test_wrong_float32_net_fails():
    loss, grad, params = toy.mlp(bug="sum_not_mean", dtype=np.float32)
    report = check(loss, grad, params)
    assert set(report.failed_params) == {"W1", "b1", "W2", "b2"}


def test_large_parameters_raise_no_false_alarm():
    loss, grad, params = toy.regression(scale=1e4)
    assert np.abs(params["w"]).max() > 5e3
    assert check(loss, grad, params).passed


def test_exactly_zero_partials_raise_no_false_alarm():
    loss, grad, params = toy.regression()
    report = check(loss, grad, params)
    assert report["unused"].numeric.tolist() == [0.0, 0.0]
    assert report.passed


def test_relu_at_kinks_is_uncertain_not_wrong_and_a_valid_subgradient():
    loss, grad, params = toy.relu_net(at_kinks=True)
    report = check(loss, grad, params)
    assert report.passed
    w = report["W"]
    assert [
        tuple(np.unravel_index(i, w.shape)) for i in np.flatnonzero(w.statuses == "uncertain")
    ] == [(0, 0), (0, 1)]
    kink = next(f for f in report.diagnosis.findings if f.kind == "kink")
    assert "valid subgradients" in kink.message


def test_relu_mask_bug_is_caught_away_from_kinks():
    loss, grad, params = toy.relu_net(at_kinks=False, bug="mask_inverted")
    report = check(loss, grad, params)
    assert report.failed_params == ["W"]
    assert classes(report, "W") <= {"missing", "spurious"}
    assert "missing" in classes(report, "W")


# -- element classes ---------------------------------------------------------------------------
def test_sign_flip_in_one_tensor():
    loss, grad, params = toy.mlp(bug="sign_W2")
    report = check(loss, grad, params)
    assert report.failed_params == ["W2"]
    assert classes(report, "W2") == {"sign_flipped"}
    [group] = report.diagnosis.groups
    assert group.factor == pytest.approx(-1)
    assert len(group.members) == 8
    assert "sign is flipped" in group.meaning


def test_sign_flip_everywhere_makes_the_gradient_an_ascent_direction():
    loss, grad, params = toy.regression(bug="sign_all")
    report = check(loss, grad, params)
    assert report.diagnosis.descent["direction"] == "ascent"
    assert report.diagnosis.cosine == pytest.approx(-1)
    assert "INCREASES the loss" in report.to_text()


@pytest.mark.parametrize(
    ("build", "bug", "label", "failing"),
    [
        (toy.regression, "missing_2", "2", ["w", "b"]),
        (toy.mlp, "sum_not_mean", "1/5 (= batch)", ["W1", "b1", "W2", "b2"]),
    ],
)
def test_constant_factor_is_estimated_and_named(build, bug, label, failing):
    loss, grad, params = build(bug=bug)[:3]
    report = check(loss, grad, params, dims={"batch": toy.BATCH})
    assert report.failed_params == failing
    assert all(classes(report, n) == {"scaled"} for n in failing)
    [group] = report.diagnosis.groups
    assert group.message.startswith(f"true = {label} x hand-written for ")
    assert sum(p.size for p in report.params if p.failed) == len(group.members)


def test_missing_partials():
    loss, grad, params = toy.mlp(bug="no_b1")
    report = check(loss, grad, params)
    assert report.failed_params == ["b1"]
    assert classes(report, "b1") == {"missing"}
    assert "missing" in kinds(report)


def test_spurious_partial_names_the_element():
    loss, grad, params = toy.regression(bug="spurious")
    report = check(loss, grad, params)
    assert report.failed_params == ["unused"]
    finding = next(f for f in report.diagnosis.findings if f.kind == "spurious")
    assert finding.elements == ("unused[0]",)
    assert "does not depend on it" in finding.message


def test_transposed_square_matrix():
    loss, grad, params = toy.square(bug="A_transposed")
    report = check(loss, grad, params)
    assert report.failed_params == ["A"]
    assert classes(report, "A") == {"transposed"}
    assert "transposed" in kinds(report)


def test_transposed_non_square_matrix_is_a_shape_mismatch_with_its_cause():
    loss, grad, params = toy.mlp(bug="W1_transposed")
    report = check(loss, grad, params)
    assert report.failed_params == ["W1"]
    finding = next(f for f in report.diagnosis.findings if f.params == ("W1",))
    assert finding.kind == "transposed"
    assert "(3, 4)" in finding.message


def test_swapped_gradients():
    loss, grad, params = toy.square(bug="swapped")
    report = check(loss, grad, params)
    assert set(report.failed_params) == {"A", "B"}
    assert classes(report, "A") == classes(report, "B") == {"swapped"}


def test_nonfinite_gradient_class():
    loss, grad, params = toy.mlp(bug="nan_b2")
    report = check(loss, grad, params)
    assert report.failed_params == ["b2"]
    assert classes(report, "b2") == {"nonfinite"}


def test_missing_sum_over_the_batch_axis_is_named():
    loss, grad, params = toy.mlp(bug="per_sample_b2")
    report = check(loss, grad, params, dims={"batch": toy.BATCH, "outputs": 2})
    assert report.failed_params == ["b2"]
    finding = next(f for f in report.diagnosis.findings if f.params == ("b2",))
    assert finding.kind == "missing_sum"
    assert "extra axis 0 of length 5 (the batch)" in finding.message
    assert "summing over it gives the right gradient" in finding.message


@pytest.mark.parametrize(
    ("ratio", "sigma", "dims", "expected"),
    [
        (2.0, 1e-6, None, "2"),
        (0.5, 1e-6, None, "1/2"),
        (-2.0, 1e-6, None, "-2"),
        (0.03125, 1e-9, {"batch": 32}, "1/32 (= batch)"),
        (0.2478, 1e-6, None, None),
        (1.9, 1e-3, None, None),
    ],
)
def test_name_factor(ratio, sigma, dims, expected):
    assert name_factor(ratio, sigma, dims) == expected


# -- state and determinism ---------------------------------------------------------------------
def test_nondeterministic_loss_stops_with_a_clear_message():
    rng = np.random.default_rng(0)
    loss, grad, params = toy.regression()
    before = snapshot(params)
    with pytest.raises(NondeterministicLossError, match="fix the seed of dropout"):
        check(lambda p: loss(p) + 1e-3 * rng.normal(), grad, params)
    assert_unchanged(before)


def test_loss_that_updates_its_parameters_is_refused():
    loss, grad, params = toy.regression()
    before = snapshot(params)

    def updating(p):
        p["w"] *= 0.999
        return loss(p)

    with pytest.raises(StateMutationError, match="changed parameter\\(s\\) 'w'"):
        check(updating, grad, params)
    assert_unchanged(before)


def test_grad_that_updates_its_parameters_is_refused():
    loss, grad, params = toy.regression()
    before = snapshot(params)

    def training_step(p):
        g = grad(p)
        p["w"] -= 0.1 * g["w"]
        return g

    with pytest.raises(StateMutationError, match="calling grad changed"):
        check(loss, training_step, params)
    assert_unchanged(before)


# -- node-level localization -------------------------------------------------------------------
def test_nodes_of_a_correct_chain_are_all_right():
    loss, grad, params, nodes = toy.chain()
    report = check(loss, grad, params, nodes=nodes)
    assert report.passed
    assert [r.right for r in report.nodes] == [True, True, True]
    assert report.to_dict()["node_summary"] == ["every node's hand-written gradient is right"]


@pytest.mark.parametrize("bug", ["tanh_at_output", "skip_tanh"])
def test_nodes_name_the_step_that_lets_the_error_in(bug):
    loss, grad, params, nodes = toy.chain(bug=bug)
    before = snapshot(params)
    report = check(loss, grad, params, nodes=nodes)
    assert_unchanged(before)
    assert report.failed_params == ["W"]
    by_name = {r.name: r for r in report.nodes}
    assert by_name["z"].right
    assert by_name["h"].right
    assert not by_name["a"].right
    assert [r.name for r in report.nodes if r.enters_here] == ["a"]
    summary = report.to_dict()["node_summary"]
    assert summary[0].startswith(
        "dL/dh is right, dL/da is wrong: the error is in the backward of a -> h (tanh)"
    )
    if bug == "skip_tanh":
        assert "was never applied" in summary[0]


# -- the asker's nets ----------------------------------------------------------------------------
ASKER = load_references()


def test_asker_meant_per_sample_groups_are_the_three_nodes():
    """../shared/seed/README.md: per sample, w9..w12, {w1..w4, b1} and {w5..w8, b2}."""
    from gradcheck import check_problem

    report = check_problem(ASKER["asker-meant"].build())
    assert len(report.samples) == 2
    for sample in report.samples:
        groups = {frozenset(g.members) for g in sample.diagnosis.groups}
        assert groups == {
            frozenset({"w9", "w10", "w11", "w12"}),
            frozenset({"w1", "w2", "w3", "w4", "b1"}),
            frozenset({"w5", "w6", "w7", "w8", "b2"}),
        }


def test_asker_meant_nodes_name_softmax_and_the_missing_paths():
    from gradcheck import check_problem

    report = check_problem(ASKER["asker-meant"].build())
    summary = " ".join(report.samples[0].to_dict(entries=False)["node_summary"])
    assert "dL/dp is wrong: the error enters in the derivative of the loss itself" in summary
    assert "true = 1/2 x hand-written" in summary
    assert "the derivative of the step o -> p (softmax) was never applied" in summary
    assert "h1 gets only the path through sum_o1; missing: sum_o2" in summary
    assert "h2 gets only the path through sum_o2; missing: sum_o1" in summary


def test_asker_corrected_nodes_are_all_right():
    from gradcheck import check_problem

    report = check_problem(ASKER["asker-corrected"].build())
    assert report.passed
    assert all(r.right for r in report.nodes)
    assert all(s.passed for s in report.samples)


def test_json_carries_the_diagnosis_keys():
    loss, grad, params = toy.mlp(bug="sign_W2")
    data = check(loss, grad, params).to_dict()
    assert {"groups", "nodes", "cosine", "descent", "findings"} <= set(data)
    wrong = [e for e in data["entries"] if e["status"] == "wrong"]
    assert {e["class"] for e in wrong} == {"sign_flipped"}
    assert data["groups"][0]["factor"] == pytest.approx(-1)


def test_hand_written_value_outside_the_one_sided_derivatives_is_wrong_at_a_kink():
    loss, grad, params = toy.relu_net(at_kinks=True)

    def off_hull(p):
        g = grad(p)
        g["W"][0, 0] = 7.0  # one-sided derivatives there are 0 and 1.5
        return g

    report = check(loss, off_hull, params)
    assert report["W"].statuses.tolist()[:2] == ["wrong", "uncertain"]
    assert report.failed_params == ["W"]
    assert report.diagnosis.class_of("W", 0) == "not_subgradient"
    finding = next(f for f in report.diagnosis.findings if f.kind == "not_subgradient")
    assert finding.elements == ("W[0, 0]",)
    assert "W[0, 0] +0 / +1.5): not a subgradient" in finding.message


@pytest.mark.parametrize("name", ["asker-first", "asker-corrected", "recommended"])
def test_correct_reference_nets_have_every_node_right(name):
    from gradcheck import check_problem

    report = check_problem(ASKER[name].build())
    assert report.nodes
    assert all(r.right and not r.enters_here for r in report.nodes)
    assert all(s.passed for s in report.samples)


def test_a_passing_tensor_at_a_kink_beside_a_wrong_one_keeps_its_kink_finding():
    # passing tensors skip the wrong-gradient patterns: only their kinks are worth a word
    relu_loss, relu_grad, params = toy.relu_net(at_kinks=True)
    params = {**params, "s": 0.5}

    def loss(p):
        return relu_loss(p) + p["s"] ** 3

    def grad(p):
        return {**relu_grad(p), "s": 2 * 3 * p["s"] ** 2}  # planted: a factor 2

    report = check(loss, grad, params)
    assert report.failed_params == ["s"]
    kinds = {f.kind: f for f in report.diagnosis.findings}
    assert kinds["kink"].params == ("W",)
    assert "valid subgradients" in kinds["kink"].message
    assert kinds["scaled"].params == ("s",)
    assert "1/2" in kinds["scaled"].message
    assert not any(
        f.kind in ("scaled", "kink") and "W" in f.params and "s" in f.params
        for f in report.diagnosis.findings
    )
    assert set(report.diagnosis.classes["W"].tolist()) == {""}

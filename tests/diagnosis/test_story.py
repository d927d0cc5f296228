"""The diagnosis leads with the cause: bugs planted in nets written the way people write them,
asserted on the lead line, the line budget, and no invented classes."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check
from gradcheck.diagnosis.resolve import numeric_error, ratios
from gradcheck.diagnosis.story import HANDFUL
from gradcheck.report.text import DIAGNOSIS_LINES, diagnosis_lines
from tests.helpers import planted
from tests.helpers.snapshot import assert_unchanged, snapshot


def lead(report):
    return diagnosis_lines(report)[0]


def assert_told_in_order(report):
    """Within the budget, and no finding about a handful of elements ahead of a larger one."""
    lines = diagnosis_lines(report)
    assert len(lines) <= DIAGNOSIS_LINES
    findings = report.diagnosis.findings
    if sum(p.n_wrong for p in report.params) > HANDFUL:
        counts = [f.count for f in findings]
        for i, f in enumerate(findings):
            if f.count < HANDFUL:
                assert all(c < HANDFUL for c in counts[i:]), [(g.kind, g.count) for g in findings]


@pytest.mark.parametrize(
    "build",
    [
        planted.char_rnn,
        planted.batchnorm_net,
        planted.sparse_dense,
        planted.dense_bias,
        planted.clipped_regression,
    ],
)
def test_correct_nets_pass_with_nothing_to_say(build):
    report = check(*build())
    assert report.passed, report.to_text()
    assert report.diagnosis.findings == []


@pytest.mark.parametrize(("vocab", "hidden", "steps"), [(6, 8, 5), (8, 12, 8)])
def test_rnn_without_its_path_through_time_leads_with_the_tensors(vocab, hidden, steps):
    """min-char-rnn with dhnext never propagated: Wxh, Whh, bh wrong, Why, by right."""
    report = check(*planted.char_rnn("no_bptt", vocab=vocab, hidden=hidden, steps=steps))
    assert report.failed_params == ["Wxh", "Whh", "bh"]
    first = report.diagnosis.findings[0]
    assert first.kind == "tensors"
    assert first.count == sum(p.n_wrong for p in report.params)
    text = lead(report)
    assert "Whh (all" in text
    assert "bh (all" in text
    assert "Why, by are right" in text
    assert "the error enters on a path that reaches only Wxh, Whh, bh" in text
    if steps == 5:  # one-hot inputs: the columns of letters never seen are 0 and pass
        assert "Wxh (24 of 48, the rest 0" in text
    assert "cosine" in diagnosis_lines(report)[1]
    assert_told_in_order(report)


def test_float32_batch_norm_without_its_xhat_term_invents_no_class():
    """Every class rests on numeric partials resolved well enough for it."""
    loss, grad, params = planted.batchnorm_net("no_xhat_term")
    report = check(loss, grad, params)
    assert report.failed_params == ["W1"]
    w1 = report["W1"]
    classes = report.diagnosis.classes["W1"]
    error = numeric_error(w1)
    ratio, sigma = ratios(w1)
    spurious = classes == "spurious"
    assert np.all(np.abs(w1.numeric[spurious]) <= error[spurious])
    flipped = classes == "sign_flipped"
    assert np.all(np.abs(ratio[flipped] + 1) <= sigma[flipped])
    assert not any(f.kind in {"scaled", "group"} for f in report.diagnosis.findings)
    unresolved = next(f for f in report.diagnosis.findings if f.kind == "unresolved")
    assert unresolved.message.startswith("numeric partial did not converge at W1[")
    # float32 resolves 28 of the 30 wrong elements (numerics v2; 11 with an assumed noise level)
    assert lead(report).startswith("W1 (28 of 30) is wrong; gamma, beta, W2 are right")
    assert_told_in_order(report)


def test_float64_recheck_of_the_float32_batch_norm_resolves_every_element():
    loss, grad, params = planted.batchnorm_net("no_xhat_term")
    inputs = {name: cell.cell_contents for name, cell in _cells(loss)}
    before = snapshot(params)
    report = check(loss, grad, params, recheck_float64=True)
    assert_unchanged(before)
    for name, cell in _cells(loss):  # the closed-over inputs are back, the same objects
        assert cell.cell_contents is inputs[name]
    again = report.recheck
    assert again.failed_params == ["W1"]
    assert again["W1"].n_wrong == 30  # float32 could see 28 of them
    assert again["W1"].dtype == "float64"
    assert again.notes[0] == "float64 re-check: cast W1, gamma, beta, W2, eps, x, y from float32"
    assert "float64 re-check:" in report.to_text()
    assert '<section id="recheck"><h2>float64 re-check</h2>' in report.to_html()
    assert report.to_dict(entries=False)["recheck_float64"]["params"][0]["n_wrong"] == 30


def _cells(function):
    """The closure cells of ``function`` and of the functions it closes over."""
    for name, cell in zip(function.__code__.co_freevars, function.__closure__, strict=True):
        yield name, cell
        if callable(cell.cell_contents) and getattr(cell.cell_contents, "__closure__", None):
            yield from _cells(cell.cell_contents)


def test_float32_note_says_how_to_recheck_in_float64():
    report = check(*planted.batchnorm_net())
    assert report.recheck is None
    assert any("recheck_float64=True" in n and "astype(np.float64)" in n for n in report.notes)


@pytest.mark.parametrize(
    ("bug", "message"),
    [
        (
            "dW_transposed",
            "W: the gradient has shape (5, 12), the parameter (12, 5): it is the "
            "transpose of the right gradient",
        ),
        (
            "dW_transposed_reshaped",
            "W: the hand-written values are the transpose of the true "
            "gradient, reshaped from (5, 12) to (12, 5)",
        ),
    ],
)
def test_transposed_non_square_gradient_with_sparse_inputs(bug, message):
    loss, grad, params = planted.sparse_dense(bug)
    report = check(loss, grad, params)
    assert report["W"].numeric.reshape(12, 5)[:2].tolist() == [[0.0] * 5] * 2  # blank border
    assert report.failed_params == ["W"]
    assert report.diagnosis.findings[0].kind == "transposed"
    assert lead(report).startswith(message)
    assert_told_in_order(report)


def test_sum_over_the_wrong_axis_square():
    """db = dout.sum(axis=1) with batch == features: shapes agree, values do not."""
    report = check(*planted.dense_bias("db_axis1"))
    assert report.failed_params == ["b"]
    assert report.diagnosis.findings[0].kind == "sum_axis"
    assert "dout.sum(axis=1) where axis=0 is meant" in lead(report)
    assert set(report.diagnosis.classes["b"].tolist()) == {"wrong_axis"}


def test_sum_over_the_wrong_axis_non_square_names_the_batch():
    report = check(*planted.dense_bias("db_axis1", batch=5), dims={"batch": 5})
    assert report.diagnosis.findings[0].kind == "wrong_axis"
    assert "length 5 (the batch) where 4 is meant" in lead(report)
    assert "its elements sum to the true total" in lead(report)


def test_gradient_clipped_inside_the_gradient_function():
    report = check(*planted.clipped_regression("clipped"))
    first = report.diagnosis.findings[0]
    assert first.kind == "clipped"
    assert lead(report).startswith("w, b: 11 hand-written partials sit exactly on +-5 where")
    for p in report.params:
        wrong = p.statuses == "wrong"
        assert np.all(np.abs(p.analytic[wrong]) == 5.0)
        assert set(report.diagnosis.classes[p.name][wrong].tolist()) == {"clipped"}


def test_clipping_is_not_claimed_when_the_largest_value_is_merely_the_largest():
    loss, grad, params = planted.clipped_regression()

    def doubled(p):
        return {k: 2 * v for k, v in grad(p).items()}

    report = check(loss, doubled, params)
    assert "clipped" not in {f.kind for f in report.diagnosis.findings}


def test_transposed_100x100_gradient_lists_no_coincidental_groups():
    report = check(*planted.square_layer("transposed"))
    assert report.failed_params == ["W"]
    assert report.diagnosis.groups == []
    assert report.diagnosis.findings[0].kind == "transposed"
    assert lead(report).startswith("W: the hand-written gradient is the transpose")
    assert len(diagnosis_lines(report)) <= 3
    # wrong almost everywhere: a sample of the disagreeing elements was refined, and it says so
    assert report.evaluations < 2.1 * 100 * 100
    assert any("a sample of 64 spread over them was refined" in n for n in report.notes)


def test_line_budget_counts_the_rest_and_the_json_keeps_them():
    """Twenty tensors, each off by its own named factor: twenty findings."""
    names = [f"w{i}" for i in range(20)]
    rng = np.random.default_rng(0)
    params = {n: rng.normal(size=6) for n in names}
    weights = {n: rng.uniform(1, 2, size=6) for n in names}

    def loss(p):
        return sum(float(np.sum(weights[n] * p[n] ** 2)) for n in names)

    def grad(p):
        return {n: 2 * weights[n] * p[n] / (i + 2) for i, n in enumerate(names)}

    report = check(loss, grad, params)
    lines = diagnosis_lines(report)
    assert len(lines) == DIAGNOSIS_LINES
    hidden = len(report.diagnosis.findings) - (DIAGNOSIS_LINES - 2)  # story+cosine told
    assert lines[-1] == f'and {hidden} more findings (all in the JSON report, "findings")'
    data = report.to_dict(entries=False)
    assert len(data["findings"]) == len(report.diagnosis.findings) > DIAGNOSIS_LINES
    assert {f["kind"] for f in data["findings"]} == {"tensors", "group"}
    assert sum(f["share"] for f in data["findings"] if f["kind"] == "group") == pytest.approx(1)


def test_a_factor_is_not_taken_for_a_sum_over_the_wrong_axis():
    """Totals near 0 agree with anything: float32, hand-written values half the true ones with
    mixed signs. The factor is named; no redistribution is claimed."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    params = {"w": rng.normal(size=5).astype(np.float32)}

    def loss(p):
        return np.sum(np.tanh(x @ p["w"]) ** 2)

    def grad(p):
        h = np.tanh(x @ p["w"])
        return {"w": x.T @ (h * (1 - h**2))}

    report = check(loss, grad, params)
    kinds = [f.kind for f in report.diagnosis.findings]
    assert "sum_axis" not in kinds
    # named per element or as a group, depending on how tightly the numerics resolve them
    assert lead(report).startswith(
        ("w (all 5): true = 2 x hand-written", "group: true = 2 x hand-written for w (all 5)")
    )


def test_a_gradient_summed_over_an_axis_the_parameter_owns():
    assert check(*planted.per_sample_scale()).passed
    report = check(*planted.per_sample_scale("summed_and_broadcast"))
    assert report.diagnosis.findings[0].kind == "sum_axis"
    assert lead(report).startswith(
        "g: every slice along axis 0 holds the sum of the true partials along that axis: the "
        "gradient was summed over axis 0 (length 5) and broadcast back"
    )


def test_declared_nodes_lead_the_diagnosis():
    from tests.helpers import toy

    loss, grad, params, nodes = toy.chain(bug="skip_tanh")
    report = check(loss, grad, params, nodes=nodes)
    assert lead(report).startswith(
        "node walk: dL/dh is right, dL/da is wrong: the error is in the backward of a -> h"
    )
    assert_told_in_order(report)


def test_values_in_another_order_are_not_a_wrong_sum_axis():
    loss, grad, params = planted.dense_bias()

    def rolled(p):
        g = grad(p)
        g["b"] = np.roll(g["b"], 1)
        return g

    report = check(loss, rolled, params)
    assert lead(report).startswith("b: the hand-written values are the true ones in another order")


def test_conv_weight_gradient_unfolded_with_its_axes_in_another_order():
    """The zoo's conv2d whose dw is reshaped (F, HH, WW, C) where im2col orders (F, C, HH, WW)."""
    from gradcheck import check_problem
    from gradcheck.protocol import load_references

    report = check_problem(load_references()["bug-conv2d-dw-axes-swapped"].build())
    assert report.failed_params == ["w"]
    assert lead(report).startswith(
        "w: the hand-written values, read with their axes in the order (0, 2, 3, 1) and "
        "reshaped back to (3, 2, 3, 3), are the true gradient"
    )

"""The progress hook of check(): one call per loss evaluation, with an honest total."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import InputError, check
from tests.helpers.toy import mlp


@pytest.mark.parametrize(
    ("bug", "richardson"),
    [(None, False), ("sign_W2", False), ("per_sample_b2", False), ("sign_W2", True)],
)
def test_progress_counts_every_evaluation_and_the_plan_is_exact(bug, richardson):
    calls = []
    report = check(
        *mlp(bug), richardson=richardson, progress=lambda done, total: calls.append((done, total))
    )
    assert [d for d, _ in calls] == list(range(1, report.evaluations + 1))
    totals = [total for _, total in calls]
    assert totals == sorted(totals)  # the plan only grows, as refinement adds evaluations
    # the plan covers the baseline and the main pass from the first evaluation; the pilots
    # (noise table, step ladder: adaptive) and the refinement of disagreeing elements, which
    # only a full pass can know, are planned as they are made; with richardson every element
    # is refined, and that is planned from the start
    size = sum(p.size for p in report.params)
    assert totals[0] == 2 + (6 if richardson else 2) * size
    if bug is None:
        assert not any(p.refined.any() for p in report.params)  # a correct net needs none
    assert calls[-1] == (report.evaluations, report.evaluations)  # refinement is planned for


def test_progress_runs_on_through_sample_checks():
    loss, grad, params = mlp("sign_W2")
    calls = []
    report = check(
        loss,
        grad,
        params,
        samples=[(loss, grad), (loss, grad)],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert len(report.samples) == 2
    assert [d for d, _ in calls] == list(range(1, report.evaluations + 1))
    assert calls[-1] == (report.evaluations, report.evaluations)


def test_progress_must_be_callable():
    with pytest.raises(InputError, match="progress must be callable"):
        check(lambda p: 0.0, lambda p: {"w": 0.0}, {"w": np.ones(1)}, progress=3)


def test_the_plan_is_exact_where_the_main_pass_reuses_pilot_ladder_levels():
    """The asker's 14 scalars: every pilot element's main pass is a level of its own ladder
    (no evaluation of its own), and the plan, which only grows, still ends at the count (once
    4 evaluations over it)."""
    from nets import asker

    net = asker.problem(asker.CorrectedNet)
    calls = []
    report = check(
        net.loss, net.grad, net.params, progress=lambda done, total: calls.append((done, total))
    )
    assert report.passed
    totals = [total for _, total in calls]
    assert totals == sorted(totals)
    assert calls[-1] == (report.evaluations, report.evaluations)

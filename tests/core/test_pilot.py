"""The pilot's ladders read as a whole: their extrapolated value and the kink test it needs."""

from __future__ import annotations

import math

from gradcheck.core.pilot import Level, Reading, ladder_kinked, own_richardson

HALVES = (7.4e-4, 1.85e-4, 4.625e-5)  # a ladder's levels from eps**(1/5), 4x apart
X = 0.3


def _ladder(f) -> list[Level]:
    return [Level(h, X + h, X - h, f(X + h), f(X - h)) for h in HALVES]


def test_a_smooth_ladder_gives_its_extrapolated_value_within_its_error():
    levels = _ladder(math.sin)
    reading = Reading(1.0, HALVES[0], 1e-16, fifth=1.0)  # |f'''|, |f^(5)| of sin: at most 1
    assert not ladder_kinked(levels, X, math.sin(X), 1e-16)
    value, error = own_richardson(levels, reading)
    assert abs(value - math.cos(X)) <= error < 1e-11
    # no fifth derivative measured (the ladder did not converge on three levels): no value
    unmeasured = Reading(1.0, HALVES[0], 1e-16)
    assert math.isnan(own_richardson(levels, unmeasured)[1])


def test_a_ladder_across_a_kink_shows_it_in_its_one_sided_slopes():
    # a ReLU's kink 1e-5 above x, inside every level: the central slopes alone cannot tell
    def kinked(x):
        return math.sin(x) + 0.5 * max(x - (X + 1e-5), 0.0)

    assert ladder_kinked(_ladder(kinked), X, kinked(X), 1e-16)

    # a kink beyond the smallest level, inside the two larger ones
    def far(x):
        return math.sin(x) + 0.5 * max(x - (X + 1e-4), 0.0)

    assert ladder_kinked(_ladder(far), X, far(X), 1e-16)

"""The scale test net at tiny size: the full check passes on the correct model and catches each
planted bug exactly at the parameters it makes wrong."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check
from nets import transformer_bugs
from nets.transformer import GPT2_SMALL, TINY, Config, Transformer, parameter_count


def _failing(model: Transformer) -> set[str]:
    report = check(model.loss, model.grad, model.params)
    return {p.name for p in report.params if p.failed}


def test_tiny_model_passes_the_full_check_in_float64():
    model = Transformer(TINY)
    report = check(model.loss, model.grad, model.params)
    assert report.passed, report.to_text()
    assert sum(p.count("uncertain") for p in report.params) == 0


@pytest.mark.parametrize("bug", transformer_bugs.BUGS, ids=lambda b: b.__name__)
def test_planted_bug_fails_exactly_where_it_reaches(bug):
    expected = transformer_bugs.wrong_params(bug, TINY)
    assert expected
    assert _failing(bug(TINY)) == expected


def test_untied_head_is_its_own_parameter_and_passes():
    config = Config(vocab=5, context=3, width=4, heads=1, layers=1, tied=False, scale=0.5)
    model = Transformer(config, batch=1)
    assert model.params["head"].shape == (4, 5)
    assert _failing(model) == set()
    assert transformer_bugs.wrong_params(transformer_bugs.TiedHeadDropped, config) == set()


# float32 keeps ~7 digits; through 2 blocks the gradients agree with float64 to about 1e-6
FLOAT32_AGREEMENT = 1e-4  # of the tensor's largest |partial|


def test_float32_model_stays_float32():
    model = Transformer(TINY, dtype=np.float32)
    assert np.asarray(model.loss(model.params)).dtype == np.float32
    grads = model.grad(model.params)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    exact = Transformer(TINY).grad({k: v.astype(np.float64) for k, v in model.params.items()})
    for name, g in grads.items():
        scale = np.abs(exact[name]).max()
        assert np.abs(g - exact[name]).max() <= FLOAT32_AGREEMENT * scale, name
    assert {name: g.shape for name, g in grads.items()} == {
        name: p.shape for name, p in model.params.items()
    }


def test_gpt2_small_size_without_building_it():
    assert parameter_count(GPT2_SMALL) == 124_439_808  # GPT-2 small's published count
    assert parameter_count(TINY) == sum(p.size for p in Transformer(TINY).params.values())


def test_causal_mask_hides_the_future():
    model = Transformer(TINY, batch=1)
    base = model.loss(model.params)
    later = Transformer(TINY, batch=1)
    later.tokens = model.tokens.copy()
    later.targets = model.targets.copy()
    # the last position's target is read only by the last logits: changing the last input
    # token can move only the last position's loss, never an earlier one's
    later.tokens[0, -1] = (later.tokens[0, -1] + 1) % TINY.vocab
    head = model.forward(model.params)[1][3]
    moved = later.forward(model.params)[1][3]
    np.testing.assert_array_equal(head[:-1], moved[:-1])
    assert not np.array_equal(head[-1], moved[-1])
    assert np.isfinite(base)

"""The bug catalogue: which wrong backward is planted in which zoo net, and what it breaks.

Each :class:`Bug` names the stage of a :data:`nets.zoo.NETS` net whose backward it replaces and
the parameters whose partials it makes wrong (the check must fail at exactly those). Where the
mistake has a signature the diagnosis can name from the numbers alone, the entry also says
which: the element ``classes`` (``transposed``, ``sign_flipped``, ``spurious``, ``missing``) or
the ``factor`` true / hand-written that a group of partials shares (the batch size N = 3 of the
layer nets, 2 for a dropped square, 1 / (1 - p) for dropout, 1 / sqrt(E) in attention, 12
output positions in the conv net).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from . import bugs, bugs_spatial


class Bug(NamedTuple):
    """A wrong backward planted in one stage of a zoo net."""

    net: str
    stage: str
    backward: Callable[[Any, Any], Any]
    touches: frozenset[str]  # the parameters whose partials it makes wrong
    classes: frozenset[str] = frozenset()  # the diagnosis classes of its wrong elements, if set
    factor: float | None = None  # true / hand-written, shared by a group of partials, if set

    @property
    def name(self) -> str:
        """``bug-<function>``, or ``bug-<net>-<function>`` when the function is another layer's."""
        function = self.backward.__name__.replace("_", "-")
        return f"bug-{function}" if function.startswith(self.net) else f"bug-{self.net}-{function}"

    @property
    def description(self) -> str:
        return (self.backward.__doc__ or "").strip().splitlines()[0]


def _bug(net: str, stage: str, backward, *touches: str, classes=(), factor=None) -> Bug:
    return Bug(net, stage, backward, frozenset(touches), frozenset(classes), factor)


ROUTED = {"missing", "spurious"}  # a mask routed to the wrong cells: zeros and extras


B, S = bugs, bugs_spatial
BUGS: tuple[Bug, ...] = (
    _bug("dense", "dense", B.dense_dx_untransposed, "x"),
    _bug("dense", "dense", B.dense_dw_transposed, "w", classes={"transposed"}),
    _bug("dense", "dense", B.dense_db_averaged, "b", factor=3.0),
    _bug("sigmoid", "sigmoid", B.sigmoid_at_output, "x"),
    _bug("sigmoid", "sigmoid", B.sigmoid_drops_dout, "x"),
    _bug("tanh", "tanh", B.tanh_at_output, "x"),
    _bug("tanh", "tanh", B.tanh_unsquared, "x"),
    _bug("relu", "relu", B.relu_no_mask, "x", classes={"spurious"}),
    _bug("relu", "relu", B.relu_mask_from_dout, "x", classes=ROUTED),
    _bug("softmax", "softmax", B.softmax_diagonal_only, "x"),
    _bug("softmax", "softmax", B.softmax_sum_over_batch, "x"),
    _bug("cross-entropy", "cross_entropy", B.cross_entropy_no_batch_mean, "z", factor=1 / 3),
    _bug("cross-entropy", "cross_entropy", B.cross_entropy_grad_of_probs, "z"),
    _bug("mse", "mse", B.mse_no_factor_two, "pred", factor=2.0),
    _bug("mse", "mse", B.mse_sign_flipped, "pred", classes={"sign_flipped"}),
    _bug("mse", "mse", B.mse_batch_mean_only, "pred", factor=3 / 12),
    _bug("conv2d", "conv2d", S.conv2d_kernel_flipped, "x"),
    _bug("conv2d", "conv2d", S.conv2d_padding_not_removed, "x"),
    _bug("conv2d", "conv2d", S.conv2d_dw_axes_swapped, "w"),
    _bug("conv2d", "conv2d", S.conv2d_db_mean_over_positions, "b", factor=12.0),
    _bug("maxpool", "maxpool", S.maxpool_to_every_cell, "x", classes={"spurious"}),
    _bug("maxpool", "maxpool", S.maxpool_winner_transposed, "x", classes=ROUTED),
    _bug("batchnorm", "batchnorm", B.batchnorm_stats_as_constants, "x"),
    _bug("batchnorm", "batchnorm", B.batchnorm_no_variance_path, "x"),
    _bug("batchnorm", "batchnorm", B.batchnorm_dgamma_like_dbeta, "gamma"),
    _bug("layernorm", "layernorm", B.layernorm_batch_axis, "x"),
    _bug("layernorm", "layernorm", B.layernorm_dgamma_feature_axis, "gamma"),
    _bug("layernorm", "layernorm", B.layernorm_stats_as_constants, "x"),
    _bug("dropout", "dropout", B.dropout_no_rescale, "x", factor=1 / 0.7),
    _bug("dropout", "dropout", B.dropout_keep_prob_confused, "x", factor=0.3 / 0.7),
    _bug("dropout", "dropout", B.dropout_fresh_mask, "x", classes=ROUTED),
    _bug("rnn", "rnn", S.rnn_no_path_through_time, "x", "h0", "wx", "wh", "b"),
    _bug("rnn", "rnn", S.rnn_dwx_overwritten, "wx"),
    _bug("rnn", "rnn", S.rnn_dwh_transposed, "wh", classes={"transposed"}),
    _bug("attention", "attention", S.attention_softmax_diagonal_only, "x", "wq", "wk"),
    _bug("attention", "attention", S.attention_scale_forgotten, "x", "wq", "wk", factor=0.5),
    _bug("attention", "attention", S.attention_dk_untransposed, "x", "wk"),
    _bug("attention", "attention", S.attention_dx_no_value_path, "x"),
    _bug("mlp", "tanh", B.activation_skipped, "W1", "b1"),
    _bug("tied", "dense1", B.dense_shared_use_dropped, "w", "b"),
    _bug("letters", "pool", S.maxpool_to_every_cell, "wc", "bc"),
)

"""Deliberately wrong backwards of :class:`nets.transformer.Transformer`, one bug per class.

The first docstring line names the bug. :func:`wrong_params` says which parameters each one
makes wrong: a bug in one layer reaches that layer's parameters and every parameter upstream of
it, nothing downstream.
"""

from __future__ import annotations

import numpy as np

from .layers import dense_backward
from .transformer import BLOCK_PARAMS, Config, Transformer, _heads, _merge


class GainWithoutXhat(Transformer):
    """LayerNorm's dgamma = sum_n dout: the normalised input xhat is dropped."""

    @staticmethod
    def layernorm_backward(dout, cache):
        xhat, gamma, inv_std = cache
        g = dout * gamma
        dx = inv_std * (
            g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True)
        )
        return dx, dout.sum(axis=0), dout.sum(axis=0)


class TiedHeadDropped(Transformer):
    """The tied token embedding keeps its lookup gradient only; the head's use is dropped."""

    @staticmethod
    def tied_embedding_grad(dwte, dhead_t):
        return dwte


class GeluChainDropped(Transformer):
    """GELU's dx = dout (1 + t) / 2: the path through tanh's argument is forgotten."""

    @staticmethod
    def gelu_backward(dout, cache):
        _x, t = cache
        return dout * 0.5 * (1.0 + t)


class AttentionUnscaled(Transformer):
    """Attention's dq and dk miss the 1 / sqrt(E) the forward scaled the scores by."""

    @staticmethod
    def attention_backward(dout, cache):
        qkv_cache, proj_cache, q, k, v, a = cache
        n, heads, steps, _ = q.shape
        dy, dw_proj, db_proj = dense_backward(dout.reshape(n * steps, -1), proj_cache)
        dy = _heads(dy, n, steps, heads)
        da = dy @ v.transpose(0, 1, 3, 2)
        dv = a.transpose(0, 1, 3, 2) @ dy
        ds = a * (da - (da * a).sum(axis=-1, keepdims=True))
        dq, dk = ds @ k, ds.transpose(0, 1, 3, 2) @ q
        dqkv = np.concatenate([_merge(dq), _merge(dk), _merge(dv)], axis=1)
        dx, dw_qkv, db_qkv = dense_backward(dqkv, qkv_cache)
        return dx.reshape(dout.shape), dw_qkv, db_qkv, dw_proj, db_proj


def _upstream_of(config: Config, block: int, keys: tuple[str, ...]) -> set[str]:
    """``keys`` of block ``block``, every parameter of the blocks before it, the embeddings."""
    names = {f"h{block}.{key}" for key in keys} | {"wte", "wpe"}
    return names | {f"h{i}.{key}" for i in range(block) for key in BLOCK_PARAMS}


def wrong_params(bug: type[Transformer], config: Config) -> set[str]:
    """The parameters ``bug`` makes wrong in a model of ``config`` (the bug is in every block).

    The tied ``wte`` is also the head, whose own part stays right; its lookup part comes from
    upstream, so ``wte`` is wrong whenever the embeddings are.
    """
    last = config.layers - 1
    if bug is GainWithoutXhat:
        return {f"h{i}.{ln}.gamma" for i in range(config.layers) for ln in ("ln1", "ln2")} | {
            "lnf.gamma"
        }
    if bug is TiedHeadDropped:
        return {"wte"} if config.tied else set()
    if bug is GeluChainDropped:  # the last block's GELU sits below its mlp.w_proj, b_proj
        return _upstream_of(
            config, last, tuple(k for k in BLOCK_PARAMS if k not in ("mlp.w_proj", "mlp.b_proj"))
        )
    if bug is AttentionUnscaled:  # q and k sit below the last attention's projection
        return _upstream_of(config, last, ("ln1.gamma", "ln1.beta", "attn.w_qkv", "attn.b_qkv"))
    raise ValueError(f"unknown bug {bug.__name__}")


BUGS = (GainWithoutXhat, TiedHeadDropped, GeluChainDropped, AttentionUnscaled)

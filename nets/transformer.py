"""A GPT-2-style language model with a hand-written backward: the scale test net.

Token and position embeddings, ``layers`` blocks of pre-LayerNorm causal multi-head
self-attention and a GELU MLP (each on a residual path), a final LayerNorm and an LM head
(tied to the token embedding by default), mean cross-entropy of each position's next token.
:data:`GPT2_SMALL` builds it at GPT-2 small's size (1.2x10^8 parameters, ``make bench-big``);
:data:`TINY` at a few thousand parameters for its correctness test.

Conventions as in :mod:`nets.layers`: ``xxx_forward(...) -> (out, cache)``, ``xxx_backward(dout,
cache)``; sequences are ``(N, T, D)`` (batch, time, width) and a dense layer or LayerNorm sees
them flattened to ``(N*T, D)``. Every constant is a Python float so a float32 model stays
float32 throughout (a NumPy float64 scalar would promote it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from gradcheck.protocol import Problem

from .layers import cross_entropy_backward, cross_entropy_forward, dense_backward, dense_forward
from .norms import layernorm_backward, layernorm_forward


@dataclass(frozen=True)
class Config:
    """The model's sizes. ``tied``: the LM head is the token embedding, transposed."""

    vocab: int
    context: int  # rows of the position embedding: the longest sequence it can read
    width: int
    heads: int
    layers: int
    tied: bool = True
    scale: float = 0.02  # the weights' standard deviation at initialisation
    widening: int = 4  # the MLP's hidden width over the model's (4 in GPT-2)

    @property
    def mlp(self) -> int:
        """The MLP's hidden width."""
        return self.widening * self.width


GPT2_SMALL = Config(vocab=50257, context=1024, width=768, heads=12, layers=12)
# Weights 25x GPT-2's: scores of order 1, so no path (through q and k especially) is negligible;
# a narrower MLP keeps the full check's 2P evaluations few
TINY = Config(vocab=7, context=4, width=4, heads=2, layers=2, scale=0.5, widening=2)


# ---------------------------------------------------------------------------------- GELU
GELU_C = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715


class GeluCache(NamedTuple):
    x: np.ndarray
    t: np.ndarray  # tanh(u), u = c (x + a x^3)


def gelu_forward(x):
    """GPT-2's tanh approximation, elementwise: out = x (1 + tanh(c (x + a x^3))) / 2,
    c = sqrt(2 / pi), a = 0.044715."""
    t = np.tanh(GELU_C * (x + GELU_CUBIC * x**3))
    return 0.5 * x * (1.0 + t), GeluCache(x, t)


def gelu_backward(dout, cache):
    """dout shaped like x -> dx = dout ((1 + t) / 2 + x (1 - t^2) c (1 + 3 a x^2) / 2)."""
    x, t = cache
    return dout * (
        0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_CUBIC * x * x)
    )


# -------------------------------------------------------------------------------- embedding
class EmbeddingCache(NamedTuple):
    tokens: np.ndarray
    vocab: int
    context: int


def embedding_forward(tokens, wte, wpe):
    """x[n, t] = wte[tokens[n, t]] + wpe[t]: tokens (N, T) ints, wte (V, D), wpe (C, D), T <= C
    -> x (N, T, D)."""
    steps = tokens.shape[1]
    return wte[tokens] + wpe[:steps], EmbeddingCache(tokens, wte.shape[0], wpe.shape[0])


def embedding_backward(dout, cache):
    """dout (N, T, D) -> dwte (V, D), dwpe (C, D): dwte[v] = sum of dout[n, t] over the
    positions holding token v (np.add.at: repeated tokens accumulate), dwpe[t] = sum_n
    dout[n, t] for t < T and 0 beyond."""
    tokens, vocab, context = cache
    width = dout.shape[-1]
    dwte = np.zeros((vocab, width), dtype=dout.dtype)
    np.add.at(dwte, tokens.reshape(-1), dout.reshape(-1, width))
    dwpe = np.zeros((context, width), dtype=dout.dtype)
    dwpe[: dout.shape[1]] = dout.sum(axis=0)
    return dwte, dwpe


# --------------------------------------------------------------- causal multi-head attention
class AttentionCache(NamedTuple):
    qkv: Any  # the DenseCache of the q, k, v projection
    proj: Any  # the DenseCache of the output projection
    q: np.ndarray  # (N, H, T, E) each head's queries, E = D / H
    k: np.ndarray
    v: np.ndarray
    a: np.ndarray  # (N, H, T, T) attention weights, 0 above the diagonal, rows sum to 1


def _heads(x, n, steps, heads):
    """(N*T, D) -> (N, H, T, D/H)."""
    return x.reshape(n, steps, heads, -1).transpose(0, 2, 1, 3)


def _merge(x):
    """(N, H, T, E) -> (N*T, H*E), the inverse of :func:`_heads`."""
    n, heads, steps, size = x.shape
    return x.transpose(0, 2, 1, 3).reshape(n * steps, heads * size)


def attention_forward(x, w_qkv, b_qkv, w_proj, b_proj, heads):
    """Causal multi-head self-attention. x (N, T, D), w_qkv (D, 3D), b_qkv (3D,), w_proj (D, D),
    b_proj (D,) -> out (N, T, D).

    [q k v] = x w_qkv + b_qkv, split into H heads of E = D / H; per head
    a = softmax(q k^T / sqrt(E) with position s > t masked out of row t), y = a v; the heads
    side by side go through out = y w_proj + b_proj.
    """
    n, steps, width = x.shape
    qkv, qkv_cache = dense_forward(x.reshape(-1, width), w_qkv, b_qkv)
    q, k, v = (_heads(part, n, steps, heads) for part in np.split(qkv, 3, axis=1))
    scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(q.shape[-1]))
    future = np.triu(np.ones((steps, steps), dtype=bool), k=1)
    scores[..., future] = -np.inf  # exp(-inf) = 0: row t attends to positions <= t only
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-1, keepdims=True)
    out, proj_cache = dense_forward(_merge(a @ v), w_proj, b_proj)
    return out.reshape(n, steps, width), AttentionCache(qkv_cache, proj_cache, q, k, v, a)


def attention_backward(dout, cache):
    """dout (N, T, D) -> dx (N, T, D), dw_qkv (D, 3D), db_qkv (3D,), dw_proj (D, D),
    db_proj (D,).

    Through the projection: dy = dout w_proj^T, per head da = dy v^T and dv = a^T dy; through
    the row softmax ds = a (da - sum_s da a) (0 where a is masked, since a is 0 there); with
    c = 1 / sqrt(E): dq = c ds k, dk = c ds^T q; [dq dk dv] goes back through the q, k, v
    projection to dx, dw_qkv, db_qkv.
    """
    qkv_cache, proj_cache, q, k, v, a = cache
    n, heads, steps, _ = q.shape
    dy, dw_proj, db_proj = dense_backward(dout.reshape(n * steps, -1), proj_cache)
    dy = _heads(dy, n, steps, heads)
    da = dy @ v.transpose(0, 1, 3, 2)
    dv = a.transpose(0, 1, 3, 2) @ dy
    ds = a * (da - (da * a).sum(axis=-1, keepdims=True))
    scale = 1.0 / math.sqrt(q.shape[-1])
    dq = (ds @ k) * scale
    dk = (ds.transpose(0, 1, 3, 2) @ q) * scale
    dqkv = np.concatenate([_merge(dq), _merge(dk), _merge(dv)], axis=1)
    dx, dw_qkv, db_qkv = dense_backward(dqkv, qkv_cache)
    return dx.reshape(dout.shape), dw_qkv, db_qkv, dw_proj, db_proj


# ------------------------------------------------------------------------------------- model
BLOCK_PARAMS = (
    "ln1.gamma",
    "ln1.beta",
    "attn.w_qkv",
    "attn.b_qkv",
    "attn.w_proj",
    "attn.b_proj",
    "ln2.gamma",
    "ln2.beta",
    "mlp.w_fc",
    "mlp.b_fc",
    "mlp.w_proj",
    "mlp.b_proj",
)


def init_params(config: Config, seed: int = 0, dtype: Any = np.float64) -> dict[str, np.ndarray]:
    """GPT-2's initialisation: weights N(0, s) (s = ``config.scale``, 0.02 in GPT-2), the two
    projections onto the residual path scaled by 1 / sqrt(2 layers); gains 1 and biases 0 plus
    N(0, s) noise, so no gradient is zero by symmetry (a bug that only shows away from gain 1
    or bias 0 is still seen).
    Drawn in ``dtype`` directly: no float64 temporary at full size."""
    rng = np.random.default_rng(seed)
    d, scale = config.width, config.scale
    residual = scale / math.sqrt(2 * config.layers)

    def normal(shape, std, mean=0.0):
        out = rng.standard_normal(shape, dtype=dtype)
        out *= std
        out += mean
        return out

    params = {
        "wte": normal((config.vocab, d), scale),
        "wpe": normal((config.context, d), scale / 2),
    }
    for i in range(config.layers):
        shapes = {
            "ln1.gamma": ((d,), scale, 1.0),
            "ln1.beta": ((d,), scale, 0.0),
            "attn.w_qkv": ((d, 3 * d), scale, 0.0),
            "attn.b_qkv": ((3 * d,), scale, 0.0),
            "attn.w_proj": ((d, d), residual, 0.0),
            "attn.b_proj": ((d,), scale, 0.0),
            "ln2.gamma": ((d,), scale, 1.0),
            "ln2.beta": ((d,), scale, 0.0),
            "mlp.w_fc": ((d, config.mlp), scale, 0.0),
            "mlp.b_fc": ((config.mlp,), scale, 0.0),
            "mlp.w_proj": ((config.mlp, d), residual, 0.0),
            "mlp.b_proj": ((d,), scale, 0.0),
        }
        for key in BLOCK_PARAMS:
            shape, std, mean = shapes[key]
            params[f"h{i}.{key}"] = normal(shape, std, mean)
    params["lnf.gamma"] = normal((d,), scale, 1.0)
    params["lnf.beta"] = normal((d,), scale, 0.0)
    if not config.tied:
        params["head"] = normal((d, config.vocab), scale)
    return params


class BlockCache(NamedTuple):
    ln1: Any
    attn: Any
    ln2: Any
    fc: Any
    gelu: Any
    proj: Any


class Transformer:
    """The language model on a fixed seeded batch of ``batch`` sequences of ``steps`` tokens.

    ``loss(params)`` is the mean next-token cross-entropy; ``grad(params)`` its hand-written
    gradient, one entry per parameter, in the parameters' dtype. The layer backwards are class
    attributes, so a deliberately wrong variant (:mod:`nets.transformer_bugs`) overrides one.
    """

    gelu_backward = staticmethod(gelu_backward)
    layernorm_backward = staticmethod(layernorm_backward)
    attention_backward = staticmethod(attention_backward)
    embedding_backward = staticmethod(embedding_backward)

    def __init__(
        self,
        config: Config = TINY,
        batch: int = 2,
        steps: int | None = None,
        seed: int = 0,
        dtype: Any = np.float64,
    ):
        steps = config.context if steps is None else steps
        if not 0 < steps <= config.context:
            raise ValueError(f"steps must be in 1..{config.context} (the context), got {steps}")
        if config.width % config.heads:
            raise ValueError(f"width {config.width} is not a multiple of heads {config.heads}")
        self.config = config
        rng = np.random.default_rng(seed + 1)
        text = rng.integers(config.vocab, size=(batch, steps + 1))
        self.tokens, self.targets = text[:, :-1], text[:, 1:]
        self.params = init_params(config, seed, dtype)

    # -- forward -----------------------------------------------------------------------------
    def forward(self, params: dict[str, np.ndarray]):
        """The loss and every layer's cache."""
        c = self.config
        x, embed_cache = embedding_forward(self.tokens, params["wte"], params["wpe"])
        n, steps, d = x.shape
        blocks = []
        for i in range(c.layers):
            p = {key: params[f"h{i}.{key}"] for key in BLOCK_PARAMS}
            h, ln1 = layernorm_forward(x.reshape(-1, d), p["ln1.gamma"], p["ln1.beta"])
            h, attn = attention_forward(
                h.reshape(n, steps, d),
                p["attn.w_qkv"],
                p["attn.b_qkv"],
                p["attn.w_proj"],
                p["attn.b_proj"],
                c.heads,
            )
            x = x + h
            h, ln2 = layernorm_forward(x.reshape(-1, d), p["ln2.gamma"], p["ln2.beta"])
            h, fc = dense_forward(h, p["mlp.w_fc"], p["mlp.b_fc"])
            h, gelu = gelu_forward(h)
            h, proj = dense_forward(h, p["mlp.w_proj"], p["mlp.b_proj"])
            x = x + h.reshape(n, steps, d)
            blocks.append(BlockCache(ln1, attn, ln2, fc, gelu, proj))
        h, lnf = layernorm_forward(x.reshape(-1, d), params["lnf.gamma"], params["lnf.beta"])
        head = params["wte"].T if c.tied else params["head"]
        logits = h @ head
        loss, ce = cross_entropy_forward(logits, self.targets.reshape(-1))
        return loss, (embed_cache, blocks, lnf, h, head, ce)

    def loss(self, params: dict[str, np.ndarray]):
        """Mean next-token cross-entropy (a scalar of the parameters' dtype)."""
        return self.forward(params)[0]

    # -- backward ----------------------------------------------------------------------------
    def grad(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """dL/dparam for every parameter, by the layers' backwards in reverse order.

        The head: dlogits = (p - onehot) / (N T); dh = dlogits head^T, dhead = h^T dlogits. A
        tied head adds dhead^T = dlogits^T h to the embedding's dwte: the token embedding is used
        twice (dhead^T is computed as such: a (V, D) product, no strided transpose at V = 50257).
        Each residual x + f(x) passes dout to x unchanged and adds f's dx.
        """
        c = self.config
        _loss, (embed_cache, blocks, lnf, h, head, ce) = self.forward(params)
        grads: dict[str, np.ndarray] = {}
        dlogits = cross_entropy_backward(1.0, ce).astype(h.dtype, copy=False)
        dhead = dlogits.T @ h if c.tied else h.T @ dlogits  # (V, D) tied, (D, V) untied
        dh = dlogits @ head.T
        dh, grads["lnf.gamma"], grads["lnf.beta"] = self.layernorm_backward(dh, lnf)
        (n, steps), d = embed_cache.tokens.shape, c.width
        dx = dh.reshape(n, steps, d)
        for i in reversed(range(c.layers)):
            b = blocks[i]
            g: dict[str, np.ndarray] = {}
            dh, g["mlp.w_proj"], g["mlp.b_proj"] = dense_backward(dx.reshape(-1, d), b.proj)
            dh = self.gelu_backward(dh, b.gelu)
            dh, g["mlp.w_fc"], g["mlp.b_fc"] = dense_backward(dh, b.fc)
            dh, g["ln2.gamma"], g["ln2.beta"] = self.layernorm_backward(dh, b.ln2)
            dx = dx + dh.reshape(n, steps, d)
            dh, *attn = self.attention_backward(dx, b.attn)
            g["attn.w_qkv"], g["attn.b_qkv"], g["attn.w_proj"], g["attn.b_proj"] = attn
            dh, g["ln1.gamma"], g["ln1.beta"] = self.layernorm_backward(dh.reshape(-1, d), b.ln1)
            dx = dx + dh.reshape(n, steps, d)
            grads.update({f"h{i}.{key}": value for key, value in g.items()})
        grads["wte"], grads["wpe"] = self.embedding_backward(dx, embed_cache)
        if c.tied:
            grads["wte"] = self.tied_embedding_grad(grads["wte"], dhead)
        else:
            grads["head"] = dhead
        return {name: grads[name] for name in params}

    @staticmethod
    def tied_embedding_grad(dwte, dhead_t):
        """dwte (V, D) of the lookup, dhead_t = dhead^T (V, D) of the head -> their sum, in
        place: the tied token embedding's two uses add up."""
        dwte += dhead_t
        return dwte

    def problem(self) -> Problem:
        """The model as a :class:`gradcheck.protocol.Problem` on its own parameters."""
        return Problem(self.loss, self.grad, self.params, name="transformer")


def parameter_count(config: Config) -> int:
    """Parameters of a model of ``config``, without building it."""
    d, m = config.width, config.mlp
    block = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * m + m) + (m * d + d)
    head = 0 if config.tied else d * config.vocab
    return config.vocab * d + config.context * d + config.layers * block + 2 * d + head

"""Attention and Transformer layers (Vaswani et al., 2017), forward and backward.

Shape letters used throughout:
    N  minibatch size      T  query positions      S  key/value positions
    D  model width         h  number of heads      d = D / h, the width of one head

Every `*_forward` returns `(out, cache)` and the matching `*_backward(dout, cache)` sits right
below it. Weights multiply from the right (x @ W), as in the rest of the course. Masks are
boolean arrays broadcastable to the (..., T, S) scores, True where a query may look: a
blocked position gets probability exactly 0, so nothing flows back through it either.
All functions compute with the array module of their inputs (numpy or cupy).
"""
from __future__ import annotations

import math

from .backend import array_module, get_xp


def _fail(fn, message):
    raise ValueError(f"{fn}: {message}")


def causal_mask(T, xp=None):
    """(T, T) boolean mask, True on and below the diagonal: position t sees positions <= t.
    xp: the array module to build it with (default: the active backend)."""
    xp = xp or get_xp()
    return xp.tril(xp.ones((T, T), dtype=bool))


def positional_encoding(T, D, xp=None):
    """Sinusoidal position codes (T, D): even columns sin(t / 10000^(i/D)), odd columns the
    cosine at the same frequency (i the even column index). D must be even."""
    if D % 2:
        _fail("positional_encoding", f"D must be even (sin and cos pairs), got {D}.")
    xp = xp or get_xp()
    t = xp.arange(T, dtype=xp.float64)[:, None]
    freq = 10000.0 ** (-xp.arange(0, D, 2, dtype=xp.float64) / D)
    codes = xp.zeros((T, D))
    codes[:, 0::2] = xp.sin(t * freq)
    codes[:, 1::2] = xp.cos(t * freq)
    return codes


def _softmax_last(scores, mask, xp):
    if mask is not None:
        scores = xp.where(mask, scores, -xp.inf)
    top = scores.max(axis=-1, keepdims=True)
    if mask is not None:
        top = xp.where(xp.isfinite(top), top, 0.0)  # a row with nothing to see: all zero
    weights = xp.exp(scores - top)
    total = weights.sum(axis=-1, keepdims=True)
    return weights / xp.where(total > 0, total, 1.0)


def attention_forward(q, k, v, mask=None):
    """Scaled dot-product attention: softmax(q k^T / sqrt(d)) v over the last two axes.

    q: (..., T, d); k: (..., S, d); v: (..., S, dv); any leading axes (batch, heads) match.
    mask: None or boolean, broadcastable to (..., T, S), True where a query may look.
    Returns (out, cache): out (..., T, dv); cache (q, k, v, weights, scale), weights the
    (..., T, S) attention probabilities, which backward needs and which are worth drawing.
    """
    fn = "attention_forward"
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        _fail(fn, f"need q (..., T, d), k (..., S, d), v (..., S, dv); got q {q.shape}, "
                  f"k {k.shape}, v {v.shape}.")
    xp = array_module(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ xp.swapaxes(k, -1, -2)) * scale
    weights = _softmax_last(scores, mask, xp)
    return weights @ v, (q, k, v, weights, scale)


def attention_backward(dout, cache):
    """Backward of attention_forward: returns dq, dk, dv.

    Through out = P v: dP = dout v^T and dv = P^T dout. Through the row softmax
    P = softmax(s): ds = P * (dP - sum(dP * P) along the row). Through s = q k^T * scale:
    dq = ds k * scale and dk = ds^T q * scale. Blocked entries have P = 0, so ds = 0 there.
    """
    q, k, v, weights, scale = cache
    xp = array_module(dout, q)
    dv = xp.swapaxes(weights, -1, -2) @ dout
    dweights = dout @ xp.swapaxes(v, -1, -2)
    dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
    dq = (dscores @ k) * scale
    dk = (xp.swapaxes(dscores, -1, -2) @ q) * scale
    return dq, dk, dv


def _split_heads(x, h):
    N, T, D = x.shape
    return x.reshape(N, T, h, D // h).transpose(0, 2, 1, 3)  # (N, h, T, d)


def _merge_heads(x):
    N, h, T, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(N, T, h * d)


def multihead_attention_forward(x_q, x_kv, params, num_heads, mask=None):
    """Multi-head attention: project, attend in num_heads subspaces of width D / h, concat,
    project back.

    x_q: (N, T, D) the queries' inputs; x_kv: (N, S, D) the keys' and values' inputs (x_q
    itself for self-attention). params: Wq, Wk, Wv, Wo (D, D) and bq, bk, bv, bo (D,).
    mask: None or boolean, broadcastable to (N, h, T, S), e.g. causal_mask(T).
    Returns (out, cache): out (N, T, D).
    """
    fn = "multihead_attention_forward"
    if x_q.ndim != 3 or x_kv.ndim != 3 or x_q.shape[2] != x_kv.shape[2]:
        _fail(fn, f"need x_q (N, T, D) and x_kv (N, S, D); got {x_q.shape} and {x_kv.shape}.")
    D = x_q.shape[2]
    if D % num_heads:
        _fail(fn, f"D = {D} must be a multiple of num_heads = {num_heads}.")
    p = params
    q = _split_heads(x_q @ p["Wq"] + p["bq"], num_heads)
    k = _split_heads(x_kv @ p["Wk"] + p["bk"], num_heads)
    v = _split_heads(x_kv @ p["Wv"] + p["bv"], num_heads)
    heads, attn_cache = attention_forward(q, k, v, mask)
    concat = _merge_heads(heads)
    out = concat @ p["Wo"] + p["bo"]
    return out, (x_q, x_kv, params, num_heads, concat, attn_cache)


def multihead_attention_backward(dout, cache):
    """Backward of multihead_attention_forward: returns (dx_q, dx_kv, grads), grads a dict
    with the keys of params. For self-attention, x's gradient is dx_q + dx_kv."""
    x_q, x_kv, p, h, concat, attn_cache = cache
    grads = {"Wo": concat.reshape(-1, concat.shape[-1]).T @ dout.reshape(-1, dout.shape[-1]),
             "bo": dout.sum(axis=(0, 1))}
    dq, dk, dv = attention_backward(_split_heads(dout @ p["Wo"].T, h), attn_cache)
    dx_q = 0.0
    dx_kv = 0.0
    for name, x, d in (("q", x_q, dq), ("k", x_kv, dk), ("v", x_kv, dv)):
        d = _merge_heads(d)  # gradient of the projection's output (N, *, D)
        grads["W" + name] = x.reshape(-1, x.shape[-1]).T @ d.reshape(-1, d.shape[-1])
        grads["b" + name] = d.sum(axis=(0, 1))
        dx = d @ p["W" + name].T
        if name == "q":
            dx_q = dx
        else:
            dx_kv = dx_kv + dx
    return dx_q, dx_kv, grads

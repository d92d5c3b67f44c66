"""Layers for sequences: word embeddings, vanilla RNN and LSTM cells, and per-timestep
affine and softmax layers.

Shape letters used throughout:
    N  minibatch size          T  number of timesteps
    D  input (word vector) size   H  hidden state size
    V  vocabulary size         M  output size of a temporal affine layer

Every `*_forward` returns `(out, cache)`; the matching `*_backward(dout, cache)` sits right
below it and returns the gradients in the order of the forward's array arguments. All
functions compute with the array module of their inputs (numpy or cupy).
"""
from __future__ import annotations

import numpy

from .backend import array_module

# ----------------------------------------------------------------------------------------
# Small helpers: input checks, a numerically stable sigmoid, and scatter-add
# ----------------------------------------------------------------------------------------


def _fail(fn, message):
    raise ValueError(f"{fn}: {message}")


def _require_float(fn, **arrays):
    for name, a in arrays.items():
        if not numpy.issubdtype(a.dtype, numpy.floating):
            _fail(fn, f"{name} must be a floating-point array, got dtype {a.dtype}.")


def _require_int(fn, **arrays):
    for name, a in arrays.items():
        if not numpy.issubdtype(a.dtype, numpy.integer):
            _fail(fn, f"{name} must be an integer array of indices, got dtype {a.dtype}.")


def _require_ndim(fn, name, a, ndim, letters):
    if a.ndim != ndim:
        _fail(fn, f"{name} must have shape {letters}, got shape {a.shape}.")


def _require_indices_below(fn, name, idx, upper):
    """Every entry of `idx` must lie in [0, upper).

    Out-of-range indices must be caught here because cupy's fancy indexing wraps them
    around silently instead of raising. On cupy this check costs one scalar device->host
    transfer (a bool), which we accept for a clear error.
    """
    xp = array_module(idx)
    if idx.size and bool(xp.any((idx < 0) | (idx >= upper))):
        _fail(fn, f"{name} (shape {idx.shape}) has entries outside [0, {upper}).")


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), stable for large |x|.

    exp is only ever evaluated at -|x| <= 0, so it never overflows: for x >= 0 we use
    1 / (1 + e^{-x}) and for x < 0 the equivalent e^{x} / (1 + e^{x}).
    """
    xp = array_module(x)
    z = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


# student-writes: assignment3/rnn_captioning
def _scatter_add(target, indices, values):
    """target[indices] += values, accumulating repeated indices (in place).

    Plain `target[indices] += values` keeps only one contribution per repeated index;
    numpy spells the accumulating version `np.add.at`, cupy `cupyx.scatter_add`.
    """
    if array_module(target) is numpy:
        numpy.add.at(target, indices, values)
    else:
        import cupyx

        cupyx.scatter_add(target, indices, values)


# ----------------------------------------------------------------------------------------
# Word embedding
# ----------------------------------------------------------------------------------------


# student-writes: assignment3/rnn_captioning
def word_embedding_forward(x, W):
    """Look up a D-dimensional vector for every word index.

    Inputs:
        x: integer array (N, T), each entry a word index in [0, V).
        W: (V, D) embedding matrix, one row per word.
    Returns (out, cache):
        out: (N, T, D) with out[n, t] = W[x[n, t]].
        cache: (x, W) -- backward needs the indices to know which rows received gradient,
            and W for the shape and dtype of dW.
    """
    fn = "word_embedding_forward"
    _require_int(fn, x=x)
    _require_float(fn, W=W)
    _require_ndim(fn, "x", x, 2, "(N, T)")
    _require_ndim(fn, "W", W, 2, "(V, D)")
    _require_indices_below(fn, "x", x, W.shape[0])
    return W[x], (x, W)


# student-writes: assignment3/rnn_captioning
def word_embedding_backward(dout, cache):
    """Gradient of the embedding lookup: dW[v] = sum of dout over every position holding v.

    Inputs: dout (N, T, D); cache from word_embedding_forward.
    Returns: dW (V, D). (The indices x have no gradient.)
    """
    x, W = cache
    if dout.shape != x.shape + (W.shape[1],):
        _fail("word_embedding_backward",
              f"dout must have shape (N, T, D) = {x.shape + (W.shape[1],)}, got {dout.shape}.")
    xp = array_module(dout, W)
    dW = xp.zeros_like(W)
    _scatter_add(dW, x, dout)
    return dW


# ----------------------------------------------------------------------------------------
# Temporal affine and temporal softmax loss
# ----------------------------------------------------------------------------------------


# student-writes: assignment3/rnn_captioning
def temporal_affine_forward(x, w, b):
    """The same affine map applied at every timestep.

    Inputs: x (N, T, D), w (D, M), b (M,).
    Returns (out, cache): out (N, T, M) = x @ w + b; cache (x, w, b), all three are needed
    for the gradients.
    """
    fn = "temporal_affine_forward"
    _require_float(fn, x=x, w=w, b=b)
    _require_ndim(fn, "x", x, 3, "(N, T, D)")
    _require_ndim(fn, "w", w, 2, "(D, M)")
    if x.shape[2] != w.shape[0] or b.shape != (w.shape[1],):
        _fail(fn, f"need x (N, T, D), w (D, M), b (M,); got x {x.shape}, w {w.shape}, "
                  f"b {b.shape}.")
    return x @ w + b, (x, w, b)


# student-writes: assignment3/rnn_captioning
def temporal_affine_backward(dout, cache):
    """Backward of temporal_affine_forward.

    Inputs: dout (N, T, M); cache (x, w, b).
    Returns: dx (N, T, D), dw (D, M), db (M,). dw and db sum over both N and T because
    the same weights are used at every timestep.
    """
    x, w, b = cache
    N, T, D = x.shape
    M = w.shape[1]
    if dout.shape != (N, T, M):
        _fail("temporal_affine_backward", f"dout must have shape {(N, T, M)}, got {dout.shape}.")
    dx = dout @ w.T
    dw = x.reshape(N * T, D).T @ dout.reshape(N * T, M)
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


# student-writes: assignment3/rnn_captioning
def temporal_softmax_loss(x, y, mask):
    """Softmax cross-entropy at every timestep, ignoring masked-out positions.

    Inputs:
        x: (N, T, V) scores.
        y: integer (N, T) targets in [0, V).
        mask: boolean (N, T); False where y is padding (<NULL>), which then contributes
            neither loss nor gradient.
    Returns (loss, dx): loss summed over time and averaged over the N sequences,
        loss = -(1/N) sum_{n,t} mask[n,t] * log softmax(x[n,t])[y[n,t]],
    and dx (N, T, V) = mask * (softmax(x) - onehot(y)) / N.
    """
    fn = "temporal_softmax_loss"
    _require_float(fn, x=x)
    _require_int(fn, y=y)
    _require_ndim(fn, "x", x, 3, "(N, T, V)")
    N, T, V = x.shape
    if y.shape != (N, T) or mask.shape != (N, T):
        _fail(fn, f"y and mask must have shape (N, T) = {(N, T)} to match x {x.shape}; "
                  f"got y {y.shape}, mask {mask.shape}.")
    if mask.dtype != numpy.bool_:
        _fail(fn, f"mask must be a boolean array, got dtype {mask.dtype}.")
    _require_indices_below(fn, "y", y, V)
    xp = array_module(x, y, mask)

    flat_x = x.reshape(N * T, V)
    flat_y = y.reshape(N * T)
    weight = mask.reshape(N * T).astype(x.dtype)
    shifted = flat_x - flat_x.max(axis=1, keepdims=True)  # exp can no longer overflow
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    rows = xp.arange(N * T)
    loss = -(weight * log_probs[rows, flat_y]).sum() / N

    dx = xp.exp(log_probs)
    dx[rows, flat_y] -= 1
    dx *= weight[:, None] / N
    return loss, dx.reshape(N, T, V)


# ----------------------------------------------------------------------------------------
# Vanilla RNN
# ----------------------------------------------------------------------------------------


def _check_cell(fn, x, prev_h, Wx, Wh, b, gates):
    """Shapes for one step of a cell with `gates` blocks of H columns (1 for RNN, 4 LSTM)."""
    _require_float(fn, x=x, prev_h=prev_h, Wx=Wx, Wh=Wh, b=b)
    _require_ndim(fn, "x", x, 2, "(N, D)")
    _require_ndim(fn, "prev_h", prev_h, 2, "(N, H)")
    N, D = x.shape
    H = prev_h.shape[1]
    G = gates * H
    letters = "H" if gates == 1 else f"{gates}H"
    if prev_h.shape[0] != N or Wx.shape != (D, G) or Wh.shape != (H, G) or b.shape != (G,):
        _fail(fn, f"need x (N, D), prev_h (N, H), Wx (D, {letters}), Wh (H, {letters}), "
                  f"b ({letters},); got x {x.shape}, prev_h {prev_h.shape}, Wx {Wx.shape}, "
                  f"Wh {Wh.shape}, b {b.shape}.")


def _check_sequence(fn, x, h0, Wx, Wh, b, gates):
    _require_ndim(fn, "x", x, 3, "(N, T, D)")
    if x.shape[1] < 1:
        _fail(fn, f"x must hold at least one timestep, got shape {x.shape}.")
    _check_cell(fn, x[:, 0, :], h0, Wx, Wh, b, gates)


# student-writes: assignment3/rnn_captioning
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One timestep of a vanilla RNN: next_h = tanh(x @ Wx + prev_h @ Wh + b).

    Inputs: x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,).
    Returns (next_h, cache): next_h (N, H); cache (x, prev_h, Wx, Wh, next_h). next_h is
    kept because tanh'(a) = 1 - tanh(a)^2 is cheapest from the output itself.
    """
    _check_cell("rnn_step_forward", x, prev_h, Wx, Wh, b, gates=1)
    return _rnn_step_forward(x, prev_h, Wx, Wh, b)


# student-writes: assignment3/rnn_captioning
def _rnn_step_forward(x, prev_h, Wx, Wh, b):
    xp = array_module(x, prev_h, Wx, Wh, b)
    next_h = xp.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


# student-writes: assignment3/rnn_captioning
def rnn_step_backward(dnext_h, cache):
    """Backward of rnn_step_forward.

    Inputs: dnext_h (N, H); cache from rnn_step_forward.
    Returns: dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    next_h = cache[4]
    if dnext_h.shape != next_h.shape:
        _fail("rnn_step_backward", f"dnext_h must have shape {next_h.shape}, got {dnext_h.shape}.")
    return _rnn_step_backward(dnext_h, cache)


# student-writes: assignment3/rnn_captioning
def _rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h**2)  # through the tanh
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


# student-writes: assignment3/rnn_captioning
def rnn_forward(x, h0, Wx, Wh, b):
    """Run a vanilla RNN over a whole sequence.

    Inputs: x (N, T, D), h0 (N, H) initial hidden state, Wx (D, H), Wh (H, H), b (H,).
    Returns (h, cache): h (N, T, H) the hidden state at every timestep; cache is the list
    of the T per-step caches, which backward walks in reverse.
    """
    _check_sequence("rnn_forward", x, h0, Wx, Wh, b, gates=1)
    xp = array_module(x, h0, Wx, Wh, b)
    N, T, _ = x.shape
    h = xp.empty((N, T, h0.shape[1]), dtype=xp.result_type(x, h0, Wx, Wh, b))
    caches = []
    prev_h = h0
    for t in range(T):
        prev_h, step_cache = _rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = prev_h
        caches.append(step_cache)
    return h, caches


# student-writes: assignment3/rnn_captioning
def rnn_backward(dh, cache):
    """Backpropagation through time for rnn_forward.

    Inputs: dh (N, T, H) upstream gradient of *every* hidden state (from the loss at each
    timestep, not through the recurrence); cache from rnn_forward.
    Returns: dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    The gradient reaching h_t is dh[:, t] plus what flows back from step t + 1.
    """
    if len(cache) == 0 or dh.ndim != 3 or dh.shape[1] != len(cache) \
            or dh.shape[::2] != cache[0][4].shape:
        _fail("rnn_backward", f"dh must have shape (N, T, H) matching the forward pass, "
                              f"got {dh.shape} for T = {len(cache)}.")
    xp = array_module(dh)
    N, T, _ = dh.shape
    x0, _, Wx, Wh, _ = cache[0]
    dx = xp.empty((N, T, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = xp.zeros_like(Wx), xp.zeros_like(Wh), xp.zeros(Wx.shape[1], dtype=Wx.dtype)
    dprev_h = xp.zeros_like(dh[:, 0, :])
    for t in reversed(range(T)):
        dx_t, dprev_h, dWx_t, dWh_t, db_t = _rnn_step_backward(dh[:, t, :] + dprev_h, cache[t])
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


# ----------------------------------------------------------------------------------------
# LSTM
# ----------------------------------------------------------------------------------------


# student-writes: assignment3/lstm_captioning
def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One timestep of an LSTM.

    Inputs: x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
    The activations a = x @ Wx + prev_h @ Wh + b are split into four (N, H) blocks in the
    order i, f, o, g:
        i = sigmoid(a_i)  input gate       f = sigmoid(a_f)  forget gate
        o = sigmoid(a_o)  output gate      g = tanh(a_g)     candidate values
        next_c = f * prev_c + i * g
        next_h = o * tanh(next_c)
    Returns (next_h, next_c, cache): cache (x, prev_h, prev_c, Wx, Wh, i, f, o, g,
    tanh_c) -- the gate values give every local derivative without recomputing
    (sigmoid' = s(1 - s), tanh' = 1 - tanh^2).
    """
    fn = "lstm_step_forward"
    _check_cell(fn, x, prev_h, Wx, Wh, b, gates=4)
    _require_float(fn, prev_c=prev_c)
    if prev_c.shape != prev_h.shape:
        _fail(fn, f"prev_c must have the shape of prev_h {prev_h.shape}, got {prev_c.shape}.")
    return _lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)


# student-writes: assignment3/lstm_captioning
def _lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    xp = array_module(x, prev_h, prev_c, Wx, Wh, b)
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = xp.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    tanh_c = xp.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


# student-writes: assignment3/lstm_captioning
def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward of lstm_step_forward.

    Inputs: dnext_h (N, H), dnext_c (N, H); cache from lstm_step_forward.
    Returns: dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    prev_h = cache[1]
    if dnext_h.shape != prev_h.shape or dnext_c.shape != prev_h.shape:
        _fail("lstm_step_backward", f"dnext_h and dnext_c must have shape (N, H) = "
                                    f"{prev_h.shape}; got {dnext_h.shape} and {dnext_c.shape}.")
    return _lstm_step_backward(dnext_h, dnext_c, cache)


# student-writes: assignment3/lstm_captioning
def _lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    xp = array_module(dnext_h, dnext_c, x)
    # next_c reaches the loss directly (dnext_c) and through next_h = o * tanh(next_c).
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    da = xp.concatenate([
        dc * g * i * (1 - i),          # a_i, through i = sigmoid(a_i)
        dc * prev_c * f * (1 - f),     # a_f
        dnext_h * tanh_c * o * (1 - o),  # a_o
        dc * i * (1 - g**2),           # a_g, through g = tanh(a_g)
    ], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


# student-writes: assignment3/lstm_captioning
def lstm_forward(x, h0, Wx, Wh, b):
    """Run an LSTM over a whole sequence; the initial cell state is zero.

    Inputs: x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
    Returns (h, cache): h (N, T, H) hidden states; cache the list of T step caches.
    """
    _check_sequence("lstm_forward", x, h0, Wx, Wh, b, gates=4)
    xp = array_module(x, h0, Wx, Wh, b)
    N, T, _ = x.shape
    h = xp.empty((N, T, h0.shape[1]), dtype=xp.result_type(x, h0, Wx, Wh, b))
    prev_h, prev_c = h0, xp.zeros_like(h0)
    caches = []
    for t in range(T):
        prev_h, prev_c, step_cache = _lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        h[:, t, :] = prev_h
        caches.append(step_cache)
    return h, caches


# student-writes: assignment3/lstm_captioning
def lstm_backward(dh, cache):
    """Backpropagation through time for lstm_forward.

    Inputs: dh (N, T, H) upstream gradient of every hidden state; cache from lstm_forward.
    Returns: dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    (No gradient flows into the initial cell state, which is the constant zero.)
    """
    if len(cache) == 0 or dh.ndim != 3 or dh.shape[1] != len(cache) \
            or dh.shape[::2] != cache[0][1].shape:
        _fail("lstm_backward", f"dh must have shape (N, T, H) matching the forward pass, "
                               f"got {dh.shape} for T = {len(cache)}.")
    xp = array_module(dh)
    N, T, _ = dh.shape
    x0, _, _, Wx, Wh = cache[0][:5]
    dx = xp.empty((N, T, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = xp.zeros_like(Wx), xp.zeros_like(Wh), xp.zeros(Wx.shape[1], dtype=Wx.dtype)
    dprev_h = xp.zeros_like(dh[:, 0, :])
    dprev_c = xp.zeros_like(dprev_h)
    for t in reversed(range(T)):
        dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = _lstm_step_backward(
            dh[:, t, :] + dprev_h, dprev_c, cache[t])
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db

"""Layers as forward/backward pairs: the teaching versions.

Every layer is two pure functions of arrays:

    out, cache = something_forward(x, ...)    # cache: what the backward pass will need
    dx, ...    = something_backward(dout, cache)

`dout` is the gradient of the loss with respect to `out`; the backward pass returns the gradient
with respect to each input, in the order the forward pass took them. Images are NCHW:
(batch, channels, height, width). The dtype of the output follows the input, so the same code
runs in float64 (for gradient checks) and float32 (for speed).

Each function asks for the array module of its inputs with `array_module(...)` and then only
uses calls that exist in both numpy and cupy, so it runs unchanged on CPU or GPU arrays.

Shapes are checked up front (shape arithmetic only, nothing that touches the data) and a
mismatch raises a ValueError that names the layer, the shapes and the rule that was broken,
instead of letting broadcasting quietly compute something else.

The convolution and pooling layers here use explicit Python loops so they read like the
formulas. They are slow; `course_utils.fast_layers` has the same layers vectorised.
"""
from __future__ import annotations

from .backend import array_module, random_state

# ---------------------------------------------------------------------------------------------
# Input checks shared by the layers (cheap: they look at shapes and dtypes, never at values)
# ---------------------------------------------------------------------------------------------


def _require_float(layer, **arrays):
    """Raise unless every array has a floating dtype (float16/32/64)."""
    for label, a in arrays.items():
        if getattr(a, "dtype", None) is None or a.dtype.kind != "f":
            got = getattr(a, "dtype", type(a).__name__)
            raise ValueError(
                f"{layer}: {label} must be a floating-point array (float32 or float64), "
                f"got {got}. Convert it first, e.g. {label}.astype(np.float64)."
            )


def _require_ndim(layer, label, a, ndim, meaning):
    if a.ndim != ndim:
        raise ValueError(
            f"{layer}: {label} must have {ndim} dimensions {meaning}, got shape {tuple(a.shape)}."
        )


def _require_shape(layer, label, a, shape, rule):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(
            f"{layer}: {label} has shape {tuple(a.shape)} but must have shape {tuple(shape)} "
            f"({rule})."
        )


def _require_mode(layer, param):
    mode = param.get("mode", "train")
    if mode not in ("train", "test"):
        raise ValueError(f"{layer}: mode must be 'train' or 'test', got {mode!r}.")
    return mode


def conv_output_size(H, F, P, S, layer="conv", dim="H"):
    """Output length of a window of size F sliding with stride S over H inputs padded by P.

    Returns (H - F + 2P) / S + 1, and raises a ValueError naming `layer` when that is not a
    positive integer: then the windows do not tile the padded input and some rows or columns
    would be silently dropped. `dim` only names the axis ('H' or 'W') in the message.
    """
    H, F, P, S = int(H), int(F), int(P), int(S)
    if S < 1:
        raise ValueError(f"{layer}: stride must be a positive integer, got {S}.")
    if P < 0:
        raise ValueError(f"{layer}: pad must be >= 0, got {P}.")
    if F < 1:
        raise ValueError(f"{layer}: window size must be a positive integer, got {F}.")
    if F > H + 2 * P:
        raise ValueError(
            f"{layer}: window of size {F} is larger than the padded input along {dim}: "
            f"{dim} + 2P = {H} + 2*{P} = {H + 2 * P}."
        )
    span = H - F + 2 * P
    if span % S != 0:
        raise ValueError(
            f"{layer}: stride {S} doesn't fit: ({dim} - F + 2P) / S + 1 = "
            f"({H} - {F} + 2*{P}) / {S} + 1 = {span / S + 1:g} is not an integer. "
            f"Change the pad or the stride so the windows tile the input."
        )
    return span // S + 1


def _conv_params(conv_param):
    return int(conv_param.get("stride", 1)), int(conv_param.get("pad", 0))


def _check_conv(layer, x, w, b):
    """Shape rules shared by convolution: x (N,C,H,W), w (F,C,HH,WW), b (F,)."""
    _require_float(layer, x=x, w=w, b=b)
    _require_ndim(layer, "x", x, 4, "(N, C, H, W)")
    _require_ndim(layer, "w", w, 4, "(F, C, HH, WW)")
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"{layer}: w has shape {tuple(w.shape)} and x has shape {tuple(x.shape)}; "
            f"the channel counts w.shape[1] = {w.shape[1]} and x.shape[1] = {x.shape[1]} "
            f"must match."
        )
    _require_shape(layer, "b", b, (w.shape[0],), "one bias per filter, (F,)")


def _check_conv_transpose(layer, x, w, b):
    """Shape rules of transposed convolution: x (N,C_in,H,W), w (C_in,F_out,HH,WW), b (F_out,)."""
    _require_float(layer, x=x, w=w, b=b)
    _require_ndim(layer, "x", x, 4, "(N, C_in, H, W)")
    _require_ndim(layer, "w", w, 4, "(C_in, F_out, HH, WW)")
    if w.shape[0] != x.shape[1]:
        raise ValueError(
            f"{layer}: w has shape {tuple(w.shape)} and x has shape {tuple(x.shape)}; "
            f"for a transposed conv w is (C_in, F_out, HH, WW), so w.shape[0] = {w.shape[0]} "
            f"must equal x.shape[1] = {x.shape[1]}."
        )
    _require_shape(layer, "b", b, (w.shape[1],), "one bias per output channel, (F_out,)")


def conv_transpose_output_size(H, F, P, S, layer="conv_transpose", dim="H"):
    """Output length of a transposed conv: S * (H - 1) + F - 2P, the input size of the conv
    it is the adjoint of. Raises a ValueError naming `layer` if that is not positive."""
    H, F, P, S = int(H), int(F), int(P), int(S)
    if S < 1 or P < 0 or F < 1:
        raise ValueError(
            f"{layer}: need stride >= 1, pad >= 0, window >= 1; got stride {S}, pad {P}, "
            f"window {F}."
        )
    out = S * (H - 1) + F - 2 * P
    if out < 1:
        raise ValueError(
            f"{layer}: output size S * ({dim} - 1) + F - 2P = {S} * ({H} - 1) + {F} - 2*{P} = "
            f"{out} is not positive; use a smaller pad."
        )
    return out


def _pool_params(layer, x, pool_param):
    """(PH, PW, S, Hout, Wout) for pooling x (N,C,H,W) with pool_param, or a ValueError."""
    _require_float(layer, x=x)
    _require_ndim(layer, "x", x, 4, "(N, C, H, W)")
    missing = [k for k in ("pool_height", "pool_width", "stride") if k not in pool_param]
    if missing:
        raise ValueError(
            f"{layer}: pool_param needs 'pool_height', 'pool_width' and 'stride'; "
            f"missing {missing}."
        )
    PH = int(pool_param["pool_height"])
    PW = int(pool_param["pool_width"])
    S = int(pool_param["stride"])
    Hout = conv_output_size(x.shape[2], PH, 0, S, layer=layer, dim="H")
    Wout = conv_output_size(x.shape[3], PW, 0, S, layer=layer, dim="W")
    return PH, PW, S, Hout, Wout


# ---------------------------------------------------------------------------------------------
# Affine
# ---------------------------------------------------------------------------------------------


# student-writes: assignment2/fully_connected_nets
def affine_forward(x, w, b):
    """Fully connected layer: out = x.reshape(N, D) @ w + b.

    x: (N, d1, ..., dk), flattened to (N, D) with D = d1 * ... * dk (so images go in as is).
    w: (D, M).  b: (M,).
    Returns out (N, M) and cache = (x, w, b): the backward pass needs x for dw and w for dx.
    """
    _require_float("affine_forward", x=x, w=w, b=b)
    if x.ndim < 1:
        raise ValueError("affine_forward: x must have a batch dimension, got a 0-d array.")
    _require_ndim("affine_forward", "w", w, 2, "(D, M)")
    N = x.shape[0]
    D = 1
    for d in x.shape[1:]:
        D *= d
    if w.shape[0] != D:
        raise ValueError(
            f"affine_forward: x has shape {tuple(x.shape)}, which flattens to (N, D) = "
            f"({N}, {D}), but w has shape {tuple(w.shape)}; w.shape[0] must equal D = {D}."
        )
    _require_shape("affine_forward", "b", b, (w.shape[1],), "one bias per output, (M,)")
    out = x.reshape(N, D) @ w + b
    return out, (x, w, b)


# student-writes: assignment2/fully_connected_nets
def affine_backward(dout, cache):
    """Backward of affine_forward.

    dout: (N, M). Returns dx (same shape as x), dw (D, M), db (M,):
    dx = dout @ w.T, dw = x2d.T @ dout, db = sum of dout over the batch.
    """
    x, w, b = cache
    _require_shape("affine_backward", "dout", dout, (x.shape[0], w.shape[1]), "(N, M)")
    x2d = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = x2d.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


# ---------------------------------------------------------------------------------------------
# Elementwise nonlinearities
# ---------------------------------------------------------------------------------------------


# student-writes: assignment2/fully_connected_nets
def relu_forward(x):
    """ReLU: out = max(0, x), any shape. cache = x (the sign of x decides where grads flow)."""
    _require_float("relu_forward", x=x)
    xp = array_module(x)
    return xp.maximum(x, 0), x


# student-writes: assignment2/fully_connected_nets
def relu_backward(dout, cache):
    """Backward of relu_forward: dx = dout where x > 0, else 0 (we take the slope at 0 as 0)."""
    x = cache
    _require_shape("relu_backward", "dout", dout, x.shape, "same shape as x")
    return dout * (x > 0)


# student-writes: extras/activations_and_init
def leaky_relu_forward(x, alpha=0.01):
    """Leaky ReLU: out = x where x > 0, alpha * x elsewhere. cache = (x, alpha)."""
    _require_float("leaky_relu_forward", x=x)
    xp = array_module(x)
    return xp.where(x > 0, x, alpha * x), (x, alpha)


# student-writes: extras/activations_and_init
def leaky_relu_backward(dout, cache):
    """Backward of leaky_relu_forward: slope 1 where x > 0, alpha elsewhere."""
    x, alpha = cache
    _require_shape("leaky_relu_backward", "dout", dout, x.shape, "same shape as x")
    xp = array_module(x, dout)
    return xp.where(x > 0, dout, alpha * dout)


# student-writes: extras/activations_and_init
def sigmoid_forward(x):
    """Logistic sigmoid 1 / (1 + exp(-x)), any shape; cache = out, since sigma' = out (1 - out).

    Computed with e = exp(-|x|) <= 1 so no exp can overflow: for x >= 0 it is 1 / (1 + e),
    for x < 0 it is e / (1 + e).
    """
    _require_float("sigmoid_forward", x=x)
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return out, out


# student-writes: extras/activations_and_init
def sigmoid_backward(dout, cache):
    """Backward of sigmoid_forward: dx = dout * out * (1 - out)."""
    out = cache
    _require_shape("sigmoid_backward", "dout", dout, out.shape, "same shape as x")
    return dout * out * (1 - out)


# student-writes: extras/activations_and_init
def tanh_forward(x):
    """tanh, any shape; cache = out, since tanh' = 1 - out**2."""
    _require_float("tanh_forward", x=x)
    xp = array_module(x)
    out = xp.tanh(x)
    return out, out


# student-writes: extras/activations_and_init
def tanh_backward(dout, cache):
    """Backward of tanh_forward: dx = dout * (1 - out**2)."""
    out = cache
    _require_shape("tanh_backward", "dout", dout, out.shape, "same shape as x")
    return dout * (1 - out * out)


# student-writes: extras/activations_and_init
def elu_forward(x, alpha=1.0):
    """ELU: out = x where x > 0, alpha * (exp(x) - 1) elsewhere. cache = (x, out, alpha).

    exp is taken of min(x, 0) so positive inputs cannot overflow it.
    """
    _require_float("elu_forward", x=x)
    xp = array_module(x)
    out = xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))
    return out, (x, out, alpha)


# student-writes: extras/activations_and_init
def elu_backward(dout, cache):
    """Backward of elu_forward: slope 1 where x > 0, alpha * exp(x) = out + alpha elsewhere."""
    x, out, alpha = cache
    _require_shape("elu_backward", "dout", dout, x.shape, "same shape as x")
    xp = array_module(x, dout)
    return xp.where(x > 0, dout, dout * (out + alpha))


# student-writes: extras/activations_and_init
def maxout_forward(x, w, b):
    """Maxout unit (Goodfellow et al. 2013): K affine pieces per output, keep the largest.

    x: (N, D), w: (D, M, K), b: (M, K).
    z[n, m, k] = sum_d x[n, d] w[d, m, k] + b[m, k];  out[n, m] = max_k z[n, m, k].
    Returns out (N, M) and cache = (x, w, mask), where mask (N, M, K) is True at the winning
    piece (the first one on ties): only that piece receives gradient.
    """
    layer = "maxout_forward"
    _require_float(layer, x=x, w=w, b=b)
    _require_ndim(layer, "x", x, 2, "(N, D)")
    _require_ndim(layer, "w", w, 3, "(D, M, K)")
    D, M, K = w.shape
    if x.shape[1] != D:
        raise ValueError(
            f"{layer}: x has shape {tuple(x.shape)} and w has shape {tuple(w.shape)}; "
            f"x.shape[1] must equal w.shape[0] = {D}."
        )
    _require_shape(layer, "b", b, (M, K), "one bias per output and piece, (M, K)")
    xp = array_module(x, w, b)
    N = x.shape[0]
    z = (x @ w.reshape(D, M * K)).reshape(N, M, K) + b
    winner = xp.argmax(z, axis=2)                          # (N, M)
    mask = xp.arange(K) == winner[:, :, None]              # (N, M, K), one True per (n, m)
    out = xp.max(z, axis=2)
    return out, (x, w, mask)


# student-writes: extras/activations_and_init
def maxout_backward(dout, cache):
    """Backward of maxout_forward: dout is routed to the winning piece; returns dx, dw, db."""
    x, w, mask = cache
    N, M, K = mask.shape
    D = w.shape[0]
    _require_shape("maxout_backward", "dout", dout, (N, M), "(N, M)")
    dz = (mask * dout[:, :, None]).reshape(N, M * K)
    dx = dz @ w.reshape(D, M * K).T
    dw = (x.T @ dz).reshape(D, M, K)
    db = dz.sum(axis=0).reshape(M, K)
    return dx, dw, db


# ---------------------------------------------------------------------------------------------
# Losses: each returns (loss, dx) where loss is a 0-d array (a numpy scalar on the CPU;
# use course_utils.backend.to_float for a Python number) and dx = d loss / d x.
# ---------------------------------------------------------------------------------------------


def _check_scores(layer, x, y):
    _require_float(layer, x=x)
    _require_ndim(layer, "x", x, 2, "(N, C) class scores")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{layer}: y has shape {tuple(y.shape)} but must have shape ({x.shape[0]},): "
            f"one label per row of x, which has shape {tuple(x.shape)}."
        )
    if y.dtype.kind not in "iu":
        raise ValueError(f"{layer}: y must hold integer class labels, got dtype {y.dtype}.")


# student-writes: assignment2/fully_connected_nets
def softmax_loss(x, y):
    """Softmax cross-entropy averaged over the batch.

    x: (N, C) scores, y: (N,) integer labels in [0, C).
    loss = -(1/N) sum_n log softmax(x_n)[y_n];  dx = (softmax(x) - onehot(y)) / N.
    The row maximum is subtracted first (it cancels in the softmax) so exp never overflows.
    """
    _check_scores("softmax_loss", x, y)
    xp = array_module(x, y)
    N = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    rows = xp.arange(N)
    loss = -log_probs[rows, y].sum() / N
    dx = xp.exp(log_probs)
    dx[rows, y] -= 1
    dx /= N
    return loss, dx


# student-writes: assignment2/fully_connected_nets
def svm_loss(x, y, delta=1.0):
    """Multiclass hinge (SVM) loss averaged over the batch.

    x: (N, C) scores, y: (N,) integer labels.
    loss = (1/N) sum_n sum_{j != y_n} max(0, x[n, j] - x[n, y_n] + delta).
    Each positive margin adds +1/N to dx[n, j] and -1/N to dx[n, y_n].
    """
    _check_scores("svm_loss", x, y)
    xp = array_module(x, y)
    N = x.shape[0]
    rows = xp.arange(N)
    correct = x[rows, y][:, None]
    margins = xp.maximum(0, x - correct + delta)
    margins[rows, y] = 0
    loss = margins.sum() / N
    positive = (margins > 0).astype(x.dtype)
    dx = positive
    dx[rows, y] -= positive.sum(axis=1)
    dx /= N
    return loss, dx


def l2_loss(x, y):
    """Square loss: loss = 0.5 * (1/N) * sum over all entries of (x - y)**2; dx = (x - y) / N.

    x and y: the same shape (N, ...). The 1/2 makes the gradient the plain residual, and the
    mean over the batch N (not over every entry) keeps the loss per example, like softmax_loss.
    """
    _require_float("l2_loss", x=x, y=y)
    if x.ndim < 1:
        raise ValueError("l2_loss: x must have a batch dimension, got a 0-d array.")
    _require_shape("l2_loss", "y", y, x.shape, "targets have the same shape as predictions")
    N = x.shape[0]
    diff = x - y
    loss = 0.5 * (diff * diff).sum() / N
    return loss, diff / N


square_loss = l2_loss


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------


def _keep_prob(layer, dropout_param):
    """The keep probability from dropout_param: 'p' as in CS231n, or its alias 'keep_prob'."""
    has_p, has_k = "p" in dropout_param, "keep_prob" in dropout_param
    if not (has_p or has_k):
        raise ValueError(f"{layer}: dropout_param needs 'p', the probability of KEEPING a unit.")
    if has_p and has_k and dropout_param["p"] != dropout_param["keep_prob"]:
        raise ValueError(
            f"{layer}: dropout_param has p = {dropout_param['p']} and keep_prob = "
            f"{dropout_param['keep_prob']}; they are the same thing, give one."
        )
    p = float(dropout_param["p"] if has_p else dropout_param["keep_prob"])
    if not 0 < p <= 1:
        raise ValueError(f"{layer}: p is the keep probability and must be in (0, 1], got {p}.")
    return p


# student-writes: assignment2/dropout
def _keep_mask(x, p, seed):
    """A 0/1 array shaped like x, each entry 1 with probability p, drawn where x lives."""
    return (random_state(seed, like=x).rand(*x.shape) < p).astype(x.dtype)


# student-writes: assignment2/dropout
def dropout_forward(x, dropout_param):
    """Inverted dropout: keep each unit with probability p and scale kept ones by 1/p.

    x: any shape. dropout_param: {'mode': 'train' | 'test', 'p': keep probability (or
    'keep_prob'), 'seed': optional int}. The same seed draws the same mask; without one the
    mask is fresh each call.
    Train: out = x * mask with mask = keep / p, so E[out] = x and test time needs nothing.
    Test: out = x.
    cache = (dropout_param, mask); mask is None in test mode.
    """
    layer = "dropout_forward"
    _require_float(layer, x=x)
    p = _keep_prob(layer, dropout_param)
    mode = _require_mode(layer, dropout_param)
    if mode == "train":
        mask = _keep_mask(x, p, dropout_param.get("seed")) * (1.0 / p)
        out = x * mask
    else:
        mask = None
        out = x
    return out, (dropout_param, mask)


# student-writes: assignment2/dropout
def dropout_backward(dout, cache):
    """Backward of dropout_forward: dx = dout * mask in train mode, dout in test mode."""
    dropout_param, mask = cache
    if mask is None:
        return dout
    _require_shape("dropout_backward", "dout", dout, mask.shape, "same shape as x")
    return dout * mask


# student-writes: assignment2/dropout
def vanilla_dropout_forward(x, dropout_param):
    """Dropout as first taught (2016 lecture): no scaling at train time, scale by p at test.

    Train: out = x * keep, keep a 0/1 mask with P(1) = p. Test: out = p * x, the expectation
    of the train-time output. Same dropout_param and cache as dropout_forward.
    """
    layer = "vanilla_dropout_forward"
    _require_float(layer, x=x)
    p = _keep_prob(layer, dropout_param)
    mode = _require_mode(layer, dropout_param)
    if mode == "train":
        mask = _keep_mask(x, p, dropout_param.get("seed"))
        return x * mask, (dropout_param, mask)
    return x * p, (dropout_param, None)


# student-writes: assignment2/dropout
def vanilla_dropout_backward(dout, cache):
    """Backward of vanilla_dropout_forward: dout * keep in train mode, dout * p in test mode."""
    dropout_param, mask = cache
    if mask is None:
        return dout * _keep_prob("vanilla_dropout_backward", dropout_param)
    _require_shape("vanilla_dropout_backward", "dout", dout, mask.shape, "same shape as x")
    return dout * mask


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


# student-writes: assignment2/batch_normalization
def _normalize_backward(dxhat, xhat, std, axis):
    """Gradient through xhat = (x - mean) / std, mean and std taken along `axis`.

    Closed form: dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / std, means along
    `axis`. Shared by layer norm, group norm and batchnorm_backward_alt.
    """
    return (
        dxhat
        - dxhat.mean(axis=axis, keepdims=True)
        - xhat * (dxhat * xhat).mean(axis=axis, keepdims=True)
    ) / std


def _bn_state(layer, bn_param, D, dtype, xp, what):
    """eps, momentum and the running statistics of a batchnorm layer (zeros at first)."""
    running = []
    for key in ("running_mean", "running_var"):
        value = bn_param.get(key)
        value = xp.zeros(D, dtype=dtype) if value is None else value
        _require_shape(layer, key, value, (D,), f"one per {what}")
        running.append(value)
    return bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9), *running


# student-writes: assignment2/batch_normalization
def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation (Ioffe & Szegedy 2015) of x (N, D) per feature; gamma, beta (D,).

    bn_param: {'mode': 'train' | 'test', 'eps' (default 1e-5), 'momentum' (default 0.9),
    'running_mean', 'running_var' (D,), both starting at zeros when absent}.
    Train: normalise with this batch's mean and (biased, ddof=0) variance, and update
        running_mean = momentum * running_mean + (1 - momentum) * batch mean   (same for var),
    writing them back into bn_param: that dict is where the layer keeps its state between
    calls (the one thing a layer here mutates).
    Test: normalise with running_mean and running_var.
    out = gamma * xhat + beta.
    cache = (mode, xhat, gamma, x - mean, std): the backward pass needs the normalised input,
    the centred input and the std it divided by.
    """
    layer = "batchnorm_forward"
    _require_float(layer, x=x, gamma=gamma, beta=beta)
    _require_ndim(layer, "x", x, 2, "(N, D)")
    D = x.shape[1]
    _require_shape(layer, "gamma", gamma, (D,), "one scale per feature")
    _require_shape(layer, "beta", beta, (D,), "one shift per feature")
    mode = _require_mode(layer, bn_param)
    xp = array_module(x, gamma, beta)
    eps, momentum, running_mean, running_var = _bn_state(layer, bn_param, D, x.dtype, xp,
                                                         "feature")

    if mode == "train":
        mean = x.mean(axis=0)
        centred = x - mean
        var = (centred * centred).mean(axis=0)
        running_mean = momentum * running_mean + (1 - momentum) * mean
        running_var = momentum * running_var + (1 - momentum) * var
    else:
        centred = x - running_mean
        var = running_var
    std = xp.sqrt(var + eps)
    xhat = centred / std
    out = gamma * xhat + beta
    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, (mode, xhat, gamma, centred, std)


# student-writes: assignment2/batch_normalization
def batchnorm_backward(dout, cache):
    """Backward of batchnorm_forward, one step of the computational graph at a time.

    dout: (N, D). Returns dx (N, D), dgamma (D,), dbeta (D,).
    Graph (train mode): mean -> centred = x - mean -> var = mean(centred**2) ->
    std = sqrt(var + eps) -> xhat = centred / std -> out = gamma * xhat + beta.
    In test mode mean and std are constants, so dx = dout * gamma / std.
    """
    mode, xhat, gamma, centred, std = cache
    _require_shape("batchnorm_backward", "dout", dout, xhat.shape, "(N, D)")
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    if mode == "test":
        return dxhat / std, dgamma, dbeta
    dcentred = dxhat / std                               # through xhat = centred / std
    dstd = -(dxhat * centred).sum(axis=0) / (std * std)  # ... and through its denominator
    dvar = dstd / (2 * std)                              # std = sqrt(var + eps)
    dcentred = dcentred + (2.0 / N) * centred * dvar     # var = mean(centred**2)
    dmean = -dcentred.sum(axis=0)                        # centred = x - mean
    dx = dcentred + dmean / N                            # mean = sum(x) / N
    return dx, dgamma, dbeta


# student-writes: assignment2/batch_normalization
def batchnorm_backward_alt(dout, cache):
    """Backward of batchnorm_forward in closed form (same results as batchnorm_backward).

    Working the graph out on paper gives, per feature,
        dx = (gamma / std) * (dout - mean(dout) - xhat * mean(dout * xhat)),
    means over the batch: one line instead of six, and fewer passes over the data.
    """
    mode, xhat, gamma, centred, std = cache
    _require_shape("batchnorm_backward_alt", "dout", dout, xhat.shape, "(N, D)")
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    if mode == "test":
        return dxhat / std, dgamma, dbeta
    return _normalize_backward(dxhat, xhat, std, axis=0), dgamma, dbeta


# student-writes: assignment2/batch_normalization
def layernorm_forward(x, gamma, beta, ln_param):
    """Layer normalisation (Ba et al. 2016): normalise each sample of x (N, D) over its D
    features, then scale and shift per feature with gamma, beta (D,).

    ln_param: {'eps' (default 1e-5)}. Same at train and test time (no running statistics).
    cache = (xhat, gamma, std), std (N, 1): what the closed-form backward needs.
    """
    layer = "layernorm_forward"
    _require_float(layer, x=x, gamma=gamma, beta=beta)
    _require_ndim(layer, "x", x, 2, "(N, D)")
    D = x.shape[1]
    _require_shape(layer, "gamma", gamma, (D,), "one scale per feature")
    _require_shape(layer, "beta", beta, (D,), "one shift per feature")
    xp = array_module(x, gamma, beta)
    eps = ln_param.get("eps", 1e-5)
    centred = x - x.mean(axis=1, keepdims=True)
    std = xp.sqrt((centred * centred).mean(axis=1, keepdims=True) + eps)
    xhat = centred / std
    return gamma * xhat + beta, (xhat, gamma, std)


# student-writes: assignment2/batch_normalization
def layernorm_backward(dout, cache):
    """Backward of layernorm_forward: batchnorm's closed form with the roles of axes swapped
    (means over features, per sample). Returns dx (N, D), dgamma (D,), dbeta (D,)."""
    xhat, gamma, std = cache
    _require_shape("layernorm_backward", "dout", dout, xhat.shape, "(N, D)")
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = _normalize_backward(dout * gamma, xhat, std, axis=1)
    return dx, dgamma, dbeta


# student-writes: assignment2/convolutional_networks
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation for images x (N, C, H, W): one mean/var per channel C, taken over
    N, H and W. gamma, beta: (C,). bn_param as in batchnorm_forward.

    The maths is exactly batchnorm_forward on the N*H*W "pixel rows" of each channel. Rather
    than transposing x to (N*H*W, C) and back (two full copies each way), the statistics are
    reduced over axes (0, 2, 3) in place, which is several times faster on the large
    activations of a convnet. cache = (mode, xhat, gamma, std), xhat (N, C, H, W), std (C,).
    """
    layer = "spatial_batchnorm_forward"
    _require_float(layer, x=x, gamma=gamma, beta=beta)
    _require_ndim(layer, "x", x, 4, "(N, C, H, W)")
    N, C, H, W = x.shape
    _require_shape(layer, "gamma", gamma, (C,), "one scale per channel")
    _require_shape(layer, "beta", beta, (C,), "one shift per channel")
    mode = _require_mode(layer, bn_param)
    xp = array_module(x, gamma, beta)
    eps, momentum, running_mean, running_var = _bn_state(layer, bn_param, C, x.dtype, xp,
                                                         "channel")

    per_channel = (1, C, 1, 1)
    if mode == "train":
        mean = x.mean(axis=(0, 2, 3))
        centred = x - mean.reshape(per_channel)
        var = (centred * centred).mean(axis=(0, 2, 3))
        running_mean = momentum * running_mean + (1 - momentum) * mean
        running_var = momentum * running_var + (1 - momentum) * var
    else:
        centred = x - running_mean.reshape(per_channel)
        var = running_var
    std = xp.sqrt(var + eps)
    xhat = centred / std.reshape(per_channel)
    out = gamma.reshape(per_channel) * xhat + beta.reshape(per_channel)
    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, (mode, xhat, gamma, std)


# student-writes: assignment2/convolutional_networks
def spatial_batchnorm_backward(dout, cache):
    """Backward of spatial_batchnorm_forward: batchnorm_backward_alt's closed form with the
    means taken over N, H and W,
        dx = (gamma / std) * (dout - mean(dout) - xhat * mean(dout * xhat)),
    where sum(dout) and sum(dout * xhat) per channel are exactly dbeta and dgamma.
    Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    layer = "spatial_batchnorm_backward"
    _require_ndim(layer, "dout", dout, 4, "(N, C, H, W)")
    mode, xhat, gamma, std = cache
    _require_shape(layer, "dout", dout, xhat.shape, "the shape of x")
    N, C, H, W = dout.shape
    per_channel = (1, C, 1, 1)
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    scale = (gamma / std).reshape(per_channel)
    if mode == "test":
        return dout * scale, dgamma, dbeta
    M = N * H * W
    dx = scale * (dout - (dbeta / M).reshape(per_channel)
                  - xhat * (dgamma / M).reshape(per_channel))
    return dx, dgamma, dbeta


# student-writes: assignment2/convolutional_networks
def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Group normalisation (Wu & He 2018) of x (N, C, H, W): the C channels are split into G
    groups of C/G; each sample's group is normalised over its (C/G, H, W) entries.
    gamma, beta: (1, C, 1, 1), a scale and shift per channel. gn_param: {'eps' (1e-5)}.

    cache = (G, xhat, gamma, std), std (N, G, 1) per sample and group.
    """
    layer = "spatial_groupnorm_forward"
    _require_float(layer, x=x, gamma=gamma, beta=beta)
    _require_ndim(layer, "x", x, 4, "(N, C, H, W)")
    N, C, H, W = x.shape
    G = int(G)
    if G < 1 or C % G != 0:
        raise ValueError(
            f"{layer}: G = {G} groups must divide the C = {C} channels of x {tuple(x.shape)}."
        )
    _require_shape(layer, "gamma", gamma, (1, C, 1, 1), "one scale per channel")
    _require_shape(layer, "beta", beta, (1, C, 1, 1), "one shift per channel")
    xp = array_module(x, gamma, beta)
    eps = gn_param.get("eps", 1e-5)
    groups = x.reshape(N, G, -1)
    centred = groups - groups.mean(axis=2, keepdims=True)
    std = xp.sqrt((centred * centred).mean(axis=2, keepdims=True) + eps)
    xhat = (centred / std).reshape(N, C, H, W)
    return gamma * xhat + beta, (G, xhat, gamma, std)


# student-writes: assignment2/convolutional_networks
def spatial_groupnorm_backward(dout, cache):
    """Backward of spatial_groupnorm_forward: the closed-form normalise backward, per group.
    Returns dx (N, C, H, W), dgamma (1, C, 1, 1), dbeta (1, C, 1, 1)."""
    G, xhat, gamma, std = cache
    _require_shape("spatial_groupnorm_backward", "dout", dout, xhat.shape, "(N, C, H, W)")
    N = dout.shape[0]
    dbeta = dout.sum(axis=(0, 2, 3), keepdims=True)
    dgamma = (dout * xhat).sum(axis=(0, 2, 3), keepdims=True)
    dxhat = (dout * gamma).reshape(N, G, -1)
    dx = _normalize_backward(dxhat, xhat.reshape(N, G, -1), std, axis=2)
    return dx.reshape(xhat.shape), dgamma, dbeta


# ---------------------------------------------------------------------------------------------
# Convolution and pooling, naive: explicit loops that read like the definitions
# ---------------------------------------------------------------------------------------------


def _pad_hw(x, P):
    """x (N, C, H, W) with P zeros added on each side of H and W."""
    xp = array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))


# student-writes: assignment2/convolutional_networks
def conv_forward_naive(x, w, b, conv_param):
    """Convolution (cross-correlation, as in every deep-learning library) with loops.

    x: (N, C, H, W), w: (F, C, HH, WW), b: (F,), conv_param: {'stride': S, 'pad': P}.
    out[n, f, i, j] = b[f] + sum_{c, a, b'} xpad[n, c, i*S + a, j*S + b'] * w[f, c, a, b'],
    out: (N, F, Hout, Wout), Hout = (H - HH + 2P) / S + 1 (must be an integer).
    cache = (x, w, b, conv_param).
    """
    layer = "conv_forward_naive"
    _check_conv(layer, x, w, b)
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout = conv_output_size(H, HH, P, S, layer=layer, dim="H")
    Wout = conv_output_size(W, WW, P, S, layer=layer, dim="W")
    xp = array_module(x, w, b)
    xpad = _pad_hw(x, P)
    out = xp.zeros((N, F, Hout, Wout), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(Hout):
                for j in range(Wout):
                    window = xpad[n, :, i * S:i * S + HH, j * S:j * S + WW]
                    out[n, f, i, j] = (window * w[f]).sum() + b[f]
    return out, (x, w, b, conv_param)


# student-writes: assignment2/convolutional_networks
def conv_backward_naive(dout, cache):
    """Backward of conv_forward_naive, with the same loops.

    Each output out[n, f, i, j] saw one window of xpad through w[f], so it sends
    dout[n, f, i, j] * w[f] back to that window and dout[n, f, i, j] * window to dw[f].
    Returns dx (N, C, H, W), dw (F, C, HH, WW), db (F,).
    """
    x, w, b, conv_param = cache
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout, Wout = conv_output_size(H, HH, P, S), conv_output_size(W, WW, P, S)
    _require_shape("conv_backward_naive", "dout", dout, (N, F, Hout, Wout),
                   "the shape of the output")
    xp = array_module(x, dout)
    xpad = _pad_hw(x, P)
    dxpad = xp.zeros_like(xpad)
    dw = xp.zeros_like(w)
    for n in range(N):
        for f in range(F):
            for i in range(Hout):
                for j in range(Wout):
                    g = dout[n, f, i, j]
                    rows, cols = slice(i * S, i * S + HH), slice(j * S, j * S + WW)
                    dxpad[n, :, rows, cols] += g * w[f]
                    dw[f] += g * xpad[n, :, rows, cols]
    dx = dxpad[:, :, P:P + H, P:P + W]
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


# student-writes: assignment2/convolutional_networks
def max_pool_forward_naive(x, pool_param):
    """Max pooling with loops. x: (N, C, H, W); pool_param: {'pool_height', 'pool_width',
    'stride'}; windows may overlap (e.g. 3x3 with stride 2).

    out[n, c, i, j] = max of x[n, c, i*S : i*S + PH, j*S : j*S + PW]; out (N, C, Hout, Wout).
    cache = (x, pool_param): the backward pass finds each window's maximum again.
    """
    layer = "max_pool_forward_naive"
    PH, PW, S, Hout, Wout = _pool_params(layer, x, pool_param)
    N, C = x.shape[:2]
    xp = array_module(x)
    out = xp.zeros((N, C, Hout, Wout), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Hout):
                for j in range(Wout):
                    out[n, c, i, j] = x[n, c, i * S:i * S + PH, j * S:j * S + PW].max()
    return out, (x, pool_param)


# student-writes: assignment2/convolutional_networks
def max_pool_backward_naive(dout, cache):
    """Backward of max_pool_forward_naive: each dout[n, c, i, j] goes to the position of its
    window's maximum (the first one in row-major order on ties); overlapping windows add up.
    Returns dx (N, C, H, W)."""
    x, pool_param = cache
    layer = "max_pool_backward_naive"
    PH, PW, S, Hout, Wout = _pool_params(layer, x, pool_param)
    N, C = x.shape[:2]
    _require_shape(layer, "dout", dout, (N, C, Hout, Wout), "the shape of the output")
    xp = array_module(x, dout)
    dx = xp.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(Hout):
                for j in range(Wout):
                    window = x[n, c, i * S:i * S + PH, j * S:j * S + PW]
                    a, b = divmod(int(window.argmax()), PW)
                    dx[n, c, i * S + a, j * S + b] += dout[n, c, i, j]
    return dx


def avg_pool_forward_naive(x, pool_param):
    """Average pooling with loops: out[n, c, i, j] = mean of the window. Same pool_param and
    shapes as max_pool_forward_naive. cache = (x, pool_param)."""
    layer = "avg_pool_forward_naive"
    PH, PW, S, Hout, Wout = _pool_params(layer, x, pool_param)
    N, C = x.shape[:2]
    xp = array_module(x)
    out = xp.zeros((N, C, Hout, Wout), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Hout):
                for j in range(Wout):
                    out[n, c, i, j] = x[n, c, i * S:i * S + PH, j * S:j * S + PW].mean()
    return out, (x, pool_param)


def avg_pool_backward_naive(dout, cache):
    """Backward of avg_pool_forward_naive: every entry of a window gets dout / (PH * PW);
    overlapping windows add up. Returns dx (N, C, H, W)."""
    x, pool_param = cache
    layer = "avg_pool_backward_naive"
    PH, PW, S, Hout, Wout = _pool_params(layer, x, pool_param)
    N, C = x.shape[:2]
    _require_shape(layer, "dout", dout, (N, C, Hout, Wout), "the shape of the output")
    xp = array_module(x, dout)
    dx = xp.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(Hout):
                for j in range(Wout):
                    dx[n, c, i * S:i * S + PH, j * S:j * S + PW] += dout[n, c, i, j] / (PH * PW)
    return dx


# student-writes: assignment3/gans
def conv_transpose_forward_naive(x, w, b, conv_param):
    """Transposed convolution ("deconvolution"), the upsampling layer of GAN generators.

    x: (N, C_in, H, W). w: (C_in, F_out, HH, WW) -- input channels FIRST, the layout PyTorch's
    ConvTranspose2d uses. b: (F_out,). conv_param: {'stride': S, 'pad': P}.
    Every input pixel stamps a copy of its filter, scaled by its value, onto the output:
        full[n, :, i*S : i*S + HH, j*S : j*S + WW] += x[n, c, i, j] * w[c]
    then P rows/columns are cropped from each border and b is added.
    out: (N, F_out, Hout, Wout), Hout = S * (H - 1) + HH - 2P.
    This is the adjoint (transpose) of conv_forward with the same w read as (F, C, HH, WW),
    stride and pad: conv maps (N, F_out, Hout, Wout) back to (N, C_in, H, W), and
    <conv(z), x> = <z, conv_transpose(x)> with zero biases. Hence its name, and hence the
    backward pass below is a convolution.
    cache = (x, w, b, conv_param).
    """
    layer = "conv_transpose_forward_naive"
    _check_conv_transpose(layer, x, w, b)
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    Hout = conv_transpose_output_size(H, HH, P, S, layer=layer, dim="H")
    Wout = conv_transpose_output_size(W, WW, P, S, layer=layer, dim="W")
    xp = array_module(x, w, b)
    full = xp.zeros((N, F, Hout + 2 * P, Wout + 2 * P), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    full[n, :, i * S:i * S + HH, j * S:j * S + WW] += x[n, c, i, j] * w[c]
    out = full[:, :, P:P + Hout, P:P + Wout] + b.reshape(1, F, 1, 1)
    return out, (x, w, b, conv_param)


# student-writes: assignment3/gans
def conv_transpose_backward_naive(dout, cache):
    """Backward of conv_transpose_forward_naive: pad dout by P again, then each x[n, c, i, j]
    reads back the window it stamped: dx[n, c, i, j] = sum(window * w[c]) and
    dw[c] += x[n, c, i, j] * window. Returns dx (N, C_in, H, W), dw (C_in, F_out, HH, WW),
    db (F_out,)."""
    x, w, b, conv_param = cache
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    expected = (N, F, conv_transpose_output_size(H, HH, P, S),
                conv_transpose_output_size(W, WW, P, S))
    _require_shape("conv_transpose_backward_naive", "dout", dout, expected,
                   "the shape of the output")
    xp = array_module(x, dout)
    dpad = _pad_hw(dout, P)
    dx = xp.zeros_like(x)
    dw = xp.zeros_like(w)
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    window = dpad[n, :, i * S:i * S + HH, j * S:j * S + WW]
                    dx[n, c, i, j] = (window * w[c]).sum()
                    dw[c] += x[n, c, i, j] * window
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db

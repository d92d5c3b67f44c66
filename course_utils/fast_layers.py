"""Fast convolution and pooling: the speed tricks, kept apart from the teaching versions.

Same signatures, caches and gradients as the naive layers in `course_utils.layers`; only the
way of computing differs. Everything works on numpy or cupy arrays.

The three tricks
----------------
1. im2col: every receptive field of the (padded) input becomes one column of a matrix
   ``cols`` of shape (C*HH*WW, N*Hout*Wout). It is built from a strided *view* of the input
   (``as_strided``: no data moves until we ask for a contiguous copy), so building it is one
   memory copy. Convolution is then ONE matrix product, ``w.reshape(F, -1) @ cols``, which
   runs at the speed of the machine's BLAS (or cuBLAS).
2. col2im: the backward pass produces gradients for the columns, and overlapping windows
   must *add* their contributions back into the input. Rather than a scatter-add over every
   element (np.add.at is slow), we loop over the HH*WW kernel offsets (a, b) and add one
   strided slice per offset: ``dx[:, :, a::S, b::S] += dcols[:, a, b]``. HH*WW Python-level
   steps, each a vectorised add over the whole batch, identical on numpy and cupy.
3. Pooling needs no matrix at all: entry (a, b) of every window at once is one strided
   slice of the input (one row of im2col's matrix), so a max or mean over the PH*PW window
   entries pools any window and stride without materialising anything. Overlapping windows
   (3x3 stride 2) read each input several times, so the input is first split into its
   stride phases x[:, :, p::S, q::S] (one strided pass), after which every read is contiguous.

Memory
------
``cols`` holds C*HH*WW*Hout*Wout numbers per image. When the whole batch would take more than
``IM2COL_BUDGET_BYTES`` (512 MiB; override with ``conv_param['max_im2col_bytes']``) the
batch is processed in chunks of images that fit (one image at a time at the least).
"""
from __future__ import annotations

from .backend import array_module
from .layers import (
    _check_conv,
    _check_conv_transpose,
    _conv_params,
    _pool_params,
    _require_shape,
    conv_output_size,
    conv_transpose_output_size,
)

IM2COL_BUDGET_BYTES = 512 * 2**20


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def _pad(x, P):
    """x (N, C, H, W) padded with P zeros on each side of H and W, as a contiguous array."""
    xp = array_module(x)
    if P == 0:
        return xp.ascontiguousarray(x)
    return xp.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))


def _im2col(x, HH, WW, S, P, Hout, Wout):
    """The columns matrix (C*HH*WW, N*Hout*Wout) of x (N, C, H, W).

    Row (c, a, b), column (n, i, j) holds xpad[n, c, i*S + a, j*S + b]. We describe that
    six-axis array (C, HH, WW, N, Hout, Wout) by strides over the padded input, then copy it
    once into contiguous memory: the only pass over the data.
    """
    xp = array_module(x)
    xpad = _pad(x, P)
    N, C = xpad.shape[:2]
    sN, sC, sH, sW = xpad.strides
    windows = xp.lib.stride_tricks.as_strided(
        xpad, shape=(C, HH, WW, N, Hout, Wout), strides=(sC, sH, sW, sN, S * sH, S * sW)
    )
    return xp.ascontiguousarray(windows).reshape(C * HH * WW, N * Hout * Wout)


def _col2im(cols, N, C, H, W, HH, WW, S, P, Hout, Wout):
    """The adjoint of _im2col: add each column entry back to the input pixel it came from.

    cols: (C*HH*WW, N*Hout*Wout). Returns dx (N, C, H, W). The loop is over the HH*WW kernel
    offsets only; each step adds a whole (C, N, Hout, Wout) block to a strided slice.
    """
    xp = array_module(cols)
    cols = cols.reshape(C, HH, WW, N, Hout, Wout)
    dxpad = xp.zeros((N, C, H + 2 * P, W + 2 * P), dtype=cols.dtype)
    by_channel = dxpad.transpose(1, 0, 2, 3)  # (C, N, Hp, Wp), a view matching cols' order
    for a in range(HH):
        rows = slice(a, a + S * (Hout - 1) + 1, S)
        for b in range(WW):
            by_channel[:, :, rows, b:b + S * (Wout - 1) + 1:S] += cols[:, a, b]
    return dxpad[:, :, P:P + H, P:P + W] if P else dxpad


def _channels_first(a):
    """(N, C, H, W) -> contiguous (C, N*H*W): the layout the GEMMs want (one copy)."""
    xp = array_module(a)
    N, C, H, W = a.shape
    return xp.ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(C, N * H * W)


def _batch_first(m, N, H, W, bias=None, out=None):
    """(C, N*H*W) -> (N, C, H, W), written into `out` (contiguous) with `bias` (C,) added."""
    xp = array_module(m)
    C = m.shape[0]
    view = m.reshape(C, N, H, W).transpose(1, 0, 2, 3)
    if out is None:
        out = xp.empty((N, C, H, W), dtype=m.dtype)
    if bias is None:
        out[...] = view
    else:
        xp.add(view, bias.reshape(1, C, 1, 1), out=out)
    return out


def _batch_chunks(N, bytes_per_image, conv_param):
    """[(n0, n1), ...] slices of the batch whose im2col buffer fits the budget."""
    budget = int(conv_param.get("max_im2col_bytes", IM2COL_BUDGET_BYTES))
    per_chunk = max(1, budget // max(1, bytes_per_image))
    return [(n0, min(N, n0 + per_chunk)) for n0 in range(0, N, per_chunk)]


# ---------------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------------


def conv_forward_fast(x, w, b, conv_param):
    """Convolution by im2col + one GEMM. Same arguments, output and meaning as
    layers.conv_forward_naive: x (N, C, H, W), w (F, C, HH, WW), b (F,),
    conv_param {'stride', 'pad', optional 'max_im2col_bytes'} -> out (N, F, Hout, Wout).

    1x1 filters skip im2col entirely (see conv_forward_1x1).

    Extra memory at the peak, for a chunk of n images (n = N when the whole batch's columns
    fit in the budget, else as many as fit, at least 1):
        cols          n * C*HH*WW*Hout*Wout * itemsize   (<= max_im2col_bytes unless n = 1)
      + GEMM result   n * F*Hout*Wout * itemsize         (then copied into out, which is new)
      + padded input  n * C*(H+2P)*(W+2P) * itemsize
    When the batch is one chunk, the cache keeps cols for the backward pass, so that much
    stays allocated until then (as CS231n's version does); when chunked, the backward pass
    rebuilds the columns chunk by chunk instead (one more im2col per chunk, bounded memory).
    cache = (x, w, b, conv_param, cols or None).
    """
    layer = "conv_forward_fast"
    _check_conv(layer, x, w, b)
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout = conv_output_size(H, HH, P, S, layer=layer, dim="H")
    Wout = conv_output_size(W, WW, P, S, layer=layer, dim="W")
    if HH == 1 and WW == 1:
        out, cache = conv_forward_1x1(x, w, b, conv_param)
        return out, ("1x1", cache)
    xp = array_module(x, w, b)
    w2 = w.reshape(F, C * HH * WW)
    chunks = _batch_chunks(N, C * HH * WW * Hout * Wout * x.itemsize, conv_param)
    out = xp.empty((N, F, Hout, Wout), dtype=xp.result_type(x, w))
    for n0, n1 in chunks:
        cols = _im2col(x[n0:n1], HH, WW, S, P, Hout, Wout)
        _batch_first(w2 @ cols, n1 - n0, Hout, Wout, bias=b, out=out[n0:n1])
    kept = cols if len(chunks) == 1 else None
    return out, (x, w, b, conv_param, kept)


def conv_backward_fast(dout, cache):
    """Backward of conv_forward_fast: dx (N, C, H, W), dw (F, C, HH, WW), db (F,).

    With d2 = dout as (F, N*Hout*Wout):  dw = d2 @ cols.T  and  dcols = w2.T @ d2, which
    col2im adds back into dx. Extra memory at the peak, per chunk: cols and dcols (each the
    size of the forward pass's cols, so up to twice the budget), d2 (the size of dout) and
    the padded dx.
    """
    if isinstance(cache[0], str):  # ("1x1", cache of conv_forward_1x1)
        return conv_backward_1x1(dout, cache[1])
    x, w, b, conv_param, kept = cache
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout, Wout = conv_output_size(H, HH, P, S), conv_output_size(W, WW, P, S)
    _require_shape("conv_backward_fast", "dout", dout, (N, F, Hout, Wout),
                   "the shape of the output")
    xp = array_module(x, dout)
    w2 = w.reshape(F, C * HH * WW)
    chunks = _batch_chunks(N, C * HH * WW * Hout * Wout * x.itemsize, conv_param)
    if kept is not None:  # one chunk, columns kept from the forward pass
        d2 = _channels_first(dout)
        dx = _col2im(w2.T @ d2, N, C, H, W, HH, WW, S, P, Hout, Wout)
        return dx, (d2 @ kept.T).reshape(w.shape), dout.sum(axis=(0, 2, 3))
    dx = xp.empty(x.shape, dtype=xp.result_type(dout, w))
    dw = xp.zeros((F, C * HH * WW), dtype=xp.result_type(dout, x))
    for n0, n1 in chunks:
        cols = _im2col(x[n0:n1], HH, WW, S, P, Hout, Wout)
        d2 = _channels_first(dout[n0:n1])
        dw += d2 @ cols.T
        dx[n0:n1] = _col2im(w2.T @ d2, n1 - n0, C, H, W, HH, WW, S, P, Hout, Wout)
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw.reshape(w.shape), db


def conv_forward_1x1(x, w, b, conv_param):
    """Convolution with 1x1 filters: at each pixel, a matrix (F, C) times the channel vector.

    x (N, C, H, W), w (F, C, 1, 1), b (F,), conv_param {'stride', 'pad'}. With stride S only
    every S-th pixel is used, and padding only adds border pixels whose output is b, so we
    subsample, then do a batched GEMM (F, C) @ (N, C, Hout*Wout) that lands directly in
    NCHW order. No im2col: the extra memory is at most one copy of the subsampled input.
    cache = (x, w, conv_param, xs), xs the (N, C, Hout*Wout) input the GEMM used.
    """
    layer = "conv_forward_1x1"
    _check_conv(layer, x, w, b)
    if w.shape[2:] != (1, 1):
        raise ValueError(f"{layer}: w must have 1x1 filters, got shape {tuple(w.shape)}.")
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    F = w.shape[0]
    Hout = conv_output_size(H, 1, P, S, layer=layer, dim="H")
    Wout = conv_output_size(W, 1, P, S, layer=layer, dim="W")
    xp = array_module(x, w, b)
    xs = x[:, :, ::S, ::S] if P == 0 else _pad(x, P)[:, :, ::S, ::S]
    xs = xp.ascontiguousarray(xs).reshape(N, C, Hout * Wout)
    out = w.reshape(F, C) @ xs                       # (N, F, Hout*Wout)
    out += b.reshape(1, F, 1)
    return out.reshape(N, F, Hout, Wout), (x, w, conv_param, xs)


def conv_backward_1x1(dout, cache):
    """Backward of conv_forward_1x1: dx (N, C, H, W), dw (F, C, 1, 1), db (F,).

    dxs = w.T @ dout per image (a batched GEMM), scattered back to every S-th pixel (the
    others, and the padding, got no gradient); dw = sum over images and pixels of
    dout @ xs.T, one GEMM via tensordot.
    """
    x, w, conv_param, xs = cache
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    F = w.shape[0]
    Hout, Wout = conv_output_size(H, 1, P, S), conv_output_size(W, 1, P, S)
    _require_shape("conv_backward_1x1", "dout", dout, (N, F, Hout, Wout),
                   "the shape of the output")
    xp = array_module(x, dout)
    d3 = dout.reshape(N, F, Hout * Wout)
    dxs = (w.reshape(F, C).T @ d3).reshape(N, C, Hout, Wout)
    if S == 1 and P == 0:
        dx = dxs
    else:
        dxpad = xp.zeros((N, C, H + 2 * P, W + 2 * P), dtype=dxs.dtype)
        dxpad[:, :, ::S, ::S] = dxs
        dx = dxpad[:, :, P:P + H, P:P + W]
    dw = xp.tensordot(d3, xs, axes=([0, 2], [0, 2])).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


# ---------------------------------------------------------------------------------------------
# Transposed convolution: the adjoint of convolution, built from the same two kernels
# ---------------------------------------------------------------------------------------------


def conv_transpose_forward_fast(x, w, b, conv_param):
    """Transposed convolution, same meaning as layers.conv_transpose_forward_naive:
    x (N, C_in, H, W), w (C_in, F_out, HH, WW), b (F_out,) -> out (N, F_out, Hout, Wout),
    Hout = S * (H - 1) + HH - 2P.

    It is exactly the input-gradient of a convolution with weights w read as (F, C, HH, WW):
    cols = w2.T @ x2 (one GEMM, x2 = x as (C_in, N*H*W)), then col2im into the output.
    Extra memory: cols, F_out*HH*WW*H*W*itemsize per image, chunked over the batch under
    the same budget as conv_forward_fast. cache = (x, w, b, conv_param).
    """
    layer = "conv_transpose_forward_fast"
    _check_conv_transpose(layer, x, w, b)
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    Hout = conv_transpose_output_size(H, HH, P, S, layer=layer, dim="H")
    Wout = conv_transpose_output_size(W, WW, P, S, layer=layer, dim="W")
    xp = array_module(x, w, b)
    w2 = w.reshape(C, F * HH * WW)
    out = xp.empty((N, F, Hout, Wout), dtype=xp.result_type(x, w))
    for n0, n1 in _batch_chunks(N, F * HH * WW * H * W * x.itemsize, conv_param):
        cols = w2.T @ _channels_first(x[n0:n1])
        out[n0:n1] = _col2im(cols, n1 - n0, F, Hout, Wout, HH, WW, S, P, H, W)
    out += b.reshape(1, F, 1, 1)
    return out, (x, w, b, conv_param)


def conv_transpose_backward_fast(dout, cache):
    """Backward of conv_transpose_forward_fast: a plain convolution of dout.

    cols = im2col(dout) (F_out*HH*WW, N*H*W); dx = w2 @ cols (the conv forward pass) and
    dw = x2 @ cols.T. Returns dx (N, C_in, H, W), dw (C_in, F_out, HH, WW), db (F_out,).
    """
    x, w, b, conv_param = cache
    S, P = _conv_params(conv_param)
    N, C, H, W = x.shape
    _, F, HH, WW = w.shape
    Hout = conv_transpose_output_size(H, HH, P, S)
    Wout = conv_transpose_output_size(W, WW, P, S)
    _require_shape("conv_transpose_backward_fast", "dout", dout, (N, F, Hout, Wout),
                   "the shape of the output")
    xp = array_module(x, dout)
    w2 = w.reshape(C, F * HH * WW)
    dx = xp.empty(x.shape, dtype=xp.result_type(dout, w))
    dw = xp.zeros((C, F * HH * WW), dtype=xp.result_type(dout, x))
    for n0, n1 in _batch_chunks(N, F * HH * WW * H * W * x.itemsize, conv_param):
        cols = _im2col(dout[n0:n1], HH, WW, S, P, H, W)
        _batch_first(w2 @ cols, n1 - n0, H, W, out=dx[n0:n1])
        dw += _channels_first(x[n0:n1]) @ cols.T
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw.reshape(w.shape), db


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------
#
# Entry (a, b) of every pooling window at once is one strided slice of x,
# x[:, :, a::S, b::S] cut to (Hout, Wout): one row of im2col's columns matrix. So pooling is
# PH*PW elementwise operations on such (N, C, Hout, Wout) arrays, with no matrix built.
# When the windows tile x exactly (PH = PW = S) these slices are the sub-arrays
# x.reshape(N, C, Hout, PH, Wout, PW)[:, :, :, a, :, b] of the classic reshape trick; reducing
# that 6-d reshape over axes 3 and 5 in one call is shorter to write but measured 15x slower
# on numpy (136 ms against 8.5 ms for the max over (100, 64, 32, 32) float32, 2 cores), since
# numpy reduces tiny inner axes slowly; so we loop over the entries in every case.


def _phases(x, S, PH, PW):
    """Split x (N, C, H, W) into its stride phases: phase (p, q) = x[:, :, p::S, q::S] as a
    contiguous array, for p < min(S, PH), q < min(S, PW) (the only ones windows touch).
    With S = 1 the single phase is x itself."""
    xp = array_module(x)
    if S == 1:
        return {(0, 0): xp.ascontiguousarray(x)}
    return {(p, q): xp.ascontiguousarray(x[:, :, p::S, q::S])
            for p in range(min(S, PH)) for q in range(min(S, PW))}


def _overlapping(PH, PW, S):
    return S < PH or S < PW


def _pool_entries(PH, PW, S, Hout, Wout):
    """For every window entry (a, b), in row-major order, (key, rows, cols) such that
    parts[key][:, :, rows, cols] is the (N, C, Hout, Wout) array of entry (a, b) of every
    window, where parts is what _pool_parts returns."""
    grid = [(a, b) for a in range(PH) for b in range(PW)]
    if not _overlapping(PH, PW, S):
        return [((0, 0), slice(a, a + S * (Hout - 1) + 1, S), slice(b, b + S * (Wout - 1) + 1, S))
                for a, b in grid]
    return [((a % S, b % S), slice(a // S, a // S + Hout), slice(b // S, b // S + Wout))
            for a, b in grid]


def _pool_parts(x, PH, PW, S):
    """The arrays window entries are read from (keyed as in _pool_entries).

    Windows that do not overlap (S >= PH and S >= PW) read each input once, so the only part
    is x and the entries are strided slices of it. Overlapping windows (3x3 stride 2) read
    every input about PH*PW / S**2 times; strided access (every S-th element) is several times
    slower than contiguous access, so we first split x into its stride phases (one strided
    pass); entry (a, b) is then a block of phase (a % S, b % S) with contiguous rows.
    """
    return _phases(x, S, PH, PW) if _overlapping(PH, PW, S) else {(0, 0): x}


def max_pool_forward_fast(x, pool_param):
    """Max pooling, same meaning as layers.max_pool_forward_naive, with no Python loop over
    the data: a running elementwise maximum over the PH*PW window entries (_pool_parts and
    _pool_entries say where each entry is read from). Any window and stride, overlapping or
    not.
    Extra memory: the output, plus for overlapping windows the stride phases of x (one copy
    of x, at most), which the cache keeps for the backward pass.
    cache = (x.shape, parts, out, pool_param).
    """
    layer = "max_pool_forward_fast"
    PH, PW, S, Hout, Wout = _pool_params(layer, x, pool_param)
    xp = array_module(x)
    parts = _pool_parts(x, PH, PW, S)
    (key, rows, cols), *rest = _pool_entries(PH, PW, S, Hout, Wout)
    out = parts[key][:, :, rows, cols].copy()
    for key, rows, cols in rest:
        xp.maximum(out, parts[key][:, :, rows, cols], out=out)
    return out, (x.shape, parts, out, pool_param)


def max_pool_backward_fast(dout, cache):
    """Backward of max_pool_forward_fast: dx (N, C, H, W).

    Each dout[n, c, i, j] goes to the first entry of its window (row-major, as in the naive
    version) that equals the window's max: we walk the window entries in order, hand the
    gradient still unserved to the entries that match, and take it off the unserved. Ties
    (common after a ReLU: windows of zeros) thus send the gradient once, not once per tie.
    Overlapping windows gather their gradients per stride phase, then write them back to x's
    layout once. Extra memory: dx, per-phase gradients (one x, at most) and a few
    output-sized arrays.
    """
    shape, parts, out, pool_param = cache
    layer = "max_pool_backward_fast"
    PH, PW = int(pool_param["pool_height"]), int(pool_param["pool_width"])
    S = int(pool_param["stride"])
    Hout, Wout = out.shape[2:]
    _require_shape(layer, "dout", dout, out.shape, "the shape of the output")
    xp = array_module(out, dout)
    overlapping = _overlapping(PH, PW, S)
    # without overlap every input entry is written at most once; with S == PH == PW, exactly once
    exact = S == PH and S == PW
    dparts = {key: (xp.empty if exact else xp.zeros)(part.shape, dtype=dout.dtype)
              for key, part in parts.items()}
    unserved = dout.copy()
    for key, rows, cols in _pool_entries(PH, PW, S, Hout, Wout):
        served = (parts[key][:, :, rows, cols] == out) * unserved
        if overlapping:
            dparts[key][:, :, rows, cols] += served
        else:
            dparts[key][:, :, rows, cols] = served
        unserved -= served  # exactly 0 where served, unchanged elsewhere
    return _from_parts(dparts, shape, PH, PW, S)


def _from_parts(dparts, shape, PH, PW, S):
    """Gradients gathered per part (see _pool_parts) back in x's layout (N, C, H, W)."""
    if not _overlapping(PH, PW, S) or S == 1:
        return dparts[(0, 0)]
    xp = array_module(dparts[(0, 0)])
    dtype = dparts[(0, 0)].dtype
    covered = S <= PH and S <= PW  # then the phases partition x: every entry is written
    dx = xp.empty(shape, dtype=dtype) if covered else xp.zeros(shape, dtype=dtype)
    for (p, q), dphase in dparts.items():
        dx[:, :, p::S, q::S] = dphase
    return dx


def avg_pool_forward_fast(x, pool_param):
    """Average pooling, same meaning as layers.avg_pool_forward_naive: the sum of the PH*PW
    window entries (read as in max_pool_forward_fast), divided by PH*PW.
    Extra memory: the output, plus the stride phases of x while running when windows overlap.
    cache = (x.shape, pool_param): the backward pass needs nothing else."""
    layer = "avg_pool_forward_fast"
    PH, PW, S, Hout, Wout = _pool_params(layer, x, pool_param)
    parts = _pool_parts(x, PH, PW, S)
    (key, rows, cols), *rest = _pool_entries(PH, PW, S, Hout, Wout)
    out = parts[key][:, :, rows, cols].copy()
    for key, rows, cols in rest:
        out += parts[key][:, :, rows, cols]
    out *= 1.0 / (PH * PW)
    return out, (x.shape, pool_param)


def avg_pool_backward_fast(dout, cache):
    """Backward of avg_pool_forward_fast: every entry of a window gets dout / (PH * PW),
    summed over the windows it belongs to (per stride phase when windows overlap).
    Returns dx (N, C, H, W)."""
    shape, pool_param = cache
    layer = "avg_pool_backward_fast"
    N, C, H, W = shape
    PH, PW = int(pool_param["pool_height"]), int(pool_param["pool_width"])
    S = int(pool_param["stride"])
    Hout = conv_output_size(H, PH, 0, S, layer=layer, dim="H")
    Wout = conv_output_size(W, PW, 0, S, layer=layer, dim="W")
    _require_shape(layer, "dout", dout, (N, C, Hout, Wout), "the shape of the output")
    xp = array_module(dout)
    share = dout * (1.0 / (PH * PW))
    overlapping = _overlapping(PH, PW, S)
    if overlapping:
        # the stride phases _phases would make: phase (p, q) holds x[:, :, p::S, q::S]
        dparts = {(p, q): xp.zeros((N, C, len(range(p, H, S)), len(range(q, W, S))),
                                   dtype=dout.dtype)
                  for p in range(min(S, PH)) for q in range(min(S, PW))}
    else:
        exact = S == PH and S == PW
        dparts = {(0, 0): (xp.empty if exact else xp.zeros)(shape, dtype=dout.dtype)}
    for key, rows, cols in _pool_entries(PH, PW, S, Hout, Wout):
        if overlapping:
            dparts[key][:, :, rows, cols] += share
        else:
            dparts[key][:, :, rows, cols] = share
    return _from_parts(dparts, shape, PH, PW, S)

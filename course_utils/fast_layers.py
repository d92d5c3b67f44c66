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
   On the CPU the batch is pooled in blocks of about POOL_BLOCK_BYTES, so that the PH*PW
   passes over a block hit the processor's cache instead of main memory.

Memory
------
``cols`` holds C*HH*WW*Hout*Wout numbers per image. When the whole batch would take more than
``IM2COL_BUDGET_BYTES`` (512 MiB; override with ``conv_param['max_im2col_bytes']``) the
batch is processed in chunks of images that fit (one image at a time at the least).
"""
from __future__ import annotations

import math

from .backend import array_module, is_cupy_array
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
POOL_BLOCK_BYTES = 2**20  # input bytes per pooling block on the CPU (see _pool_blocks)


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
    the padded dx. Stride-1 layers whose dout columns are no larger than x's compute dx as
    one more convolution instead (see _dx_by_full_correlation): same memory bound, faster.
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
    full = S == 1 and HH == WW and P <= HH - 1 and F * H * W <= C * Hout * Wout
    if kept is not None:  # one chunk, columns kept from the forward pass
        d2 = _channels_first(dout)
        if full:
            dx = _dx_by_full_correlation(dout, w, P, H, W)
        else:
            dx = _col2im(w2.T @ d2, N, C, H, W, HH, WW, S, P, Hout, Wout)
        return dx, (d2 @ kept.T).reshape(w.shape), dout.sum(axis=(0, 2, 3))
    dx = xp.empty(x.shape, dtype=xp.result_type(dout, w))
    dw = xp.zeros((F, C * HH * WW), dtype=xp.result_type(dout, x))
    for n0, n1 in chunks:
        cols = _im2col(x[n0:n1], HH, WW, S, P, Hout, Wout)
        d2 = _channels_first(dout[n0:n1])
        dw += d2 @ cols.T
        if full:
            _dx_by_full_correlation(dout[n0:n1], w, P, H, W, out=dx[n0:n1])
        else:
            dx[n0:n1] = _col2im(w2.T @ d2, n1 - n0, C, H, W, HH, WW, S, P, Hout, Wout)
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw.reshape(w.shape), db


def _dx_by_full_correlation(dout, w, P, H, W, out=None):
    """dx of a stride-1 convolution with square filters, computed as one more convolution:
    dout padded by HH-1-P on each side, correlated with the filters flipped in space and with
    their C and F axes swapped, gives dx (N, C, H, W), written into `out` when given.

    That is im2col of dout plus one GEMM whose inner size is F*HH*WW, instead of a GEMM of
    inner size F followed by col2im's HH*WW strided adds; BLAS is far more efficient with the
    larger inner size. Measured for (64, 64, 16, 16) x 64 3x3, 2 cores: 47 -> 32 ms (float64),
    28 -> 18 ms (float32). Needs P <= HH-1 (the padding is not negative); the
    caller uses it only when dout's columns are no larger than x's, so memory stays bounded
    by the same budget.
    """
    xp = array_module(dout, w)
    F, C, HH, WW = w.shape
    N = dout.shape[0]
    flipped = xp.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    cols = _im2col(dout, HH, WW, 1, HH - 1 - P, H, W)
    return _batch_first(flipped.reshape(C, F * HH * WW) @ cols, N, H, W, out=out)


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


def _pool_blocks(x_shape, itemsize, on_gpu):
    """[(n0, n1), ...]: the batch cut into blocks that the pooling passes handle one at a time.

    Pooling makes PH*PW cheap passes over the data (see above). On the CPU, a whole batch is
    larger than the processor's caches, so every pass streams it from memory again; a block
    of about POOL_BLOCK_BYTES of input stays in cache across all the passes. Measured on 2
    cores: 3x3 stride-2 max pooling of (100, 64, 33, 33) float64, forward + backward, 170 ms
    as one block against about 85 ms in blocks. On a GPU the whole batch is one block (each
    pass is one kernel; more blocks would only launch more kernels).
    """
    N = x_shape[0]
    if on_gpu:
        return [(0, N)]
    per_block = max(1, POOL_BLOCK_BYTES // max(1, math.prod(x_shape[1:]) * itemsize))
    return [(n0, min(N, n0 + per_block)) for n0 in range(0, N, per_block)]


def max_pool_forward_fast(x, pool_param):
    """Max pooling, same meaning as layers.max_pool_forward_naive, with no Python loop over
    the data: a running elementwise maximum over the PH*PW window entries (_pool_parts and
    _pool_entries say where each entry is read from), block by block of the batch
    (_pool_blocks). Any window and stride, overlapping or not.
    Extra memory: the output, plus for overlapping windows the stride phases of x (one copy
    of x, at most), which the cache keeps for the backward pass.
    cache = (x.shape, [(n0, n1, parts) per block], out, pool_param).
    """
    layer = "max_pool_forward_fast"
    PH, PW, S, Hout, Wout = _pool_params(layer, x, pool_param)
    xp = array_module(x)
    N, C = x.shape[:2]
    (key0, rows0, cols0), *rest = _pool_entries(PH, PW, S, Hout, Wout)
    out = xp.empty((N, C, Hout, Wout), dtype=x.dtype)
    blocks = []
    for n0, n1 in _pool_blocks(x.shape, x.itemsize, is_cupy_array(x)):
        parts = _pool_parts(x[n0:n1], PH, PW, S)
        out_block = out[n0:n1]
        out_block[...] = parts[key0][:, :, rows0, cols0]
        for key, rows, cols in rest:
            xp.maximum(out_block, parts[key][:, :, rows, cols], out=out_block)
        blocks.append((n0, n1, parts))
    return out, (x.shape, blocks, out, pool_param)


def max_pool_backward_fast(dout, cache):
    """Backward of max_pool_forward_fast: dx (N, C, H, W).

    Each dout[n, c, i, j] goes to the first entry of its window (row-major, as in the naive
    version) that equals the window's max: we walk the window entries in order and serve the
    windows where the entry matches and no earlier entry did (a boolean `served` mask per
    window). Ties (common after a ReLU: windows of zeros) thus send the gradient once, not
    once per tie. Overlapping windows gather their gradients per stride phase, then write
    them back to x's layout once. Works block by block, like the forward pass. Extra memory:
    dx, per-phase gradients of one block and a few output-sized arrays of one block.
    """
    shape, blocks, out, pool_param = cache
    layer = "max_pool_backward_fast"
    PH, PW = int(pool_param["pool_height"]), int(pool_param["pool_width"])
    S = int(pool_param["stride"])
    Hout, Wout = out.shape[2:]
    _require_shape(layer, "dout", dout, out.shape, "the shape of the output")
    xp = array_module(out, dout)
    entries = _pool_entries(PH, PW, S, Hout, Wout)
    overlapping = _overlapping(PH, PW, S)
    dx = xp.empty(shape, dtype=dout.dtype)
    for n0, n1, parts in blocks:
        part_shapes = {key: part.shape for key, part in parts.items()}
        dparts = _gradient_parts(dx[n0:n1], part_shapes, PH, PW, S)
        out_block, dout_block = out[n0:n1], dout[n0:n1]
        match = xp.empty(out_block.shape, dtype=bool)
        served = xp.zeros(out_block.shape, dtype=bool)  # windows whose max was found
        grad = xp.empty(out_block.shape, dtype=dout.dtype)
        for k, (key, rows, cols) in enumerate(entries):
            xp.equal(parts[key][:, :, rows, cols], out_block, out=match)
            if k:
                xp.greater(match, served, out=match)  # matches, and no earlier entry did
            if k < len(entries) - 1:
                xp.logical_or(served, match, out=served)
            xp.multiply(match, dout_block, out=grad)
            _deposit(dparts[key], rows, cols, grad, overlapping)
        _from_parts(dparts, dx[n0:n1], PH, PW, S)
    return dx


def _deposit(part, rows, cols, grad, overlapping):
    """Put one window entry's gradients into its part: added when windows overlap (an input
    may be in several windows), written otherwise (each input is in at most one)."""
    if overlapping:
        part[:, :, rows, cols] += grad
    else:
        part[:, :, rows, cols] = grad


def _gradient_parts(dx, part_shapes, PH, PW, S):
    """Where the backward pass gathers the gradients of one block's parts ({key: shape}):
    dx itself when windows do not overlap (zeroed unless the windows tile x exactly, so
    that entries no window reads get 0), else a zeroed array per stride phase."""
    xp = array_module(dx)
    if not _overlapping(PH, PW, S):
        if not (S == PH and S == PW):
            dx.fill(0)
        return {(0, 0): dx}
    return {key: xp.zeros(part_shape, dtype=dx.dtype) for key, part_shape in part_shapes.items()}


def _from_parts(dparts, dx, PH, PW, S):
    """Write gradients gathered per part (see _gradient_parts) into dx (N, C, H, W), in place."""
    if not _overlapping(PH, PW, S):
        return  # gathered in dx itself
    if S == 1:
        dx[...] = dparts[(0, 0)]
        return
    if not (S <= PH and S <= PW):  # the phases do not partition x: some entries get nothing
        dx.fill(0)
    for (p, q), dphase in dparts.items():
        dx[:, :, p::S, q::S] = dphase


def avg_pool_forward_fast(x, pool_param):
    """Average pooling, same meaning as layers.avg_pool_forward_naive: the sum of the PH*PW
    window entries (read as in max_pool_forward_fast, block by block), divided by PH*PW.
    Extra memory: the output, plus the stride phases of one block while running when
    windows overlap.
    cache = (x.shape, pool_param): the backward pass needs nothing else."""
    layer = "avg_pool_forward_fast"
    PH, PW, S, Hout, Wout = _pool_params(layer, x, pool_param)
    xp = array_module(x)
    N, C = x.shape[:2]
    (key0, rows0, cols0), *rest = _pool_entries(PH, PW, S, Hout, Wout)
    out = xp.empty((N, C, Hout, Wout), dtype=x.dtype)
    for n0, n1 in _pool_blocks(x.shape, x.itemsize, is_cupy_array(x)):
        parts = _pool_parts(x[n0:n1], PH, PW, S)
        out_block = out[n0:n1]
        out_block[...] = parts[key0][:, :, rows0, cols0]
        for key, rows, cols in rest:
            out_block += parts[key][:, :, rows, cols]
    out *= 1.0 / (PH * PW)
    return out, (x.shape, pool_param)


def avg_pool_backward_fast(dout, cache):
    """Backward of avg_pool_forward_fast: every entry of a window gets dout / (PH * PW),
    summed over the windows it belongs to (per stride phase when windows overlap), block by
    block of the batch. Returns dx (N, C, H, W)."""
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
    entries = _pool_entries(PH, PW, S, Hout, Wout)
    overlapping = _overlapping(PH, PW, S)
    dx = xp.empty(shape, dtype=dout.dtype)
    for n0, n1 in _pool_blocks(shape, dout.itemsize, is_cupy_array(dout)):
        # the phase shapes _phases would make for this block: phase (p, q) is x[:, :, p::S, q::S]
        phase_shapes = {(p, q): (n1 - n0, C, len(range(p, H, S)), len(range(q, W, S)))
                        for p in range(min(S, PH)) for q in range(min(S, PW))}
        dparts = _gradient_parts(dx[n0:n1], phase_shapes, PH, PW, S)
        share_block = share[n0:n1]
        for key, rows, cols in entries:
            _deposit(dparts[key], rows, cols, share_block, overlapping)
        _from_parts(dparts, dx[n0:n1], PH, PW, S)
    return dx

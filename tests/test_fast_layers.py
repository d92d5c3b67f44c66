"""Tests of course_utils.fast_layers: the fast layers must compute what the naive ones do.

The naive layers are checked against independent formulas in test_layers.py; here the fast
ones are compared with them on seeded random cases (shapes, strides, pads, window sizes),
in float64, to 1e-9: both compute the same sums in different orders, so they agree to
rounding (~1e-14); 1e-9 leaves room for long sums without hiding real errors, which are O(1).
"""
import numpy as np
import pytest

from course_utils import fast_layers as FL
from course_utils import layers as L
from course_utils.gradient_check import eval_numerical_gradient_array, rel_error

AGREE_TOL = 1e-9
GRAD_TOL = 1e-7  # centred differences in float64 agree to ~1e-9 on smooth functions


def conv_cases(count, seed):
    """Random valid conv configurations: (x shape, w shape, stride, pad)."""
    r = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        k = int(r.choice([1, 2, 3, 5]))
        S = int(r.integers(1, 4))
        P = int(r.integers(0, 3))
        N, C, F = (int(v) for v in r.integers(1, 4, size=3))
        H, W = (int(v) for v in r.integers(k, k + 8, size=2))
        if (H + 2 * P - k) % S or (W + 2 * P - k) % S:
            continue
        cases.append(((N, C, H, W), (F, C, k, k), S, P))
    return cases


def compare(a_list, b_list, tol=AGREE_TOL):
    for a, b in zip(a_list, b_list, strict=True):
        assert a.shape == b.shape
        assert rel_error(a, b) < tol, rel_error(a, b)


# --------------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", conv_cases(12, seed=0), ids=str)
def test_conv_fast_agrees_with_naive_forward_and_backward(case):
    xs, ws, S, P = case
    r = np.random.default_rng(1)
    x, w, b = r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[0])
    param = {"stride": S, "pad": P}
    out_n, cache_n = L.conv_forward_naive(x, w, b, param)
    out_f, cache_f = FL.conv_forward_fast(x, w, b, param)
    compare([out_n], [out_f])
    dout = r.standard_normal(out_n.shape)
    compare(L.conv_backward_naive(dout, cache_n), FL.conv_backward_fast(dout, cache_f))


@pytest.mark.parametrize("budget", [1, 3000])
def test_conv_fast_chunked_im2col_agrees_with_naive(budget):
    # budget 1 byte: one image per chunk; 3000 bytes: a few images per chunk, ragged last one
    r = np.random.default_rng(2)
    x, w, b = r.standard_normal((7, 3, 6, 6)), r.standard_normal((4, 3, 3, 3)), r.standard_normal(4)
    param = {"stride": 1, "pad": 1}
    out_n, cache_n = L.conv_forward_naive(x, w, b, param)
    out_f, cache_f = FL.conv_forward_fast(x, w, b, {**param, "max_im2col_bytes": budget})
    assert cache_f[4] is None  # chunked: the columns are rebuilt in the backward pass
    compare([out_n], [out_f])
    dout = r.standard_normal(out_n.shape)
    compare(L.conv_backward_naive(dout, cache_n), FL.conv_backward_fast(dout, cache_f))


# (x shape, w shape, pad): stride-1 layers whose dx is computed as a full correlation
FULL_CORRELATION_CASES = [
    ((2, 4, 6, 6), (4, 4, 3, 3), 1),   # the usual "same" 3x3 layer
    ((2, 5, 7, 6), (2, 5, 3, 3), 0),   # no padding, F < C
    ((1, 3, 5, 5), (2, 3, 3, 3), 2),   # P = HH - 1: the dout padding is zero
    ((2, 6, 7, 7), (4, 6, 5, 5), 2),
]


@pytest.mark.parametrize("case", FULL_CORRELATION_CASES, ids=str)
@pytest.mark.parametrize("budget", [None, 1])
def test_conv_fast_dx_by_full_correlation_agrees_with_naive(case, budget, monkeypatch):
    xs, ws, P = case
    calls = []
    real = FL._dx_by_full_correlation
    monkeypatch.setattr(FL, "_dx_by_full_correlation",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    r = np.random.default_rng(3)
    x, w, b = r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[0])
    param = {"stride": 1, "pad": P}
    out_n, cache_n = L.conv_forward_naive(x, w, b, param)
    fast_param = param if budget is None else {**param, "max_im2col_bytes": budget}
    out_f, cache_f = FL.conv_forward_fast(x, w, b, fast_param)
    dout = r.standard_normal(out_n.shape)
    compare(L.conv_backward_naive(dout, cache_n), FL.conv_backward_fast(dout, cache_f))
    assert calls == [1] * (1 if budget is None else xs[0])  # the path under test was taken


def test_conv_fast_keeps_col2im_when_dout_columns_would_be_larger(monkeypatch):
    """Few input channels and many filters (a first layer): im2col of dout would be F/C times
    larger than x's columns, so the backward pass scatters with col2im instead."""
    r = np.random.default_rng(4)
    x, w, b = r.standard_normal((2, 1, 6, 6)), r.standard_normal((5, 1, 3, 3)), np.zeros(5)
    _, cache = FL.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    calls = []
    real = FL._dx_by_full_correlation
    monkeypatch.setattr(FL, "_dx_by_full_correlation",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    dx_fast = FL.conv_backward_fast(np.ones((2, 5, 6, 6)), cache)[0]
    assert calls == []
    dx_naive = L.conv_backward_naive(np.ones((2, 5, 6, 6)),
                                     L.conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})[1])[0]
    compare([dx_naive], [dx_fast])


def test_im2col_budget_defaults_to_512_mib_and_chunks_follow_it():
    assert FL.IM2COL_BUDGET_BYTES == 512 * 2**20
    assert FL._batch_chunks(10, 100, {}) == [(0, 10)]
    assert FL._batch_chunks(10, 100, {"max_im2col_bytes": 350}) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert FL._batch_chunks(3, 100, {"max_im2col_bytes": 10}) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("S,P", [(1, 0), (2, 0), (2, 1), (3, 0), (2, 2)])
def test_conv_1x1_agrees_with_naive(S, P):
    r = np.random.default_rng(3)
    x, w, b = r.standard_normal((2, 4, 7, 7)), r.standard_normal((3, 4, 1, 1)), r.standard_normal(3)
    param = {"stride": S, "pad": P}
    out_n, cache_n = L.conv_forward_naive(x, w, b, param)
    dout = r.standard_normal(out_n.shape)
    for forward, backward in [(FL.conv_forward_1x1, FL.conv_backward_1x1),
                              (FL.conv_forward_fast, FL.conv_backward_fast)]:
        out_f, cache_f = forward(x, w, b, param)
        compare([out_n], [out_f])
        compare(L.conv_backward_naive(dout, cache_n), backward(dout, cache_f))


def test_conv_fast_backward_matches_numerical_gradient():
    r = np.random.default_rng(4)
    x, w, b = r.standard_normal((2, 3, 5, 5)), r.standard_normal((2, 3, 3, 3)), r.standard_normal(2)
    param = {"stride": 2, "pad": 1}
    out, cache = FL.conv_forward_fast(x, w, b, param)
    dout = r.standard_normal(out.shape)
    dx, dw, db = FL.conv_backward_fast(dout, cache)
    for name, grad in [("x", dx), ("w", dw), ("b", db)]:
        args = {"x": x, "w": w, "b": b}

        def f(v, name=name):
            return FL.conv_forward_fast(**{**args, name: v}, conv_param=param)[0]

        assert rel_error(eval_numerical_gradient_array(f, args[name].copy(), dout), grad) < GRAD_TOL


def test_conv_fast_keeps_float32():
    r = np.random.default_rng(5)
    x = r.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = r.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = np.zeros(4, np.float32)
    out, cache = FL.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert all(g.dtype == np.float32 for g in FL.conv_backward_fast(np.ones_like(out), cache))
    ref, _ = L.conv_forward_naive(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                  {"stride": 1, "pad": 1})
    assert rel_error(out, ref) < 1e-4  # float32 rounding of 27-term sums


def test_conv_fast_rejects_stride_that_does_not_fit():
    with pytest.raises(ValueError, match=r"conv_forward_fast: stride 2 doesn't fit: \(H - F \+ 2P\) / S \+ 1 = \(6 - 3 \+ 2\*0\) / 2 \+ 1 = 2.5 is not an integer"):
        FL.conv_forward_fast(np.zeros((1, 1, 6, 7)), np.zeros((1, 1, 3, 3)), np.zeros(1),
                             {"stride": 2, "pad": 0})


def test_conv_fast_rejects_mismatched_shapes_and_dtypes():
    with pytest.raises(ValueError, match=r"conv_forward_fast: .*w.shape\[1\] = 4 and x.shape\[1\] = 3"):
        FL.conv_forward_fast(np.zeros((1, 3, 5, 5)), np.zeros((2, 4, 3, 3)), np.zeros(2), {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match="conv_forward_fast: x must be a floating-point array"):
        FL.conv_forward_fast(np.zeros((1, 3, 5, 5), np.int32), np.zeros((2, 3, 3, 3)), np.zeros(2), {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match="conv_forward_1x1: w must have 1x1 filters"):
        FL.conv_forward_1x1(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(2), {"stride": 1, "pad": 0})
    _, cache = FL.conv_forward_fast(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(2), {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"conv_backward_fast: dout has shape \(1, 2, 4, 4\)"):
        FL.conv_backward_fast(np.zeros((1, 2, 4, 4)), cache)


# --------------------------------------------------------------------------------------------
# Transposed convolution
# --------------------------------------------------------------------------------------------

CONVT_CASES = [((2, 3, 3, 4), (3, 2, 4, 4), 2, 1), ((1, 2, 4, 4), (2, 3, 3, 3), 1, 1),
               ((2, 2, 3, 3), (2, 2, 3, 3), 3, 0), ((2, 3, 2, 5), (3, 4, 5, 5), 2, 2),
               ((3, 4, 4, 4), (4, 2, 1, 1), 2, 0)]


@pytest.mark.parametrize("case", CONVT_CASES, ids=str)
def test_conv_transpose_fast_agrees_with_naive(case):
    xs, ws, S, P = case
    r = np.random.default_rng(6)
    x, w, b = r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[1])
    param = {"stride": S, "pad": P}
    out_n, cache_n = L.conv_transpose_forward_naive(x, w, b, param)
    out_f, cache_f = FL.conv_transpose_forward_fast(x, w, b, param)
    compare([out_n], [out_f])
    dout = r.standard_normal(out_n.shape)
    compare(L.conv_transpose_backward_naive(dout, cache_n), FL.conv_transpose_backward_fast(dout, cache_f))
    chunked = {**param, "max_im2col_bytes": 1}
    out_c, cache_c = FL.conv_transpose_forward_fast(x, w, b, chunked)
    compare([out_n], [out_c])
    compare(L.conv_transpose_backward_naive(dout, cache_n), FL.conv_transpose_backward_fast(dout, cache_c))


@pytest.mark.parametrize("case", CONVT_CASES, ids=str)
def test_conv_transpose_fast_is_adjoint_of_conv_fast(case):
    xs, ws, S, P = case
    r = np.random.default_rng(7)
    x, w = r.standard_normal(xs), r.standard_normal(ws)
    param = {"stride": S, "pad": P}
    up, _ = FL.conv_transpose_forward_fast(x, w, np.zeros(ws[1]), param)
    y = r.standard_normal(up.shape)
    down, _ = FL.conv_forward_fast(y, w, np.zeros(ws[0]), param)  # w read as (F, C, HH, WW)
    assert down.shape == x.shape
    lhs, rhs = np.sum(down * x), np.sum(y * up)  # <conv(y), x> == <y, convT(x)>
    assert abs(lhs - rhs) < 1e-12 * (np.sum(np.abs(down * x)) + 1)


def test_conv_transpose_fast_rejects_bad_weights():
    with pytest.raises(ValueError, match=r"conv_transpose_forward_fast: b has shape \(3,\)"):
        FL.conv_transpose_forward_fast(np.zeros((1, 2, 3, 3)), np.zeros((2, 4, 3, 3)), np.zeros(3),
                                       {"stride": 2, "pad": 1})


# --------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------

POOL_CASES = [  # (x shape, pool height, pool width, stride)
    ((2, 3, 8, 8), 2, 2, 2),   # tiles exactly
    ((2, 3, 9, 9), 3, 3, 2),   # overlapping windows
    ((2, 3, 9, 7), 3, 3, 2),
    ((1, 2, 7, 7), 3, 3, 1),
    ((2, 2, 6, 9), 3, 3, 3),   # exact tiling, non-square input
    ((2, 2, 5, 9), 2, 3, 3),   # rectangular windows
    ((2, 2, 7, 7), 2, 2, 5),   # gaps between windows
    ((3, 2, 5, 6), 1, 2, 1),
    ((2, 2, 7, 7), 3, 1, 2),   # overlapping along H only: some columns are in no window
    ((1, 2, 8, 8), 4, 4, 2),   # each input in up to 4 windows
]


POOL_FUNCTIONS = {  # kind -> naive forward, naive backward, fast forward, fast backward
    "max": (L.max_pool_forward_naive, L.max_pool_backward_naive,
            FL.max_pool_forward_fast, FL.max_pool_backward_fast),
    "avg": (L.avg_pool_forward_naive, L.avg_pool_backward_naive,
            FL.avg_pool_forward_fast, FL.avg_pool_backward_fast),
}


def distinct(shape, seed):
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(np.linspace(-2, 2, n)).reshape(shape)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_fast_agrees_with_naive(case, kind):
    shape, PH, PW, S = case
    naive_f, naive_b, fast_f, fast_b = POOL_FUNCTIONS[kind]
    x = distinct(shape, seed=8)
    param = {"pool_height": PH, "pool_width": PW, "stride": S}
    out_n, cache_n = naive_f(x, param)
    out_f, cache_f = fast_f(x, param)
    compare([out_n], [out_f])
    dout = np.random.default_rng(9).standard_normal(out_n.shape)
    compare([naive_b(dout, cache_n)], [fast_b(dout, cache_f)])


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_fast_in_batch_blocks_agrees_with_naive(case, kind, monkeypatch):
    """A budget of one image per block (and of two) splits the batch; the results, ties
    included (x is rounded so windows tie), must not change."""
    shape, PH, PW, S = case
    shape = (5,) + shape[1:]
    naive_f, naive_b, fast_f, fast_b = POOL_FUNCTIONS[kind]
    x = np.round(np.random.default_rng(12).standard_normal(shape))  # few values: many ties
    param = {"pool_height": PH, "pool_width": PW, "stride": S}
    out_n, cache_n = naive_f(x, param)
    dout = np.random.default_rng(13).standard_normal(out_n.shape)
    dx_n = naive_b(dout, cache_n)
    per_image = x[0].nbytes
    for images_per_block in (1, 2):
        monkeypatch.setattr(FL, "POOL_BLOCK_BYTES", images_per_block * per_image)
        assert len(FL._pool_blocks(x.shape, x.itemsize, False)) == -(-5 // images_per_block)
        out_f, cache_f = fast_f(x, param)
        compare([out_n], [out_f])
        compare([dx_n], [fast_b(dout, cache_f)])


@pytest.mark.parametrize("size,stride", [(2, 2), (3, 2)])
def test_max_pool_sends_a_tied_windows_gradient_once_to_its_first_max(size, stride):
    x = np.zeros((1, 2, 5 if size == 3 else 4, 5 if size == 3 else 4))  # every window ties at 0
    param = {"pool_height": size, "pool_width": size, "stride": stride}
    out, cache = FL.max_pool_forward_fast(x, param)
    dout = np.arange(1.0, out.size + 1).reshape(out.shape)
    dx = FL.max_pool_backward_fast(dout, cache)
    expected = np.zeros_like(x)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            expected[:, :, i * stride, j * stride] += dout[:, :, i, j]  # top-left of each window
    assert np.array_equal(dx, expected)
    assert np.array_equal(dx, L.max_pool_backward_naive(dout, L.max_pool_forward_naive(x, param)[1]))


def test_max_pool_fast_backward_matches_numerical_gradient():
    x = distinct((2, 2, 7, 7), seed=10)  # entries 0.02 apart: no ties within h
    param = {"pool_height": 3, "pool_width": 3, "stride": 2}
    out, cache = FL.max_pool_forward_fast(x, param)
    dout = np.random.default_rng(11).standard_normal(out.shape)
    num = eval_numerical_gradient_array(lambda v: FL.max_pool_forward_fast(v, param)[0], x, dout)
    assert rel_error(num, FL.max_pool_backward_fast(dout, cache)) < GRAD_TOL


def test_pool_fast_rejects_windows_that_do_not_tile():
    with pytest.raises(ValueError, match=r"max_pool_forward_fast: stride 2 doesn't fit: \(W - F \+ 2P\)"):
        FL.max_pool_forward_fast(np.zeros((1, 1, 5, 6)), {"pool_height": 3, "pool_width": 3, "stride": 2})
    with pytest.raises(ValueError, match="avg_pool_forward_fast: x must be a floating-point array"):
        FL.avg_pool_forward_fast(np.zeros((1, 1, 4, 4), int), {"pool_height": 2, "pool_width": 2, "stride": 2})
    _, cache = FL.max_pool_forward_fast(np.zeros((1, 1, 4, 4)), {"pool_height": 2, "pool_width": 2, "stride": 2})
    with pytest.raises(ValueError, match=r"max_pool_backward_fast: dout has shape \(1, 1, 4, 4\)"):
        FL.max_pool_backward_fast(np.zeros((1, 1, 4, 4)), cache)


def test_pool_fast_keeps_float32():
    x = distinct((2, 3, 9, 9), seed=12).astype(np.float32)
    for forward, backward in [(FL.max_pool_forward_fast, FL.max_pool_backward_fast),
                              (FL.avg_pool_forward_fast, FL.avg_pool_backward_fast)]:
        out, cache = forward(x, {"pool_height": 3, "pool_width": 3, "stride": 2})
        assert out.dtype == np.float32
        assert backward(np.ones_like(out), cache).dtype == np.float32


# --------------------------------------------------------------------------------------------
# The same layers on a GPU through cupy (skipped without cupy and a device)
# --------------------------------------------------------------------------------------------


# (the `cupy` fixture is in conftest.py: it skips only without cupy or without a GPU)


GPU_TOL = 1e-10  # float64 on both sides; GPU reductions sum in another order


@pytest.mark.gpu
@pytest.mark.parametrize("conv_param", [{"stride": 1, "pad": 1}, {"stride": 2, "pad": 1},
                                        {"stride": 1, "pad": 1, "max_im2col_bytes": 1}], ids=str)
def test_conv_fast_on_cupy_matches_numpy(cupy, conv_param):
    r = np.random.default_rng(13)
    x, w, b = r.standard_normal((4, 3, 9, 9)), r.standard_normal((5, 3, 3, 3)), r.standard_normal(5)
    out, cache = FL.conv_forward_fast(x, w, b, conv_param)
    dout = r.standard_normal(out.shape)
    grads = FL.conv_backward_fast(dout, cache)
    gout, gcache = FL.conv_forward_fast(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), conv_param)
    ggrads = FL.conv_backward_fast(cupy.asarray(dout), gcache)
    assert isinstance(gout, cupy.ndarray)
    compare([out, *grads], [g.get() for g in (gout, *ggrads)], GPU_TOL)


@pytest.mark.gpu
def test_conv_1x1_and_transpose_on_cupy_match_numpy(cupy):
    r = np.random.default_rng(14)
    x, w1, wt = r.standard_normal((2, 4, 6, 6)), r.standard_normal((3, 4, 1, 1)), r.standard_normal((4, 2, 4, 4))
    for forward, backward, w, b, param in [
        (FL.conv_forward_fast, FL.conv_backward_fast, w1, np.zeros(3), {"stride": 2, "pad": 0}),
        (FL.conv_transpose_forward_fast, FL.conv_transpose_backward_fast, wt, np.ones(2), {"stride": 2, "pad": 1}),
    ]:
        out, cache = forward(x, w, b, param)
        dout = r.standard_normal(out.shape)
        gout, gcache = forward(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), param)
        ggrads = backward(cupy.asarray(dout), gcache)
        compare([out, *backward(dout, cache)], [g.get() for g in (gout, *ggrads)], GPU_TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size,stride", [(2, 2), (3, 2)])
def test_pool_fast_on_cupy_matches_numpy(cupy, kind, size, stride):
    forward, backward = {"max": (FL.max_pool_forward_fast, FL.max_pool_backward_fast),
                         "avg": (FL.avg_pool_forward_fast, FL.avg_pool_backward_fast)}[kind]
    x = distinct((3, 4, 9 if size == 3 else 8, 9 if size == 3 else 8), seed=15)
    param = {"pool_height": size, "pool_width": size, "stride": stride}
    out, cache = forward(x, param)
    dout = np.random.default_rng(16).standard_normal(out.shape)
    gout, gcache = forward(cupy.asarray(x), param)
    gdx = backward(cupy.asarray(dout), gcache)
    compare([out, backward(dout, cache)], [gout.get(), gdx.get()], GPU_TOL)

"""Sequence layers: forward values against plain-Python references, backward passes against
centered-difference gradients (float64), and clear errors for bad input.

Tolerance for gradient checks: centered differences with h = 1e-5 have truncation error
O(h^2) ~ 1e-10 relative for these smooth (tanh / sigmoid / softmax) functions with O(1)
inputs, so rel_error < 1e-7 leaves a wide margin while still catching any wrong term
(a missing term gives errors of order 1e-2 or larger).
"""
import math

import numpy as np
import pytest

from course_utils import rnn_layers as rl
from course_utils.gradient_check import (eval_numerical_gradient, eval_numerical_gradient_array,
                                         rel_error)

GRAD_TOL = 1e-7  # see module docstring


def lin(*shape, lo=-0.5, hi=0.5):
    """Deterministic float64 test input: evenly spaced values reshaped."""
    return np.linspace(lo, hi, num=int(np.prod(shape))).reshape(shape)


def rand(rng, *shape):
    return rng.standard_normal(shape)


def py_sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def py_matvec_row(x_row, W, col):
    return sum(x_row[k] * W[k][col] for k in range(len(x_row)))


# ---------------------------------------------------------------------------------------
# sigmoid
# ---------------------------------------------------------------------------------------

def test_sigmoid_matches_formula_on_moderate_inputs():
    x = lin(3, 4, lo=-6, hi=6)
    expected = np.array([[py_sigmoid(v) for v in row] for row in x.tolist()])
    assert rel_error(rl.sigmoid(x), expected) < 1e-14  # same formula, rounding only


def test_sigmoid_is_finite_and_saturates_for_huge_inputs():
    x = np.array([-1e4, -800.0, 0.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise"):  # fails if exp overflows anywhere
        s = rl.sigmoid(x)
    assert s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    assert np.all(np.isfinite(s))


# ---------------------------------------------------------------------------------------
# word embedding
# ---------------------------------------------------------------------------------------

def test_word_embedding_forward_picks_rows():
    V, D = 5, 3
    W = lin(V, D)
    x = np.array([[0, 3, 1], [2, 2, 4]])
    out, _ = rl.word_embedding_forward(x, W)
    expected = np.array([[W.tolist()[v] for v in row] for row in x.tolist()])
    assert out.shape == (2, 3, D)
    assert np.array_equal(out, expected)


def test_word_embedding_backward_matches_numerical_gradient_with_repeated_words():
    rng = np.random.default_rng(0)
    N, T, V, D = 2, 4, 5, 3
    x = np.array([[0, 3, 3, 1], [3, 0, 4, 4]])  # repeats: gradients must accumulate
    W = rand(rng, V, D)
    dout = rand(rng, N, T, D)
    _, cache = rl.word_embedding_forward(x, W)
    dW = rl.word_embedding_backward(dout, cache)
    dW_num = eval_numerical_gradient_array(lambda W_: rl.word_embedding_forward(x, W_)[0], W, dout)
    # The embedding is linear in W, so the only error is rounding (~1e-11).
    assert rel_error(dW, dW_num) < GRAD_TOL
    assert np.all(dW[2] == 0)  # word 2 never appears


def test_word_embedding_rejects_out_of_range_and_float_indices():
    W = lin(4, 2)
    with pytest.raises(ValueError, match=r"word_embedding_forward.*outside \[0, 4\)"):
        rl.word_embedding_forward(np.array([[0, 4]]), W)
    with pytest.raises(ValueError, match="word_embedding_forward.*integer"):
        rl.word_embedding_forward(np.array([[0.0, 1.0]]), W)
    with pytest.raises(ValueError, match=r"word_embedding_forward.*\(N, T\)"):
        rl.word_embedding_forward(np.array([0, 1]), W)


# ---------------------------------------------------------------------------------------
# temporal affine and temporal softmax loss
# ---------------------------------------------------------------------------------------

def test_temporal_affine_forward_matches_loop():
    N, T, D, M = 2, 3, 4, 5
    x, w, b = lin(N, T, D), lin(D, M, lo=-0.2, hi=0.3), lin(M, lo=-0.1, hi=0.1)
    out, _ = rl.temporal_affine_forward(x, w, b)
    X, Wl, bl = x.tolist(), w.tolist(), b.tolist()
    expected = [[[py_matvec_row(X[n][t], Wl, m) + bl[m] for m in range(M)]
                 for t in range(T)] for n in range(N)]
    assert rel_error(out, np.array(expected)) < 1e-13  # summation order differs only


def test_temporal_affine_backward_matches_numerical_gradient():
    rng = np.random.default_rng(1)
    N, T, D, M = 2, 3, 4, 5
    x, w, b, dout = rand(rng, N, T, D), rand(rng, D, M), rand(rng, M), rand(rng, N, T, M)
    _, cache = rl.temporal_affine_forward(x, w, b)
    dx, dw, db = rl.temporal_affine_backward(dout, cache)
    assert rel_error(dx, eval_numerical_gradient_array(
        lambda v: rl.temporal_affine_forward(v, w, b)[0], x, dout)) < GRAD_TOL
    assert rel_error(dw, eval_numerical_gradient_array(
        lambda v: rl.temporal_affine_forward(x, v, b)[0], w, dout)) < GRAD_TOL
    assert rel_error(db, eval_numerical_gradient_array(
        lambda v: rl.temporal_affine_forward(x, w, v)[0], b, dout)) < GRAD_TOL


def test_temporal_affine_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="temporal_affine_forward.*w \\(4, 5\\)"):
        rl.temporal_affine_forward(lin(2, 3, 3), lin(4, 5), lin(5))


def reference_temporal_softmax_loss(x, y, mask):
    N, T, V = x.shape
    total = 0.0
    for n in range(N):
        for t in range(T):
            if mask[n, t]:
                row = x[n, t].tolist()
                log_z = math.log(sum(math.exp(v) for v in row))
                total -= row[y[n, t]] - log_z
    return total / N


def test_temporal_softmax_loss_value_sums_time_averages_batch_and_skips_masked():
    N, T, V = 3, 4, 5
    x = lin(N, T, V, lo=-2, hi=2)
    y = (np.arange(N * T).reshape(N, T) * 3) % V
    mask = np.ones((N, T), dtype=bool)
    mask[0, 3] = mask[2, 1] = False
    loss, _ = rl.temporal_softmax_loss(x, y, mask)
    assert abs(float(loss) - reference_temporal_softmax_loss(x, y, mask)) < 1e-12


def test_temporal_softmax_loss_is_log_v_per_step_for_uniform_scores():
    N, T, V = 10, 7, 20
    x = np.zeros((N, T, V))
    y = np.arange(N * T).reshape(N, T) % V
    loss, _ = rl.temporal_softmax_loss(x, y, np.ones((N, T), dtype=bool))
    assert abs(float(loss) - T * math.log(V)) < 1e-12


def test_temporal_softmax_loss_gradient_matches_numerical_gradient():
    rng = np.random.default_rng(2)
    N, T, V = 3, 4, 6
    x = rand(rng, N, T, V)
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) > 0.3
    _, dx = rl.temporal_softmax_loss(x, y, mask)
    dx_num = eval_numerical_gradient(lambda v: rl.temporal_softmax_loss(v, y, mask)[0], x,
                                     verbose=False)
    assert rel_error(dx, dx_num) < GRAD_TOL
    assert np.all(dx[~mask] == 0)  # masked positions get no gradient


def test_temporal_softmax_loss_rejects_bad_labels_and_masks():
    x = lin(2, 3, 4)
    ok_mask = np.ones((2, 3), dtype=bool)
    with pytest.raises(ValueError, match=r"temporal_softmax_loss.*outside \[0, 4\)"):
        rl.temporal_softmax_loss(x, np.full((2, 3), 4), ok_mask)
    with pytest.raises(ValueError, match="temporal_softmax_loss.*shape"):
        rl.temporal_softmax_loss(x, np.zeros((2, 2), dtype=int), ok_mask)
    with pytest.raises(ValueError, match="temporal_softmax_loss.*boolean"):
        rl.temporal_softmax_loss(x, np.zeros((2, 3), dtype=int), ok_mask.astype(float))


# ---------------------------------------------------------------------------------------
# vanilla RNN
# ---------------------------------------------------------------------------------------

def reference_rnn_step(x, h, Wx, Wh, b):
    N, H = h.shape
    X, Hl, WxL, WhL, bl = x.tolist(), h.tolist(), Wx.tolist(), Wh.tolist(), b.tolist()
    return np.array([[math.tanh(py_matvec_row(X[n], WxL, j) + py_matvec_row(Hl[n], WhL, j)
                                + bl[j]) for j in range(H)] for n in range(N)])


def rnn_inputs(rng, N=3, D=4, H=5, T=None, gates=1):
    x = rand(rng, N, D) if T is None else rand(rng, N, T, D)
    return (x, rand(rng, N, H), 0.5 * rand(rng, D, gates * H), 0.5 * rand(rng, H, gates * H),
            0.5 * rand(rng, gates * H))


def test_rnn_step_forward_matches_reference():
    N, D, H = 3, 10, 4
    x, h = lin(N, D, lo=-0.4, hi=0.7), lin(N, H, lo=-0.2, hi=0.5)
    Wx, Wh, b = lin(D, H, lo=-0.1, hi=0.9), lin(H, H, lo=-0.3, hi=0.7), lin(H, lo=-0.2, hi=0.4)
    next_h, _ = rl.rnn_step_forward(x, h, Wx, Wh, b)
    assert rel_error(next_h, reference_rnn_step(x, h, Wx, Wh, b)) < 1e-13


def test_rnn_step_backward_matches_numerical_gradient():
    rng = np.random.default_rng(3)
    args = list(rnn_inputs(rng))
    dnext = rand(rng, 3, 5)
    _, cache = rl.rnn_step_forward(*args)
    grads = rl.rnn_step_backward(dnext, cache)
    for k, (arr, grad) in enumerate(zip(args, grads, strict=True)):
        def f(v, k=k):
            a = list(args)
            a[k] = v
            return rl.rnn_step_forward(*a)[0]
        assert rel_error(grad, eval_numerical_gradient_array(f, arr, dnext)) < GRAD_TOL, k


def test_rnn_forward_equals_repeated_reference_steps():
    N, T, D, H = 2, 3, 4, 5
    x, h0 = lin(N, T, D, lo=-0.1, hi=0.3), lin(N, H, lo=-0.3, hi=0.1)
    Wx, Wh, b = lin(D, H, lo=-0.2, hi=0.4), lin(H, H, lo=-0.4, hi=0.1), lin(H, lo=-0.7, hi=0.1)
    h, _ = rl.rnn_forward(x, h0, Wx, Wh, b)
    prev = h0
    for t in range(T):
        prev = reference_rnn_step(x[:, t], prev, Wx, Wh, b)
        assert rel_error(h[:, t], prev) < 1e-13


def test_rnn_backward_matches_numerical_gradient():
    rng = np.random.default_rng(4)
    args = list(rnn_inputs(rng, N=2, T=4, D=3, H=5))
    dh = rand(rng, 2, 4, 5)
    _, cache = rl.rnn_forward(*args)
    grads = rl.rnn_backward(dh, cache)
    for k, (arr, grad) in enumerate(zip(args, grads, strict=True)):
        def f(v, k=k):
            a = list(args)
            a[k] = v
            return rl.rnn_forward(*a)[0]
        assert rel_error(grad, eval_numerical_gradient_array(f, arr, dh)) < GRAD_TOL, k


def test_rnn_rejects_mismatched_weight_shapes():
    rng = np.random.default_rng(5)
    x, h, Wx, Wh, b = rnn_inputs(rng)
    with pytest.raises(ValueError, match="rnn_step_forward.*Wh \\(H, H\\).*Wh \\(4, 5\\)"):
        rl.rnn_step_forward(x, h, Wx, Wh[:4], b)
    with pytest.raises(ValueError, match=r"rnn_forward.*\(N, T, D\)"):
        rl.rnn_forward(x, h, Wx, Wh, b)  # a 2-d x is one step, not a sequence
    with pytest.raises(ValueError, match="rnn_backward.*dh"):
        _, cache = rl.rnn_forward(x[:, None, :], h, Wx, Wh, b)
        rl.rnn_backward(np.zeros((3, 2, 5)), cache)


# ---------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------

def reference_lstm_step(x, h, c, Wx, Wh, b):
    """Element by element, gates in the order i, f, o, g."""
    N, H = h.shape
    X, Hl, C = x.tolist(), h.tolist(), c.tolist()
    WxL, WhL, bl = Wx.tolist(), Wh.tolist(), b.tolist()
    next_h, next_c = np.zeros((N, H)), np.zeros((N, H))
    for n in range(N):
        for j in range(H):
            def act(block):
                col = block * H + j
                return py_matvec_row(X[n], WxL, col) + py_matvec_row(Hl[n], WhL, col) + bl[col]
            i, f, o = py_sigmoid(act(0)), py_sigmoid(act(1)), py_sigmoid(act(2))
            g = math.tanh(act(3))
            next_c[n, j] = f * C[n][j] + i * g
            next_h[n, j] = o * math.tanh(next_c[n, j])
    return next_h, next_c


def test_lstm_step_forward_matches_reference():
    N, D, H = 3, 4, 5
    x, h, c = lin(N, D, lo=-0.4, hi=1.2), lin(N, H, lo=-0.3, hi=0.7), lin(N, H, lo=-0.4, hi=0.9)
    Wx, Wh = lin(D, 4 * H, lo=-2.1, hi=1.3), lin(H, 4 * H, lo=-0.7, hi=2.2)
    b = lin(4 * H, lo=0.3, hi=0.7)
    next_h, next_c, _ = rl.lstm_step_forward(x, h, c, Wx, Wh, b)
    ref_h, ref_c = reference_lstm_step(x, h, c, Wx, Wh, b)
    assert rel_error(next_h, ref_h) < 1e-13
    assert rel_error(next_c, ref_c) < 1e-13


def test_lstm_step_backward_matches_numerical_gradient():
    rng = np.random.default_rng(6)
    N, D, H = 3, 4, 5
    x, h, Wx, Wh, b = rnn_inputs(rng, N, D, H, gates=4)
    c = rand(rng, N, H)
    args = [x, h, c, Wx, Wh, b]
    dnext_h, dnext_c = rand(rng, N, H), rand(rng, N, H)
    _, _, cache = rl.lstm_step_forward(*args)
    grads = rl.lstm_step_backward(dnext_h, dnext_c, cache)
    for k, (arr, grad) in enumerate(zip(args, grads, strict=True)):
        def f_h(v, k=k):
            a = list(args)
            a[k] = v
            return rl.lstm_step_forward(*a)[0]

        def f_c(v, k=k):
            a = list(args)
            a[k] = v
            return rl.lstm_step_forward(*a)[1]
        num = (eval_numerical_gradient_array(f_h, arr, dnext_h)
               + eval_numerical_gradient_array(f_c, arr, dnext_c))
        assert rel_error(grad, num) < GRAD_TOL, k


def test_lstm_forward_equals_repeated_reference_steps_from_zero_cell():
    N, T, D, H = 2, 3, 5, 4
    x, h0 = lin(N, T, D, lo=-0.4, hi=0.6), lin(N, H, lo=-0.4, hi=0.8)
    Wx, Wh = lin(D, 4 * H, lo=-0.2, hi=0.9), lin(H, 4 * H, lo=-0.3, hi=0.6)
    b = lin(4 * H, lo=0.2, hi=0.7)
    h, _ = rl.lstm_forward(x, h0, Wx, Wh, b)
    prev_h, prev_c = h0, np.zeros((N, H))
    for t in range(T):
        prev_h, prev_c = reference_lstm_step(x[:, t], prev_h, prev_c, Wx, Wh, b)
        assert rel_error(h[:, t], prev_h) < 1e-13


def test_lstm_backward_matches_numerical_gradient():
    rng = np.random.default_rng(7)
    N, T, D, H = 2, 4, 3, 5
    args = list(rnn_inputs(rng, N=N, T=T, D=D, H=H, gates=4))
    dh = rand(rng, N, T, H)
    _, cache = rl.lstm_forward(*args)
    grads = rl.lstm_backward(dh, cache)
    for k, (arr, grad) in enumerate(zip(args, grads, strict=True)):
        def f(v, k=k):
            a = list(args)
            a[k] = v
            return rl.lstm_forward(*a)[0]
        assert rel_error(grad, eval_numerical_gradient_array(f, arr, dh)) < GRAD_TOL, k


def test_lstm_rejects_weights_without_four_gate_blocks():
    rng = np.random.default_rng(8)
    x, h, Wx, Wh, b = rnn_inputs(rng, gates=1)  # RNN-sized weights
    with pytest.raises(ValueError, match=r"lstm_step_forward.*Wx \(D, 4H\)"):
        rl.lstm_step_forward(x, h, np.zeros_like(h), Wx, Wh, b)
    with pytest.raises(ValueError, match="lstm_step_forward.*prev_c"):
        x, h, Wx, Wh, b = rnn_inputs(rng, gates=4)
        rl.lstm_step_forward(x, h, np.zeros((3, 2)), Wx, Wh, b)

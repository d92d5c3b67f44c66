"""Tests of the teaching layers in course_utils.layers.

Forward values are checked against formulas written out independently here (explicit loops,
scipy), and every backward pass against centred-difference gradients in float64. With
h = 1e-5 the numerical gradient of a smooth function is exact to about 1e-10 relative, so
1e-7 leaves two orders of margin. Inputs are built so that no entry sits within h of a kink
(ReLU at 0, a max-pool or maxout tie, an SVM margin at 0): there the centred difference
straddles the kink and the comparison would be meaningless, so we avoid them rather than
loosen tolerances.
"""
import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import scipy.special

from course_utils import layers as L
from course_utils.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    rel_error,
)

GRAD_TOL = 1e-7  # centred differences in float64 agree to ~1e-9 on smooth functions


def rng(seed=0):
    return np.random.default_rng(seed)


def away_from_zero(shape, seed=0, gap=0.1):
    """Random values with |v| >= gap, so no entry is within h of a kink at 0."""
    r = rng(seed)
    v = r.standard_normal(shape)
    return np.sign(v) * (gap + np.abs(v))


def distinct_values(shape, seed=0):
    """A shuffled linspace: all entries distinct and at least 0.01 apart (no pooling ties)."""
    n = int(np.prod(shape))
    return rng(seed).permutation(np.linspace(-1, 1, n) * (n / 200 + 1)).reshape(shape)


def check_grads(forward, inputs, dout, analytic, names):
    """Compare analytic grads with numerical ones for each named input of forward(**inputs)."""
    for name, grad in zip(names, analytic, strict=True):
        def f(v, name=name):
            return forward(**{**inputs, name: v})

        num = eval_numerical_gradient_array(f, inputs[name].copy(), dout)
        assert grad.shape == inputs[name].shape, name
        assert rel_error(num, grad) < GRAD_TOL, f"{name}: rel error {rel_error(num, grad)}"


# --------------------------------------------------------------------------------------------
# conv_output_size
# --------------------------------------------------------------------------------------------


def test_conv_output_size_follows_the_formula():
    assert L.conv_output_size(32, 3, 1, 1) == 32
    assert L.conv_output_size(31, 3, 1, 2) == 16
    assert L.conv_output_size(7, 3, 0, 2) == 3


def test_conv_output_size_rejects_strides_that_do_not_tile():
    with pytest.raises(ValueError, match=r"my_conv: stride 3 doesn't fit: .* is not an integer"):
        L.conv_output_size(32, 3, 1, 3, layer="my_conv")


def test_conv_output_size_rejects_windows_larger_than_input():
    with pytest.raises(ValueError, match="conv: window of size 9 is larger"):
        L.conv_output_size(4, 9, 1, 1)


# --------------------------------------------------------------------------------------------
# Affine
# --------------------------------------------------------------------------------------------


def test_affine_forward_matches_explicit_sums_on_image_shaped_input():
    x = np.linspace(-0.1, 0.5, 2 * 4 * 5 * 6).reshape(2, 4, 5, 6)
    w = np.linspace(-0.2, 0.3, 120 * 3).reshape(120, 3)
    b = np.linspace(-0.3, 0.1, 3)
    out, _ = L.affine_forward(x, w, b)
    flat = x.reshape(2, -1)
    expected = np.array([[sum(flat[n, d] * w[d, m] for d in range(120)) + b[m]
                          for m in range(3)] for n in range(2)])
    assert out.shape == (2, 3)
    assert rel_error(out, expected) < 1e-12


def test_affine_backward_matches_numerical_gradient():
    x, w, b = rng(1).standard_normal((3, 2, 3)), rng(2).standard_normal((6, 4)), rng(3).standard_normal(4)
    dout = rng(4).standard_normal((3, 4))
    _, cache = L.affine_forward(x, w, b)
    grads = L.affine_backward(dout, cache)
    check_grads(lambda x, w, b: L.affine_forward(x, w, b)[0], dict(x=x, w=w, b=b), dout, grads,
                ["x", "w", "b"])


def test_affine_rejects_mismatched_weight_rows():
    with pytest.raises(ValueError, match=r"affine_forward: .*\(2, 3, 4\).*w.shape\[0\] must equal D = 12"):
        L.affine_forward(np.zeros((2, 3, 4)), np.zeros((10, 5)), np.zeros(5))


def test_affine_rejects_wrong_bias_shape():
    with pytest.raises(ValueError, match=r"affine_forward: b has shape \(4,\)"):
        L.affine_forward(np.zeros((2, 3)), np.zeros((3, 5)), np.zeros(4))


def test_affine_rejects_integer_input():
    with pytest.raises(ValueError, match="affine_forward: x must be a floating-point array"):
        L.affine_forward(np.zeros((2, 3), dtype=np.int64), np.zeros((3, 5)), np.zeros(5))


def test_affine_keeps_float32():
    x, w, b = (np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), np.ones(4, np.float32))
    out, cache = L.affine_forward(x, w, b)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in L.affine_backward(np.ones((2, 4), np.float32), cache))


# --------------------------------------------------------------------------------------------
# Nonlinearities
# --------------------------------------------------------------------------------------------

ELEMENTWISE = [
    ("relu", L.relu_forward, L.relu_backward, lambda v: max(v, 0.0)),
    ("leaky_relu", lambda x: L.leaky_relu_forward(x, 0.1), L.leaky_relu_backward,
     lambda v: v if v > 0 else 0.1 * v),
    ("sigmoid", L.sigmoid_forward, L.sigmoid_backward, lambda v: 1 / (1 + math.exp(-v))),
    ("tanh", L.tanh_forward, L.tanh_backward, math.tanh),
    ("elu", lambda x: L.elu_forward(x, 0.7), L.elu_backward,
     lambda v: v if v > 0 else 0.7 * (math.exp(v) - 1)),
]


@pytest.mark.parametrize("name,forward,backward,scalar", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_forward_matches_scalar_formula(name, forward, backward, scalar):
    x = np.linspace(-3, 3, 24).reshape(2, 3, 4)  # 24 points: none of them is exactly 0
    out, _ = forward(x)
    expected = np.vectorize(scalar)(x)
    assert out.shape == x.shape
    assert rel_error(out, expected) < 1e-12


@pytest.mark.parametrize("name,forward,backward,scalar", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_backward_matches_numerical_gradient(name, forward, backward, scalar):
    x = away_from_zero((3, 5), seed=5)
    dout = rng(6).standard_normal((3, 5))
    _, cache = forward(x)
    dx = backward(dout, cache)
    num = eval_numerical_gradient_array(lambda v: forward(v)[0], x, dout)
    assert rel_error(num, dx) < GRAD_TOL


def test_sigmoid_does_not_overflow_on_large_inputs():
    with np.errstate(over="raise"):
        out, _ = L.sigmoid_forward(np.array([-1000.0, 0.0, 1000.0]))
    assert out.tolist() == [0.0, 0.5, 1.0]


def test_relu_rejects_integer_input():
    with pytest.raises(ValueError, match="relu_forward: x must be a floating-point array"):
        L.relu_forward(np.arange(3))


def test_relu_backward_rejects_wrong_dout_shape():
    _, cache = L.relu_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"relu_backward: dout has shape \(3, 2\)"):
        L.relu_backward(np.ones((3, 2)), cache)


# --------------------------------------------------------------------------------------------
# Maxout
# --------------------------------------------------------------------------------------------


def maxout_inputs():
    x = rng(7).standard_normal((4, 3))
    w = rng(8).standard_normal((3, 2, 3))
    b = rng(9).standard_normal((2, 3))
    z = np.einsum("nd,dmk->nmk", x, w) + b
    top2 = np.sort(z, axis=2)[:, :, -2:]
    assert np.min(top2[:, :, 1] - top2[:, :, 0]) > 1e-3  # no near-ties: argmax is stable
    return x, w, b


def test_maxout_forward_takes_the_largest_piece():
    x, w, b = maxout_inputs()
    out, _ = L.maxout_forward(x, w, b)
    expected = np.empty((4, 2))
    for n in range(4):
        for m in range(2):
            expected[n, m] = max(sum(x[n, d] * w[d, m, k] for d in range(3)) + b[m, k]
                                 for k in range(3))
    assert rel_error(out, expected) < 1e-12


def test_maxout_backward_matches_numerical_gradient():
    x, w, b = maxout_inputs()
    dout = rng(10).standard_normal((4, 2))
    _, cache = L.maxout_forward(x, w, b)
    grads = L.maxout_backward(dout, cache)
    check_grads(lambda x, w, b: L.maxout_forward(x, w, b)[0], dict(x=x, w=w, b=b), dout, grads,
                ["x", "w", "b"])


def test_maxout_rejects_bias_of_wrong_shape():
    with pytest.raises(ValueError, match=r"maxout_forward: b has shape \(3, 2\)"):
        L.maxout_forward(np.zeros((4, 3)), np.zeros((3, 2, 3)), np.zeros((3, 2)))


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def test_softmax_loss_of_uniform_scores_is_log_num_classes():
    loss, _ = L.softmax_loss(np.zeros((5, 10)), np.arange(5))
    assert abs(loss - math.log(10)) < 1e-12


def test_softmax_loss_matches_logsumexp_formula_and_is_stable():
    x = rng(11).standard_normal((6, 4)) * 3 + 1000.0  # naive exp would overflow
    y = np.array([0, 1, 2, 3, 0, 1])
    loss, _ = L.softmax_loss(x, y)
    expected = np.mean(scipy.special.logsumexp(x, axis=1) - x[np.arange(6), y])
    assert np.isfinite(loss)
    assert abs(loss - expected) < 1e-10


def test_softmax_loss_gradient_matches_numerical_gradient():
    x, y = rng(12).standard_normal((5, 4)), np.array([3, 0, 1, 2, 1])
    _, dx = L.softmax_loss(x, y)
    num = eval_numerical_gradient(lambda v: L.softmax_loss(v, y)[0], x.copy(), verbose=False)
    assert rel_error(num, dx) < GRAD_TOL


def svm_inputs():
    x, y = rng(13).standard_normal((6, 5)), np.array([0, 4, 2, 1, 3, 2])
    margins = x - x[np.arange(6), y][:, None] + 1.0
    margins[np.arange(6), y] = 5.0
    assert np.min(np.abs(margins)) > 1e-3  # no margin sits on the hinge
    return x, y


def test_svm_loss_matches_explicit_sum():
    x, y = svm_inputs()
    expected = sum(max(0.0, x[n, j] - x[n, y[n]] + 1.0)
                   for n in range(6) for j in range(5) if j != y[n]) / 6
    loss, _ = L.svm_loss(x, y)
    assert abs(loss - expected) < 1e-12


def test_svm_loss_gradient_matches_numerical_gradient():
    x, y = svm_inputs()
    _, dx = L.svm_loss(x, y)
    num = eval_numerical_gradient(lambda v: L.svm_loss(v, y)[0], x.copy(), verbose=False)
    assert rel_error(num, dx) < GRAD_TOL


def test_svm_loss_delta_sets_the_margin():
    x = np.array([[1.0, 0.5]])  # margin of class 1: 0.5 - 1 + delta
    assert abs(L.svm_loss(x, np.array([0]), delta=2.0)[0] - 1.5) < 1e-15
    assert L.svm_loss(x, np.array([0]), delta=0.25)[0] == 0.0


def test_losses_reject_labels_that_do_not_match_scores():
    with pytest.raises(ValueError, match=r"softmax_loss: y has shape \(4,\) but must have shape \(5,\)"):
        L.softmax_loss(np.zeros((5, 3)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="svm_loss: y must hold integer class labels"):
        L.svm_loss(np.zeros((5, 3)), np.zeros(5))


def test_l2_loss_is_half_mean_over_batch_of_squared_error():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([[0.0, 0.0], [3.0, 2.0]])
    loss, dx = L.l2_loss(x, y)
    assert abs(loss - 0.5 * (1 + 4 + 0 + 4) / 2) < 1e-15
    assert np.array_equal(dx, (x - y) / 2)
    assert L.square_loss is L.l2_loss


def test_l2_loss_gradient_matches_numerical_gradient():
    x, y = rng(14).standard_normal((3, 2, 2)), rng(15).standard_normal((3, 2, 2))
    _, dx = L.l2_loss(x, y)
    num = eval_numerical_gradient(lambda v: L.l2_loss(v, y)[0], x.copy(), verbose=False)
    assert rel_error(num, dx) < GRAD_TOL


def test_l2_loss_refuses_to_broadcast():
    with pytest.raises(ValueError, match=r"l2_loss: y has shape \(3,\) but must have shape \(3, 1\)"):
        L.l2_loss(np.zeros((3, 1)), np.zeros(3))


# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["p", "keep_prob"])
def test_dropout_keeps_fraction_p_and_preserves_the_mean(key):
    x = np.ones((200, 200))
    for p in (0.3, 0.8):
        out, _ = L.dropout_forward(x, {"mode": "train", key: p, "seed": 1})
        kept = out != 0
        # 40000 Bernoulli draws: std of the kept fraction <= 0.0025, so 0.02 is 8 sigma
        assert abs(kept.mean() - p) < 0.02
        assert np.allclose(out[kept], 1 / p)  # inverted dropout scales kept units by 1/p
        assert abs(out.mean() - 1) < 0.02 / p


def test_dropout_test_mode_is_identity():
    x = rng(16).standard_normal((4, 5))
    out, cache = L.dropout_forward(x, {"mode": "test", "p": 0.5})
    assert np.array_equal(out, x)
    assert np.array_equal(L.dropout_backward(x, cache), x)


def test_dropout_same_seed_same_mask_other_seed_other_mask():
    x = np.ones((50, 50))
    a, _ = L.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 3})
    b, _ = L.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 3})
    c, _ = L.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 4})
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_backward_matches_numerical_gradient():
    x, dout = rng(17).standard_normal((4, 6)), rng(18).standard_normal((4, 6))
    param = {"mode": "train", "p": 0.6, "seed": 123}
    _, cache = L.dropout_forward(x, param)
    dx = L.dropout_backward(dout, cache)
    num = eval_numerical_gradient_array(lambda v: L.dropout_forward(v, param)[0], x, dout)
    assert rel_error(num, dx) < GRAD_TOL


def test_vanilla_dropout_does_not_scale_at_train_and_scales_by_p_at_test():
    x = np.full((200, 200), 2.0)
    out, _ = L.vanilla_dropout_forward(x, {"mode": "train", "p": 0.25, "seed": 0})
    assert set(np.unique(out).tolist()) == {0.0, 2.0}
    assert abs((out != 0).mean() - 0.25) < 0.02  # 8 sigma, as above
    out_test, cache = L.vanilla_dropout_forward(x, {"mode": "test", "p": 0.25})
    assert np.array_equal(out_test, 0.25 * x)
    assert np.array_equal(L.vanilla_dropout_backward(np.ones_like(x), cache), np.full_like(x, 0.25))


def test_vanilla_dropout_backward_matches_numerical_gradient():
    x, dout = rng(19).standard_normal((4, 6)), rng(20).standard_normal((4, 6))
    param = {"mode": "train", "p": 0.6, "seed": 9}
    _, cache = L.vanilla_dropout_forward(x, param)
    dx = L.vanilla_dropout_backward(dout, cache)
    num = eval_numerical_gradient_array(lambda v: L.vanilla_dropout_forward(v, param)[0], x, dout)
    assert rel_error(num, dx) < GRAD_TOL


def test_dropout_rejects_bad_params():
    with pytest.raises(ValueError, match=r"dropout_forward: p is the keep probability and must be in \(0, 1\]"):
        L.dropout_forward(np.ones(3), {"mode": "train", "p": 0.0})
    with pytest.raises(ValueError, match="dropout_forward: mode must be 'train' or 'test'"):
        L.dropout_forward(np.ones(3), {"mode": "eval", "p": 0.5})
    with pytest.raises(ValueError, match="dropout_forward: dropout_param has p = 0.5 and keep_prob = 0.4"):
        L.dropout_forward(np.ones(3), {"mode": "train", "p": 0.5, "keep_prob": 0.4})


# --------------------------------------------------------------------------------------------
# Batch norm, layer norm, group norm
# --------------------------------------------------------------------------------------------


def test_batchnorm_train_output_has_zero_mean_unit_std_then_gamma_beta():
    x = rng(21).standard_normal((200, 3)) * np.array([1.0, 5.0, 0.1]) + np.array([3.0, -2.0, 7.0])
    out, _ = L.batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"})
    assert np.allclose(out.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(out.std(axis=0), 1, atol=1e-3)  # eps = 1e-5 shrinks std a hair below 1
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([11.0, 12.0, 13.0])
    out, _ = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert np.allclose(out.mean(axis=0), beta, atol=1e-10)
    assert np.allclose(out.std(axis=0), gamma, atol=3e-3)


def test_batchnorm_running_averages_follow_momentum_and_test_mode_uses_them():
    x1 = rng(22).standard_normal((10, 4)) + 2
    x2 = rng(23).standard_normal((10, 4)) * 3
    param = {"mode": "train", "momentum": 0.8, "eps": 1e-5}
    L.batchnorm_forward(x1, np.ones(4), np.zeros(4), param)
    assert np.allclose(param["running_mean"], 0.2 * x1.mean(axis=0), atol=1e-14)
    assert np.allclose(param["running_var"], 0.2 * x1.var(axis=0), atol=1e-14)
    L.batchnorm_forward(x2, np.ones(4), np.zeros(4), param)
    mean = 0.8 * 0.2 * x1.mean(axis=0) + 0.2 * x2.mean(axis=0)
    var = 0.8 * 0.2 * x1.var(axis=0) + 0.2 * x2.var(axis=0)
    assert np.allclose(param["running_mean"], mean, atol=1e-14)
    assert np.allclose(param["running_var"], var, atol=1e-14)

    param["mode"] = "test"
    stored = param["running_mean"].copy()
    gamma, beta = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 0.0, -0.5, 1.0])
    out, _ = L.batchnorm_forward(x1, gamma, beta, param)
    assert np.allclose(out, gamma * (x1 - mean) / np.sqrt(var + 1e-5) + beta, atol=1e-12)
    assert np.array_equal(param["running_mean"], stored)  # test mode does not update


@pytest.mark.parametrize("backward", [L.batchnorm_backward, L.batchnorm_backward_alt])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_batchnorm_backward_matches_numerical_gradient(backward, mode):
    x = rng(24).standard_normal((5, 3)) * 2 + 1
    gamma, beta = rng(25).standard_normal(3), rng(26).standard_normal(3)
    dout = rng(27).standard_normal((5, 3))

    def param():
        return {"mode": mode, "running_mean": np.full(3, 0.5), "running_var": np.full(3, 2.0)}

    _, cache = L.batchnorm_forward(x, gamma, beta, param())
    grads = backward(dout, cache)
    check_grads(lambda x, gamma, beta: L.batchnorm_forward(x, gamma, beta, param())[0],
                dict(x=x, gamma=gamma, beta=beta), dout, grads, ["x", "gamma", "beta"])


def test_batchnorm_backward_alt_equals_step_by_step_backward():
    x, dout = rng(28).standard_normal((50, 7)), rng(29).standard_normal((50, 7))
    gamma, beta = rng(30).standard_normal(7), rng(31).standard_normal(7)
    _, cache = L.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for a, b in zip(L.batchnorm_backward(dout, cache), L.batchnorm_backward_alt(dout, cache),
                    strict=True):
        assert rel_error(a, b) < 1e-10  # same math, different rounding order


def test_batchnorm_rejects_gamma_of_wrong_length():
    with pytest.raises(ValueError, match=r"batchnorm_forward: gamma has shape \(3,\) but must have shape \(4,\)"):
        L.batchnorm_forward(np.zeros((5, 4)), np.ones(3), np.zeros(4), {"mode": "train"})
    with pytest.raises(ValueError, match=r"batchnorm_forward: x must have 2 dimensions"):
        L.batchnorm_forward(np.zeros((5, 4, 1)), np.ones(4), np.zeros(4), {"mode": "train"})


def test_layernorm_normalises_each_sample():
    x = rng(32).standard_normal((4, 50)) * np.array([[1.0], [3.0], [0.5], [9.0]]) + 4
    gamma, beta = np.linspace(0.5, 2, 50), np.linspace(-1, 1, 50)
    out, _ = L.layernorm_forward(x, gamma, beta, {"eps": 1e-5})
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    assert np.allclose(out, gamma * (x - mean) / np.sqrt(var + 1e-5) + beta, atol=1e-12)
    plain, _ = L.layernorm_forward(x, np.ones(50), np.zeros(50), {})
    assert np.allclose(plain.mean(axis=1), 0, atol=1e-12)
    assert np.allclose(plain.std(axis=1), 1, atol=1e-3)  # eps shrinks it a hair


def test_layernorm_backward_matches_numerical_gradient():
    x, dout = rng(33).standard_normal((4, 5)), rng(34).standard_normal((4, 5))
    gamma, beta = rng(35).standard_normal(5), rng(36).standard_normal(5)
    _, cache = L.layernorm_forward(x, gamma, beta, {})
    grads = L.layernorm_backward(dout, cache)
    check_grads(lambda x, gamma, beta: L.layernorm_forward(x, gamma, beta, {})[0],
                dict(x=x, gamma=gamma, beta=beta), dout, grads, ["x", "gamma", "beta"])


def test_spatial_batchnorm_normalises_each_channel_over_batch_and_space():
    x = rng(37).standard_normal((6, 3, 4, 5)) * np.array([1, 4, 0.2])[None, :, None, None] + 2
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([0.0, -1.0, 1.0])
    out, _ = L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert out.shape == x.shape
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    g, bt = gamma[None, :, None, None], beta[None, :, None, None]
    assert np.allclose(out, g * (x - mean) / np.sqrt(var + 1e-5) + bt, atol=1e-12)


def test_spatial_batchnorm_backward_matches_numerical_gradient():
    x, dout = rng(38).standard_normal((2, 3, 3, 2)), rng(39).standard_normal((2, 3, 3, 2))
    gamma, beta = rng(40).standard_normal(3), rng(41).standard_normal(3)
    _, cache = L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    grads = L.spatial_batchnorm_backward(dout, cache)
    check_grads(lambda x, gamma, beta: L.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})[0],
                dict(x=x, gamma=gamma, beta=beta), dout, grads, ["x", "gamma", "beta"])


@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_batchnorm_is_batchnorm_on_pixel_rows(mode):
    """Same outputs, running statistics and gradients as batchnorm on the (N*H*W, C) rows."""
    N, C, H, W = 3, 4, 5, 2
    x, dout = rng(43).standard_normal((N, C, H, W)) + 1, rng(44).standard_normal((N, C, H, W))
    gamma, beta = rng(45).standard_normal(C), rng(46).standard_normal(C)
    rows = lambda a: a.transpose(0, 2, 3, 1).reshape(N * H * W, C)  # noqa: E731
    params = [{"mode": mode, "running_mean": np.full(C, 0.3), "running_var": np.full(C, 2.0),
               "momentum": 0.8} for _ in range(2)]
    out, cache = L.spatial_batchnorm_forward(x, gamma, beta, params[0])
    ref, ref_cache = L.batchnorm_forward(rows(x), gamma, beta, params[1])
    assert np.allclose(rows(out), ref, atol=1e-12)
    for key in ("running_mean", "running_var"):
        assert np.allclose(params[0][key], params[1][key], atol=1e-12)
    dx, dgamma, dbeta = L.spatial_batchnorm_backward(dout, cache)
    rdx, rdgamma, rdbeta = L.batchnorm_backward(rows(dout), ref_cache)
    assert np.allclose(rows(dx), rdx, atol=1e-10)
    assert np.allclose(dgamma, rdgamma, atol=1e-10) and np.allclose(dbeta, rdbeta, atol=1e-10)


def test_spatial_groupnorm_matches_per_group_formula():
    N, C, H, W, G = 2, 6, 3, 4, 3
    x = rng(42).standard_normal((N, C, H, W)) * 2 + 1
    gamma = np.linspace(0.5, 1.5, C).reshape(1, C, 1, 1)
    beta = np.linspace(-1, 1, C).reshape(1, C, 1, 1)
    out, _ = L.spatial_groupnorm_forward(x, gamma, beta, G, {"eps": 1e-5})
    expected = np.empty_like(x)
    for n in range(N):
        for g in range(G):
            chans = slice(g * C // G, (g + 1) * C // G)
            block = x[n, chans]
            expected[n, chans] = (block - block.mean()) / np.sqrt(block.var() + 1e-5)
    expected = gamma * expected + beta
    assert np.allclose(out, expected, atol=1e-12)


def test_spatial_groupnorm_backward_matches_numerical_gradient():
    x, dout = rng(43).standard_normal((2, 4, 2, 3)), rng(44).standard_normal((2, 4, 2, 3))
    gamma, beta = rng(45).standard_normal((1, 4, 1, 1)), rng(46).standard_normal((1, 4, 1, 1))
    _, cache = L.spatial_groupnorm_forward(x, gamma, beta, 2, {})
    grads = L.spatial_groupnorm_backward(dout, cache)
    check_grads(lambda x, gamma, beta: L.spatial_groupnorm_forward(x, gamma, beta, 2, {})[0],
                dict(x=x, gamma=gamma, beta=beta), dout, grads, ["x", "gamma", "beta"])


def test_spatial_groupnorm_rejects_groups_that_do_not_divide_channels():
    with pytest.raises(ValueError, match="spatial_groupnorm_forward: G = 4 groups must divide the C = 6"):
        L.spatial_groupnorm_forward(np.zeros((1, 6, 2, 2)), np.ones((1, 6, 1, 1)),
                                    np.zeros((1, 6, 1, 1)), 4, {})
    with pytest.raises(ValueError, match=r"spatial_groupnorm_forward: gamma has shape \(6,\)"):
        L.spatial_groupnorm_forward(np.zeros((1, 6, 2, 2)), np.ones(6), np.zeros((1, 6, 1, 1)), 3, {})


# --------------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------------


def conv_reference(x, w, b, stride, pad):
    """Cross-correlation with scipy, one (sample, filter, channel) plane at a time."""
    N, C = x.shape[:2]
    F = w.shape[0]
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    planes = [[sum(scipy.signal.correlate(xpad[n, c], w[f, c], mode="valid") for c in range(C))
               [::stride, ::stride] + b[f] for f in range(F)] for n in range(N)]
    return np.array(planes)


@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 1), (3, 1), (2, 2)])
def test_conv_forward_naive_matches_scipy_correlate(stride, pad):
    x = np.linspace(-0.1, 0.5, 2 * 3 * 7 * 7).reshape(2, 3, 7, 7)
    w = np.linspace(-0.2, 0.3, 4 * 3 * 3 * 3).reshape(4, 3, 3, 3)
    b = np.linspace(-0.1, 0.2, 4)
    out, _ = L.conv_forward_naive(x, w, b, {"stride": stride, "pad": pad})
    expected = conv_reference(x, w, b, stride, pad)
    assert out.shape == expected.shape
    assert rel_error(out, expected) < 1e-12


@pytest.mark.parametrize("stride,pad,shape", [(1, 1, (2, 3, 5, 5)), (2, 1, (2, 2, 5, 5)),
                                              (2, 0, (1, 2, 5, 7))])
def test_conv_backward_naive_matches_numerical_gradient(stride, pad, shape):
    x = rng(47).standard_normal(shape)
    w = rng(48).standard_normal((3, shape[1], 3, 3))
    b = rng(49).standard_normal(3)
    param = {"stride": stride, "pad": pad}
    out, cache = L.conv_forward_naive(x, w, b, param)
    dout = rng(50).standard_normal(out.shape)
    grads = L.conv_backward_naive(dout, cache)
    check_grads(lambda x, w, b: L.conv_forward_naive(x, w, b, param)[0],
                dict(x=x, w=w, b=b), dout, grads, ["x", "w", "b"])


def test_conv_rejects_stride_that_does_not_fit():
    with pytest.raises(ValueError, match=r"conv_forward_naive: stride 3 doesn't fit: \(W - F \+ 2P\) / S \+ 1 = \(9 - 3 \+ 2\*1\) / 3 \+ 1"):
        L.conv_forward_naive(np.zeros((1, 1, 7, 9)), np.zeros((2, 1, 3, 3)), np.zeros(2),
                             {"stride": 3, "pad": 1})


def test_conv_rejects_channel_mismatch_and_wrong_ndim():
    with pytest.raises(ValueError, match=r"conv_forward_naive: .*channel counts w.shape\[1\] = 2 and x.shape\[1\] = 3"):
        L.conv_forward_naive(np.zeros((1, 3, 5, 5)), np.zeros((2, 2, 3, 3)), np.zeros(2), {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"conv_forward_naive: x must have 4 dimensions"):
        L.conv_forward_naive(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(2), {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match=r"conv_forward_naive: b has shape \(3,\)"):
        L.conv_forward_naive(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3)), np.zeros(3), {"stride": 1, "pad": 1})
    with pytest.raises(ValueError, match="conv_forward_naive: w must be a floating-point array"):
        L.conv_forward_naive(np.zeros((1, 3, 5, 5)), np.zeros((2, 3, 3, 3), int), np.zeros(2), {"stride": 1, "pad": 1})


# --------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------


def pool_reference(x, size, stride, reducer):
    """Pooling through scipy.ndimage: filter every window, then keep every stride-th one.

    origin shifts the window so output (i, j) covers x[i:i+size, j:j+size]."""
    filt = reducer(x, size=(1, 1, size, size), origin=(0, 0, -(size // 2), -(size // 2)),
                   mode="constant")
    H, W = x.shape[2:]
    Hout, Wout = (H - size) // stride + 1, (W - size) // stride + 1
    return filt[:, :, :(Hout - 1) * stride + 1:stride, :(Wout - 1) * stride + 1:stride]


@pytest.mark.parametrize("size,stride,H", [(2, 2, 6), (3, 2, 7), (3, 1, 5), (2, 1, 4)])
def test_max_pool_forward_naive_matches_scipy_maximum_filter(size, stride, H):
    x = distinct_values((2, 3, H, H), seed=51)
    param = {"pool_height": size, "pool_width": size, "stride": stride}
    out, _ = L.max_pool_forward_naive(x, param)
    assert np.array_equal(out, pool_reference(x, size, stride, scipy.ndimage.maximum_filter))


@pytest.mark.parametrize("size,stride,H", [(2, 2, 6), (3, 2, 7), (3, 1, 5)])
def test_avg_pool_forward_naive_matches_scipy_uniform_filter(size, stride, H):
    x = rng(52).standard_normal((2, 3, H, H))
    param = {"pool_height": size, "pool_width": size, "stride": stride}
    out, _ = L.avg_pool_forward_naive(x, param)
    expected = pool_reference(x, size, stride, scipy.ndimage.uniform_filter)
    assert rel_error(out, expected) < 1e-10  # uniform_filter sums in a different order


def test_max_pool_forward_naive_rectangular_window():
    x = np.arange(2 * 6, dtype=float).reshape(1, 1, 2, 6)
    out, _ = L.max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 3, "stride": 3})
    assert out.tolist() == [[[[8.0, 11.0]]]]


@pytest.mark.parametrize("size,stride,H", [(2, 2, 4), (3, 2, 5), (2, 1, 3)])
def test_max_pool_backward_naive_matches_numerical_gradient(size, stride, H):
    x = distinct_values((2, 2, H, H), seed=53)  # entries 0.01+ apart: no ties within h
    param = {"pool_height": size, "pool_width": size, "stride": stride}
    out, cache = L.max_pool_forward_naive(x, param)
    dout = rng(54).standard_normal(out.shape)
    dx = L.max_pool_backward_naive(dout, cache)
    num = eval_numerical_gradient_array(lambda v: L.max_pool_forward_naive(v, param)[0], x, dout)
    assert rel_error(num, dx) < GRAD_TOL


@pytest.mark.parametrize("size,stride,H", [(2, 2, 4), (3, 2, 5)])
def test_avg_pool_backward_naive_matches_numerical_gradient(size, stride, H):
    x = rng(55).standard_normal((2, 2, H, H))
    param = {"pool_height": size, "pool_width": size, "stride": stride}
    out, cache = L.avg_pool_forward_naive(x, param)
    dout = rng(56).standard_normal(out.shape)
    dx = L.avg_pool_backward_naive(dout, cache)
    num = eval_numerical_gradient_array(lambda v: L.avg_pool_forward_naive(v, param)[0], x, dout)
    assert rel_error(num, dx) < GRAD_TOL


def test_pools_reject_windows_that_do_not_tile():
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    with pytest.raises(ValueError, match=r"max_pool_forward_naive: stride 2 doesn't fit: \(H - F \+ 2P\)"):
        L.max_pool_forward_naive(np.zeros((1, 1, 5, 4)), param)
    with pytest.raises(ValueError, match=r"avg_pool_forward_naive: x must have 4 dimensions"):
        L.avg_pool_forward_naive(np.zeros((1, 4, 4)), param)
    with pytest.raises(ValueError, match=r"max_pool_forward_naive: pool_param needs .*missing \['stride'\]"):
        L.max_pool_forward_naive(np.zeros((1, 1, 4, 4)), {"pool_height": 2, "pool_width": 2})


# --------------------------------------------------------------------------------------------
# Transposed convolution
# --------------------------------------------------------------------------------------------


def conv_transpose_reference(x, w, b, stride, pad):
    """Upsample by inserting stride-1 zeros, convolve fully with each kernel, crop pad."""
    N, C, H, W = x.shape
    F, HH, WW = w.shape[1:]
    up = np.zeros((N, C, stride * (H - 1) + 1, stride * (W - 1) + 1))
    up[:, :, ::stride, ::stride] = x
    full = np.array([[sum(scipy.signal.convolve(up[n, c], w[c, f], mode="full") for c in range(C))
                      for f in range(F)] for n in range(N)])
    Ho, Wo = full.shape[2] - 2 * pad, full.shape[3] - 2 * pad
    return full[:, :, pad:pad + Ho, pad:pad + Wo] + b[None, :, None, None]


@pytest.mark.parametrize("stride,pad,k", [(1, 0, 3), (2, 1, 4), (2, 0, 3), (3, 1, 3)])
def test_conv_transpose_forward_naive_matches_zero_insertion_convolution(stride, pad, k):
    x = rng(57).standard_normal((2, 3, 3, 4))
    w = rng(58).standard_normal((3, 2, k, k))
    b = rng(59).standard_normal(2)
    out, _ = L.conv_transpose_forward_naive(x, w, b, {"stride": stride, "pad": pad})
    expected = conv_transpose_reference(x, w, b, stride, pad)
    assert out.shape == (2, 2, stride * 2 + k - 2 * pad, stride * 3 + k - 2 * pad)
    assert rel_error(out, expected) < 1e-10


def test_conv_transpose_naive_is_adjoint_of_conv_naive():
    x = rng(60).standard_normal((2, 3, 3, 3))           # convT input: C_in = 3
    w = rng(61).standard_normal((3, 2, 4, 4))           # (C_in, F_out, HH, WW)
    param = {"stride": 2, "pad": 1}
    up, _ = L.conv_transpose_forward_naive(x, w, np.zeros(2), param)
    z = rng(62).standard_normal(up.shape)
    down, _ = L.conv_forward_naive(z, w, np.zeros(3), param)  # w read as (F=3, C=2, 4, 4)
    assert down.shape == x.shape
    assert abs(np.sum(up * z) - np.sum(x * down)) < 1e-10 * np.sum(np.abs(up * z))


def test_conv_transpose_backward_naive_matches_numerical_gradient():
    x = rng(63).standard_normal((2, 3, 3, 3))
    w = rng(64).standard_normal((3, 2, 3, 3))
    b = rng(65).standard_normal(2)
    param = {"stride": 2, "pad": 1}
    out, cache = L.conv_transpose_forward_naive(x, w, b, param)
    dout = rng(66).standard_normal(out.shape)
    grads = L.conv_transpose_backward_naive(dout, cache)
    check_grads(lambda x, w, b: L.conv_transpose_forward_naive(x, w, b, param)[0],
                dict(x=x, w=w, b=b), dout, grads, ["x", "w", "b"])


def test_conv_transpose_rejects_weights_in_conv_layout():
    with pytest.raises(ValueError, match=r"conv_transpose_forward_naive: .*w.shape\[0\] = 4 must equal x.shape\[1\] = 3"):
        L.conv_transpose_forward_naive(np.zeros((1, 3, 4, 4)), np.zeros((4, 3, 3, 3)), np.zeros(3),
                                       {"stride": 2, "pad": 1})
    with pytest.raises(ValueError, match="conv_transpose_forward_naive: output size"):
        L.conv_transpose_forward_naive(np.zeros((1, 3, 1, 1)), np.zeros((3, 2, 3, 3)), np.zeros(2),
                                       {"stride": 1, "pad": 2})


# --------------------------------------------------------------------------------------------
# The same layers on a GPU through cupy (skipped without cupy and a device)
# --------------------------------------------------------------------------------------------


# (the `cupy` fixture is in conftest.py: it skips only without cupy or without a GPU)


GPU_TOL = 1e-10  # float64 on both sides; GPU reductions sum in another order


@pytest.mark.gpu
def test_affine_relu_softmax_on_cupy_match_numpy(cupy):
    x, w, b = rng(70).standard_normal((4, 2, 3)), rng(71).standard_normal((6, 5)), rng(72).standard_normal(5)
    y = np.array([0, 4, 2, 1])
    a, fc = L.affine_forward(x, w, b)
    h, rc = L.relu_forward(a)
    loss, dh = L.softmax_loss(h, y)
    grads = L.affine_backward(L.relu_backward(dh, rc), fc)
    ga, gfc = L.affine_forward(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b))
    gh, grc = L.relu_forward(ga)
    gloss, gdh = L.softmax_loss(gh, cupy.asarray(y))
    ggrads = L.affine_backward(L.relu_backward(gdh, grc), gfc)
    assert isinstance(ga, cupy.ndarray)
    assert abs(float(gloss) - float(loss)) < GPU_TOL
    for host, dev in zip((a, h, *grads), (ga, gh, *ggrads), strict=True):
        assert rel_error(host, dev.get()) < GPU_TOL


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["train", "test"])
def test_batchnorm_on_cupy_matches_numpy(cupy, mode):
    x, dout = rng(73).standard_normal((8, 3)), rng(74).standard_normal((8, 3))
    gamma, beta = rng(75).standard_normal(3), rng(76).standard_normal(3)
    cpu_param = {"mode": mode, "running_mean": np.full(3, 0.5), "running_var": np.full(3, 2.0)}
    gpu_param = {"mode": mode, "running_mean": cupy.full(3, 0.5), "running_var": cupy.full(3, 2.0)}
    out, cache = L.batchnorm_forward(x, gamma, beta, cpu_param)
    gout, gcache = L.batchnorm_forward(cupy.asarray(x), cupy.asarray(gamma), cupy.asarray(beta), gpu_param)
    assert rel_error(out, gout.get()) < GPU_TOL
    assert rel_error(cpu_param["running_mean"], gpu_param["running_mean"].get()) < GPU_TOL
    for host, dev in zip(L.batchnorm_backward(dout, cache),
                         L.batchnorm_backward(cupy.asarray(dout), gcache), strict=True):
        assert rel_error(host, dev.get()) < GPU_TOL


@pytest.mark.gpu
def test_dropout_on_cupy_draws_its_mask_on_the_device(cupy):
    # cupy's generator is not numpy's, so the masks differ; check the rules instead
    x = cupy.ones((200, 200))
    param = {"mode": "train", "p": 0.4, "seed": 5}
    out, cache = L.dropout_forward(x, param)
    again, _ = L.dropout_forward(x, param)
    assert isinstance(out, cupy.ndarray)
    assert bool((out == again).all())  # same seed, same mask
    kept = out != 0
    assert abs(float(kept.mean()) - 0.4) < 0.02  # 8 sigma for 40000 draws
    assert bool(cupy.allclose(out[kept], 1 / 0.4))
    dout = cupy.asarray(rng(77).standard_normal((200, 200)))
    assert bool((L.dropout_backward(dout, cache) == dout * out).all())  # x = 1, so out = mask

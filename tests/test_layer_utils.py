"""Tests of the sandwich layers and residual blocks in course_utils.layer_utils.

Forward passes are compared with the same stack written out here from the naive layers and
numpy formulas; backward passes with centred-difference gradients in float64 (tolerance
1e-7: such gradients are good to ~1e-9 on smooth functions). Each test first checks that no
ReLU input lies within 1e-4 of 0, where the centred difference (h = 1e-5) would straddle the
kink; the seeds were chosen so that holds, rather than loosening the tolerance.
"""
import numpy as np
import pytest

from course_utils import layer_utils as U
from course_utils import layers as L
from course_utils.gradient_check import eval_numerical_gradient_array, rel_error

GRAD_TOL = 1e-7


def rng(seed):
    return np.random.default_rng(seed)


def assert_away_from_kink(pre_activation, margin=1e-4):
    assert np.min(np.abs(pre_activation)) > margin, "a ReLU input sits on the kink: change the seed"


def check_grads(forward, inputs, dout, grads, zero_by_math=()):
    """grads: dict name -> analytic gradient; forward(**inputs) -> output array.

    Names in zero_by_math are biases feeding a train-mode batchnorm, which subtracts the batch
    mean and so removes any constant shift: their true gradient is exactly 0. A relative error
    between two roundoff-sized numbers (~1e-15 analytic, ~1e-10 numerical) means nothing, so
    for those we check that both are zero to within the numerical gradient's noise instead.
    """
    # one analytic gradient per input: a backward that drops one must not go unchecked
    assert set(grads) == set(inputs), f"gradients for {sorted(grads)}, inputs {sorted(inputs)}"
    for name, grad in grads.items():
        def f(v, name=name):
            return forward(**{**inputs, name: v})

        num = eval_numerical_gradient_array(f, inputs[name].copy(), dout)
        assert grad.shape == inputs[name].shape, name
        assert np.max(np.abs(num)) > 0 or name in zero_by_math, f"{name}: no gradient at all"
        if name in zero_by_math:
            # roundoff in f, ~1e-15, divided by 2h = 2e-5 gives noise of ~1e-10
            assert np.max(np.abs(num)) < 1e-8 and np.max(np.abs(grad)) < 1e-12, name
        else:
            assert rel_error(num, grad) < GRAD_TOL, f"{name}: rel error {rel_error(num, grad)}"


def bn_formula(a, gamma, beta, axes, eps=1e-5):
    """Batchnorm in train mode written out: statistics over `axes`, per remaining feature."""
    mean = a.mean(axis=axes, keepdims=True)
    var = a.var(axis=axes, keepdims=True)
    shape = [1] * a.ndim
    shape[1] = -1
    return gamma.reshape(shape) * (a - mean) / np.sqrt(var + eps) + beta.reshape(shape)


def pool_formula(s, size, stride):
    N, C, H, W = s.shape
    Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
    out = np.empty((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = s[:, :, i * stride:i * stride + size, j * stride:j * stride + size].max(axis=(2, 3))
    return out


# --------------------------------------------------------------------------------------------
# Fully connected sandwiches
# --------------------------------------------------------------------------------------------


def test_affine_relu_forward_and_backward():
    x, w, b = rng(0).standard_normal((3, 2, 2)), rng(1).standard_normal((4, 5)), rng(2).standard_normal(5)
    pre = x.reshape(3, 4) @ w + b
    assert_away_from_kink(pre)
    out, cache = U.affine_relu_forward(x, w, b)
    assert rel_error(out, np.maximum(pre, 0)) < 1e-12
    dout = rng(3).standard_normal(out.shape)
    dx, dw, db = U.affine_relu_backward(dout, cache)
    check_grads(lambda x, w, b: U.affine_relu_forward(x, w, b)[0], dict(x=x, w=w, b=b), dout,
                dict(x=dx, w=dw, b=db))


@pytest.mark.parametrize("norm", ["bn", "ln"])
def test_affine_norm_relu_forward_and_backward(norm):
    forward, backward, axis = {"bn": (U.affine_bn_relu_forward, U.affine_bn_relu_backward, 0),
                               "ln": (U.affine_ln_relu_forward, U.affine_ln_relu_backward, 1)}[norm]
    x, w, b = rng(4).standard_normal((6, 4)), rng(5).standard_normal((4, 5)), rng(6).standard_normal(5)
    gamma, beta = rng(7).standard_normal(5), rng(8).standard_normal(5)
    a = x @ w + b
    mean, var = a.mean(axis=axis, keepdims=True), a.var(axis=axis, keepdims=True)
    pre = gamma * (a - mean) / np.sqrt(var + 1e-5) + beta
    assert_away_from_kink(pre)

    def run(x, w, b, gamma, beta):
        return forward(x, w, b, gamma, beta, {"mode": "train"})

    out, cache = run(x, w, b, gamma, beta)
    assert rel_error(out, np.maximum(pre, 0)) < 1e-12
    dout = rng(9).standard_normal(out.shape)
    dx, dw, db, dgamma, dbeta = backward(dout, cache)
    check_grads(lambda **kw: run(**kw)[0], dict(x=x, w=w, b=b, gamma=gamma, beta=beta), dout,
                dict(x=dx, w=dw, b=db, gamma=dgamma, beta=dbeta),
                zero_by_math=("b",) if norm == "bn" else ())


# --------------------------------------------------------------------------------------------
# Convolutional sandwiches
# --------------------------------------------------------------------------------------------

CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def conv_inputs(seed):
    x = rng(seed).standard_normal((2, 3, 4, 4))
    w = rng(seed + 1).standard_normal((3, 3, 3, 3))
    b = rng(seed + 2).standard_normal(3)
    gamma, beta = rng(seed + 3).standard_normal(3), rng(seed + 4).standard_normal(3)
    return x, w, b, gamma, beta


def test_conv_relu_and_conv_relu_pool_forward_and_backward():
    x, w, b, _, _ = conv_inputs(10)
    a = L.conv_forward_naive(x, w, b, CONV)[0]
    assert_away_from_kink(a)
    out, cache = U.conv_relu_forward(x, w, b, CONV)
    assert rel_error(out, np.maximum(a, 0)) < 1e-12
    dout = rng(20).standard_normal(out.shape)
    dx, dw, db = U.conv_relu_backward(dout, cache)
    check_grads(lambda x, w, b: U.conv_relu_forward(x, w, b, CONV)[0], dict(x=x, w=w, b=b), dout,
                dict(x=dx, w=dw, b=db))

    out, cache = U.conv_relu_pool_forward(x, w, b, CONV, POOL)
    assert rel_error(out, pool_formula(np.maximum(a, 0), 2, 2)) < 1e-12
    dout = rng(21).standard_normal(out.shape)
    dx, dw, db = U.conv_relu_pool_backward(dout, cache)
    check_grads(lambda x, w, b: U.conv_relu_pool_forward(x, w, b, CONV, POOL)[0],
                dict(x=x, w=w, b=b), dout, dict(x=dx, w=dw, b=db))


def test_conv_bn_relu_and_conv_bn_relu_pool_forward_and_backward():
    x, w, b, gamma, beta = conv_inputs(30)
    pre = bn_formula(L.conv_forward_naive(x, w, b, CONV)[0], gamma, beta, axes=(0, 2, 3))
    assert_away_from_kink(pre)
    inputs = dict(x=x, w=w, b=b, gamma=gamma, beta=beta)

    def run(x, w, b, gamma, beta):
        return U.conv_bn_relu_forward(x, w, b, gamma, beta, CONV, {"mode": "train"})

    out, cache = run(**inputs)
    assert rel_error(out, np.maximum(pre, 0)) < 1e-12
    dout = rng(40).standard_normal(out.shape)
    dx, dw, db, dgamma, dbeta = U.conv_bn_relu_backward(dout, cache)
    check_grads(lambda **kw: run(**kw)[0], inputs, dout,
                dict(x=dx, w=dw, b=db, gamma=dgamma, beta=dbeta), zero_by_math=("b",))

    def run_pool(x, w, b, gamma, beta):
        return U.conv_bn_relu_pool_forward(x, w, b, gamma, beta, CONV, {"mode": "train"}, POOL)

    out, cache = run_pool(**inputs)
    assert rel_error(out, pool_formula(np.maximum(pre, 0), 2, 2)) < 1e-12
    dout = rng(41).standard_normal(out.shape)
    dx, dw, db, dgamma, dbeta = U.conv_bn_relu_pool_backward(dout, cache)
    check_grads(lambda **kw: run_pool(**kw)[0], inputs, dout,
                dict(x=dx, w=dw, b=db, gamma=dgamma, beta=dbeta), zero_by_math=("b",))


def test_sandwiches_report_the_failing_layer():
    with pytest.raises(ValueError, match="conv_forward_fast: stride 2 doesn't fit"):
        U.conv_relu_forward(np.zeros((1, 3, 4, 4)), np.zeros((2, 3, 3, 3)), np.zeros(2), {"stride": 2, "pad": 0})
    with pytest.raises(ValueError, match=r"affine_forward: .*w.shape\[0\] must equal D = 12"):
        U.affine_bn_relu_forward(np.zeros((2, 12)), np.zeros((10, 3)), np.zeros(3), np.ones(3),
                                 np.zeros(3), {"mode": "train"})


# --------------------------------------------------------------------------------------------
# Residual blocks
# --------------------------------------------------------------------------------------------


def residual_inputs(seed, C=2):
    """Positive gammas and small betas keep about half of every ReLU's inputs positive, so
    no branch is switched off entirely (which would make several gradients exactly 0)."""
    r = rng(seed)
    p = {
        "w1": r.standard_normal((C, C, 3, 3)), "b1": r.standard_normal(C),
        "gamma1": r.uniform(0.5, 1.5, C), "beta1": 0.1 * r.standard_normal(C),
        "w2": r.standard_normal((C, C, 3, 3)), "b2": r.standard_normal(C),
        "gamma2": r.uniform(0.5, 1.5, C), "beta2": 0.1 * r.standard_normal(C),
    }
    return r.standard_normal((2, C, 4, 4)), p


def conv(x, w, b):
    return L.conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})[0]


def test_residual_basic_block_forward_and_backward():
    x, p = residual_inputs(50)
    h_pre = bn_formula(conv(x, p["w1"], p["b1"]), p["gamma1"], p["beta1"], axes=(0, 2, 3))
    f = bn_formula(conv(np.maximum(h_pre, 0), p["w2"], p["b2"]), p["gamma2"], p["beta2"], axes=(0, 2, 3))
    assert_away_from_kink(h_pre)
    assert_away_from_kink(x + f)

    def run(x, **p):
        return U.residual_basic_forward(x, p, ({"mode": "train"}, {"mode": "train"}))

    out, cache = run(x, **p)
    assert rel_error(out, np.maximum(x + f, 0)) < 1e-12
    dout = rng(51).standard_normal(out.shape)
    dx, grads = U.residual_basic_backward(dout, cache)
    assert set(grads) == set(U.RESIDUAL_KEYS)
    check_grads(lambda **kw: run(**kw)[0], dict(x=x, **p), dout, dict(x=dx, **grads),
                zero_by_math=("b1", "b2"))


def test_preact_residual_block_forward_and_backward():
    x, p = residual_inputs(60)
    r1_pre = bn_formula(x, p["gamma1"], p["beta1"], axes=(0, 2, 3))
    r2_pre = bn_formula(conv(np.maximum(r1_pre, 0), p["w1"], p["b1"]), p["gamma2"], p["beta2"],
                        axes=(0, 2, 3))
    assert_away_from_kink(r1_pre)
    assert_away_from_kink(r2_pre)
    expected = x + conv(np.maximum(r2_pre, 0), p["w2"], p["b2"])

    def run(x, **p):
        return U.preact_residual_forward(x, p, ({"mode": "train"}, {"mode": "train"}))

    out, cache = run(x, **p)
    assert rel_error(out, expected) < 1e-12
    dout = rng(61).standard_normal(out.shape)
    dx, grads = U.preact_residual_backward(dout, cache)
    assert set(grads) == set(U.RESIDUAL_KEYS)
    check_grads(lambda **kw: run(**kw)[0], dict(x=x, **p), dout, dict(x=dx, **grads),
                zero_by_math=("b1",))  # b2 feeds no batchnorm here: checked normally


def test_residual_blocks_reject_convs_that_change_the_shape():
    x, p = residual_inputs(70)
    bad = {**p, "w2": np.zeros((3, 2, 3, 3))}
    with pytest.raises(ValueError, match=r"residual_basic_forward: w2 has shape \(3, 2, 3, 3\).*must be \(C, C, k, k\) with k odd, here \(2, 2, k, k\)"):
        U.residual_basic_forward(x, bad, ({"mode": "train"}, {"mode": "train"}))
    even = {**p, "w1": np.zeros((2, 2, 2, 2))}
    with pytest.raises(ValueError, match="preact_residual_forward: w1 has shape"):
        U.preact_residual_forward(x, even, ({"mode": "train"}, {"mode": "train"}))

"""Sandwich layers: common stacks of layers as one forward/backward pair.

Each sandwich's forward pass calls the layers in order and keeps their caches in a tuple;
its backward pass calls their backward functions in reverse order. Nothing new is computed
here, so each pair is correct as soon as its parts are. Convolutions and pooling use the
fast versions from `course_utils.fast_layers`.

Gradients come back in the order the forward pass took its arrays, e.g.
conv_bn_relu_backward -> (dx, dw, db, dgamma, dbeta).
"""
from __future__ import annotations

from .fast_layers import (
    conv_backward_fast,
    conv_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from .layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)

# ---------------------------------------------------------------------------------------------
# Fully connected
# ---------------------------------------------------------------------------------------------


# student-writes: assignment2/fully_connected_nets
def affine_relu_forward(x, w, b):
    """affine -> ReLU. x (N, d1..dk), w (D, M), b (M,) -> out (N, M)."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


# student-writes: assignment2/fully_connected_nets
def affine_relu_backward(dout, cache):
    """Returns dx, dw, db."""
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """affine -> batchnorm -> ReLU. gamma, beta (M,); bn_param as in batchnorm_forward."""
    a, fc_cache = affine_forward(x, w, b)
    an, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_bn_relu_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    fc_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = batchnorm_backward_alt(dan, bn_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta


def affine_ln_relu_forward(x, w, b, gamma, beta, ln_param):
    """affine -> layernorm -> ReLU. gamma, beta (M,); ln_param as in layernorm_forward."""
    a, fc_cache = affine_forward(x, w, b)
    an, ln_cache = layernorm_forward(a, gamma, beta, ln_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, ln_cache, relu_cache)


def affine_ln_relu_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    fc_cache, ln_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = layernorm_backward(dan, ln_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta


# ---------------------------------------------------------------------------------------------
# Convolutional
# ---------------------------------------------------------------------------------------------


def conv_relu_forward(x, w, b, conv_param):
    """conv -> ReLU. x (N, C, H, W), w (F, C, HH, WW), b (F,) -> out (N, F, Hout, Wout)."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache):
    """Returns dx, dw, db."""
    conv_cache, relu_cache = cache
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache)


# student-writes: assignment2/convolutional_networks
def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """conv -> ReLU -> max pool. pool_param as in max_pool_forward_fast."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


# student-writes: assignment2/convolutional_networks
def conv_relu_pool_backward(dout, cache):
    """Returns dx, dw, db."""
    conv_cache, relu_cache, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    return conv_backward_fast(relu_backward(ds, relu_cache), conv_cache)


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """conv -> spatial batchnorm -> ReLU. gamma, beta (F,)."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    conv_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(dan, bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache)
    return dx, dw, db, dgamma, dbeta


def conv_bn_relu_pool_forward(x, w, b, gamma, beta, conv_param, bn_param, pool_param):
    """conv -> spatial batchnorm -> ReLU -> max pool."""
    s, inner_cache = conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (inner_cache, pool_cache)


def conv_bn_relu_pool_backward(dout, cache):
    """Returns dx, dw, db, dgamma, dbeta."""
    inner_cache, pool_cache = cache
    return conv_bn_relu_backward(max_pool_backward_fast(dout, pool_cache), inner_cache)


# ---------------------------------------------------------------------------------------------
# Residual blocks (He et al. 2016): the block learns a correction F(x) added to x
# ---------------------------------------------------------------------------------------------
#
# Both blocks take the parameters in a dict p with keys w1, b1, gamma1, beta1, w2, b2,
# gamma2, beta2 and return their gradients in a dict with the same keys (a block has too many
# arrays for a readable positional tuple). Both convolutions keep the shape: C -> C channels,
# stride 1, odd k x k filters with pad (k - 1) / 2, so x and F(x) can be added.
# bn_params is a pair (bn_param1, bn_param2), one per batchnorm, as in batchnorm_forward.

RESIDUAL_KEYS = ("w1", "b1", "gamma1", "beta1", "w2", "b2", "gamma2", "beta2")


def _same_shape_conv_param(layer, x, w, label):
    """conv_param keeping (C, H, W) of x: stride 1, pad (k - 1) / 2; or a ValueError."""
    C = x.shape[1] if x.ndim == 4 else None
    if x.ndim != 4 or w.ndim != 4 or w.shape[:2] != (C, C) or w.shape[2] != w.shape[3] \
            or w.shape[2] % 2 == 0:
        raise ValueError(
            f"{layer}: {label} has shape {tuple(w.shape)} and x has shape {tuple(x.shape)}; a "
            f"residual branch must keep the shape of x (N, C, H, W), so {label} must be "
            f"(C, C, k, k) with k odd, here ({C}, {C}, k, k)."
        )
    return {"stride": 1, "pad": (w.shape[2] - 1) // 2}


def residual_basic_forward(x, p, bn_params):
    """The basic residual block of ResNet:
        out = relu(x + bn2(conv2(relu(bn1(conv1(x))))))
    x: (N, C, H, W); p: dict of w1, w2 (C, C, k, k), b1, b2, gamma1, beta1, gamma2, beta2 (C,).
    Returns out (N, C, H, W) and cache = (branch caches, relu cache).
    """
    layer = "residual_basic_forward"
    cp1 = _same_shape_conv_param(layer, x, p["w1"], "w1")
    cp2 = _same_shape_conv_param(layer, x, p["w2"], "w2")
    bn1, bn2 = bn_params
    h, cache1 = conv_bn_relu_forward(x, p["w1"], p["b1"], p["gamma1"], p["beta1"], cp1, bn1)
    a, conv2_cache = conv_forward_fast(h, p["w2"], p["b2"], cp2)
    f, bn2_cache = spatial_batchnorm_forward(a, p["gamma2"], p["beta2"], bn2)
    out, relu_cache = relu_forward(x + f)
    return out, (cache1, conv2_cache, bn2_cache, relu_cache)


def residual_basic_backward(dout, cache):
    """Backward of residual_basic_forward. Returns dx and a dict of gradients keyed like p.
    The skip connection hands the gradient at x + F(x) to x unchanged, which is why deep
    stacks of these blocks still train."""
    cache1, conv2_cache, bn2_cache, relu_cache = cache
    dsum = relu_backward(dout, relu_cache)      # gradient at x + F(x), for both terms
    g = {}
    da, g["gamma2"], g["beta2"] = spatial_batchnorm_backward(dsum, bn2_cache)
    dh, g["w2"], g["b2"] = conv_backward_fast(da, conv2_cache)
    dx_branch, g["w1"], g["b1"], g["gamma1"], g["beta1"] = conv_bn_relu_backward(dh, cache1)
    return dsum + dx_branch, g


def preact_residual_forward(x, p, bn_params):
    """The pre-activation residual block (He et al., "Identity mappings", 2016):
        out = x + conv2(relu(bn2(conv1(relu(bn1(x))))))
    No nonlinearity after the addition, so x reaches the output untouched.
    Same x and p as residual_basic_forward; gamma1, beta1 normalise x's C channels.
    """
    layer = "preact_residual_forward"
    cp1 = _same_shape_conv_param(layer, x, p["w1"], "w1")
    cp2 = _same_shape_conv_param(layer, x, p["w2"], "w2")
    bn1, bn2 = bn_params
    xn, bn1_cache = spatial_batchnorm_forward(x, p["gamma1"], p["beta1"], bn1)
    r1, relu1_cache = relu_forward(xn)
    a, conv1_cache = conv_forward_fast(r1, p["w1"], p["b1"], cp1)
    an, bn2_cache = spatial_batchnorm_forward(a, p["gamma2"], p["beta2"], bn2)
    r2, relu2_cache = relu_forward(an)
    f, conv2_cache = conv_forward_fast(r2, p["w2"], p["b2"], cp2)
    caches = (bn1_cache, relu1_cache, conv1_cache, bn2_cache, relu2_cache, conv2_cache)
    return x + f, caches


def preact_residual_backward(dout, cache):
    """Backward of preact_residual_forward. Returns dx and a dict of gradients keyed like p."""
    bn1_cache, relu1_cache, conv1_cache, bn2_cache, relu2_cache, conv2_cache = cache
    g = {}
    dr2, g["w2"], g["b2"] = conv_backward_fast(dout, conv2_cache)
    da, g["gamma2"], g["beta2"] = spatial_batchnorm_backward(relu_backward(dr2, relu2_cache),
                                                             bn2_cache)
    dr1, g["w1"], g["b1"] = conv_backward_fast(da, conv1_cache)
    dx_branch, g["gamma1"], g["beta1"] = spatial_batchnorm_backward(
        relu_backward(dr1, relu1_cache), bn1_cache)
    return dout + dx_branch, g

"""Transformer pieces: layer norm on the last axis, the feed-forward block, a whole decoder
layer and a ViT patch embedding, forward against independent compositions and backward
against numerical gradients."""
import math

import numpy as np
import pytest

from course_utils.attention import causal_mask, multihead_attention_forward
from course_utils.gradient_check import eval_numerical_gradient_array, rel_error
from course_utils.layers import affine_forward, layernorm_forward, relu_forward
from course_utils.transformer import (ATTENTION_KEYS, decoder_layer_backward,
                                      decoder_layer_forward, feedforward_backward,
                                      feedforward_forward, layernorm_last_backward,
                                      layernorm_last_forward, patch_embed_backward,
                                      patch_embed_forward, patchify, unpatchify)

rng = np.random.default_rng(2017)
GRAD_TOL = 1e-7  # central differences: ~1e-11 absolute, ~1e-7 relative on small entries


def _num(f, x, dout):
    return eval_numerical_gradient_array(lambda _: f(), x, dout)


def test_layernorm_last_is_the_course_layernorm_on_every_position():
    x, gamma, beta = rng.standard_normal((2, 3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    out, cache = layernorm_last_forward(x, gamma, beta)
    want, _ = layernorm_forward(x.reshape(6, 5), gamma, beta, {"eps": 1e-5})
    assert rel_error(out, want.reshape(2, 3, 5)) < 1e-12
    dout = rng.standard_normal(out.shape)
    dx, dgamma, dbeta = layernorm_last_backward(dout, cache)
    f = lambda: layernorm_last_forward(x, gamma, beta)[0]  # noqa: E731
    assert rel_error(dx, _num(f, x, dout)) < GRAD_TOL
    assert rel_error(dgamma, _num(f, gamma, dout)) < GRAD_TOL
    assert rel_error(dbeta, _num(f, beta, dout)) < GRAD_TOL


def test_feedforward_is_affine_relu_affine_and_its_gradients_check():
    x = rng.standard_normal((2, 3, 4))
    W1, b1, W2, b2 = (rng.standard_normal((4, 6)), rng.standard_normal(6),
                      rng.standard_normal((6, 4)), rng.standard_normal(4))
    out, cache = feedforward_forward(x, W1, b1, W2, b2)
    h = relu_forward(affine_forward(x.reshape(6, 4), W1, b1)[0])[0]
    assert rel_error(out, affine_forward(h, W2, b2)[0].reshape(2, 3, 4)) < 1e-12
    dout = rng.standard_normal(out.shape)
    grads = feedforward_backward(dout, cache)
    f = lambda: feedforward_forward(x, W1, b1, W2, b2)[0]  # noqa: E731
    for got, arr in zip(grads, (x, W1, b1, W2, b2), strict=True):
        assert rel_error(got, _num(f, arr, dout)) < GRAD_TOL


def _decoder_params(D, F):
    p = {}
    for prefix in ("self_", "cross_"):
        for k in ATTENTION_KEYS:
            shape = (D, D) if k.startswith("W") else (D,)
            p[prefix + k] = rng.standard_normal(shape) / math.sqrt(D)
    for i in (1, 2, 3):
        p[f"ln{i}_gamma"] = 1 + 0.1 * rng.standard_normal(D)
        p[f"ln{i}_beta"] = 0.1 * rng.standard_normal(D)
    p["ff_W1"], p["ff_b1"] = rng.standard_normal((D, F)) / math.sqrt(D), 0.1 * rng.standard_normal(F)
    p["ff_W2"], p["ff_b2"] = rng.standard_normal((F, D)) / math.sqrt(F), 0.1 * rng.standard_normal(D)
    return p


def test_decoder_layer_is_causal_and_its_first_step_is_the_composition():
    N, T, S, D, h = 2, 4, 3, 4, 2
    x, memory, p = rng.standard_normal((N, T, D)), rng.standard_normal((N, S, D)), _decoder_params(D, 8)
    out, _ = decoder_layer_forward(x, memory, p, h, causal_mask(T))
    changed = x.copy()
    changed[:, 2:] += 1.0
    out2, _ = decoder_layer_forward(changed, memory, p, h, causal_mask(T))
    assert np.array_equal(out[:, :2], out2[:, :2]) and not np.allclose(out[:, 2:], out2[:, 2:])
    # the whole layer composed by hand from the course's pieces
    def ln(z, i):
        zhat = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)
        return p[f"ln{i}_gamma"] * zhat + p[f"ln{i}_beta"]

    def attend(prefix, q_in, kv_in, mask=None):
        return multihead_attention_forward(q_in, kv_in, {k: p[prefix + k] for k in ATTENTION_KEYS},
                                           h, mask)[0]

    x1 = ln(x + attend("self_", x, x, causal_mask(T)), 1)
    x2 = ln(x1 + attend("cross_", x1, memory), 2)
    hidden = relu_forward(affine_forward(x2.reshape(-1, D), p["ff_W1"], p["ff_b1"])[0])[0]
    ff = affine_forward(hidden, p["ff_W2"], p["ff_b2"])[0].reshape(x2.shape)
    assert rel_error(out, ln(x2 + ff, 3)) < 1e-12


def test_decoder_layer_backward_matches_numerical_gradients():
    N, T, S, D, h = 2, 3, 2, 4, 2
    x, memory, p = rng.standard_normal((N, T, D)), rng.standard_normal((N, S, D)), _decoder_params(D, 6)
    mask = causal_mask(T)
    out, cache = decoder_layer_forward(x, memory, p, h, mask)
    dout = rng.standard_normal(out.shape)
    dx, dmemory, grads = decoder_layer_backward(dout, cache)
    f = lambda: decoder_layer_forward(x, memory, p, h, mask)[0]  # noqa: E731
    assert rel_error(dx, _num(f, x, dout)) < GRAD_TOL
    assert rel_error(dmemory, _num(f, memory, dout)) < GRAD_TOL
    assert sorted(grads) == sorted(p)
    for name in p:
        num = _num(f, p[name], dout)
        if name.endswith("_bk"):  # a key bias shifts every score of a row: zero gradient
            assert np.abs(grads[name]).max() < 1e-12 and np.abs(num).max() < 1e-9
        else:
            assert rel_error(grads[name], num) < GRAD_TOL, name


def test_patchify_cuts_patches_row_by_row_and_unpatchify_undoes_it():
    images = np.arange(2 * 3 * 4 * 6, dtype=float).reshape(2, 3, 4, 6)
    patches = patchify(images, 2)
    assert patches.shape == (2, 6, 12)
    # patch 4 is the second row of patches (rows 2-3), second column (columns 2-3)
    assert patches[1, 4].tolist() == images[1, :, 2:4, 2:4].reshape(-1).tolist()
    assert np.array_equal(unpatchify(patches, images.shape, 2), images)
    with pytest.raises(ValueError, match="multiples of the patch size"):
        patchify(images, 4)


def test_patch_embed_backward_matches_numerical_gradients():
    images = rng.standard_normal((2, 2, 4, 4))
    P, D = 2, 3
    W, b = rng.standard_normal((2 * P * P, D)), rng.standard_normal(D)
    cls, pos = rng.standard_normal(D), rng.standard_normal((5, D))
    out, cache = patch_embed_forward(images, W, b, cls, pos, P)
    assert out.shape == (2, 5, D) and np.allclose(out[:, 0], cls + pos[0])
    dout = rng.standard_normal(out.shape)
    grads = patch_embed_backward(dout, cache)
    f = lambda: patch_embed_forward(images, W, b, cls, pos, P)[0]  # noqa: E731
    for got, arr in zip(grads, (images, W, b, cls, pos), strict=True):
        assert rel_error(got, _num(f, arr, dout)) < GRAD_TOL

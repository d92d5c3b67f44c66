"""Attention layers: forward against formulas written out with Python loops, backward
against numerical gradients, masks that really hide what they block."""
import math

import numpy as np
import pytest

from course_utils.attention import (attention_backward, attention_forward, causal_mask,
                                    multihead_attention_backward, multihead_attention_forward,
                                    positional_encoding)
from course_utils.gradient_check import eval_numerical_gradient_array, rel_error

rng = np.random.default_rng(231)
# Numerical gradients (central differences, h = 1e-5) are off by about 1e-11 in absolute
# terms; on the smallest gradient entries (~1e-4) that is ~1e-7 relative, so 1e-7 is the
# tolerance of the gradient checks. A wrong backward is off by order 1.
GRAD_TOL = 1e-7


def _attention_by_loops(q, k, v, mask=None):
    """One query at a time, softmax in plain Python: an independent reference."""
    *lead, T, d = q.shape
    S, dv = v.shape[-2], v.shape[-1]
    out = np.zeros((*lead, T, dv))
    for idx in np.ndindex(*lead):
        for t in range(T):
            scores = []
            for s in range(S):
                visible = True if mask is None else bool(np.broadcast_to(
                    mask, (*lead, T, S))[idx + (t, s)])
                dot = sum(q[idx + (t, i)] * k[idx + (s, i)] for i in range(d)) / math.sqrt(d)
                scores.append(dot if visible else None)
            seen = [x for x in scores if x is not None]
            if not seen:
                continue
            top = max(seen)
            w = [0.0 if x is None else math.exp(x - top) for x in scores]
            total = sum(w)
            for s in range(S):
                out[idx + (t,)] += w[s] / total * v[idx + (s,)]
    return out


def test_attention_forward_matches_the_formula_written_with_loops():
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), \
        rng.standard_normal((2, 5, 6))
    out, cache = attention_forward(q, k, v)
    assert out.shape == (2, 3, 6)
    assert rel_error(out, _attention_by_loops(q, k, v)) < 1e-12
    assert np.allclose(cache[3].sum(axis=-1), 1.0)  # the weights are probabilities


def test_a_causal_mask_hides_the_future_exactly():
    T = 5
    x = rng.standard_normal((1, T, 4))
    mask = causal_mask(T)
    assert mask.tolist() == [[j <= i for j in range(T)] for i in range(T)]
    out, cache = attention_forward(x, x, x, mask)
    assert rel_error(out, _attention_by_loops(x, x, x, mask)) < 1e-12
    assert np.all(cache[3][0][~mask] == 0.0)
    later = x.copy()
    later[:, 3:] = rng.standard_normal((1, 2, 4))  # change positions 3 and 4 only
    out2, _ = attention_forward(later, later, later, mask)
    assert np.array_equal(out[:, :3], out2[:, :3])  # positions 0..2 cannot tell
    assert not np.allclose(out[:, 3:], out2[:, 3:])


def test_a_query_that_may_see_nothing_gets_zeros_and_no_gradient():
    q, k, v = rng.standard_normal((2, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    mask = np.ones((2, 4), dtype=bool)
    mask[1] = False
    out, cache = attention_forward(q, k, v, mask)
    assert np.all(np.isfinite(out)) and np.all(out[1] == 0.0)
    dq, dk, dv = attention_backward(np.ones_like(out), cache)
    assert np.all(dq[1] == 0.0)


@pytest.mark.parametrize("masked", [False, True])
def test_attention_backward_matches_numerical_gradients(masked):
    q, k, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3)), \
        rng.standard_normal((2, 4, 5))
    mask = causal_mask(4) if masked else None
    out, cache = attention_forward(q, k, v, mask)
    dout = rng.standard_normal(out.shape)
    dq, dk, dv = attention_backward(dout, cache)
    for got, x in ((dq, q), (dk, k), (dv, v)):
        def f(_):
            return attention_forward(q, k, v, mask)[0]
        num = eval_numerical_gradient_array(f, x, dout)
        assert rel_error(got, num) < GRAD_TOL


def _params(D):
    p = {}
    for name in "qkvo":
        p["W" + name] = rng.standard_normal((D, D)) / math.sqrt(D)
        p["b" + name] = rng.standard_normal(D) * 0.1
    return p


def test_multihead_attention_is_per_head_attention_on_column_blocks():
    """An independent composition: project, cut the columns into h blocks, attend in each
    block with the loop formula, put the blocks side by side, project back."""
    N, T, S, D, h = 2, 3, 4, 6, 3
    x_q, x_kv, p = rng.standard_normal((N, T, D)), rng.standard_normal((N, S, D)), _params(D)
    out, _ = multihead_attention_forward(x_q, x_kv, p, h)
    q, k, v = x_q @ p["Wq"] + p["bq"], x_kv @ p["Wk"] + p["bk"], x_kv @ p["Wv"] + p["bv"]
    d = D // h
    blocks = [_attention_by_loops(q[..., i * d:(i + 1) * d], k[..., i * d:(i + 1) * d],
                                  v[..., i * d:(i + 1) * d]) for i in range(h)]
    want = np.concatenate(blocks, axis=-1) @ p["Wo"] + p["bo"]
    assert rel_error(out, want) < 1e-12


def test_multihead_attention_backward_matches_numerical_gradients():
    N, T, S, D, h = 2, 3, 4, 4, 2
    x_q, x_kv, p = rng.standard_normal((N, T, D)), rng.standard_normal((N, S, D)), _params(D)
    mask = np.ones((T, S), dtype=bool)
    mask[0, 2:] = False
    out, cache = multihead_attention_forward(x_q, x_kv, p, h, mask)
    dout = rng.standard_normal(out.shape)
    dx_q, dx_kv, grads = multihead_attention_backward(dout, cache)

    def f(_):
        return multihead_attention_forward(x_q, x_kv, p, h, mask)[0]

    assert rel_error(dx_q, eval_numerical_gradient_array(f, x_q, dout)) < GRAD_TOL
    assert rel_error(dx_kv, eval_numerical_gradient_array(f, x_kv, dout)) < GRAD_TOL
    assert sorted(grads) == sorted(p)
    for name in p:
        num = eval_numerical_gradient_array(f, p[name], dout)
        if name == "bk":
            # A key bias adds q . bk to every score of a query's row, and the softmax does not
            # see a shift: its true gradient is exactly zero (relative error means nothing).
            assert np.abs(grads[name]).max() < 1e-12 and np.abs(num).max() < 1e-9
        else:
            assert rel_error(grads[name], num) < GRAD_TOL, name


def test_self_attention_gradient_is_the_sum_of_both_paths():
    x, p = rng.standard_normal((1, 3, 4)), _params(4)
    out, cache = multihead_attention_forward(x, x, p, 2, causal_mask(3))
    dout = rng.standard_normal(out.shape)
    dx_q, dx_kv, _ = multihead_attention_backward(dout, cache)
    num = eval_numerical_gradient_array(
        lambda _: multihead_attention_forward(x, x, p, 2, causal_mask(3))[0], x, dout)
    assert rel_error(dx_q + dx_kv, num) < GRAD_TOL


def test_positional_encoding_follows_the_sine_cosine_formula():
    T, D = 7, 6
    pe = positional_encoding(T, D)
    for t in range(T):
        for i in range(0, D, 2):
            angle = t / 10000 ** (i / D)
            assert pe[t, i] == pytest.approx(math.sin(angle), abs=1e-12)
            assert pe[t, i + 1] == pytest.approx(math.cos(angle), abs=1e-12)
    with pytest.raises(ValueError, match="even"):
        positional_encoding(3, 5)


def test_bad_shapes_are_refused_with_the_shapes_in_the_message():
    with pytest.raises(ValueError, match=r"q \(2, 3\)"):
        attention_forward(np.zeros((2, 3)), np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        multihead_attention_forward(np.zeros((1, 2, 5)), np.zeros((1, 2, 5)), _params(5), 2)

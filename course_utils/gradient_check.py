"""Numerical gradients: the ground truth every backward pass in the course is checked against.

All functions use centered differences, (f(x + h) - f(x - h)) / 2h, whose error is O(h^2);
with h = 1e-5 in float64 that leaves relative errors near 1e-8 to 1e-10 for smooth functions.
They work on numpy or cupy arrays (the perturbation is done in place on the array you pass).
"""
from __future__ import annotations

from random import Random

from .backend import array_module, to_float


def rel_error(x, y, eps=1e-8):
    """max |x - y| / max(eps, |x| + |y|), elementwise: the course's yardstick for gradients."""
    xp = array_module(x, y)
    x, y = xp.asarray(x), xp.asarray(y)
    return to_float(xp.max(xp.abs(x - y) / xp.maximum(eps, xp.abs(x) + xp.abs(y))))


def eval_numerical_gradient(f, x, verbose=True, h=1e-5):
    """Gradient of the scalar function f at x (an array, perturbed in place and restored)."""
    xp = array_module(x)
    grad = xp.zeros_like(x)
    for ix in _all_indices(x.shape):
        old = x[ix].item()
        x[ix] = old + h
        fxph = to_float(f(x))
        x[ix] = old - h
        fxmh = to_float(f(x))
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Gradient of sum(f(x) * df) at x: the numeric counterpart of a layer's backward(df)."""
    xp = array_module(x, df)
    grad = xp.zeros_like(x)
    for ix in _all_indices(x.shape):
        old = x[ix].item()
        x[ix] = old + h
        pos = f(x).copy()
        x[ix] = old - h
        neg = f(x).copy()
        x[ix] = old
        grad[ix] = to_float(xp.sum((pos - neg) * df)) / (2 * h)
    return grad


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5, seed=0, verbose=True):
    """Compare analytic_grad with centered differences at `num_checks` random entries.

    Returns the list of relative errors (and prints them when verbose), so callers can assert.
    """
    pick = Random(seed)
    errors = []
    for _ in range(num_checks):
        ix = tuple(pick.randrange(n) for n in x.shape)
        old = x[ix].item()
        x[ix] = old + h
        fxph = to_float(f(x))
        x[ix] = old - h
        fxmh = to_float(f(x))
        x[ix] = old
        numeric = (fxph - fxmh) / (2 * h)
        analytic = to_float(analytic_grad[ix])
        err = abs(numeric - analytic) / max(1e-12, abs(numeric) + abs(analytic))
        errors.append(err)
        if verbose:
            print(f"numerical: {numeric:f} analytic: {analytic:f}, relative error: {err:e}")
    return errors


def _all_indices(shape):
    """Every multi-index of an array of this shape, in C order (like np.ndindex)."""
    import itertools

    return itertools.product(*(range(n) for n in shape))

"""Tests of the reference softmax classifier in course_utils.classifiers.softmax.

The loss is checked against a formula written out here with scipy's logsumexp, the two
implementations against each other, and both gradients against centred differences in
float64 (the softmax loss is smooth, so with h = 1e-5 the numerical gradient is exact to
about 1e-9 relative; 1e-7 leaves two orders of margin).
"""
import math
import warnings

import numpy as np
import pytest
import scipy.special

from course_utils.classifiers import (
    LinearClassifier,
    Softmax,
    softmax_loss_naive,
    softmax_loss_vectorized,
)
from course_utils.gradient_check import eval_numerical_gradient, rel_error

GRAD_TOL = 1e-7  # centred differences in float64 agree to ~1e-9 on a smooth loss
BOTH = pytest.mark.parametrize("loss_fn", [softmax_loss_naive, softmax_loss_vectorized],
                               ids=["naive", "vectorized"])


def problem(N=7, D=5, C=4, seed=0, scale=1.0):
    r = np.random.default_rng(seed)
    W = scale * r.standard_normal((D, C))
    X = r.standard_normal((N, D))
    y = r.integers(0, C, N)
    return W, X, y


def loss_by_logsumexp(W, X, y, reg):
    """The loss written a different way: logsumexp of the scores minus the correct score."""
    scores = X @ W
    data = np.mean(scipy.special.logsumexp(scores, axis=1) - scores[np.arange(len(y)), y])
    return data + reg * np.sum(W * W)


@BOTH
@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_loss_matches_the_logsumexp_formula(loss_fn, reg):
    W, X, y = problem(seed=1)
    loss, _ = loss_fn(W, X, y, reg)
    assert math.isclose(float(loss), loss_by_logsumexp(W, X, y, reg), rel_tol=1e-12)


@pytest.mark.parametrize("reg", [0.0, 0.05, 2.0])
def test_naive_and_vectorized_agree_on_loss_and_gradient(reg):
    W, X, y = problem(N=11, D=6, C=5, seed=2)
    loss_n, dW_n = softmax_loss_naive(W, X, y, reg)
    loss_v, dW_v = softmax_loss_vectorized(W, X, y, reg)
    assert math.isclose(float(loss_n), float(loss_v), rel_tol=1e-12)
    assert rel_error(dW_n, dW_v) < 1e-10  # same sums in a different order


@BOTH
@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_gradient_matches_numerical_gradient(loss_fn, reg):
    W, X, y = problem(N=6, D=4, C=3, seed=3)
    _, dW = loss_fn(W, X, y, reg)
    num = eval_numerical_gradient(lambda w: loss_fn(w, X, y, reg)[0], W.copy(), verbose=False)
    assert rel_error(num, dW) < GRAD_TOL


@BOTH
def test_huge_scores_give_finite_loss_and_gradient_without_warnings(loss_fn):
    # Scores in the thousands: exp() of them overflows float64 (max ~ 709) unless shifted.
    W, X, y = problem(N=5, D=4, C=6, seed=4, scale=1000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning would fail the test
        loss, dW = loss_fn(W, X, y, 0.0)
    assert np.isfinite(loss) and np.all(np.isfinite(dW))
    assert math.isclose(float(loss), loss_by_logsumexp(W, X, y, 0.0), rel_tol=1e-9)


def test_huge_scores_float32_stay_finite():
    W, X, y = problem(N=5, D=4, C=6, seed=5, scale=300.0)  # exp overflows float32 past ~88
    W, X = W.astype(np.float32), X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dW = softmax_loss_vectorized(W, X, y, 0.0)
    assert np.isfinite(loss) and np.all(np.isfinite(dW)) and dW.dtype == np.float32


@BOTH
def test_tiny_weights_give_loss_log_num_classes(loss_fn):
    # Every class gets the same probability 1/C, so the loss is -log(1/C) = log(C).
    W, X, y = problem(N=50, D=8, C=10, seed=6, scale=1e-6)
    loss, _ = loss_fn(W, X, y, 0.0)
    assert abs(float(loss) - math.log(10)) < 1e-4


def test_gradient_rows_sum_to_zero_without_regularisation():
    # P - Y sums to zero over classes for every example, so each row of dW does too.
    W, X, y = problem(N=9, D=5, C=4, seed=7)
    _, dW = softmax_loss_vectorized(W, X, y, 0.0)
    assert np.allclose(dW.sum(axis=1), 0.0, atol=1e-12)


@BOTH
@pytest.mark.parametrize("bad, message", [
    (lambda W, X, y: (W[:, 0], X, y), "W must be 2-D"),
    (lambda W, X, y: (W, X[0], y), "X must be 2-D"),
    (lambda W, X, y: (W, X[:, :-1], y), "features per row"),
    (lambda W, X, y: (W, X, y[:-1]), "y must have shape"),
    (lambda W, X, y: (W, X, y.astype(float)), "integer class labels"),
    (lambda W, X, y: (W, X, y + W.shape[1]), "labels must lie in"),
])
def test_wrong_inputs_raise_clear_errors(loss_fn, bad, message):
    W, X, y = problem()
    with pytest.raises(ValueError, match=message):
        loss_fn(*bad(W, X, y), 0.1)


def test_softmax_is_a_linear_classifier_that_learns_a_separable_toy_problem():
    # Three well-separated Gaussian blobs (plus a bias column): near-perfect accuracy.
    r = np.random.default_rng(8)
    centres = np.array([[4.0, 0.0], [-2.0, 3.5], [-2.0, -3.5]])
    y = r.integers(0, 3, 600)
    X = centres[y] + r.standard_normal((600, 2))
    X = np.hstack([X, np.ones((600, 1))])
    clf = Softmax(seed=0)
    assert isinstance(clf, LinearClassifier)
    history = clf.train(X, y, learning_rate=0.5, reg=1e-4, num_iters=200, batch_size=100)
    assert history[-1] < 0.5 * history[0]  # starts at log(3) ~ 1.1
    assert clf.accuracy(X, y) > 0.95
    assert clf.predict(X).shape == (600,)

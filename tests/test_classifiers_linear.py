"""Tests of the linear-classifier base (training loop, prediction) and the reference linear SVM.

The SVM loss is checked against the same loss written another way (a sum over *all* classes,
which counts the correct class's own margin of exactly delta = 1 once per example, minus that),
the two implementations against each other, and both gradients against centred differences.
The hinge is piecewise linear: away from its kinks the numerical gradient of a piecewise
linear function is exact up to rounding: about eps * |loss| / h ~ 1e-10 absolute with h = 1e-5
in float64, so the tests keep every margin at least 1e-3 away from 0 and use a tight tolerance.
"""
import math

import numpy as np
import pytest
import scipy.stats

from course_utils.classifiers import (
    LinearClassifier,
    LinearSVM,
    svm_loss_naive,
    svm_loss_vectorized,
)
from course_utils.gradient_check import eval_numerical_gradient, rel_error

# Away from kinks centred differences are exact up to ~1e-10 absolute rounding; relative to the
# smallest gradient entries (~1e-3 here) that is ~1e-7, and a wrong gradient is off by O(1).
GRAD_TOL = 1e-6
BOTH = pytest.mark.parametrize("loss_fn", [svm_loss_naive, svm_loss_vectorized],
                               ids=["naive", "vectorized"])


def problem(N=7, D=5, C=4, seed=0, scale=1.0):
    r = np.random.default_rng(seed)
    W = scale * r.standard_normal((D, C))
    X = r.standard_normal((N, D))
    y = r.integers(0, C, N)
    return W, X, y


def margins_of(W, X, y):
    scores = X @ W
    return scores - scores[np.arange(len(y)), y][:, None] + 1.0


def loss_over_all_classes(W, X, y, reg):
    """The loss written a different way: hinge over every class, then remove the y_i terms.

    For j = y_i the margin is s_y - s_y + 1 = 1 exactly, so summing over all classes adds 1
    per example; subtract it instead of masking the correct class.
    """
    hinge = np.maximum(0.0, margins_of(W, X, y))
    return np.mean(hinge.sum(axis=1) - 1.0) + reg * np.sum(W * W)


def blobs(n=600, seed=8):
    """Three well-separated Gaussian blobs in 2-D, plus a bias column of ones."""
    r = np.random.default_rng(seed)
    centres = np.array([[4.0, 0.0], [-2.0, 3.5], [-2.0, -3.5]])
    y = r.integers(0, 3, n)
    X = centres[y] + r.standard_normal((n, 2))
    return np.hstack([X, np.ones((n, 1))]), y


# ------------------------------------------------------------------------ the SVM loss
@BOTH
@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_loss_matches_the_all_classes_formula(loss_fn, reg):
    W, X, y = problem(seed=1)
    loss, _ = loss_fn(W, X, y, reg)
    assert math.isclose(float(loss), loss_over_all_classes(W, X, y, reg), rel_tol=1e-12)


@pytest.mark.parametrize("reg", [0.0, 0.05, 2.0])
@pytest.mark.parametrize("shape", [(11, 6, 5), (1, 3, 2), (40, 10, 10)], ids=str)
def test_naive_and_vectorized_agree_on_loss_and_gradient(reg, shape):
    N, D, C = shape
    W, X, y = problem(N=N, D=D, C=C, seed=2)
    loss_n, dW_n = svm_loss_naive(W, X, y, reg)
    loss_v, dW_v = svm_loss_vectorized(W, X, y, reg)
    assert math.isclose(float(loss_n), float(loss_v), rel_tol=1e-12)
    assert rel_error(dW_n, dW_v) < 1e-10  # same sums in a different order


@BOTH
@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_gradient_matches_numerical_gradient(loss_fn, reg):
    W, X, y = problem(N=6, D=4, C=3, seed=3)
    assert np.min(np.abs(margins_of(W, X, y))) > 1e-3  # no kink within reach of h = 1e-5
    _, dW = loss_fn(W, X, y, reg)
    num = eval_numerical_gradient(lambda w: loss_fn(w, X, y, reg)[0], W.copy(), verbose=False)
    assert rel_error(num, dW) < GRAD_TOL


@BOTH
def test_zero_weights_give_loss_num_classes_minus_one(loss_fn):
    # All scores are 0, so every rival class has margin exactly 1: the loss is C - 1.
    _, X, y = problem(N=20, D=6, C=7, seed=4)
    loss, dW = loss_fn(np.zeros((6, 7)), X, y, 0.5)
    assert math.isclose(float(loss), 6.0, rel_tol=1e-12)
    assert dW.shape == (6, 7)


@BOTH
def test_margin_exactly_at_the_kink_adds_nothing(loss_fn):
    # Example 0 (label 0) scores (1, 0): class 1's margin is 0 - 1 + 1 = 0 exactly, on the
    # kink. The convention is the subgradient 0 there, so loss and gradient are both 0.
    W = np.array([[1.0, 0.0], [0.0, 0.0]])
    X = np.array([[1.0, 0.0]])
    y = np.array([0])
    loss, dW = loss_fn(W, X, y, 0.0)
    assert float(loss) == 0.0
    assert np.all(dW == 0.0)


@BOTH
def test_well_separated_examples_have_zero_data_loss(loss_fn):
    # Correct score beats every rival by 10 > 1: no hinge is active, only the L2 term remains.
    X = np.eye(3)
    W = 10.0 * np.eye(3)
    y = np.arange(3)
    loss, dW = loss_fn(W, X, y, 0.01)
    assert math.isclose(float(loss), 0.01 * 300.0, rel_tol=1e-12)
    assert np.allclose(dW, 2 * 0.01 * W)


def test_gradient_columns_sum_to_zero_per_feature_without_regularisation():
    # Every active margin adds +x to one column and -x to another, so each row of dW sums to 0.
    W, X, y = problem(N=9, D=5, C=4, seed=7)
    _, dW = svm_loss_vectorized(W, X, y, 0.0)
    assert np.allclose(dW.sum(axis=1), 0.0, atol=1e-12)


def test_float32_inputs_give_float32_gradient():
    W, X, y = problem(N=8, D=5, C=4, seed=5)
    loss, dW = svm_loss_vectorized(W.astype(np.float32), X.astype(np.float32), y, 0.1)
    assert dW.dtype == np.float32
    assert math.isclose(float(loss), loss_over_all_classes(W, X, y, 0.1), rel_tol=1e-5)


@BOTH
def test_inputs_are_not_modified(loss_fn):
    W, X, y = problem(seed=6)
    W0, X0, y0 = W.copy(), X.copy(), y.copy()
    loss_fn(W, X, y, 0.3)
    assert np.array_equal(W, W0) and np.array_equal(X, X0) and np.array_equal(y, y0)


@BOTH
@pytest.mark.parametrize("bad, message", [
    (lambda W, X, y: (W[:, 0], X, y), "W must be 2-D"),
    (lambda W, X, y: (W, X[0], y), "X must be 2-D"),
    (lambda W, X, y: (W, X[:, :-1], y), "features per row"),
    (lambda W, X, y: (W, X, y[:-1]), "y must have shape"),
    (lambda W, X, y: (W, X, y.astype(float)), "integer class labels"),
    (lambda W, X, y: (W, X, y + W.shape[1]), "labels must lie in"),
    (lambda W, X, y: (W, X, y - 10), "labels must lie in"),
    (lambda W, X, y: (W, X.astype(int), y), "floating point"),
    (lambda W, X, y: (W, X[:0], y[:0]), "empty"),
])
def test_wrong_inputs_raise_clear_errors(loss_fn, bad, message):
    W, X, y = problem()
    with pytest.raises(ValueError, match=message):
        loss_fn(*bad(W, X, y), 0.1)


# ------------------------------------------------------------------------ the classifiers
def test_linear_svm_is_a_linear_classifier_that_learns_a_separable_toy_problem():
    X, y = blobs()
    clf = LinearSVM(seed=0)
    assert isinstance(clf, LinearClassifier)
    history = clf.train(X, y, learning_rate=0.05, reg=1e-4, num_iters=200, batch_size=100)
    assert len(history) == 200 and all(isinstance(h, float) for h in history)
    assert history[0] > 1.9  # tiny initial weights: every rival margin is ~1, loss ~ C - 1 = 2
    assert np.mean(history[-20:]) < 0.1 * history[0]
    assert clf.accuracy(X, y) > 0.97
    pred = clf.predict(X)
    assert pred.shape == (600,)
    assert np.array_equal(pred, np.argmax(X @ clf.W, axis=1))


def test_training_is_reproducible_with_a_seed():
    X, y = blobs(n=200)
    runs = [LinearSVM(seed=3).train(X, y, learning_rate=0.01, num_iters=30, batch_size=50)
            for _ in range(2)]
    assert runs[0] == runs[1]
    other = LinearSVM(seed=4).train(X, y, learning_rate=0.01, num_iters=30, batch_size=50)
    assert other != runs[0]


def test_second_train_call_continues_from_the_current_weights():
    # With the whole training set as every batch, training is plain gradient descent, and
    # the batches no longer depend on sampling. Then 30 + 20 iterations in two calls must be
    # exactly the 50 of one call; a second call that started again from fresh weights would
    # repeat the first 20 losses instead.
    X, y = blobs(n=60)
    gd = dict(learning_rate=0.05, reg=1e-3, batch_size=60)
    split = LinearSVM(seed=0)
    first = split.train(X, y, num_iters=30, **gd)
    second = split.train(X, y, num_iters=20, **gd)
    whole = LinearSVM(seed=0)
    history = whole.train(X, y, num_iters=50, **gd)
    # each batch is the same 60 rows in another order: the sums differ by roundoff only
    np.testing.assert_allclose(first + second, history, rtol=1e-12)
    np.testing.assert_allclose(split.W, whole.W, rtol=1e-12)
    assert abs(second[0] - first[0]) > 0.1  # the comparison can tell the two apart


class RecordingSVM(LinearSVM):
    """A LinearSVM that remembers which training rows each minibatch held."""

    def __init__(self, X, seed=0):
        super().__init__(seed=seed)
        self.row_of = {row.tobytes(): i for i, row in enumerate(X)}
        assert len(self.row_of) == len(X), "rows must be distinct to be identified"
        self.batches = []

    def loss(self, X_batch, y_batch, reg):
        self.batches.append([self.row_of[row.tobytes()] for row in X_batch])
        return super().loss(X_batch, y_batch, reg)


def test_batch_larger_than_training_set_samples_with_replacement():
    n, batch, iters = 30, 64, 300
    X, y = blobs(n=n)
    clf = RecordingSVM(X)
    history = clf.train(X, y, learning_rate=0.05, num_iters=iters, batch_size=batch)
    assert len(history) == iters and all(len(b) == batch for b in clf.batches)
    # Uniform draws with replacement: the expected number of distinct rows in a batch is
    # n (1 - (1 - 1/n)^batch) = 26.57. Its spread over batches is ~1.5, so the mean of 300
    # batches has a standard error of ~0.09; 0.4 is over 4 of them (and the run is seeded).
    # Other samplers (all rows, then repeats: 30; a few rows many times: far fewer) miss.
    distinct = [len(set(b)) for b in clf.batches]
    assert abs(np.mean(distinct) - n * (1 - (1 - 1 / n) ** batch)) < 0.4
    # ... and every row is equally likely: counts of 19,200 draws against 640 each, a
    # chi-square with 29 degrees of freedom (p < 1e-4 would mean a skewed sampler)
    counts = np.bincount(np.concatenate(clf.batches), minlength=n)
    assert scipy.stats.chisquare(counts).pvalue > 1e-4


def test_batch_no_larger_than_training_set_samples_without_replacement():
    X, y = blobs(n=30)
    clf = RecordingSVM(X)
    clf.train(X, y, learning_rate=0.05, num_iters=50, batch_size=20)
    assert all(len(set(b)) == 20 for b in clf.batches)  # no row twice in one batch
    assert len(set().union(*clf.batches)) == 30          # yet every row gets drawn


def test_accuracy_is_the_fraction_of_rows_classified_correctly():
    # W picks the class of the largest feature; rows 0-2 are right, row 3 is wrong
    clf = LinearSVM()
    clf.W = np.eye(3)
    X = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.1, 0.2, 0.3], [5.0, 1.0, 1.0]])
    y = np.array([0, 1, 2, 2])
    assert clf.accuracy(X, y) == 0.75
    assert clf.accuracy(X[:3], y[:3]) == 1.0


def test_train_keeps_the_dtype_of_the_data():
    X, y = blobs(n=100)
    clf = LinearSVM(seed=0)
    clf.train(X.astype(np.float32), y, num_iters=3, batch_size=20)
    assert clf.W.dtype == np.float32 and clf.W.shape == (3, 3)


def test_predict_before_train_raises():
    with pytest.raises(RuntimeError, match="train"):
        LinearSVM().predict(np.zeros((2, 3)))


def test_base_class_loss_is_abstract():
    X, y = blobs(n=20)
    with pytest.raises(NotImplementedError):
        LinearClassifier().train(X, y, num_iters=1, batch_size=5)


@pytest.mark.parametrize("X_shape, y_shape, message", [
    ((10, 2, 2), (10,), "X must be 2-D"),
    ((10, 3), (9,), "y must have shape"),
])
def test_train_rejects_mismatched_shapes(X_shape, y_shape, message):
    with pytest.raises(ValueError, match=message):
        LinearSVM().train(np.ones(X_shape), np.zeros(y_shape, dtype=int), num_iters=1)


# ------------------------------------------------------------------------ on a GPU
# (the `cupy` fixture is in conftest.py: it skips only without cupy or without a GPU)


@pytest.mark.gpu
@BOTH
def test_svm_loss_on_cupy_matches_numpy(cupy, loss_fn):
    W, X, y = problem(N=12, D=6, C=5, seed=9)
    loss, dW = loss_fn(W, X, y, 0.2)
    gloss, gdW = loss_fn(cupy.asarray(W), cupy.asarray(X), cupy.asarray(y), 0.2)
    assert isinstance(gdW, cupy.ndarray)
    assert math.isclose(float(gloss), float(loss), rel_tol=1e-10)
    assert rel_error(cupy.asnumpy(gdW), dW) < 1e-10  # float64 both sides, other summing order


@pytest.mark.gpu
def test_linear_svm_trains_on_cupy(cupy):
    X, y = blobs()
    clf = LinearSVM(seed=0)
    clf.train(cupy.asarray(X), cupy.asarray(y), learning_rate=0.05, reg=1e-4, num_iters=200,
              batch_size=100)
    assert isinstance(clf.W, cupy.ndarray)
    assert clf.accuracy(cupy.asarray(X), cupy.asarray(y)) > 0.97

"""k-nearest-neighbour classification with the L2 (Euclidean) distance.

kNN has no training step worth the name: `train` only remembers the data. All the work
happens at test time, where every test row is compared with every training row, so
predicting costs O(num_test * num_train * D). That cost is why the distance matrix is
computed three ways here, from the one a person can check by eye to the one that is fast:

- `compute_distances_two_loops`: one distance per (test, train) pair;
- `compute_distances_one_loop`: one test row against the whole training set at a time;
- `compute_distances_no_loops`: the whole matrix from one matrix product, using
  ||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2.

The last one can produce tiny negative squared distances through rounding (when a and b
are almost equal, three large numbers nearly cancel), so it clamps them at 0 before the
square root.

The label of a test row is the majority label among its k nearest training rows; a tie goes
to the smallest label, so results never depend on the order of the training set. Every
method accepts numpy or cupy arrays (see course_utils.backend).
"""
from __future__ import annotations

import operator

from ..backend import array_module


class KNearestNeighbor:
    """A kNN classifier with the L2 distance; labels are integers 0..C-1."""

    def __init__(self):
        self.X_train = None
        self.y_train = None

    # ------------------------------------------------------------------ training
    def train(self, X, y):
        """Remember the training data: (N, D) rows and (N,) integer labels.

        kNN learns nothing at training time; this is the price of its zero training cost.
        """
        xp = array_module(X, y)
        X, y = xp.asarray(X), xp.asarray(y)
        if X.ndim != 2:
            raise ValueError(f"KNearestNeighbor.train: X must be 2-D (N, D), one example per "
                             f"row, got shape {tuple(X.shape)}; flatten images first "
                             f"(X.reshape(len(X), -1)).")
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"KNearestNeighbor.train: y must have shape ({X.shape[0]},), one "
                             f"label per row of X, got shape {tuple(y.shape)}.")
        if X.shape[0] == 0:
            raise ValueError("KNearestNeighbor.train: the training set is empty.")
        if y.dtype.kind not in "iu":
            raise ValueError(f"KNearestNeighbor.train: y must hold integer class labels, got "
                             f"dtype {y.dtype}.")
        if int(y.min()) < 0:
            raise ValueError("KNearestNeighbor.train: labels must be non-negative integers.")
        self.X_train, self.y_train = X, y
        return self

    def _check_test(self, name, X):
        if self.X_train is None:
            raise RuntimeError(f"KNearestNeighbor.{name}: call train(X, y) first.")
        xp = array_module(X, self.X_train)
        X = xp.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.X_train.shape[1]:
            raise ValueError(f"KNearestNeighbor.{name}: X must have shape (num_test, "
                             f"{self.X_train.shape[1]}) like the training rows, got "
                             f"{tuple(X.shape)}.")
        # Integer images (uint8) would wrap around when subtracted or squared: compute
        # those in float64; float inputs keep their (common) precision.
        dtype = xp.result_type(X.dtype, self.X_train.dtype)
        if dtype.kind != "f":
            dtype = xp.dtype(xp.float64)
        return xp, X.astype(dtype, copy=False), self.X_train.astype(dtype, copy=False)

    # ------------------------------------------------------------------ distances
    # student-writes: assignment1/knn
    def compute_distances_two_loops(self, X):
        """L2 distances (num_test, num_train), one pair at a time: slow but plainly right."""
        xp, X, Xtr = self._check_test("compute_distances_two_loops", X)
        dists = xp.zeros((X.shape[0], Xtr.shape[0]), dtype=X.dtype)
        for i in range(X.shape[0]):
            for j in range(Xtr.shape[0]):
                diff = X[i] - Xtr[j]
                dists[i, j] = xp.sqrt(xp.sum(diff * diff))
        return dists

    # student-writes: assignment1/knn
    def compute_distances_one_loop(self, X):
        """L2 distances, one test row against all training rows by broadcasting."""
        xp, X, Xtr = self._check_test("compute_distances_one_loop", X)
        dists = xp.zeros((X.shape[0], Xtr.shape[0]), dtype=X.dtype)
        for i in range(X.shape[0]):
            diff = Xtr - X[i]
            dists[i] = xp.sqrt(xp.sum(diff * diff, axis=1))
        return dists

    # student-writes: assignment1/knn
    def compute_distances_no_loops(self, X):
        """L2 distances from one matrix product: ||a||^2 - 2 a.b + ||b||^2, clamped at 0.

        Memory stays O(num_test * num_train); broadcasting X[:, None] - X_train[None]
        would need O(num_test * num_train * D).
        """
        xp, X, Xtr = self._check_test("compute_distances_no_loops", X)
        test_sq = xp.sum(X * X, axis=1)[:, None]
        train_sq = xp.sum(Xtr * Xtr, axis=1)[None, :]
        sq = test_sq - 2.0 * (X @ Xtr.T) + train_sq
        return xp.sqrt(xp.maximum(sq, 0.0))

    # ------------------------------------------------------------------ prediction
    # student-writes: assignment1/knn
    def predict_labels(self, dists, k=1):
        """Majority label of the k nearest training rows; ties go to the smallest label.

        dists: (num_test, num_train). Returns int64 labels (num_test,).
        """
        if self.y_train is None:
            raise RuntimeError("KNearestNeighbor.predict_labels: call train(X, y) first.")
        xp = array_module(dists, self.y_train)
        dists = xp.asarray(dists)
        num_train = self.y_train.shape[0]
        if dists.ndim != 2 or dists.shape[1] != num_train:
            raise ValueError(f"KNearestNeighbor.predict_labels: dists must have shape "
                             f"(num_test, {num_train}), got {tuple(dists.shape)}.")
        k = _check_k(k, num_train)
        # A stable sort keeps equally distant training rows in training order, so the
        # choice among them is deterministic on every backend.
        nearest = xp.argsort(dists, axis=1, kind="stable")[:, :k]
        closest_y = self.y_train[nearest]  # (num_test, k)
        num_classes = int(self.y_train.max()) + 1
        votes = (closest_y[:, :, None] == xp.arange(num_classes)[None, None, :]).sum(axis=1)
        # argmax returns the first of equal maxima, i.e. the smallest tied label.
        return xp.argmax(votes, axis=1).astype(xp.int64)

    def predict(self, X, k=1, num_loops=0):
        """Labels for the rows of X using the distance version named by num_loops (0, 1, 2)."""
        versions = {0: self.compute_distances_no_loops, 1: self.compute_distances_one_loop,
                    2: self.compute_distances_two_loops}
        if num_loops not in versions:
            raise ValueError(f"KNearestNeighbor.predict: num_loops must be 0, 1 or 2, got "
                             f"{num_loops!r}.")
        if self.y_train is not None:
            _check_k(k, self.y_train.shape[0])  # fail before the expensive part
        return self.predict_labels(versions[num_loops](X), k=k)


def _check_k(k, num_train):
    """k as an int in [1, num_train], or a ValueError that says what is wrong with it."""
    try:
        if isinstance(k, bool):
            raise TypeError
        k = operator.index(k)  # ints and numpy integers; floats such as 3.0 are refused
    except TypeError:
        raise ValueError(f"k must be an integer, got {k!r}.") from None
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    if k > num_train:
        raise ValueError(f"k={k} is larger than the training set ({num_train} examples).")
    return k

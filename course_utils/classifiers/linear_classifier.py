"""A linear score function trained by minibatch SGD; subclasses supply the loss.

Why a base class: the SVM and the softmax classifier differ only in their loss, so the
training loop, prediction and accuracy live here once.
"""
from __future__ import annotations

from ..backend import array_module, default_rng, to_float


def check_loss_inputs(name, W, X, y):
    """Raise a ValueError naming the argument of a linear loss `name` that is wrong, and how."""
    if W.ndim != 2:
        raise ValueError(f"{name}: W must be 2-D (D, C) weights, got shape {tuple(W.shape)}.")
    if X.ndim != 2:
        raise ValueError(f"{name}: X must be 2-D (N, D), one example per row, got shape "
                         f"{tuple(X.shape)}; flatten images first (X.reshape(len(X), -1)).")
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"{name}: X has {X.shape[1]} features per row (shape "
                         f"{tuple(X.shape)}) but W expects {W.shape[0]} (shape "
                         f"{tuple(W.shape)}); did you forget the bias column?")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{name}: y must have shape ({X.shape[0]},), one label per row of X, "
                         f"got shape {tuple(y.shape)}.")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{name}: y must hold integer class labels, got dtype {y.dtype}.")
    if W.dtype.kind != "f" or X.dtype.kind != "f":
        raise ValueError(f"{name}: W and X must be floating point, got {W.dtype} and "
                         f"{X.dtype}.")
    if X.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty (X has 0 rows).")
    if to_float(y.min()) < 0 or to_float(y.max()) >= W.shape[1]:
        raise ValueError(f"{name}: labels must lie in [0, {W.shape[1]}) for a W with "
                         f"{W.shape[1]} classes.")


class LinearClassifier:
    """scores = X @ W, with W of shape (D, C); X rows are examples (bias folded in by caller)."""

    def __init__(self, seed=0):
        self.W = None
        self.seed = seed

    def loss(self, X_batch, y_batch, reg):
        """Return (loss, dW) for a minibatch; subclasses implement it."""
        raise NotImplementedError("LinearClassifier is abstract: use LinearSVM or Softmax.")

    # student-writes: assignment1/svm
    def train(self, X, y, learning_rate=1e-3, reg=1e-5, num_iters=100, batch_size=200,
              verbose=False, print_every=100):
        """Minibatch SGD on (X, y); returns the loss of every iteration as a list of floats."""
        xp = array_module(X)
        X = xp.asarray(X)
        y = xp.asarray(y)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (N, D), got shape {tuple(X.shape)}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {tuple(y.shape)}")
        num_train, dim = X.shape
        num_classes = int(to_float(y.max())) + 1
        rng = default_rng(self.seed)
        if self.W is None:
            self.W = xp.asarray(0.001 * rng.standard_normal((dim, num_classes)), dtype=X.dtype)
        history = []
        for it in range(num_iters):
            idx = xp.asarray(rng.choice(num_train, batch_size, replace=batch_size > num_train))
            loss, grad = self.loss(X[idx], y[idx], reg)
            self.W -= learning_rate * grad
            history.append(to_float(loss))
            if verbose and it % print_every == 0:
                print(f"iteration {it} / {num_iters}: loss {history[-1]:.4f}")
        return history

    # student-writes: assignment1/svm
    def predict(self, X):
        """The highest-scoring class of every row of X."""
        if self.W is None:
            raise RuntimeError("train() the classifier before predict().")
        xp = array_module(X, self.W)
        return xp.argmax(xp.asarray(X) @ self.W, axis=1)

    def accuracy(self, X, y):
        xp = array_module(X)
        return to_float(xp.mean(self.predict(X) == xp.asarray(y)))

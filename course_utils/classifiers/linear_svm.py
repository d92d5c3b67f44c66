"""The multiclass linear SVM: its hinge loss, twice, and the classifier that trains with it.

For one example x (a row of X) with label y, the scores are s = x W. The SVM wants the
correct score to beat every other score by at least a margin delta = 1; each class j that
fails to do so adds its shortfall to the loss:

    L_i = sum_{j != y} max(0, s_j - s_y + 1)

The data loss is the mean of L_i over the batch, and the L2 penalty reg * sum(W * W) is
added to it. Every class j with a positive margin pushes W[:, j] up by x and W[:, y] down
by x in the gradient, so dW = X^T M / N + 2 reg W, where M[i, j] = 1 for a positive margin
and M[i, y_i] = -(number of positive margins in row i).

The hinge has a kink where a margin is exactly 0: there the loss has no derivative. Both
versions below use the subgradient 0 (only margins strictly above 0 count), the same
convention as course_utils.layers.svm_loss.

Two versions compute the same numbers:
- `svm_loss_naive` loops over examples and classes: slow, but easy to check by eye;
- `svm_loss_vectorized` does the whole batch with one matrix product each way.

Both accept numpy or cupy arrays (see course_utils.backend).
"""
from __future__ import annotations

from ..backend import array_module
from .linear_classifier import LinearClassifier, check_loss_inputs as _check_inputs

DELTA = 1.0  # the margin; its size only sets the scale of W, which reg then trades off


# student-writes: assignment1/svm
def svm_loss_naive(W, X, y, reg):
    """Multiclass SVM loss and gradient with explicit loops (the version to read).

    W: (D, C) weights; X: (N, D) examples; y: (N,) integer labels in [0, C);
    reg: L2 strength. Returns (loss, dW) with dW of W's shape.
    """
    xp = array_module(W, X, y)
    _check_inputs("svm_loss_naive", W, X, y)
    num_train, num_classes = X.shape[0], W.shape[1]
    loss = 0.0
    dW = xp.zeros_like(W)
    for i in range(num_train):
        scores = X[i] @ W
        label = int(y[i])
        correct = scores[label]
        for j in range(num_classes):
            if j == label:
                continue
            margin = scores[j] - correct + DELTA
            if margin > 0:           # class j is too close to (or above) the right one
                loss += margin
                dW[:, j] += X[i]     # raising s_j raises the loss ...
                dW[:, label] -= X[i]  # ... raising s_y lowers it
    loss = loss / num_train + reg * xp.sum(W * W)
    dW = dW / num_train + 2 * reg * W
    return loss, dW


# student-writes: assignment1/svm, assignment1/features
def svm_loss_vectorized(W, X, y, reg):
    """Multiclass SVM loss and gradient for the whole batch at once (the version to train with).

    Same arguments and results as `svm_loss_naive`.
    """
    xp = array_module(W, X, y)
    _check_inputs("svm_loss_vectorized", W, X, y)
    num_train = X.shape[0]
    rows = xp.arange(num_train)
    scores = X @ W                                   # (N, C)
    correct = scores[rows, y][:, None]               # (N, 1)
    margins = xp.maximum(0, scores - correct + DELTA)
    margins[rows, y] = 0                             # the correct class is not a rival
    loss = margins.sum() / num_train + reg * xp.sum(W * W)

    dscores = (margins > 0).astype(W.dtype)          # +1 for every rival with a positive margin
    dscores[rows, y] = -dscores.sum(axis=1)          # -1 on the right class for each of them
    dW = X.T @ dscores / num_train + 2 * reg * W
    return loss, dW


class LinearSVM(LinearClassifier):
    """A linear classifier trained with the multiclass hinge (SVM) loss."""

    def loss(self, X_batch, y_batch, reg):
        return svm_loss_vectorized(self.W, X_batch, y_batch, reg)

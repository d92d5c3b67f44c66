"""The softmax (multinomial logistic regression) classifier: its loss, twice, and the class.

For one example x (a row of X) with label y, the scores are s = x W and the classifier's
belief in class j is p_j = exp(s_j) / sum_k exp(s_k). The loss is the cross-entropy
-log p_y, averaged over the batch, plus the L2 penalty reg * sum(W * W). Its gradient with
respect to the scores is p - onehot(y), so dW = X^T (P - Y) / N + 2 reg W.

Two versions compute the same numbers:
- `softmax_loss_naive` loops over examples and classes: slow, but easy to check by eye;
- `softmax_loss_vectorized` does the whole batch with matrix products.

Both subtract each row's largest score before exponentiating. The softmax does not change
(the factor exp(-max) cancels between numerator and denominator), but the largest exponent
becomes exp(0) = 1, so exp never overflows, and the denominator is at least 1, so the log
never sees 0.

Both accept numpy or cupy arrays (see course_utils.backend).
"""
from __future__ import annotations

from ..backend import array_module
from .linear_classifier import LinearClassifier, check_loss_inputs as _check_inputs


# student-writes: assignment1/softmax
def softmax_loss_naive(W, X, y, reg):
    """Softmax loss and gradient with explicit loops (the version to read).

    W: (D, C) weights; X: (N, D) examples; y: (N,) integer labels in [0, C);
    reg: L2 strength. Returns (loss, dW) with dW of W's shape.
    """
    xp = array_module(W, X, y)
    _check_inputs("softmax_loss_naive", W, X, y)
    num_train, num_classes = X.shape[0], W.shape[1]
    loss = 0.0
    dW = xp.zeros_like(W)
    for i in range(num_train):
        scores = X[i] @ W
        scores = scores - scores.max()  # stability: the largest exponent is now exp(0)
        exp_scores = xp.exp(scores)
        total = exp_scores.sum()
        loss += xp.log(total) - scores[y[i]]  # -log(exp(s_y) / total)
        for j in range(num_classes):
            p_j = exp_scores[j] / total
            dW[:, j] += (p_j - (1.0 if j == int(y[i]) else 0.0)) * X[i]
    loss = loss / num_train + reg * xp.sum(W * W)
    dW = dW / num_train + 2 * reg * W
    return loss, dW


# student-writes: assignment1/softmax
def softmax_loss_vectorized(W, X, y, reg):
    """Softmax loss and gradient for the whole batch at once (the version to train with).

    Same arguments and results as `softmax_loss_naive`.
    """
    xp = array_module(W, X, y)
    _check_inputs("softmax_loss_vectorized", W, X, y)
    num_train = X.shape[0]
    scores = X @ W
    scores = scores - scores.max(axis=1, keepdims=True)
    log_probs = scores - xp.log(xp.exp(scores).sum(axis=1, keepdims=True))
    rows = xp.arange(num_train)
    loss = -log_probs[rows, y].sum() / num_train + reg * xp.sum(W * W)
    dscores = xp.exp(log_probs)  # the probabilities P
    dscores[rows, y] -= 1        # P - Y
    dW = X.T @ dscores / num_train + 2 * reg * W
    return loss, dW


class Softmax(LinearClassifier):
    """A linear classifier trained with the softmax (cross-entropy) loss."""

    def loss(self, X_batch, y_batch, reg):
        return softmax_loss_vectorized(self.W, X_batch, y_batch, reg)

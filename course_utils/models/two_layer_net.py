"""TwoLayerNet: affine - ReLU - affine - softmax, the first network of the course."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..layer_utils import affine_relu_backward, affine_relu_forward
from ..layers import affine_backward, affine_forward, softmax_loss
from .base import Model, check_images, check_labels


class TwoLayerNet(Model):
    """A two-layer fully connected network with a ReLU hidden layer and softmax loss.

    Architecture: input (D) -> affine -> ReLU -> affine -> scores (C) -> softmax loss.
    Parameters (in self.params):
        W1 (D, H), b1 (H,): first layer; W2 (H, C), b2 (C,): second layer.
    Inputs of any shape (N, d1, ..., dk) with d1 * ... * dk = D are flattened.
    """

    # student-writes: assignment1/two_layer_net, assignment2/fully_connected_nets
    def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10,
                 weight_scale=1e-3, reg=0.0, dtype=np.float32, seed=None):
        """Weights ~ N(0, weight_scale^2), biases zero; `seed` makes the draw repeatable.
        reg is the L2 strength: the loss adds 0.5 * reg * (|W1|^2 + |W2|^2)."""
        if min(input_dim, hidden_dim, num_classes) < 1:
            raise ValueError("TwoLayerNet: input_dim, hidden_dim and num_classes must be >= 1, "
                             f"got {input_dim}, {hidden_dim}, {num_classes}.")
        self.reg = reg
        self.dtype = dtype
        self.input_dim, self.num_classes = input_dim, num_classes
        rng = backend.default_rng(seed)
        xp = backend.xp
        self.params = {
            "W1": backend.randn(rng, input_dim, hidden_dim, dtype=dtype, scale=weight_scale),
            "b1": xp.zeros(hidden_dim, dtype=dtype),
            "W2": backend.randn(rng, hidden_dim, num_classes, dtype=dtype, scale=weight_scale),
            "b2": xp.zeros(num_classes, dtype=dtype),
        }

    # student-writes: assignment1/two_layer_net, assignment2/fully_connected_nets
    def loss(self, X, y=None):
        """Class scores (N, C) if y is None; otherwise (loss, grads) for labels y (N,),
        grads a dict with the same keys as self.params."""
        X = X.reshape(X.shape[0], -1)
        check_images("TwoLayerNet", X, (self.input_dim,))
        X = X.astype(self.dtype, copy=False)  # keep a float32 model in float32
        p = self.params
        hidden, cache1 = affine_relu_forward(X, p["W1"], p["b1"])
        scores, cache2 = affine_forward(hidden, p["W2"], p["b2"])
        if y is None:
            return scores
        check_labels("TwoLayerNet", y, X.shape[0], self.num_classes)

        xp = backend.array_module(X)
        loss, dscores = softmax_loss(scores, y)
        loss = loss + 0.5 * self.reg * (xp.sum(p["W1"] ** 2) + xp.sum(p["W2"] ** 2))

        grads = {}
        dhidden, grads["W2"], grads["b2"] = affine_backward(dscores, cache2)
        _, grads["W1"], grads["b1"] = affine_relu_backward(dhidden, cache1)
        grads["W1"] += self.reg * p["W1"]
        grads["W2"] += self.reg * p["W2"]
        return loss, grads

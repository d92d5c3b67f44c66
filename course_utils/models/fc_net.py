"""FullyConnectedNet: any number of hidden layers, with optional batch/layer norm and dropout."""
from __future__ import annotations

import numpy as np

from .. import backend, layers as library
from .base import (Model, bn_state, check_images, check_labels, layer_functions, new_bn_param,
                   set_bn_state)

NORMALIZATIONS = (None, "batchnorm", "layernorm")
# The layer functions the network calls, by name; `layers=` replaces any of them.
LAYERS = {
    "affine_forward": library.affine_forward, "affine_backward": library.affine_backward,
    "relu_forward": library.relu_forward, "relu_backward": library.relu_backward,
    "batchnorm_forward": library.batchnorm_forward,
    "batchnorm_backward": library.batchnorm_backward_alt,
    "layernorm_forward": library.layernorm_forward,
    "layernorm_backward": library.layernorm_backward,
    "dropout_forward": library.dropout_forward, "dropout_backward": library.dropout_backward,
    "softmax_loss": library.softmax_loss,
}


class FullyConnectedNet(Model):
    """A fully connected network with L = len(hidden_dims) + 1 affine layers:

        {affine - [batch/layer norm] - ReLU - [dropout]} x (L - 1) - affine - softmax

    Parameters (in self.params), for i = 1..L:
        Wi (d_{i-1}, d_i), bi (d_i,), with d_0 = input_dim and d_L = num_classes;
        gammai, betai (d_i,) for the hidden layers i < L when normalization is used
        (gamma starts at 1 and beta at 0, so the normalisation starts as plain
        standardisation).
    Batch norm keeps running statistics in self.bn_params[i - 1] (saved with the model).

    Dropout: keep each hidden unit with probability dropout_keep_ratio (1 = no dropout). Each
    training-mode forward pass draws a fresh mask seed from the model's own generator (seeded
    by `seed`), so runs are repeatable. Setting self.dropout_param['seed'] fixes the mask for
    every call, which gradient checks need.

    layers: replacements for the layer functions it calls (see LAYERS for the names), e.g.
    the ones a notebook's student wrote: {"batchnorm_forward": ..., "batchnorm_backward": ...}.
    """

    # student-writes: assignment2/fully_connected_nets
    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10,
                 dropout_keep_ratio=1, normalization=None, reg=0.0, weight_scale=1e-2,
                 dtype=np.float32, seed=None, layers=None):
        """Weights ~ N(0, weight_scale^2), biases zero; reg is the L2 strength (the loss adds
        0.5 * reg * sum_i |Wi|^2); `seed` makes initialisation and dropout repeatable."""
        name = "FullyConnectedNet"
        hidden_dims = list(hidden_dims)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"{name}: normalization must be one of {NORMALIZATIONS}, "
                             f"got {normalization!r}.")
        if not 0 < dropout_keep_ratio <= 1:
            raise ValueError(f"{name}: dropout_keep_ratio is the probability of keeping a unit "
                             f"and must be in (0, 1], got {dropout_keep_ratio}.")
        dims = [input_dim, *hidden_dims, num_classes]
        if min(dims) < 1:
            raise ValueError(f"{name}: every layer size must be >= 1, got sizes {dims}.")

        self.layers = layer_functions(name, LAYERS, layers)
        self.normalization = normalization
        self.use_dropout = dropout_keep_ratio != 1
        self.reg = reg
        self.num_layers = len(dims) - 1
        self.dtype = dtype
        self.input_dim, self.num_classes = input_dim, num_classes

        rng = backend.default_rng(seed)
        xp = backend.xp
        self.params = {}
        for i in range(1, self.num_layers + 1):
            d_in, d_out = dims[i - 1], dims[i]
            self.params[f"W{i}"] = backend.randn(rng, d_in, d_out, dtype=dtype, scale=weight_scale)
            self.params[f"b{i}"] = xp.zeros(d_out, dtype=dtype)
            if normalization is not None and i < self.num_layers:
                self.params[f"gamma{i}"] = xp.ones(d_out, dtype=dtype)
                self.params[f"beta{i}"] = xp.zeros(d_out, dtype=dtype)

        # Layer state: bn running statistics (mutated by batchnorm_forward) and ln settings.
        self.bn_params = []
        self.ln_params = []
        if normalization == "batchnorm":
            self.bn_params = [new_bn_param(d, dtype) for d in hidden_dims]
        elif normalization == "layernorm":
            self.ln_params = [{} for _ in hidden_dims]
        self._init_dropout(dropout_keep_ratio, rng)

    def _state_arrays(self):
        return bn_state(self.bn_params)

    def _set_state_arrays(self, arrays):
        set_bn_state(self.bn_params, arrays)

    # student-writes: assignment2/fully_connected_nets
    def loss(self, X, y=None):
        """Scores (N, C) in test mode if y is None; otherwise (loss, grads) in train mode.

        Mode matters for batch norm (batch vs running statistics) and dropout (masking vs
        identity).
        """
        name = "FullyConnectedNet"
        X = X.reshape(X.shape[0], -1)
        check_images(name, X, (self.input_dim,))
        X = X.astype(self.dtype, copy=False)
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        dropout_param = self._dropout_param(mode) if self.use_dropout else None

        p = self.params
        f = self.layers
        L = self.num_layers
        caches = []
        h = X
        for i in range(1, L):
            # affine - [batch/layer norm] - ReLU - [dropout], each step's cache kept in order
            h, fc_cache = f.affine_forward(h, p[f"W{i}"], p[f"b{i}"])
            norm_cache = None
            if self.normalization == "batchnorm":
                h, norm_cache = f.batchnorm_forward(h, p[f"gamma{i}"], p[f"beta{i}"],
                                                    self.bn_params[i - 1])
            elif self.normalization == "layernorm":
                h, norm_cache = f.layernorm_forward(h, p[f"gamma{i}"], p[f"beta{i}"],
                                                    self.ln_params[i - 1])
            h, relu_cache = f.relu_forward(h)
            drop_cache = None
            if self.use_dropout:
                h, drop_cache = f.dropout_forward(h, dropout_param)
            caches.append((fc_cache, norm_cache, relu_cache, drop_cache))
        scores, last_cache = f.affine_forward(h, p[f"W{L}"], p[f"b{L}"])
        if y is None:
            return scores
        check_labels(name, y, X.shape[0], self.num_classes)

        xp = backend.array_module(X)
        loss, dscores = f.softmax_loss(scores, y)
        loss = loss + 0.5 * self.reg * sum(xp.sum(p[f"W{i}"] ** 2) for i in range(1, L + 1))

        grads = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = f.affine_backward(dscores, last_cache)
        for i in range(L - 1, 0, -1):
            fc_cache, norm_cache, relu_cache, drop_cache = caches[i - 1]
            if self.use_dropout:
                dh = f.dropout_backward(dh, drop_cache)
            dh = f.relu_backward(dh, relu_cache)
            if self.normalization == "batchnorm":
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = f.batchnorm_backward(dh, norm_cache)
            elif self.normalization == "layernorm":
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = f.layernorm_backward(dh, norm_cache)
            dh, grads[f"W{i}"], grads[f"b{i}"] = f.affine_backward(dh, fc_cache)
        for i in range(1, L + 1):
            grads[f"W{i}"] += self.reg * p[f"W{i}"]
        return loss, grads

"""Convolutional networks: the three-layer ConvNet of the assignment, and a deeper ConvNet
configured by a short VGG-style list of layers."""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from .. import layers as library
from ..fast_layers import (conv_backward_fast, conv_forward_fast, max_pool_backward_fast,
                           max_pool_forward_fast)
from ..layer_utils import (affine_relu_backward, affine_relu_forward, conv_relu_pool_backward,
                           conv_relu_pool_forward)
from ..layers import affine_backward, affine_forward, softmax_loss
from .base import (Model, bn_state, check_images, check_labels, layer_functions, new_bn_param,
                   set_bn_state)

POOL_2X2 = {"pool_height": 2, "pool_width": 2, "stride": 2}

# The layer functions ConvNet calls, by name; its `layers=` argument replaces any of them
# (e.g. with the spatial batch norm a notebook's student wrote).
CONVNET_LAYERS = {
    "conv_forward": conv_forward_fast, "conv_backward": conv_backward_fast,
    "max_pool_forward": max_pool_forward_fast, "max_pool_backward": max_pool_backward_fast,
    "spatial_batchnorm_forward": library.spatial_batchnorm_forward,
    "spatial_batchnorm_backward": library.spatial_batchnorm_backward,
    "affine_forward": library.affine_forward, "affine_backward": library.affine_backward,
    "relu_forward": library.relu_forward, "relu_backward": library.relu_backward,
    "batchnorm_forward": library.batchnorm_forward,
    "batchnorm_backward": library.batchnorm_backward_alt,
    "dropout_forward": library.dropout_forward, "dropout_backward": library.dropout_backward,
    "softmax_loss": library.softmax_loss,
}


class ThreeLayerConvNet(Model):
    """conv - ReLU - 2x2 max pool - affine - ReLU - affine - softmax.

    Input (N, C, H, W). The convolution has num_filters filters of size
    filter_size x filter_size, stride 1 and padding (filter_size - 1) // 2, so it keeps H and W
    (filter_size must be odd); the pool halves them (H and W must be even).
    Parameters (in self.params):
        W1 (F, C, fs, fs), b1 (F,): convolution;
        W2 (F * H//2 * W//2, hidden_dim), b2 (hidden_dim,): hidden affine;
        W3 (hidden_dim, num_classes), b3 (num_classes,): scores.
    """

    # student-writes: assignment2/convolutional_networks
    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32, seed=None):
        """Weights ~ N(0, weight_scale^2), biases zero; the loss adds 0.5 * reg * sum |W|^2."""
        C, H, W = input_dim
        if filter_size % 2 != 1:
            raise ValueError(f"ThreeLayerConvNet: filter_size must be odd so that padding "
                             f"(F - 1) // 2 keeps the image size, got {filter_size}.")
        if H < 2 or W < 2 or H % 2 or W % 2:
            raise ValueError(f"ThreeLayerConvNet: input_dim {tuple(input_dim)} cannot be "
                             f"pooled 2x2 with stride 2: H and W must be even (the windows "
                             f"must tile the image).")
        self.input_dim, self.num_classes = tuple(input_dim), num_classes
        self.reg, self.dtype = reg, dtype
        self.conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        self.pool_param = dict(POOL_2X2)
        rng = backend.default_rng(seed)
        xp = backend.xp
        F = num_filters
        pooled = F * (H // 2) * (W // 2)
        self.params = {
            "W1": backend.randn(rng, F, C, filter_size, filter_size, dtype=dtype,
                                scale=weight_scale),
            "b1": xp.zeros(F, dtype=dtype),
            "W2": backend.randn(rng, pooled, hidden_dim, dtype=dtype, scale=weight_scale),
            "b2": xp.zeros(hidden_dim, dtype=dtype),
            "W3": backend.randn(rng, hidden_dim, num_classes, dtype=dtype, scale=weight_scale),
            "b3": xp.zeros(num_classes, dtype=dtype),
        }

    # student-writes: assignment2/convolutional_networks
    def loss(self, X, y=None):
        """Scores (N, num_classes) if y is None, else (loss, grads)."""
        check_images("ThreeLayerConvNet", X, self.input_dim)
        X = X.astype(self.dtype, copy=False)
        p = self.params
        h1, cache1 = conv_relu_pool_forward(X, p["W1"], p["b1"], self.conv_param,
                                            self.pool_param)
        h2, cache2 = affine_relu_forward(h1, p["W2"], p["b2"])
        scores, cache3 = affine_forward(h2, p["W3"], p["b3"])
        if y is None:
            return scores
        check_labels("ThreeLayerConvNet", y, X.shape[0], self.num_classes)

        xp = backend.array_module(X)
        loss, dscores = softmax_loss(scores, y)
        loss = loss + 0.5 * self.reg * sum(xp.sum(p[k] ** 2) for k in ("W1", "W2", "W3"))
        grads = {}
        dh2, grads["W3"], grads["b3"] = affine_backward(dscores, cache3)
        dh1, grads["W2"], grads["b2"] = affine_relu_backward(dh2, cache2)
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dh1, cache1)
        for k in ("W1", "W2", "W3"):
            grads[k] += self.reg * p[k]
        return loss, grads


def parse_conv_layers(conv_layers):
    """Turn a layer list such as (32, 32, 'pool', 64, 64, 'pool') into blocks
    [(32, False), (32, True), (64, False), (64, True)]: (filters, pool after this conv)."""
    blocks = []
    for item in conv_layers:
        if isinstance(item, str):
            if item != "pool":
                raise ValueError(f"ConvNet: conv_layers entries are filter counts or 'pool', "
                                 f"got {item!r}.")
            if not blocks or blocks[-1][1]:
                raise ValueError(f"ConvNet: every 'pool' must follow a convolution (no leading "
                                 f"or doubled 'pool'); got conv_layers={list(conv_layers)}.")
            blocks[-1] = (blocks[-1][0], True)
        elif isinstance(item, (int, np.integer)) and item >= 1:
            blocks.append((int(item), False))
        else:
            raise ValueError(f"ConvNet: conv_layers entries are positive filter counts or "
                             f"'pool', got {item!r}.")
    if not blocks:
        raise ValueError("ConvNet: conv_layers needs at least one convolution.")
    return blocks


class ConvNet(Model):
    """A deeper, configurable ConvNet (VGG style):

        {conv3x3 - [spatial batchnorm] - ReLU - [2x2 max pool]} per entry of conv_layers
        {affine - [batchnorm] - ReLU - [dropout]} per entry of hidden_dims
        affine - softmax

    conv_layers reads like the architecture: filter counts, with 'pool' after a convolution
    that is followed by 2x2 max pooling, e.g. (32, 32, 'pool', 64, 64, 'pool'). All
    convolutions are 3x3, stride 1, pad 1 (size-preserving); each pool halves H and W, so
    they must be divisible by 2 ** (number of pools): pooling windows must tile the image.

    Parameters, numbered through the whole network i = 1..L (L = convs + hidden + 1):
        conv:   Wi (F_i, F_{i-1}, 3, 3), bi (F_i,)
        affine: Wi (d_{i-1}, d_i), bi (d_i,)
        gammai, betai for every layer but the last when normalization='batchnorm'.
    weight_scale='he' (default) draws N(0, 2 / fan_in) for layers followed by ReLU (He et al.
    2015, keeps activation variance steady) and N(0, 1 / fan_in) for the score layer, which
    has no ReLU; a float gives N(0, weight_scale^2) everywhere.
    Dropout follows the hidden affine layers, seeded as in FullyConnectedNet.

    layers: replacements for the layer functions it calls (see CONVNET_LAYERS for the names),
    e.g. {"spatial_batchnorm_forward": ..., "spatial_batchnorm_backward": ...} from a notebook.
    """

    def __init__(self, input_dim=(3, 32, 32), conv_layers=(32, 32, "pool", 64, 64, "pool"),
                 hidden_dims=(256,), num_classes=10, normalization="batchnorm",
                 dropout_keep_ratio=1.0, reg=0.0, weight_scale="he", dtype=np.float32,
                 seed=None, layers=None):
        name = "ConvNet"
        if normalization not in (None, "batchnorm"):
            raise ValueError(f"{name}: normalization must be 'batchnorm' or None, "
                             f"got {normalization!r}.")
        if not 0 < dropout_keep_ratio <= 1:
            raise ValueError(f"{name}: dropout_keep_ratio must be in (0, 1], "
                             f"got {dropout_keep_ratio}.")
        if not (weight_scale == "he" or isinstance(weight_scale, (int, float))):
            raise ValueError(f"{name}: weight_scale must be 'he' or a number, "
                             f"got {weight_scale!r}.")
        self.layers = layer_functions(name, CONVNET_LAYERS, layers)
        self.blocks = parse_conv_layers(conv_layers)
        hidden_dims = [int(d) for d in hidden_dims]
        if hidden_dims and min(hidden_dims) < 1:
            raise ValueError(f"{name}: hidden_dims must be positive, got {hidden_dims}.")

        C, H, W = input_dim
        self.input_dim, self.num_classes = tuple(input_dim), num_classes
        self.normalization, self.reg, self.dtype = normalization, reg, dtype
        self.num_conv, self.num_hidden = len(self.blocks), len(hidden_dims)
        self.num_layers = self.num_conv + self.num_hidden + 1
        self.use_dropout = dropout_keep_ratio != 1
        self.conv_param = {"stride": 1, "pad": 1}
        self.pool_param = dict(POOL_2X2)

        rng = backend.default_rng(seed)
        xp = backend.xp

        def init(shape, fan_in, relu):
            scale = math.sqrt((2.0 if relu else 1.0) / fan_in) if weight_scale == "he" \
                else weight_scale
            return backend.randn(rng, *shape, dtype=dtype, scale=scale)

        self.params = {}
        self.bn_params = []
        i = 0
        for filters, pool in self.blocks:
            i += 1
            self.params[f"W{i}"] = init((filters, C, 3, 3), C * 9, relu=True)
            self.params[f"b{i}"] = xp.zeros(filters, dtype=dtype)
            C = filters
            if pool:
                if H < 2 or W < 2:
                    raise ValueError(f"{name}: too many 'pool's for input {tuple(input_dim)}: "
                                     f"the image shrinks to nothing.")
                if H % 2 or W % 2:
                    raise ValueError(f"{name}: input {tuple(input_dim)} cannot be pooled "
                                     f"2x2 stride 2 that often: H and W must be divisible by "
                                     f"2 ** (number of pools).")
                H, W = H // 2, W // 2
        dims = [C * H * W, *hidden_dims, num_classes]
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            i += 1
            self.params[f"W{i}"] = init((d_in, d_out), d_in, relu=i < self.num_layers)
            self.params[f"b{i}"] = xp.zeros(d_out, dtype=dtype)
        if normalization == "batchnorm":
            sizes = [f for f, _ in self.blocks] + hidden_dims
            for j, size in enumerate(sizes, start=1):
                self.params[f"gamma{j}"] = xp.ones(size, dtype=dtype)
                self.params[f"beta{j}"] = xp.zeros(size, dtype=dtype)
                self.bn_params.append(new_bn_param(size, dtype))
        self._init_dropout(dropout_keep_ratio, rng)

    def _state_arrays(self):
        return bn_state(self.bn_params)

    def _set_state_arrays(self, arrays):
        set_bn_state(self.bn_params, arrays)

    # ---- the network as a function of its input: what visualization and style transfer use
    def _conv_stack_forward(self, X, mode, num_blocks):
        """Run the first num_blocks conv blocks; returns (outputs of each block, caches)."""
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        p, f, bn = self.params, self.layers, self.normalization == "batchnorm"
        outputs, caches = [], []
        h = X
        for i, (_, pool) in enumerate(self.blocks[:num_blocks], start=1):
            # conv - [spatial batch norm] - ReLU - [2x2 max pool], each step's cache kept in order
            h, conv_cache = f.conv_forward(h, p[f"W{i}"], p[f"b{i}"], self.conv_param)
            bn_cache = pool_cache = None
            if bn:
                h, bn_cache = f.spatial_batchnorm_forward(h, p[f"gamma{i}"], p[f"beta{i}"],
                                                          self.bn_params[i - 1])
            h, relu_cache = f.relu_forward(h)
            if pool:
                h, pool_cache = f.max_pool_forward(h, self.pool_param)
            outputs.append(h)
            caches.append((conv_cache, bn_cache, relu_cache, pool_cache))
        return outputs, caches

    def _conv_stack_backward(self, douts, caches, grads):
        """Backward through the conv blocks of `caches`. douts[i] is the upstream gradient on
        block i+1's output (None: none). Fills grads (W, b, gamma, beta); returns dX."""
        f, bn = self.layers, self.normalization == "batchnorm"
        dh = None
        for i in range(len(caches), 0, -1):
            if douts[i - 1] is not None:
                dh = douts[i - 1] if dh is None else dh + douts[i - 1]
            if dh is None:
                continue
            conv_cache, bn_cache, relu_cache, pool_cache = caches[i - 1]
            if self.blocks[i - 1][1]:
                dh = f.max_pool_backward(dh, pool_cache)
            dh = f.relu_backward(dh, relu_cache)
            if bn:
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = f.spatial_batchnorm_backward(dh, bn_cache)
            dh, grads[f"W{i}"], grads[f"b{i}"] = f.conv_backward(dh, conv_cache)
        return dh

    def forward(self, X, mode="test"):
        """Class scores (N, num_classes) and a cache for `backward`.

        mode='test' (the default) uses batch-norm running statistics and no dropout: the
        network as a fixed function of its input, which is what saliency maps, fooling images
        and adversarial examples differentiate.
        """
        check_images("ConvNet", X, self.input_dim)
        X = X.astype(self.dtype, copy=False)
        if mode not in ("train", "test"):
            raise ValueError(f"ConvNet.forward: mode must be 'train' or 'test', got {mode!r}.")
        dropout_param = self._dropout_param(mode) if self.use_dropout else None
        p, f, bn = self.params, self.layers, self.normalization == "batchnorm"
        outputs, conv_caches = self._conv_stack_forward(X, mode, self.num_conv)
        h = outputs[-1]
        fc_caches = []
        for i in range(self.num_conv + 1, self.num_layers):
            # affine - [batch norm] - ReLU - [dropout]
            h, fc_cache = f.affine_forward(h, p[f"W{i}"], p[f"b{i}"])
            bn_cache = drop_cache = None
            if bn:
                h, bn_cache = f.batchnorm_forward(h, p[f"gamma{i}"], p[f"beta{i}"],
                                                  self.bn_params[i - 1])
            h, relu_cache = f.relu_forward(h)
            if self.use_dropout:
                h, drop_cache = f.dropout_forward(h, dropout_param)
            fc_caches.append((fc_cache, bn_cache, relu_cache, drop_cache))
        L = self.num_layers
        scores, last_cache = f.affine_forward(h, p[f"W{L}"], p[f"b{L}"])
        return scores, (conv_caches, fc_caches, last_cache)

    def backward(self, dscores, cache):
        """Given dscores = dLoss/dscores (N, num_classes) and forward's cache, return
        (dX, grads): the gradient on the input images and on every parameter (no
        regularization term: `loss` adds it)."""
        conv_caches, fc_caches, last_cache = cache
        f, bn, L = self.layers, self.normalization == "batchnorm", self.num_layers
        grads = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = f.affine_backward(dscores, last_cache)
        for i in range(L - 1, self.num_conv, -1):
            fc_cache, bn_cache, relu_cache, drop_cache = fc_caches[i - self.num_conv - 1]
            if self.use_dropout:
                dh = f.dropout_backward(dh, drop_cache)
            dh = f.relu_backward(dh, relu_cache)
            if bn:
                dh, grads[f"gamma{i}"], grads[f"beta{i}"] = f.batchnorm_backward(dh, bn_cache)
            dh, grads[f"W{i}"], grads[f"b{i}"] = f.affine_backward(dh, fc_cache)
        # affine_backward returns dx in its input's shape, (N, C, H, W) for the conv stack.
        douts = [None] * (self.num_conv - 1) + [dh]
        dX = self._conv_stack_backward(douts, conv_caches, grads)
        return dX, grads

    def conv_features(self, X, num_blocks=None):
        """Outputs of the first num_blocks conv blocks (default: all), in test mode, and a
        cache for `conv_features_backward`.

        The conv stack is fully convolutional, so X may have any height and width divisible
        by 2 ** (pools among those blocks), not only the training size: style transfer runs it
        on photos.
        """
        num_blocks = self.num_conv if num_blocks is None else num_blocks
        if not 1 <= num_blocks <= self.num_conv:
            raise ValueError(f"ConvNet.conv_features: num_blocks must be in 1..{self.num_conv}, "
                             f"got {num_blocks}.")
        if X.ndim != 4 or X.shape[1] != self.input_dim[0]:
            raise ValueError(f"ConvNet.conv_features: X must be (N, {self.input_dim[0]}, H, W) "
                             f"images, got shape {tuple(X.shape)}.")
        pools = sum(pool for _, pool in self.blocks[:num_blocks])
        if X.shape[2] % 2 ** pools or X.shape[3] % 2 ** pools or min(X.shape[2:]) == 0:
            raise ValueError(f"ConvNet.conv_features: {pools} 2x2 poolings need a height and "
                             f"width divisible by {2 ** pools}, got {X.shape[2]}x{X.shape[3]}.")
        return self._conv_stack_forward(X.astype(self.dtype, copy=False), "test", num_blocks)

    def conv_features_backward(self, dfeatures, cache):
        """dX from upstream gradients on the outputs of conv_features: one entry per block
        returned there, each an array of that output's shape or None (no loss on it)."""
        if len(dfeatures) != len(cache):
            raise ValueError(f"ConvNet.conv_features_backward: expected {len(cache)} gradients "
                             f"(one per block, None where there is none), got {len(dfeatures)}.")
        if all(d is None for d in dfeatures):
            raise ValueError("ConvNet.conv_features_backward: every gradient is None.")
        return self._conv_stack_backward(list(dfeatures), cache, {})

    def loss(self, X, y=None):
        """Scores (N, num_classes) in test mode if y is None, else (loss, grads) in train mode."""
        if y is None:
            return self.forward(X, mode="test")[0]
        scores, cache = self.forward(X, mode="train")
        check_labels("ConvNet", y, X.shape[0], self.num_classes)
        p, L = self.params, self.num_layers
        xp = backend.array_module(scores)
        loss, dscores = self.layers.softmax_loss(scores, y)
        loss = loss + 0.5 * self.reg * sum(xp.sum(p[f"W{i}"] ** 2) for i in range(1, L + 1))
        _, grads = self.backward(dscores, cache)
        for i in range(1, L + 1):
            grads[f"W{i}"] += self.reg * p[f"W{i}"]
        return loss, grads

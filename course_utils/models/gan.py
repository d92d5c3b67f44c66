"""Generative adversarial networks: generators and discriminators (fully connected and
DCGAN-style convolutional) plus the GAN losses.

Unlike the classifiers, GAN parts expose the two halves of backpropagation separately,

    out, cache = net.forward(x)            dx, grads = net.backward(dout, cache)

because a training loop must push the discriminator's gradient *through* the discriminator
into the generator:

    fake, g_cache = G.forward(z)
    logits_fake, d_cache = D.forward(fake)
    loss, dlogits = generator_loss(logits_fake)
    dfake, _ = D.backward(dlogits, d_cache)      # D's own grads are ignored in this step
    _, g_grads = G.backward(dfake, g_cache)

Each loss returns (loss, gradients with respect to its inputs).
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend, layers as library
from ..fast_layers import (conv_backward_fast, conv_forward_fast,
                           conv_transpose_backward_fast, conv_transpose_forward_fast)
from ..layers import (affine_backward, affine_forward, batchnorm_backward, batchnorm_forward,
                      relu_backward, relu_forward, sigmoid_forward, spatial_batchnorm_backward,
                      spatial_batchnorm_forward)
from .base import Model, bn_state, layer_functions, new_bn_param, set_bn_state

# The activation functions the GAN parts call, by name; `layers=` replaces any of them (e.g.
# with a notebook's own, where the library's are a later notebook's exercise).
LAYERS = {
    "leaky_relu_forward": library.leaky_relu_forward,
    "leaky_relu_backward": library.leaky_relu_backward,
    "tanh_forward": library.tanh_forward, "tanh_backward": library.tanh_backward,
}

# With 4x4 kernels, stride 2 and pad 1, a convolution halves H and W; a transposed one
# doubles them.
HALVE_OR_DOUBLE = {"stride": 2, "pad": 1}


def _require_float(where, name, a):
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{where}: {name} must be floating point, got dtype {a.dtype}.")


def _init_scale(weight_scale, fan_in, gain):
    """weight_scale if given, else sqrt(gain / fan_in) (gain 2 before (leaky) ReLU, 1 before
    tanh or a logit)."""
    return math.sqrt(gain / fan_in) if weight_scale is None else weight_scale


# ----------------------------------------------------------------------------------------
# Fully connected
# ----------------------------------------------------------------------------------------


class _MLP(Model):
    """{affine - leaky ReLU} x len(hidden_dims) - affine - [output nonlinearity]."""

    _name = "MLP"

    def __init__(self, dims, alpha, weight_scale, dtype, seed, out_gain, layers=None):
        if min(dims) < 1:
            raise ValueError(f"{self._name}: every layer size must be >= 1, got {dims}.")
        self.layers = layer_functions(self._name, LAYERS, layers)
        self.dims, self.alpha, self.dtype = list(dims), alpha, dtype
        self.num_layers = len(dims) - 1
        rng = backend.default_rng(seed)
        self.params = {}
        for i in range(1, self.num_layers + 1):
            gain = out_gain if i == self.num_layers else 2.0
            scale = _init_scale(weight_scale, dims[i - 1], gain)
            self.params[f"W{i}"] = backend.randn(rng, dims[i - 1], dims[i], dtype=dtype,
                                                 scale=scale)
            self.params[f"b{i}"] = backend.xp.zeros(dims[i], dtype=dtype)

    def _forward_layers(self, x):
        D = 1
        for d in x.shape[1:]:
            D *= d
        _require_float(f"{self._name}.forward", "x", x)
        if x.ndim < 2 or D != self.dims[0]:
            raise ValueError(f"{self._name}.forward: x must be (N, ...) with {self.dims[0]} "
                             f"values per example, got shape {tuple(x.shape)}.")
        h = x.astype(self.dtype, copy=False)
        caches = []
        for i in range(1, self.num_layers + 1):
            h, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            act_cache = None
            if i < self.num_layers:
                h, act_cache = self.layers.leaky_relu_forward(h, self.alpha)
            caches.append((affine_cache, act_cache))
        return h, caches

    def _backward_layers(self, dout, caches):
        grads = {}
        for i in range(self.num_layers, 0, -1):
            affine_cache, act_cache = caches[i - 1]
            if act_cache is not None:
                dout = self.layers.leaky_relu_backward(dout, act_cache)
            dout, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(dout, affine_cache)
        return dout, grads


class GeneratorFC(_MLP):
    """Noise (N, noise_dim) -> samples (N, output_dim) in (-1, 1).

    {affine - leaky ReLU(alpha)} per hidden layer, then affine - tanh (tanh matches data
    scaled to [-1, 1]). Params Wi, bi for i = 1..len(hidden_dims) + 1. Default init:
    N(0, 2 / fan_in) before leaky ReLU, N(0, 1 / fan_in) before tanh; or N(0, weight_scale^2).
    layers: replacements for the activation functions it calls (names in LAYERS).
    """

    _name = "GeneratorFC"

    def __init__(self, noise_dim, hidden_dims, output_dim, alpha=0.01, weight_scale=None,
                 dtype=np.float32, seed=None, layers=None):
        super().__init__([noise_dim, *hidden_dims, output_dim], alpha, weight_scale, dtype,
                         seed, out_gain=1.0, layers=layers)

    def forward(self, z, mode="train"):
        """z (N, noise_dim) -> (samples (N, output_dim), cache). `mode` is accepted for the
        same interface as GeneratorDC; nothing here depends on it."""
        pre, caches = self._forward_layers(z)
        out, tanh_cache = self.layers.tanh_forward(pre)
        return out, (caches, tanh_cache)

    def backward(self, dout, cache):
        """dout (N, output_dim) -> (dz (N, noise_dim), grads keyed like params)."""
        caches, tanh_cache = cache
        return self._backward_layers(self.layers.tanh_backward(dout, tanh_cache), caches)


class DiscriminatorFC(_MLP):
    """Samples (N, ...) with input_dim values each -> real/fake logits (N,).

    {affine - leaky ReLU(alpha)} per hidden layer, then an affine layer to one logit per
    example (no sigmoid: the losses take logits, which is numerically safer).
    layers: replacements for the activation functions it calls (names in LAYERS).
    """

    _name = "DiscriminatorFC"

    def __init__(self, input_dim, hidden_dims, alpha=0.01, weight_scale=None,
                 dtype=np.float32, seed=None, layers=None):
        super().__init__([input_dim, *hidden_dims, 1], alpha, weight_scale, dtype, seed,
                         out_gain=1.0, layers=layers)

    def forward(self, x, mode="train"):
        """x (N, ...) -> (logits (N,), cache)."""
        out, caches = self._forward_layers(x)
        return out[:, 0], caches

    def backward(self, dlogits, cache):
        """dlogits (N,) -> (dx shaped like x, grads keyed like params)."""
        return self._backward_layers(dlogits[:, None], cache)


# ----------------------------------------------------------------------------------------
# DCGAN
# ----------------------------------------------------------------------------------------


class GeneratorDC(Model):
    """DCGAN-style generator (Radford et al. 2016): noise -> images in (-1, 1).

    With k = len(channels) and output_shape (C, H, W), H and W must be divisible by 2^k;
    s = (H / 2^k, W / 2^k) is the starting size:
        affine noise_dim -> channels[0] * sH * sW - batchnorm - ReLU - reshape
        {4x4 transposed conv, stride 2, pad 1 (doubles H, W) - spatial batchnorm - ReLU}
            for channels[0] -> channels[1] -> ... -> channels[-1]
        4x4 transposed conv, stride 2, pad 1, channels[-1] -> C - tanh
    Params: W1, b1 (affine), Wi, bi (i >= 2, transposed convs with w (C_in, C_out, 4, 4)),
    gammai, betai for every layer but the last. Batch-norm running statistics live in
    self.bn_params (saved with the model). Default init N(0, weight_scale^2) with 0.02 as in
    the DCGAN paper. layers: replacements for the activation functions it calls (names in
    LAYERS).
    """

    def __init__(self, noise_dim, output_shape=(1, 28, 28), channels=(128, 64),
                 weight_scale=0.02, dtype=np.float32, seed=None, layers=None):
        C, H, W = output_shape
        k = len(channels)
        if k < 1 or H % 2**k or W % 2**k:
            raise ValueError(f"GeneratorDC: output_shape {tuple(output_shape)} needs H and W "
                             f"divisible by 2^len(channels) = {2**k} (each transposed conv "
                             f"doubles the size), with at least one channel count.")
        self.layers = layer_functions("GeneratorDC", LAYERS, layers)
        self.noise_dim, self.output_shape = noise_dim, tuple(output_shape)
        self.channels, self.dtype = list(channels), dtype
        self.start = (channels[0], H // 2**k, W // 2**k)
        rng = backend.default_rng(seed)
        xp = backend.xp

        def randn(*shape):
            return backend.randn(rng, *shape, dtype=dtype, scale=weight_scale)

        flat = int(np.prod(self.start))
        self.params = {"W1": randn(noise_dim, flat), "b1": xp.zeros(flat, dtype=dtype),
                       "gamma1": xp.ones(flat, dtype=dtype), "beta1": xp.zeros(flat, dtype=dtype)}
        self.bn_params = [new_bn_param(flat, dtype)]
        chans = [*channels, C]
        self.num_layers = len(chans)  # one affine + k transposed convs
        for i in range(2, self.num_layers + 1):
            c_in, c_out = chans[i - 2], chans[i - 1]
            self.params[f"W{i}"] = randn(c_in, c_out, 4, 4)
            self.params[f"b{i}"] = xp.zeros(c_out, dtype=dtype)
            if i < self.num_layers:
                self.params[f"gamma{i}"] = xp.ones(c_out, dtype=dtype)
                self.params[f"beta{i}"] = xp.zeros(c_out, dtype=dtype)
                self.bn_params.append(new_bn_param(c_out, dtype))

    def _state_arrays(self):
        return bn_state(self.bn_params)

    def _set_state_arrays(self, arrays):
        set_bn_state(self.bn_params, arrays)

    def forward(self, z, mode="train"):
        """z (N, noise_dim) -> (images (N, C, H, W), cache). mode 'train' normalises with
        batch statistics (and updates the running ones), 'test' with the running ones."""
        _require_float("GeneratorDC.forward", "z", z)
        if z.ndim != 2 or z.shape[1] != self.noise_dim:
            raise ValueError(f"GeneratorDC.forward: z must be (N, {self.noise_dim}), got shape "
                             f"{tuple(z.shape)}.")
        if mode not in ("train", "test"):
            raise ValueError(f"GeneratorDC.forward: mode must be 'train' or 'test', got {mode!r}.")
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        p = self.params
        N = z.shape[0]
        h, c_aff = affine_forward(z.astype(self.dtype, copy=False), p["W1"], p["b1"])
        h, c_bn = batchnorm_forward(h, p["gamma1"], p["beta1"], self.bn_params[0])
        h, c_relu = relu_forward(h)
        caches = [(c_aff, c_bn, c_relu)]
        h = h.reshape(N, *self.start)
        for i in range(2, self.num_layers + 1):
            h, c_conv = conv_transpose_forward_fast(h, p[f"W{i}"], p[f"b{i}"], HALVE_OR_DOUBLE)
            if i < self.num_layers:
                h, c_bn = spatial_batchnorm_forward(h, p[f"gamma{i}"], p[f"beta{i}"],
                                                    self.bn_params[i - 1])
                h, c_act = relu_forward(h)
            else:
                c_bn = None
                h, c_act = self.layers.tanh_forward(h)
            caches.append((c_conv, c_bn, c_act))
        return h, caches

    def backward(self, dout, cache):
        """dout (N, C, H, W) -> (dz (N, noise_dim), grads keyed like params)."""
        grads = {}
        for i in range(self.num_layers, 1, -1):
            c_conv, c_bn, c_act = cache[i - 1]
            if c_bn is None:
                dout = self.layers.tanh_backward(dout, c_act)
            else:
                dout = relu_backward(dout, c_act)
                dout, grads[f"gamma{i}"], grads[f"beta{i}"] = spatial_batchnorm_backward(dout,
                                                                                         c_bn)
            dout, grads[f"W{i}"], grads[f"b{i}"] = conv_transpose_backward_fast(dout, c_conv)
        c_aff, c_bn, c_relu = cache[0]
        dout = relu_backward(dout.reshape(dout.shape[0], -1), c_relu)
        dout, grads["gamma1"], grads["beta1"] = batchnorm_backward(dout, c_bn)
        dz, grads["W1"], grads["b1"] = affine_backward(dout, c_aff)
        return dz, grads


class DiscriminatorDC(Model):
    """DCGAN-style discriminator: images (N, C, H, W) -> logits (N,).

        {4x4 conv, stride 2, pad 1 (halves H, W) - leaky ReLU(alpha)} per entry of channels
        affine to one logit
    Strided convolutions replace pooling, as in DCGAN. H and W must be divisible by
    2^len(channels). Params Wi, bi (convs, then the final affine). Init N(0, weight_scale^2).
    layers: replacements for the activation functions it calls (names in LAYERS).
    """

    def __init__(self, input_shape=(1, 28, 28), channels=(64, 128), alpha=0.2,
                 weight_scale=0.02, dtype=np.float32, seed=None, layers=None):
        C, H, W = input_shape
        k = len(channels)
        if k < 1 or H % 2**k or W % 2**k:
            raise ValueError(f"DiscriminatorDC: input_shape {tuple(input_shape)} needs H and W "
                             f"divisible by 2^len(channels) = {2**k} (each strided conv halves "
                             f"the size), with at least one channel count.")
        self.layers = layer_functions("DiscriminatorDC", LAYERS, layers)
        self.input_shape, self.alpha, self.dtype = tuple(input_shape), alpha, dtype
        self.num_layers = k + 1
        rng = backend.default_rng(seed)
        xp = backend.xp
        chans = [C, *channels]
        self.params = {}
        for i in range(1, k + 1):
            self.params[f"W{i}"] = backend.randn(rng, chans[i], chans[i - 1], 4, 4, dtype=dtype,
                                                 scale=weight_scale)
            self.params[f"b{i}"] = xp.zeros(chans[i], dtype=dtype)
        flat = channels[-1] * (H // 2**k) * (W // 2**k)
        L = self.num_layers
        self.params[f"W{L}"] = backend.randn(rng, flat, 1, dtype=dtype, scale=weight_scale)
        self.params[f"b{L}"] = xp.zeros(1, dtype=dtype)

    def forward(self, x, mode="train"):
        """x (N, C, H, W) -> (logits (N,), cache)."""
        _require_float("DiscriminatorDC.forward", "x", x)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"DiscriminatorDC.forward: x must be (N, {self.input_shape}), got "
                             f"shape {tuple(x.shape)}.")
        p, L = self.params, self.num_layers
        h = x.astype(self.dtype, copy=False)
        caches = []
        for i in range(1, L):
            h, c_conv = conv_forward_fast(h, p[f"W{i}"], p[f"b{i}"], HALVE_OR_DOUBLE)
            h, c_act = self.layers.leaky_relu_forward(h, self.alpha)
            caches.append((c_conv, c_act))
        logits, c_aff = affine_forward(h, p[f"W{L}"], p[f"b{L}"])
        caches.append(c_aff)
        return logits[:, 0], caches

    def backward(self, dlogits, cache):
        """dlogits (N,) -> (dx (N, C, H, W), grads keyed like params)."""
        L = self.num_layers
        grads = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dlogits[:, None], cache[L - 1])
        for i in range(L - 1, 0, -1):
            c_conv, c_act = cache[i - 1]
            dh = self.layers.leaky_relu_backward(dh, c_act)
            dh, grads[f"W{i}"], grads[f"b{i}"] = conv_backward_fast(dh, c_conv)
        return dh, grads


# ----------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------


# student-writes: assignment3/gans
def bce_with_logits(logits, targets):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], averaged over all
    entries (any shape, the same for both).

    loss = mean( -t log sigmoid(s) - (1 - t) log(1 - sigmoid(s)) )
         = mean( max(s, 0) - s t + log(1 + exp(-|s|)) )     (never overflows)
    dlogits = (sigmoid(s) - t) / (number of entries).
    Returns (loss, dlogits).
    """
    _require_float("bce_with_logits", "logits", logits)
    _require_float("bce_with_logits", "targets", targets)
    if logits.shape != targets.shape:
        raise ValueError(f"bce_with_logits: logits {tuple(logits.shape)} and targets "
                         f"{tuple(targets.shape)} must have the same shape.")
    xp = backend.array_module(logits, targets)
    n = logits.size
    loss = (xp.maximum(logits, 0) - logits * targets + xp.log1p(xp.exp(-xp.abs(logits)))).sum() / n
    dlogits = (sigmoid_forward(logits)[0] - targets) / n
    return loss, dlogits


# student-writes: assignment3/gans
def discriminator_loss(logits_real, logits_fake):
    """The discriminator's loss: BCE(real, 1) + BCE(fake, 0), each averaged over its batch.
    Returns (loss, (dlogits_real, dlogits_fake))."""
    xp = backend.array_module(logits_real, logits_fake)
    loss_real, d_real = bce_with_logits(logits_real, xp.ones_like(logits_real))
    loss_fake, d_fake = bce_with_logits(logits_fake, xp.zeros_like(logits_fake))
    return loss_real + loss_fake, (d_real, d_fake)


# student-writes: assignment3/gans
def generator_loss(logits_fake):
    """The non-saturating generator loss BCE(fake, 1) = -mean log D(G(z)) (Goodfellow et al.
    2014: stronger gradients early on than minimising log(1 - D(G(z)))).
    Returns (loss, dlogits_fake)."""
    xp = backend.array_module(logits_fake)
    return bce_with_logits(logits_fake, xp.ones_like(logits_fake))


def _require_batch(fn, **arrays):
    for name, a in arrays.items():
        _require_float(fn, name, a)
        if a.ndim < 1 or a.size == 0:
            raise ValueError(f"{fn}: {name} must be a nonempty batch of scores, got shape "
                             f"{tuple(a.shape)}.")


# student-writes: assignment3/gans
def ls_discriminator_loss(scores_real, scores_fake):
    """Least-squares GAN discriminator loss (Mao et al. 2017):
        0.5 mean((D(x) - 1)^2) + 0.5 mean(D(G(z))^2).
    Returns (loss, (dscores_real, dscores_fake))."""
    _require_batch("ls_discriminator_loss", scores_real=scores_real, scores_fake=scores_fake)
    real_err = scores_real - 1
    loss = 0.5 * (real_err**2).mean() + 0.5 * (scores_fake**2).mean()
    return loss, (real_err / scores_real.size, scores_fake / scores_fake.size)


# student-writes: assignment3/gans
def ls_generator_loss(scores_fake):
    """Least-squares GAN generator loss 0.5 mean((D(G(z)) - 1)^2).
    Returns (loss, dscores_fake)."""
    _require_batch("ls_generator_loss", scores_fake=scores_fake)
    err = scores_fake - 1
    return 0.5 * (err**2).mean(), err / scores_fake.size

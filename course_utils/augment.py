"""Data augmentation for NCHW image minibatches: label-preserving random changes that make a
small training set look bigger, applied afresh to every minibatch.

Each function takes a batch X (N, C, H, W) on any backend and a numpy Generator `rng` that
draws the random choices on the host (so a seed reproduces a run on CPU and GPU alike), and
returns a new batch on X's backend; X itself is never modified.

Use them with the Solver:

    Solver(model, data, augment=compose(random_flip, random_crop), ...)

The Solver calls augment(X_batch, rng) on training minibatches only, never on the data it
measures accuracy on.
"""
from __future__ import annotations

import numpy

from .backend import array_module


def _check_batch(fn, X):
    if getattr(X, "ndim", None) != 4:
        raise ValueError(f"{fn}: expects an image batch shaped (N, C, H, W), got shape "
                         f"{getattr(X, 'shape', type(X).__name__)}.")


# student-writes: extras/training_craft
def random_flip(X, rng, p=0.5):
    """Mirror each image left-right with probability p (a cat facing left is still a cat)."""
    _check_batch("random_flip", X)
    xp = array_module(X)
    flip = xp.asarray(rng.random(X.shape[0]) < p)  # a few bytes to the device, if any
    return xp.where(flip[:, None, None, None], X[..., ::-1], X)


# student-writes: extras/training_craft
def random_crop(X, rng, pad=4):
    """Shift each image by up to `pad` pixels in each direction, filling the uncovered border
    with zeros: pad by `pad`, then cut a random H x W window (the usual CIFAR-10 recipe)."""
    _check_batch("random_crop", X)
    if pad < 0:
        raise ValueError(f"random_crop: pad must be >= 0, got {pad}.")
    if pad == 0:
        return X.copy()
    xp = array_module(X)
    N, C, H, W = X.shape
    padded = xp.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, size=N)
    dx = rng.integers(0, 2 * pad + 1, size=N)
    # One gather for the whole batch: row index dy[n] + i and column index dx[n] + j.
    rows = xp.asarray(dy[:, None] + numpy.arange(H)[None, :])   # (N, H)
    cols = xp.asarray(dx[:, None] + numpy.arange(W)[None, :])   # (N, W)
    n = xp.arange(N)[:, None, None, None]
    c = xp.arange(C)[None, :, None, None]
    return padded[n, c, rows[:, None, :, None], cols[:, None, None, :]]


# student-writes: extras/training_craft
def color_jitter(X, rng, brightness=0.2, contrast=0.2):
    """Scale each image's contrast around its mean by a factor in [1 - contrast, 1 + contrast]
    and shift its brightness by up to `brightness` times its standard deviation."""
    _check_batch("color_jitter", X)
    xp = array_module(X)
    N = X.shape[0]
    c = xp.asarray(rng.uniform(1 - contrast, 1 + contrast, size=(N, 1, 1, 1)), dtype=X.dtype)
    b = xp.asarray(rng.uniform(-brightness, brightness, size=(N, 1, 1, 1)), dtype=X.dtype)
    mean = X.mean(axis=(1, 2, 3), keepdims=True)
    std = X.std(axis=(1, 2, 3), keepdims=True)
    return (X - mean) * c + mean + b * std


# student-writes: extras/training_craft
def gaussian_noise(X, rng, std=0.05):
    """Add independent N(0, (std * image std)^2) noise to every pixel."""
    _check_batch("gaussian_noise", X)
    xp = array_module(X)
    noise = xp.asarray(rng.standard_normal(X.shape), dtype=X.dtype)
    return X + std * X.std(axis=(1, 2, 3), keepdims=True) * noise


def compose(*steps):
    """One augmentation that applies `steps` in order: compose(random_flip, random_crop)."""
    for step in steps:
        if not callable(step):
            raise ValueError(f"compose: every step must be a function (X, rng) -> X, "
                             f"got {step!r}.")

    def augment(X, rng):
        for step in steps:
            X = step(X, rng)
        return X

    augment.__name__ = "+".join(getattr(s, "__name__", "step") for s in steps)
    return augment

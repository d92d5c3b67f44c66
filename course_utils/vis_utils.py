"""Pictures of data, weights and training curves.

matplotlib is imported inside the plotting functions, so importing this module is cheap and
works on machines without a display. Every function accepts numpy or cupy arrays.
Images may come as NHWC (N, H, W, C) or NCHW (N, C, H, W) with C in (1, 3); see
``to_nhwc``.
"""
from __future__ import annotations

from math import ceil, sqrt

import numpy as np

from .backend import to_numpy


def to_nhwc(X):
    """Images as a numpy (N, H, W, C) array.

    (N, C, H, W) with C in (1, 3) and a last axis that is not 1 or 3 is transposed;
    (N, H, W) grayscale gets a channel axis.
    """
    X = to_numpy(X)
    if X.ndim == 3:
        return X[..., None]
    if X.ndim != 4:
        raise ValueError(f"expected a batch of images (N, H, W, C) or (N, C, H, W), got shape "
                         f"{X.shape}")
    if X.shape[1] in (1, 3) and X.shape[3] not in (1, 3):
        X = X.transpose(0, 2, 3, 1)
    return X


def visualize_grid(Xs, ubound=255.0, padding=1):
    """Tile a batch of images into one picture, each image stretched to [0, ubound].

    Xs: (N, H, W, C) (or NCHW, see ``to_nhwc``). The images fill a square grid row by row,
    with ``padding`` pixels of 0 between them; each image is rescaled on its own, so the
    grid shows patterns (e.g. learned filters) whatever their scale.
    Returns float64 (G*H + (G-1)*padding, G*W + (G-1)*padding, C), G = ceil(sqrt(N)).
    """
    Xs = to_nhwc(Xs).astype(np.float64)
    N, H, W, C = Xs.shape
    G = int(ceil(sqrt(N)))
    grid = np.zeros((G * H + (G - 1) * padding, G * W + (G - 1) * padding, C))
    for i, img in enumerate(Xs):
        r, c = divmod(i, G)
        low, high = img.min(), img.max()
        scaled = ubound * (img - low) / (high - low) if high > low else np.zeros_like(img)
        y, x = r * (H + padding), c * (W + padding)
        grid[y:y + H, x:x + W] = scaled
    return grid


def vis_grid(Xs, padding=1):
    """Tile a batch of images into one picture with a shared scale.

    Unlike ``visualize_grid`` the images keep their relative brightness: the whole grid
    (padding, which is filled with the smallest value, included) is stretched to [0, 1].
    Returns float64 (G*H + (G+1)*padding, G*W + (G+1)*padding, C) with a border all round.
    """
    Xs = to_nhwc(Xs).astype(np.float64)
    N, H, W, C = Xs.shape
    G = int(ceil(sqrt(N)))
    low = Xs.min() if N else 0.0
    grid = np.full((G * H + (G + 1) * padding, G * W + (G + 1) * padding, C), low)
    for i, img in enumerate(Xs):
        r, c = divmod(i, G)
        y, x = padding + r * (H + padding), padding + c * (W + padding)
        grid[y:y + H, x:x + W] = img
    span = grid.max() - grid.min()
    return (grid - grid.min()) / span if span > 0 else np.zeros_like(grid)


def _imshow(ax, image, ubound=255.0):
    """Show an (H, W, C) image with values 0..ubound; one channel is drawn in gray."""
    image = np.clip(np.asarray(image, np.float64) / ubound, 0, 1)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])


def _new_axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def show_images_by_class(X, y, class_names, samples_per_class=7, ax=None, seed=0,
                         ubound=None):
    """Show a few random training images of each class: one column per class.

    X: images (N, H, W, C) or (N, C, H, W); y: labels (N,). Mean-subtracted images are
    fine: the whole grid is stretched to the visible range unless ``ubound`` (e.g. 255) is
    given. Returns the matplotlib Axes.
    """
    X, y = to_nhwc(X).astype(np.float64), to_numpy(y)
    rng = np.random.default_rng(seed)
    _, H, W, C = X.shape
    k, pad = len(class_names), 2
    canvas = np.zeros((samples_per_class * (H + pad) - pad, k * (W + pad) - pad, C))
    low, high = (0.0, ubound) if ubound else (X.min(), X.max())
    for c in range(k):
        idx = np.flatnonzero(y == c)
        picks = rng.choice(idx, size=min(samples_per_class, len(idx)), replace=False)
        for r, i in enumerate(picks):
            canvas[r * (H + pad):r * (H + pad) + H, c * (W + pad):c * (W + pad) + W] = X[i]
    canvas = (canvas - low) / (high - low) if high > low else canvas
    ax = _new_axes(ax, (max(k, 4), samples_per_class * 1.1))
    _imshow(ax, canvas, ubound=1.0)
    ax.set_xticks([c * (W + pad) + W / 2 for c in range(k)])
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.xaxis.set_ticks_position("top")
    ax.tick_params(axis="x", length=0)
    return ax


def show_net_weights(W, image_shape=(3, 32, 32), ax=None, padding=3):
    """Show a network's first-layer weights as images, one per hidden unit (or filter).

    W: fully connected weights (D, H) with D = prod(image_shape), the layout in which the
    images were flattened (the default (3, 32, 32) is that of ``load_dataset``'s NCHW data;
    pass (32, 32, 3) for NHWC), or conv filters (F, C, HH, WW).
    Each image is stretched to its own range (see ``visualize_grid``). Returns the Axes.
    """
    W = to_numpy(W)
    if W.ndim == 2:
        shape = tuple(image_shape)
        filters = W.T.reshape(-1, *shape)
        if shape[0] in (1, 3) and shape[-1] not in (1, 3):
            filters = filters.transpose(0, 2, 3, 1)
    elif W.ndim == 4:
        filters = W.transpose(0, 2, 3, 1)
    else:
        raise ValueError(f"W should be (D, H) or (F, C, HH, WW), got shape {W.shape}")
    grid = visualize_grid(filters, padding=padding)
    ax = _new_axes(ax, (6, 6))
    _imshow(ax, grid)
    return ax


def plot_curves(histories, xlabel="iteration", ylabel="loss", ax=None, title=None):
    """One line per named series, e.g. {'train': train_acc, 'val': val_acc}.

    histories: dict name -> list (or array) of numbers; the x axis is the position in the
    list. Returns the Axes.
    """
    ax = _new_axes(ax, (7, 4))
    for name, values in histories.items():
        values = np.asarray([float(to_numpy(v)) for v in values])
        ax.plot(np.arange(len(values)), values, label=name,
                marker="o" if len(values) <= 30 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(histories) > 1:
        ax.legend()
    return ax


def show_captions(images, captions, n=None, ncols=4, ubound=255.0):
    """Show images with a caption under each one.

    images: (N, H, W, C) or (N, C, H, W) with values 0..ubound. captions: a list of N
    strings, or a dict of such lists (e.g. {'truth': [...], 'model': [...]}), whose lines
    are stacked under each image. n: how many to show (default all). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    images = to_nhwc(images)
    if not isinstance(captions, dict):
        captions = {"": list(captions)}
    n = len(images) if n is None else min(n, len(images))
    ncols = max(1, min(ncols, n))
    nrows = max(1, ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.4 * nrows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        _imshow(ax, images[i], ubound)
        lines = [f"{k}: {v[i]}" if k else str(v[i]) for k, v in captions.items()]
        ax.set_xlabel("\n".join(lines), fontsize=8, wrap=True)
    fig.tight_layout()
    return fig

"""Hand-made image features: what people used before networks learned their own.

Each feature function takes one image (H, W, 3) with values 0..255 (or a grayscale (H, W))
and returns a 1-D vector. ``extract_features`` runs several of them over a batch and stacks
the results, so a linear classifier can be trained on features instead of raw pixels.

    hog_feature          edges: a histogram of gradient orientations in each 8x8 cell (HOG)
    color_histogram_hsv  colour: a histogram of hue over the whole image
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy


def rgb2gray(im):
    """Luma of an RGB image (H, W, 3) -> (H, W), with the ITU-R 601 weights."""
    im = np.asarray(im, dtype=np.float64)
    if im.ndim == 2:
        return im
    return im[..., :3] @ np.array([0.299, 0.587, 0.114])


def hog_feature(im, cell_size=8, nbins=9):
    """Histogram of oriented gradients (after Dalal and Triggs, 2005), in its simplest form.

    1. Convert to grayscale and take central-difference gradients gx, gy (zero on the border).
    2. Each pixel has a gradient magnitude sqrt(gx^2 + gy^2) and an *unsigned* orientation
       in [0, 180) degrees: a dark-to-bright edge and a bright-to-dark edge look the same.
    3. Split the image into cell_size x cell_size cells (leftover border pixels are ignored).
       In each cell, every pixel adds its magnitude to one of ``nbins`` orientation bins.
       With 9 bins each bin is 20 degrees wide and bin k is centred on 20k degrees, so bin 0
       holds horizontal gradients, i.e. vertical edges, and bin 4 or 5 the horizontal edges.
    4. Divide by the number of pixels per cell (a mean, so the scale does not depend on
       cell_size). There is no block normalisation, unlike the full method.

    im: (H, W, 3) RGB or (H, W) grayscale. Returns float64 of length
    (H // cell_size) * (W // cell_size) * nbins, ordered cell row, cell column, bin.
    """
    gray = rgb2gray(to_numpy(im))
    gy, gx = np.zeros_like(gray), np.zeros_like(gray)
    gy[1:-1, :] = (gray[2:, :] - gray[:-2, :]) / 2
    gx[:, 1:-1] = (gray[:, 2:] - gray[:, :-2]) / 2
    magnitude = np.hypot(gx, gy)
    orientation = np.rad2deg(np.arctan2(gy, gx)) % 180.0          # unsigned: [0, 180)
    width = 180.0 / nbins
    bins = np.floor((orientation + width / 2) / width).astype(np.int64) % nbins

    cy, cx = gray.shape[0] // cell_size, gray.shape[1] // cell_size
    crop = (slice(0, cy * cell_size), slice(0, cx * cell_size))
    votes = np.zeros((cy * cell_size, cx * cell_size, nbins))
    np.put_along_axis(votes, bins[crop][..., None], magnitude[crop][..., None], axis=2)
    # sum each cell's votes: (cy, cell, cx, cell, nbins) -> (cy, cx, nbins)
    hist = votes.reshape(cy, cell_size, cx, cell_size, nbins).sum(axis=(1, 3))
    return (hist / cell_size ** 2).ravel()


def rgb_to_hue(im, xmax=255.0):
    """The hue of each pixel of an RGB image with values 0..xmax, as a fraction of the colour
    circle in [0, 1): red 0, yellow 1/6, green 1/3, cyan 1/2, blue 2/3, magenta 5/6.
    Grays (all channels equal) have no hue; they get 0."""
    rgb = np.asarray(im, dtype=np.float64)[..., :3] / xmax
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hi, lo = rgb.max(axis=-1), rgb.min(axis=-1)
    spread = np.where(hi > lo, hi - lo, 1.0)
    hue = np.select([hi == lo, hi == r, hi == g],
                    [0.0, ((g - b) / spread) % 6.0, (b - r) / spread + 2.0],
                    default=(r - g) / spread + 4.0)
    return (hue / 6.0) % 1.0


def color_histogram_hsv(im, nbin=10, xmin=0, xmax=255, normalized=True):
    """A histogram of the hue of the pixels of an RGB image.

    The hue (the H of HSV, see ``rgb_to_hue``) is rescaled to [xmin, xmax] and counted in
    ``nbin`` equal bins spanning [xmin, xmax]. With ``normalized`` the counts are divided by
    the number of pixels, so the histogram sums to 1 and does not depend on image size.

    im: (H, W, 3) with values 0..xmax. Returns float64 (nbin,).
    """
    hue = rgb_to_hue(to_numpy(im), xmax=xmax) * (xmax - xmin) + xmin
    counts, _ = np.histogram(hue, bins=np.linspace(xmin, xmax, nbin + 1))
    counts = counts.astype(np.float64)
    return counts / counts.sum() if normalized else counts


def extract_features(imgs, feature_fns, verbose=False):
    """Apply each feature function to each image and stack the results.

    imgs: (N, H, W, C) images (numpy or cupy). feature_fns: functions image -> 1-D vector.
    Returns float32 (N, F_1 + ... + F_k): row i holds the features of image i, in the order
    of ``feature_fns``.
    """
    imgs = to_numpy(imgs)
    n = imgs.shape[0]
    if n == 0:
        return np.zeros((0, 0), np.float32)
    first = [np.ravel(fn(imgs[0])) for fn in feature_fns]
    sizes = [len(f) for f in first]
    bounds = np.cumsum([0, *sizes])
    out = np.empty((n, bounds[-1]), np.float32)
    out[0] = np.concatenate(first)
    for i in range(1, n):
        for fn, a, b in zip(feature_fns, bounds[:-1], bounds[1:]):
            out[i, a:b] = np.ravel(fn(imgs[i]))
        if verbose and i % 1000 == 0:
            print(f"extracted features for {i} / {n} images")
    return out

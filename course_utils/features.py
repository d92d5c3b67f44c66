"""Hand-made image features: what people used before networks learned their own.

Each feature function takes one image (H, W, 3) with values 0..255 (or a grayscale (H, W))
and returns a 1-D vector. ``extract_features`` runs several of them over a batch and stacks
the results, so a linear classifier can be trained on features instead of raw pixels.

    hog_feature          edges: a histogram of gradient orientations in each 8x8 cell (HOG)
    color_histogram_hsv  colour: a histogram of hue over the whole image

The one-image functions are the ones to read. ``hog_features`` and ``color_histograms_hsv``
compute the same thing for a whole batch with array operations (a few times faster), and
``extract_features`` uses them on its own when it is given ``hog_feature`` or
``color_histogram_hsv`` (or a ``functools.partial`` of them with keyword arguments).
"""
from __future__ import annotations

import functools

import numpy as np

from .backend import to_numpy


def rgb2gray(im):
    """Luma of an RGB image (H, W, 3) -> (H, W), with the ITU-R 601 weights."""
    im = np.asarray(im, dtype=np.float64)
    if im.ndim == 2:
        return im
    return im[..., :3] @ np.array([0.299, 0.587, 0.114])


# student-writes: assignment1/features
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
    rgb = np.asarray(im, dtype=np.float64)
    r, g, b = rgb[..., 0] / xmax, rgb[..., 1] / xmax, rgb[..., 2] / xmax
    hi = np.maximum(np.maximum(r, g), b)
    lo = np.minimum(np.minimum(r, g), b)
    spread = np.where(hi > lo, hi - lo, 1.0)
    # The largest channel picks the sixth of the circle around its own colour:
    #   red largest:   (g - b) / spread, in [-1, 1] (negative values wrap round to [5, 6))
    #   green largest: (b - r) / spread + 2;   blue largest: (r - g) / spread + 4.
    # A gray pixel takes the red branch with g - b = 0, so its hue is 0.
    red_max, green_max = hi == r, hi == g
    diff = np.where(red_max, g - b, np.where(green_max, b - r, r - g))
    offset = np.where(red_max, 0.0, np.where(green_max, 2.0, 4.0))
    sixths = diff / spread + offset
    sixths = np.where(sixths < 0, sixths + 6.0, sixths)
    return (sixths / 6.0) % 1.0


# student-writes: assignment1/features
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


# student-writes: assignment1/features
def hog_features(imgs, cell_size=8, nbins=9):
    """``hog_feature`` of every image of a batch: (N, H, W, 3) RGB or (N, H, W) grayscale
    -> float64 (N, (H // cell_size) * (W // cell_size) * nbins).

    The same steps with the image index as a leading axis; each pixel's vote goes straight
    into its (image, cell, bin) slot with ``np.bincount``, so memory stays O(N * H * W).
    """
    imgs = np.asarray(to_numpy(imgs), dtype=np.float64)
    if imgs.ndim not in (3, 4):
        raise ValueError(f"hog_features: expected images (N, H, W, 3) or (N, H, W), got shape "
                         f"{imgs.shape}")
    gray = imgs if imgs.ndim == 3 else imgs[..., :3] @ np.array([0.299, 0.587, 0.114])
    n, height, width = gray.shape
    gy, gx = np.zeros_like(gray), np.zeros_like(gray)
    gy[:, 1:-1, :] = (gray[:, 2:, :] - gray[:, :-2, :]) / 2
    gx[:, :, 1:-1] = (gray[:, :, 2:] - gray[:, :, :-2]) / 2
    cy, cx = height // cell_size, width // cell_size
    gx, gy = gx[:, :cy * cell_size, :cx * cell_size], gy[:, :cy * cell_size, :cx * cell_size]
    magnitude = np.hypot(gx, gy)
    orientation = np.rad2deg(np.arctan2(gy, gx)) % 180.0          # unsigned: [0, 180)
    width_deg = 180.0 / nbins
    bins = np.floor((orientation + width_deg / 2) / width_deg).astype(np.int64) % nbins
    # slot of every pixel's vote: ((image * cy + cell row) * cx + cell column) * nbins + bin
    cell = (np.arange(cy * cell_size) // cell_size)[:, None] * cx \
        + (np.arange(cx * cell_size) // cell_size)[None, :]
    slot = ((np.arange(n)[:, None, None] * (cy * cx) + cell) * nbins + bins).ravel()
    hist = np.bincount(slot, weights=magnitude.ravel(), minlength=n * cy * cx * nbins)
    return hist.reshape(n, cy * cx * nbins) / cell_size ** 2


# student-writes: assignment1/features
def color_histograms_hsv(imgs, nbin=10, xmin=0, xmax=255, normalized=True):
    """``color_histogram_hsv`` of every image of a batch (N, H, W, 3) -> float64 (N, nbin).

    Bins are assigned exactly as ``np.histogram`` does with the edges
    ``np.linspace(xmin, xmax, nbin + 1)``: bin i holds edges[i] <= hue < edges[i + 1], and
    the last bin also holds hue == xmax.
    """
    imgs = to_numpy(imgs)
    if imgs.ndim != 4:
        raise ValueError(f"color_histograms_hsv: expected images (N, H, W, 3), got shape "
                         f"{imgs.shape}")
    n = imgs.shape[0]
    hue = (rgb_to_hue(imgs, xmax=xmax) * (xmax - xmin) + xmin).reshape(n, -1)
    edges = np.linspace(xmin, xmax, nbin + 1)
    which = np.searchsorted(edges, hue, side="right") - 1
    which[hue == edges[-1]] = nbin - 1
    inside = (hue >= edges[0]) & (hue <= edges[-1])
    slot = (np.arange(n)[:, None] * nbin + which)[inside]
    counts = np.bincount(slot, minlength=n * nbin).reshape(n, nbin).astype(np.float64)
    if not normalized:
        return counts
    return counts / counts.sum(axis=1, keepdims=True)


# The batch version of each one-image feature function, for extract_features.
_BATCH_VERSIONS = {hog_feature: hog_features, color_histogram_hsv: color_histograms_hsv}


def _batch_version(fn):
    """fn's batch version (with fn's keyword arguments bound), or None if it has none."""
    if isinstance(fn, functools.partial) and not fn.args and fn.func in _BATCH_VERSIONS:
        return functools.partial(_BATCH_VERSIONS[fn.func], **fn.keywords)
    try:
        return _BATCH_VERSIONS.get(fn)
    except TypeError:  # an unhashable callable
        return None


def extract_features(imgs, feature_fns, verbose=False, batch_size=1000):
    """Apply each feature function to each image and stack the results.

    imgs: (N, H, W, C) images (numpy or cupy). feature_fns: functions image -> 1-D vector.
    Returns float32 (N, F_1 + ... + F_k): row i holds the features of image i, in the order
    of ``feature_fns``.

    Images are processed ``batch_size`` at a time. ``hog_feature`` and
    ``color_histogram_hsv`` (also as ``functools.partial(fn, key=value)``) run on a whole
    batch at once through ``hog_features`` / ``color_histograms_hsv``; any other function is
    called once per image. ``verbose`` prints progress after each batch.
    """
    imgs = to_numpy(imgs)
    n = imgs.shape[0]
    if n == 0:
        return np.zeros((0, 0), np.float32)
    sizes = [np.ravel(fn(imgs[0])).size for fn in feature_fns]
    bounds = np.cumsum([0, *sizes])
    batched = [_batch_version(fn) for fn in feature_fns]
    out = np.empty((n, bounds[-1]), np.float32)
    batch_size = max(1, int(batch_size))
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        for fn, batch_fn, a, b in zip(feature_fns, batched, bounds[:-1], bounds[1:]):
            if batch_fn is not None:
                out[start:stop, a:b] = batch_fn(imgs[start:stop])
            else:
                for i in range(start, stop):
                    out[i, a:b] = np.ravel(fn(imgs[i]))
        if verbose:
            print(f"extracted features for {stop} / {n} images")
    return out

"""Tests of the hand-made image features (course_utils.features) and of the picture helpers
that show images and features (course_utils.vis_utils)."""
import math
import subprocess
import sys

import numpy as np
import pytest

from course_utils import features as F
from course_utils import vis_utils as V


def edge_image(vertical=True, at=13, low=20.0, high=230.0, size=32):
    """A gray image with one straight step edge, as RGB (size, size, 3)."""
    im = np.full((size, size), low)
    if vertical:
        im[:, at:] = high
    else:
        im[at:, :] = high
    return np.repeat(im[..., None], 3, axis=2)


# --------------------------------------------------------------------------------------
# HOG
# --------------------------------------------------------------------------------------
def test_hog_has_nine_bins_per_8x8_cell():
    assert F.hog_feature(np.zeros((32, 32, 3))).shape == (4 * 4 * 9,)
    assert F.hog_feature(np.zeros((30, 41))).shape == (3 * 5 * 9,)  # leftover pixels dropped


def test_hog_of_a_flat_image_is_zero():
    np.testing.assert_array_equal(F.hog_feature(np.full((32, 32, 3), 77.0)), 0)


@pytest.mark.parametrize("at", [5, 8, 13, 22])
@pytest.mark.parametrize("dark_to_bright", [True, False])
def test_vertical_edge_puts_its_mass_in_the_horizontal_gradient_bin(at, dark_to_bright):
    low, high = (10.0, 200.0) if dark_to_bright else (200.0, 10.0)
    hist = F.hog_feature(edge_image(True, at, low, high)).reshape(4, 4, 9)
    per_bin = hist.sum(axis=(0, 1))
    # unsigned gradients: both edge polarities point at 0 degrees, which is bin 0
    assert per_bin[0] > 0 and per_bin[1:].sum() == 0
    # and only the cells the edge crosses (columns at // 8 and (at - 1) // 8) see it
    cols = np.flatnonzero(hist.sum(axis=(0, 2)))
    assert set(cols) <= {(at - 1) // 8, at // 8}


def test_horizontal_edge_votes_next_to_ninety_degrees():
    per_bin = F.hog_feature(edge_image(False, 13)).reshape(-1, 9).sum(axis=0)
    # 90 degrees lies on the border of the bins centred on 80 and 100 degrees
    assert per_bin[[4, 5]].sum() == pytest.approx(per_bin.sum()) and per_bin.sum() > 0


def test_a_stronger_edge_gives_proportionally_larger_hog():
    weak = F.hog_feature(edge_image(True, 13, 100, 120))
    strong = F.hog_feature(edge_image(True, 13, 100, 160))
    np.testing.assert_allclose(strong, 3 * weak)  # gradients scale with contrast, exactly


def test_hog_of_a_diagonal_edge_lands_in_the_45_or_135_degree_bin():
    yy, xx = np.mgrid[0:32, 0:32]
    up = np.where(xx + yy > 31, 200.0, 0.0)     # gradient along (1, 1): 45 degrees
    down = np.where(xx - yy > 0, 200.0, 0.0)    # gradient along (1, -1): 135 degrees
    assert F.hog_feature(up).reshape(-1, 9).sum(0).argmax() == 2    # bins centred 0, 20, 40...
    assert F.hog_feature(down).reshape(-1, 9).sum(0).argmax() == 7  # ... 140; 45->40, 135->140


def hog_by_hand(im, cell_size=8, nbins=9):
    """HOG as hog_feature's docstring defines it, one pixel at a time with the math module:
    ITU-R 601 gray; central differences, 0 on the border rows / columns; magnitude
    hypot(gx, gy) added to the bin of the unsigned angle atan2(gy, gx) mod 180, where bin k
    spans [k w - w/2, k w + w/2) degrees (w = 180 / nbins, wrapping round at 180); each
    cell's sums divided by its pixel count; border pixels that fill no cell left out."""
    im = np.asarray(im, dtype=np.float64)
    H, W = im.shape[:2]

    def gray(r, c):
        if im.ndim == 2:
            return im[r, c]
        red, green, blue = im[r, c, :3]
        return 0.299 * red + 0.587 * green + 0.114 * blue

    w = 180.0 / nbins
    hist = np.zeros((H // cell_size, W // cell_size, nbins))
    for r in range(H // cell_size * cell_size):
        for c in range(W // cell_size * cell_size):
            gx = (gray(r, c + 1) - gray(r, c - 1)) / 2 if 0 < c < W - 1 else 0.0
            gy = (gray(r + 1, c) - gray(r - 1, c)) / 2 if 0 < r < H - 1 else 0.0
            angle = math.degrees(math.atan2(gy, gx)) % 180.0
            k, = [k for k in range(nbins)
                  if k * w - w / 2 <= angle < k * w + w / 2 or k * w - w / 2 <= angle - 180 < 0]
            hist[r // cell_size, c // cell_size, k] += math.hypot(gx, gy)
    return (hist / cell_size ** 2).ravel()


@pytest.mark.parametrize("image,cell_size,nbins", [
    (np.random.default_rng(10).uniform(0, 255, (32, 32, 3)), 8, 9),
    (np.random.default_rng(11).uniform(0, 255, (17, 26)), 5, 7),           # leftover pixels
    # few gray levels: flat patches (no gradient) and exact 0 and 90 degree angles, which
    # sit on bin borders for 9 bins
    (np.random.default_rng(12).integers(0, 3, (24, 40, 3)).astype(np.uint8) * 100, 8, 9),
], ids=["rgb", "gray-odd-size", "few-levels"])
def test_hog_cells_match_a_pixel_by_pixel_computation(image, cell_size, nbins):
    expected = hog_by_hand(image, cell_size, nbins)
    assert np.count_nonzero(expected) > expected.size // 2  # most cells see several bins
    # float64 on both sides; only the gray conversion's summing order may differ (a few ulps
    # of values up to 255, so ~1e-13 absolute in the gradients); 1e-10 leaves a wide margin
    np.testing.assert_allclose(F.hog_feature(image, cell_size, nbins), expected,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(F.hog_features(image[None], cell_size, nbins)[0], expected,
                               rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------------
# Colour histogram
# --------------------------------------------------------------------------------------
def test_hue_of_the_primary_colours():
    im = np.array([[[255, 0, 0], [255, 255, 0], [0, 255, 0]],
                   [[0, 255, 255], [0, 0, 255], [255, 0, 255]]])
    np.testing.assert_allclose(F.rgb_to_hue(im), [[0, 1 / 6, 2 / 6], [3 / 6, 4 / 6, 5 / 6]])
    np.testing.assert_array_equal(F.rgb_to_hue(np.full((2, 2, 3), 90)), 0)  # grays: 0


def test_color_histogram_of_a_hand_made_image():
    # 4 red, 2 green, 1 blue and 1 gray pixel; with 6 bins of 42.5 on 0..255 the hues
    # red 0 and gray 0 go to bin 0, green 85 to bin 2, blue 170 to bin 4
    red, green, blue, gray = [255, 0, 0], [0, 200, 0], [0, 0, 90], [50, 50, 50]
    im = np.array([[red, red, red, red], [green, green, blue, gray]], dtype=np.float64)
    counts = F.color_histogram_hsv(im, nbin=6, normalized=False)
    np.testing.assert_array_equal(counts, [5, 0, 2, 0, 1, 0])
    np.testing.assert_allclose(F.color_histogram_hsv(im, nbin=6), np.array([5, 0, 2, 0, 1, 0]) / 8)


def test_normalised_color_histogram_sums_to_one():
    rng = np.random.default_rng(0)
    for shape in [(32, 32, 3), (7, 13, 3)]:
        h = F.color_histogram_hsv(rng.integers(0, 256, shape), nbin=10)
        assert h.shape == (10,) and h.sum() == pytest.approx(1.0) and (h >= 0).all()


# --------------------------------------------------------------------------------------
# extract_features
# --------------------------------------------------------------------------------------
def test_extract_features_stacks_each_function_in_order():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (5, 32, 32, 3)).astype(np.float32)
    fns = [F.hog_feature, lambda im: F.color_histogram_hsv(im, nbin=7)]
    X = F.extract_features(imgs, fns)
    assert X.shape == (5, 144 + 7) and X.dtype == np.float32
    for i in range(5):
        expected = np.concatenate([F.hog_feature(imgs[i]), F.color_histogram_hsv(imgs[i], 7)])
        np.testing.assert_allclose(X[i], expected, rtol=1e-6)  # float32 storage


def test_hue_matches_the_standard_library_colorsys():
    import colorsys

    rng = np.random.default_rng(3)
    im = np.concatenate([rng.integers(0, 256, (40, 3)), rng.uniform(0, 255, (40, 3)),
                         [[7, 7, 7], [255, 0, 0], [0, 0, 255], [255, 0, 1]]]).astype(np.float64)
    expected = [colorsys.rgb_to_hsv(*(px / 255))[0] for px in im]
    np.testing.assert_allclose(F.rgb_to_hue(im[None]), [expected], atol=1e-12)


# --------------------------------------------------------------------------------------
# Batch versions (what extract_features runs for speed)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 32, 32, 3), (4, 30, 41, 3), (5, 17, 24)])
def test_batch_hog_equals_hog_of_each_image(shape):
    imgs = np.random.default_rng(4).integers(0, 256, shape).astype(np.float32)
    expected = np.stack([F.hog_feature(im) for im in imgs])
    # the per-cell sums are added in another order: a few ulps apart at most
    np.testing.assert_allclose(F.hog_features(imgs), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.hog_features(imgs, cell_size=5, nbins=7),
                               np.stack([F.hog_feature(im, 5, 7) for im in imgs]),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nbin,normalized", [(10, True), (6, False), (7, True)])
def test_batch_color_histogram_equals_the_histogram_of_each_image(nbin, normalized):
    rng = np.random.default_rng(5)
    # small integer levels put many hues exactly on bin edges: ties must be broken alike
    imgs = np.concatenate([rng.integers(0, 6, (4, 9, 11, 3)) * 51.0,
                           rng.integers(0, 256, (4, 9, 11, 3)).astype(np.float64),
                           rng.uniform(0, 255, (4, 9, 11, 3))])
    batch = F.color_histograms_hsv(imgs, nbin=nbin, normalized=normalized)
    one_by_one = np.stack([F.color_histogram_hsv(im, nbin=nbin, normalized=normalized)
                           for im in imgs])
    np.testing.assert_array_equal(batch, one_by_one)


def test_extract_features_gives_the_same_numbers_batched_and_one_by_one(capsys):
    import functools

    imgs = np.random.default_rng(6).integers(0, 256, (7, 32, 32, 3)).astype(np.float32)
    fast = [F.hog_feature, functools.partial(F.color_histogram_hsv, nbin=7)]
    slow = [lambda im: F.hog_feature(im), lambda im: F.color_histogram_hsv(im, nbin=7)]
    X = F.extract_features(imgs, fast, verbose=True, batch_size=3)   # batches 3 + 3 + 1
    assert capsys.readouterr().out.splitlines()[-1] == "extracted features for 7 / 7 images"
    np.testing.assert_allclose(X, F.extract_features(imgs, slow), rtol=1e-6)
    assert X.shape == (7, 144 + 7) and X.dtype == np.float32


# --------------------------------------------------------------------------------------
# vis_utils
# --------------------------------------------------------------------------------------
def test_importing_vis_utils_does_not_import_pyplot():
    code = "import sys, course_utils.vis_utils; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_visualize_grid_places_each_image_rescaled():
    imgs = np.stack([np.full((2, 3, 1), v, dtype=float) for v in range(5)])
    imgs[:, 0, 0, 0] = -1.0  # every image spans -1..v, so each is stretched to 0..255
    grid = V.visualize_grid(imgs, ubound=255.0, padding=1)
    assert grid.shape == (3 * 2 + 2, 3 * 3 + 2, 1)  # G = ceil(sqrt(5)) = 3
    assert grid[0, 0, 0] == 0 and grid[0, 1, 0] == 255     # image 0's corner, then its body
    assert grid[3, 4, 0] == 0 and grid[4, 6, 0] == 255     # image 4: row 1, column 1
    assert (grid[2, :, 0] == 0).all()                      # a padding row


def test_visualize_grid_accepts_channels_first():
    a = np.random.default_rng(0).random((4, 3, 5, 5))
    np.testing.assert_array_equal(V.visualize_grid(a), V.visualize_grid(a.transpose(0, 2, 3, 1)))


def test_vis_grid_keeps_relative_brightness():
    imgs = np.stack([np.full((2, 2, 1), v, dtype=float) for v in (0.0, 10.0)])
    grid = V.vis_grid(imgs)
    assert grid.min() == 0 and grid.max() == 1
    assert grid[1, 1, 0] == 0 and grid[1, 4, 0] == 1


def test_plot_helpers_draw_without_a_display():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 3, 8, 8)).astype(np.float32)
    y = np.arange(40) % 4
    ax = V.show_images_by_class(X, y, ["a", "b", "c", "d"], samples_per_class=3)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    V.show_net_weights(rng.standard_normal((3 * 8 * 8, 10)), image_shape=(3, 8, 8))
    V.show_net_weights(rng.standard_normal((6, 3, 5, 5)))
    ax = V.plot_curves({"train": [1.0, 0.5, 0.25], "val": [1.1, 0.7, 0.6]}, "epoch", "loss")
    assert len(ax.get_lines()) == 2 and ax.get_xlabel() == "epoch"
    fig = V.show_captions(X[:3].astype(np.uint8), {"truth": ["x", "y", "z"],
                                                   "model": ["p", "q", "r"]})
    assert "truth: y" in fig.axes[1].get_xlabel()
    plt.close("all")

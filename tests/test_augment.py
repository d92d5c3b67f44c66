"""Data augmentation: each transform keeps shape, dtype and labels' meaning, is reproducible
from its seed, never modifies its input, and does exactly the geometric change it names."""
import numpy as np
import pytest

from course_utils import augment


def batch(n=6, c=3, h=8, w=9, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


@pytest.mark.parametrize("fn", [augment.random_flip, augment.random_crop,
                                augment.color_jitter, augment.gaussian_noise])
def test_shape_dtype_reproducible_and_input_untouched(fn):
    X = batch()
    before = X.copy()
    a = fn(X, np.random.default_rng(1))
    b = fn(X, np.random.default_rng(1))
    assert a.shape == X.shape and a.dtype == X.dtype
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(X, before)


def test_random_flip_mirrors_exactly_the_chosen_images():
    X = batch(n=200)
    out = augment.random_flip(X, np.random.default_rng(3))
    flipped = [np.array_equal(o, x[..., ::-1]) for o, x in zip(out, X, strict=True)]
    kept = [np.array_equal(o, x) for o, x in zip(out, X, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each: one or the other
    assert 70 < sum(flipped) < 130                      # about half of them at p = 0.5
    assert not augment.random_flip(X, np.random.default_rng(3), p=0.0) is X
    np.testing.assert_array_equal(augment.random_flip(X, np.random.default_rng(3), p=1.0),
                                  X[..., ::-1])


def test_random_crop_is_a_zero_filled_shift_by_at_most_pad():
    X = batch(n=40) + 10.0  # no zeros inside the images
    pad = 2
    out = augment.random_crop(X, np.random.default_rng(5), pad=pad)
    shifts = set()
    for o, x in zip(out, X, strict=True):
        padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if np.array_equal(o, padded[:, dy:dy + x.shape[1], dx:dx + x.shape[2]])]
        assert matches, "every crop is a window of the zero-padded image"
        shifts.add(matches[0])
    assert len(shifts) > 5  # offsets vary across the batch
    np.testing.assert_array_equal(augment.random_crop(X, np.random.default_rng(0), pad=0), X)


def test_color_jitter_and_noise_keep_images_close_and_change_them():
    X = batch(n=50)
    rng = np.random.default_rng(2)
    for out in (augment.color_jitter(X, rng), augment.gaussian_noise(X, rng)):
        assert not np.array_equal(out, X)
        corr = np.corrcoef(out.ravel(), X.ravel())[0, 1]
        assert corr > 0.9  # still the same pictures


def test_compose_applies_steps_in_order():
    X = batch()
    both = augment.compose(lambda X, rng: X + 1, lambda X, rng: X * 2)
    np.testing.assert_allclose(both(X, None), (X + 1) * 2)
    with pytest.raises(ValueError, match="function"):
        augment.compose(augment.random_flip, 3)


@pytest.mark.parametrize("fn", [augment.random_flip, augment.random_crop,
                                augment.color_jitter, augment.gaussian_noise])
def test_wrong_shape_is_a_clear_error(fn):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        fn(np.zeros((4, 32, 32)), np.random.default_rng(0))


@pytest.mark.gpu
@pytest.mark.parametrize("fn", [augment.random_flip, augment.random_crop,
                                augment.color_jitter, augment.gaussian_noise])
def test_cupy_batches_stay_on_the_gpu_and_match_numpy(cupy_backend, fn):
    cp = cupy_backend
    X = batch()
    out = fn(cp.asarray(X), np.random.default_rng(4))
    assert isinstance(out, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(out), fn(X, np.random.default_rng(4)), rtol=1e-5,
                               atol=1e-6)

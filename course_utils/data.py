"""Every dataset of the course behind one entry point.

Image classification
    ``load_dataset(name)`` returns the same dictionary for every source, so a notebook can
    switch between them by changing one string:

    ==================  =====================================================================
    name                what it is
    ==================  =====================================================================
    'cifar10'           CIFAR-10, 32x32 RGB, 10 classes. Needs the files: run
                        ``python datasets/get.py cifar10`` once.
    'natural-patches'   32x32 RGB patches cut from ten real photos that ship inside
                        scikit-image and scikit-learn; the label says which photo a patch
                        came from. Offline, CIFAR-sized, 10 classes.
    'digits'            scikit-learn's 8x8 grayscale handwritten digits (1,797 images).
    'digits28'          the same digits resized to 20x20 and centred in 28x28, like MNIST
                        (alias 'mnist-like').
    'auto'              'cifar10' when its files are present, else 'natural-patches'.
    ==================  =====================================================================

    The dictionary holds X_train, y_train, X_val, y_val, X_test, y_test (float32 images in
    NCHW layout when ``channels_first``, int64 labels), mean_image, class_names, image_shape,
    name and source (a one-line description that is also printed). Pixel values are on the
    0..255 scale before the training mean is subtracted. Arrays are numpy (host memory);
    move minibatches to the GPU with ``course_utils.backend.asarray`` when cupy is active.

    The CS231n-style helpers ``load_CIFAR_batch``, ``load_CIFAR10`` and ``get_CIFAR10_data``
    read the official "python version" pickles directly.

Image captioning
    ``load_coco_data`` reads the CS231n COCO captioning files (``python datasets/get.py coco``);
    ``load_offline_captions`` draws a small captioning set of coloured shapes with the same
    dictionary layout, so the captioning notebook runs without a download.
    ``decode_captions`` and ``sample_coco_minibatch`` work on both (BLEU lives in
    ``course_utils.metrics``).

Where data lives
    ``data_root()`` is ``$COURSE_DATA_DIR`` when set, else the ``datasets/`` folder of the
    repository. Missing files raise ``DatasetNotFoundError`` and damaged files raise
    ``DatasetCorruptedError``; both messages say how to fix the problem.
"""
from __future__ import annotations

import functools
import json
import os
import pickle
from pathlib import Path

import numpy as np

from .backend import to_numpy

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_DIRNAME = "cifar-10-batches-py"
COCO_DIRNAME = "coco_captioning"

GET_CIFAR10 = "python datasets/get.py cifar10"
GET_COCO = "python datasets/get.py coco"


# --------------------------------------------------------------------------------------
# Errors and locations
# --------------------------------------------------------------------------------------
class DatasetError(Exception):
    """Base class of the data errors below."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset's files are not where they should be. The message says how to get them."""


class DatasetCorruptedError(DatasetError, ValueError):
    """A dataset file exists but cannot be read or holds the wrong thing."""


def repo_root() -> Path:
    """The repository's root folder (the parent of the ``course_utils`` package)."""
    return Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Where downloaded data lives: ``$COURSE_DATA_DIR``, else ``<repo>/datasets``."""
    env = os.environ.get("COURSE_DATA_DIR", "").strip()
    return Path(env).expanduser() if env else repo_root() / "datasets"


def cifar10_dir() -> Path:
    """The folder the CIFAR-10 loaders read by default."""
    return data_root() / CIFAR10_DIRNAME


def _cifar_not_found(path) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"CIFAR-10 was not found at {path}. To fix this, run `{GET_CIFAR10}` from the "
        "repository root, or set COURSE_DATA_DIR to the folder that holds "
        f"{CIFAR10_DIRNAME}/, or use load_dataset('auto') for the offline fallback."
    )


def _cifar_corrupted(path, what) -> DatasetCorruptedError:
    return DatasetCorruptedError(
        f"{path} is not a usable CIFAR-10 batch: {what}. The download was probably cut short "
        f"or the file was changed. To fix this, delete the folder {Path(path).parent} and run "
        f"`{GET_CIFAR10}` again."
    )


# --------------------------------------------------------------------------------------
# CIFAR-10 from the official python-version pickles
# --------------------------------------------------------------------------------------
def _read_pickle_dict(filename) -> dict:
    """Read one Python 2 pickle of a dict and return it with str keys.

    The official batches were written by Python 2. ``encoding='latin1'`` turns their byte
    strings into str and lets numpy rebuild the arrays; files written elsewhere may still
    carry bytes keys, so both spellings are accepted.
    """
    path = Path(filename)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path} is missing. The CIFAR-10 folder is incomplete: delete {path.parent} and "
            f"run `{GET_CIFAR10}` again (or use load_dataset('auto') for the offline fallback)."
        )
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")
    except Exception as exc:  # truncated files raise EOFError, UnpicklingError, ValueError...
        raise _cifar_corrupted(path, f"it could not be unpickled ({type(exc).__name__}: {exc})"
                               ) from exc
    if not isinstance(obj, dict):
        raise _cifar_corrupted(path, f"it holds a {type(obj).__name__}, not a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _load_CIFAR_batch_uint8(filename):
    """One batch as (uint8 images (N, 32, 32, 3), int64 labels (N,))."""
    batch = _read_pickle_dict(filename)
    if "data" not in batch or "labels" not in batch:
        raise _cifar_corrupted(filename, f"expected the keys 'data' and 'labels', found "
                                         f"{sorted(map(str, batch))}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        found = (f"{type(data).__name__} of shape {getattr(data, 'shape', '?')} and dtype "
                 f"{getattr(data, 'dtype', '?')}")
        raise _cifar_corrupted(filename, f"'data' should be a uint8 array of shape (N, 3072), "
                                         f"found a {found}")
    labels = np.asarray(batch["labels"])
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise _cifar_corrupted(filename, f"'labels' should hold {data.shape[0]} integers, found "
                                         f"shape {labels.shape} and dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise _cifar_corrupted(filename, f"labels should lie in 0..9, found the range "
                                         f"{labels.min()}..{labels.max()}")
    # Each row stores the red plane, then green, then blue (1024 values each, row-major).
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def load_CIFAR_batch(filename):
    """Load one CIFAR-10 batch file (``data_batch_1`` ... ``test_batch``).

    Returns X, float32 of shape (N, 32, 32, 3) with values 0..255 (NHWC, like the CS231n
    loader; float32 rather than float64 to halve the memory), and y, int64 of shape (N,).
    """
    X, y = _load_CIFAR_batch_uint8(filename)
    return X.astype(np.float32), y


def _resolve_cifar_root(root) -> Path:
    root = cifar10_dir() if root is None else Path(root).expanduser()
    if not (root / "data_batch_1").exists() and (root / CIFAR10_DIRNAME).is_dir():
        root = root / CIFAR10_DIRNAME  # the parent folder was given
    if not root.is_dir():
        raise _cifar_not_found(root)
    return root


def _cifar_class_names(root: Path):
    meta = root / "batches.meta"
    if not meta.exists():
        return list(CIFAR10_CLASSES)
    names = _read_pickle_dict(meta).get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise _cifar_corrupted(meta, f"'label_names' should list 10 names, found {names!r}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _load_CIFAR10_uint8(root):
    root = _resolve_cifar_root(root)
    parts = [_load_CIFAR_batch_uint8(root / f"data_batch_{b}") for b in range(1, 6)]
    Xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    Xte, yte = _load_CIFAR_batch_uint8(root / "test_batch")
    return Xtr, ytr, Xte, yte, root


def load_CIFAR10(root=None):
    """Load all of CIFAR-10 from ``root`` (the ``cifar-10-batches-py`` folder or its parent;
    default ``data_root()/cifar-10-batches-py``).

    Returns Xtr (50000, 32, 32, 3), ytr (50000,), Xte (10000, 32, 32, 3), yte (10000,):
    images float32 NHWC with values 0..255, labels int64 in 0..9.
    """
    Xtr, ytr, Xte, yte, _ = _load_CIFAR10_uint8(root)
    return Xtr.astype(np.float32), ytr, Xte.astype(np.float32), yte


def _package(name, splits, class_names, source, subtract_mean, channels_first, dtype):
    """The dictionary every image loader returns.

    splits: {'train': (X, y), 'val': ..., 'test': ...} with X in NHWC layout (any dtype).
    """
    out = {}
    for split, (X, y) in splits.items():
        X = np.asarray(X)
        if channels_first:
            X = np.ascontiguousarray(X.transpose(0, 3, 1, 2))  # transpose before the cast: cheaper
        out[f"X_{split}"] = X.astype(dtype, copy=True)
        out[f"y_{split}"] = np.asarray(y, dtype=np.int64)
    mean_image = out["X_train"].mean(axis=0, dtype=np.float64).astype(dtype)
    if subtract_mean:
        for split in splits:
            out[f"X_{split}"] -= mean_image
    out.update(mean_image=mean_image, class_names=list(class_names), source=source, name=name,
               image_shape=tuple(out["X_train"].shape[1:]))
    return out


def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000,
                     subtract_mean=True, channels_first=True, dtype=np.float32, root=None):
    """CIFAR-10 split into train / validation / test, ready for a classifier.

    The validation set is the ``num_validation`` training images that follow the first
    ``num_training`` (the order of the official batches), the test set is the first
    ``num_test`` test images. ``mean_image`` is the mean of X_train, in the same layout as
    the images; it is subtracted from every split when ``subtract_mean``.

    Returns a dict with X_train, y_train, X_val, y_val, X_test, y_test (images ``dtype``,
    (N, 3, 32, 32) when ``channels_first`` else (N, 32, 32, 3); labels int64), mean_image,
    class_names, image_shape, name and source.
    """
    Xtr, ytr, Xte, yte, root = _load_CIFAR10_uint8(root)
    if num_training + num_validation > len(Xtr) or num_test > len(Xte):
        raise ValueError(f"asked for {num_training}+{num_validation} training/validation and "
                         f"{num_test} test images; {root} holds {len(Xtr)} and {len(Xte)}")
    splits = {
        "train": (Xtr[:num_training], ytr[:num_training]),
        "val": (Xtr[num_training:num_training + num_validation],
                ytr[num_training:num_training + num_validation]),
        "test": (Xte[:num_test], yte[:num_test]),
    }
    source = (f"CIFAR-10 (Krizhevsky, 2009) from {root}: {num_training} train / "
              f"{num_validation} val / {num_test} test 32x32 RGB images, 10 classes")
    return _package("cifar10", splits, _cifar_class_names(root), source, subtract_mean,
                    channels_first, dtype)


# --------------------------------------------------------------------------------------
# Offline image sets built from files that ship inside scikit-learn and scikit-image
# --------------------------------------------------------------------------------------
def _balanced_split(y, sizes, rng):
    """Split indices into consecutive groups of the given sizes, each with (close to) the
    class proportions of y: shuffle within each class, then interleave the classes."""
    y = np.asarray(y)
    rank = np.empty(len(y))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rank[rng.permutation(idx)] = (np.arange(len(idx)) + rng.random()) / len(idx)
    order = np.argsort(rank, kind="stable")
    if sum(sizes) > len(y):
        raise ValueError(f"asked for {sum(sizes)} images in all; the set has {len(y)}")
    bounds = np.cumsum([0, *sizes])
    return [rng.permutation(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.float32) * (255.0 / 16.0)  # 0..16 ink levels -> 0..255
    return images, d.target.astype(np.int64)


def _digits28(images8):
    """Resize 8x8 digits to 20x20 (bicubic) and centre them in a 28x28 frame, as MNIST does."""
    from PIL import Image

    out = np.zeros((len(images8), 28, 28), np.float32)
    for i, im in enumerate(images8):
        big = Image.fromarray(im.astype(np.float32)).resize((20, 20), Image.BICUBIC)
        out[i, 4:24, 4:24] = np.clip(np.asarray(big), 0, 255)
    return out


def _digit_splits(which, num_train, num_val, num_test, seed):
    images, y = _digits_arrays()
    if which == "digits28":
        images = _digits28(images)
    sizes = (1197 if num_train is None else num_train, 300 if num_val is None else num_val,
             300 if num_test is None else num_test)
    parts = _balanced_split(y, sizes, np.random.default_rng(seed))
    splits = {s: (images[idx][..., None], y[idx]) for s, idx in zip(("train", "val", "test"), parts)}
    side = images.shape[1]
    extra = "" if which == "digits" else ", resized to 20x20 and centred in 28x28 like MNIST"
    source = (f"{which}: scikit-learn's handwritten digits (sklearn.datasets.load_digits, UCI "
              f"optical digits, 1797 images shipped with scikit-learn{extra}): {sizes[0]} train / "
              f"{sizes[1]} val / {sizes[2]} test {side}x{side} grayscale images, 10 classes")
    return splits, [str(d) for d in range(10)], source


# Ten real photographs that load offline from inside the installed wheels (checked with the
# network blocked). Each becomes one class of 'natural-patches'.
NATURAL_PHOTOS = (
    ("astronaut", "skimage.data.astronaut"),
    ("cat", "skimage.data.chelsea"),
    ("coffee", "skimage.data.coffee"),
    ("rocket", "skimage.data.rocket"),
    ("galaxies", "skimage.data.hubble_deep_field"),
    ("tissue", "skimage.data.immunohistochemistry"),
    ("retina", "skimage.data.retina"),
    ("motorcycle", "skimage.data.stereo_motorcycle"),
    ("temple", "sklearn.datasets.load_sample_images (china.jpg)"),
    ("flower", "sklearn.datasets.load_sample_images (flower.jpg)"),
)
PATCH = 32          # side of a patch, as CIFAR-10
TILE = 64           # photos are cut into TILE x TILE regions; a region serves one split only
PHOTO_SHORT_SIDE = 256
_REGION_SEED = 231  # fixed: the same regions are held out whatever seed the caller uses


def _read_photo(where):
    if where.startswith("sklearn"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(where.split("(")[1].rstrip(")"))
    import skimage.data

    im = getattr(skimage.data, where.rsplit(".", 1)[1])()
    return im[0] if isinstance(im, tuple) else im  # stereo_motorcycle: (left, right, disparity)


@functools.lru_cache(maxsize=1)
def _natural_photos():
    """The ten photos as uint8 RGB arrays, resized so that the shorter side is 256 pixels."""
    from PIL import Image

    photos = []
    for _, where in NATURAL_PHOTOS:
        im = np.asarray(_read_photo(where))[..., :3]
        h, w = im.shape[:2]
        scale = PHOTO_SHORT_SIDE / min(h, w)
        size = (round(w * scale), round(h * scale))
        photos.append(np.asarray(Image.fromarray(im).resize(size, Image.LANCZOS)))
    return tuple(photos)


def natural_patch_regions():
    """Which TILE x TILE region of each photo serves which split.

    Returns one list per photo of (top, left, split) with split in 'train', 'val', 'test':
    about 60% / 20% / 20% of a photo's regions. Nearly uniform regions (pixel standard
    deviation below 8, e.g. clear sky) are left out: their patches say nothing about the photo.
    """
    rng = np.random.default_rng(_REGION_SEED)
    regions = []
    for im in _natural_photos():
        tiles = [(t, l) for t in range(0, im.shape[0] - TILE + 1, TILE)
                 for l in range(0, im.shape[1] - TILE + 1, TILE)
                 if im[t:t + TILE, l:l + TILE].std() >= 8.0]
        order = rng.permutation(len(tiles))
        n_held = round(0.2 * len(tiles))
        split_of = ["val"] * n_held + ["test"] * n_held + ["train"] * (len(tiles) - 2 * n_held)
        regions.append([(*tiles[i], split_of[k]) for k, i in enumerate(order)])
    return regions


def _sample_corners(photo, c, regions, split, n, rng):
    """n random patch corners (photo, top, left) inside the photo's regions of `split`.

    Patches that are nearly flat (pixel std below 4, e.g. the black surround of the retina)
    are drawn again; after a few rounds whatever is left is kept, so this always ends."""
    tiles = np.array([(t, l) for t, l, s in regions if s == split])
    found = np.zeros((0, 2), np.int64)
    for attempt in range(10):
        need = n - len(found)
        if need <= 0:
            break
        pick = tiles[rng.integers(len(tiles), size=2 * need)]
        tl = pick + rng.integers(TILE - PATCH + 1, size=(2 * need, 2))
        if attempt < 9:
            tl = tl[[photo[t:t + PATCH, l:l + PATCH].std() >= 4.0 for t, l in tl]]
        found = np.concatenate([found, tl[:need]])
    return np.column_stack([np.full(n, c), found])


def natural_patches(num_train=8000, num_val=1000, num_test=1000, seed=0):
    """Cut the 'natural-patches' set: 32x32 RGB patches labelled with their source photo.

    Every patch lies inside one region of ``natural_patch_regions()``, so no test or
    validation patch shares a pixel with a training patch. Classes are balanced (the counts
    differ by at most one). Patch positions depend on ``seed``; the regions do not.

    Returns a dict: X_train (num_train, 32, 32, 3) uint8, y_train int64, corners_train
    (num_train, 3) int64 rows of (photo, top, left) in the resized photo, and the same
    for val and test, plus class_names.
    """
    photos, regions = _natural_photos(), natural_patch_regions()
    rng = np.random.default_rng(seed)
    out = {"class_names": [name for name, _ in NATURAL_PHOTOS]}
    n_classes = len(photos)
    for split, n in (("train", num_train), ("val", num_val), ("test", num_test)):
        labels = np.arange(n) % n_classes
        corners = np.empty((n, 3), np.int64)
        for c in range(n_classes):
            rows = np.flatnonzero(labels == c)
            corners[rows] = _sample_corners(photos[c], c, regions[c], split, len(rows), rng)
        order = rng.permutation(n)
        corners, labels = corners[order], labels[order]
        out[f"X_{split}"] = np.stack([photos[p][t:t + PATCH, l:l + PATCH] for p, t, l in corners]
                                     ) if n else np.zeros((0, PATCH, PATCH, 3), np.uint8)
        out[f"y_{split}"] = labels.astype(np.int64)
        out[f"corners_{split}"] = corners
    return out


def _natural_splits(num_train, num_val, num_test, seed):
    sizes = (8000 if num_train is None else num_train, 1000 if num_val is None else num_val,
             1000 if num_test is None else num_test)
    d = natural_patches(*sizes, seed=seed)
    splits = {s: (d[f"X_{s}"], d[f"y_{s}"]) for s in ("train", "val", "test")}
    source = ("natural-patches: 32x32 RGB patches cut from 10 real photos bundled with "
              "scikit-image and scikit-learn (label = source photo; val/test from regions "
              f"disjoint from train): {sizes[0]} train / {sizes[1]} val / {sizes[2]} test "
              "images, 10 classes")
    return splits, d["class_names"], source


_ALIASES = {"cifar-10": "cifar10", "mnist-like": "digits28", "mnist": "digits28",
            "patches": "natural-patches", "offline": "natural-patches"}
DATASET_NAMES = ("auto", "cifar10", "natural-patches", "digits", "digits28")


def load_dataset(name="auto", num_train=None, num_val=None, num_test=None, *,
                 subtract_mean=True, channels_first=True, dtype=np.float32, seed=0,
                 root=None, verbose=True):
    """Load an image-classification set by name; every name returns the same layout.

    name: 'cifar10', 'natural-patches', 'digits', 'digits28' (alias 'mnist-like'), or 'auto'
        (CIFAR-10 when its files are present, else 'natural-patches').
    num_train, num_val, num_test: split sizes; None means the set's default
        (cifar10 49000/1000/1000, natural-patches 8000/1000/1000, digits 1197/300/300).
    seed: drives the offline sets' splits and patch positions (CIFAR-10 splits are fixed).
    root: where CIFAR-10 lives (default ``data_root()/cifar-10-batches-py``).
    verbose: print one line that says which data is being used.

    Returns a dict: X_train, y_train, X_val, y_val, X_test, y_test, mean_image (see
    ``get_CIFAR10_data``), class_names, image_shape ((C, H, W) or (H, W, C)), name, source.
    """
    key = _ALIASES.get(name.lower().replace("_", "-"), name.lower().replace("_", "-"))
    if key not in DATASET_NAMES:
        raise ValueError(f"Unknown dataset {name!r}: choose one of {DATASET_NAMES} "
                         f"(or an alias: {sorted(_ALIASES)}).")
    note = ""
    if key == "auto":
        try:
            _resolve_cifar_root(root)  # only a missing folder falls back; damage is reported
            key = "cifar10"
        except DatasetNotFoundError:
            where = cifar10_dir() if root is None else Path(root)
            note = f" (CIFAR-10 not found at {where}; run `{GET_CIFAR10}` to get it)"
            key = "natural-patches"
    if key == "cifar10":
        sizes = [d if n is None else n for n, d in
                 ((num_train, 49000), (num_val, 1000), (num_test, 1000))]
        data = get_CIFAR10_data(*sizes, subtract_mean=subtract_mean,
                                channels_first=channels_first, dtype=dtype, root=root)
        if verbose:
            print(f"Using {data['source']}")
        return data
    if key == "natural-patches":
        splits, classes, source = _natural_splits(num_train, num_val, num_test, seed)
    else:
        splits, classes, source = _digit_splits(key, num_train, num_val, num_test, seed)
    data = _package(key, splits, classes, source, subtract_mean, channels_first, dtype)
    if verbose:
        print(f"Using offline data: {source}{note}")
    return data


# --------------------------------------------------------------------------------------
# Captioning: COCO (CS231n files) and an offline set of drawn shapes
# --------------------------------------------------------------------------------------
NULL, START, END, UNK = 0, 1, 2, 3  # token ids shared by both captioning sets


def _coco_not_found(path) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"The COCO captioning files were not found: {path} is missing. To fix this, run "
        f"`{GET_COCO}` from the repository root, or set COURSE_DATA_DIR to the folder that "
        f"holds {COCO_DIRNAME}/, or use load_offline_captions() for the offline set."
    )


def load_coco_data(base_dir=None, max_train=None, pca_features=True, seed=0):
    """Load the CS231n COCO captioning data (image features, captions, vocabulary, URLs).

    base_dir: the ``coco_captioning`` folder (default ``data_root()/coco_captioning``).
    max_train: keep a random subset of this many training captions (drawn with ``seed``).
    pca_features: read the 512-d PCA-reduced VGG-16 fc7 features instead of the 4096-d ones.

    Returns a dict with train_captions / val_captions (int (N, T), padded with <NULL>=0),
    train_image_idxs / val_image_idxs (the image of each caption), train_features /
    val_features (one row per image), idx_to_word (list), word_to_idx (dict), train_urls /
    val_urls (str arrays), and source.
    """
    import h5py

    base = Path(base_dir).expanduser() if base_dir is not None else data_root() / COCO_DIRNAME
    suffix = "_pca" if pca_features else ""
    files = {"captions": base / "coco2014_captions.h5", "vocab": base / "coco2014_vocab.json",
             "train_features": base / f"train2014_vgg16_fc7{suffix}.h5",
             "val_features": base / f"val2014_vgg16_fc7{suffix}.h5",
             "train_urls": base / "train2014_urls.txt", "val_urls": base / "val2014_urls.txt"}
    for path in [base, *files.values()]:
        if not path.exists():
            raise _coco_not_found(path)

    def damaged(path, exc):
        return DatasetCorruptedError(
            f"{path} could not be read ({type(exc).__name__}: {exc}). The download was probably "
            f"cut short: delete {base} and run `{GET_COCO}` again.")

    def read_h5(path, keys=None):
        try:
            with h5py.File(path, "r") as f:
                return {k: np.asarray(f[k]) for k in (keys or list(f))}
        except (OSError, KeyError) as exc:  # h5py raises OSError for a damaged file
            raise damaged(path, exc) from exc

    data = read_h5(files["captions"])
    for split in ("train", "val"):
        data[f"{split}_features"] = read_h5(files[f"{split}_features"], ["features"])["features"]
    try:
        vocab = json.loads(files["vocab"].read_text())
        data["idx_to_word"] = list(vocab["idx_to_word"])
        data["word_to_idx"] = {w: int(i) for w, i in vocab["word_to_idx"].items()}
    except (ValueError, KeyError) as exc:
        raise damaged(files["vocab"], exc) from exc
    for split in ("train", "val"):
        data[f"{split}_urls"] = np.array(files[f"{split}_urls"].read_text().split())
    for k in ("train_captions", "train_image_idxs", "val_captions", "val_image_idxs"):
        if k not in data:
            raise damaged(files["captions"], KeyError(k))
    if max_train is not None:
        rng = np.random.default_rng(seed)
        n = len(data["train_captions"])
        keep = np.sort(rng.choice(n, size=min(max_train, n), replace=False))
        data["train_captions"] = data["train_captions"][keep]
        data["train_image_idxs"] = data["train_image_idxs"][keep]
    data["source"] = (f"COCO 2014 captions (CS231n preprocessing) from {base}: "
                      f"{len(data['train_captions'])} train / {len(data['val_captions'])} val "
                      f"captions, {data['train_features'].shape[1]}-d VGG-16 fc7"
                      f"{' PCA' if pca_features else ''} image features")
    return data


def decode_captions(captions, idx_to_word, keep_special=False):
    """Turn token ids back into text.

    captions: int array (T,) -> one string, or (N, T) -> a list of N strings. Decoding stops
    at <END>; <NULL> and <START> are dropped unless ``keep_special``.
    """
    captions = to_numpy(captions)
    single = captions.ndim == 1
    decoded = []
    for row in np.atleast_2d(captions):
        words = []
        for t in row:
            word = idx_to_word[int(t)]
            if word == "<END>":
                if keep_special:
                    words.append(word)
                break
            if keep_special or word not in ("<NULL>", "<START>"):
                words.append(word)
        decoded.append(" ".join(words))
    return decoded[0] if single else decoded


def sample_coco_minibatch(data, batch_size=100, split="train", seed=None, return_idxs=False):
    """A random minibatch of captions with the features (and URLs) of their images.

    Returns (captions (B, T), image_features (B, D), urls (B,)), plus the image indices when
    ``return_idxs`` (use them with data['train_images'] of the offline set to show pictures).
    ``seed``: None draws from fresh entropy; an int makes the batch reproducible.
    """
    rng = np.random.default_rng(seed)
    n = len(data[f"{split}_captions"])
    mask = rng.choice(n, size=batch_size, replace=batch_size > n)
    captions = data[f"{split}_captions"][mask]
    image_idxs = data[f"{split}_image_idxs"][mask]
    batch = (captions, data[f"{split}_features"][image_idxs], data[f"{split}_urls"][image_idxs])
    return (*batch, image_idxs) if return_idxs else batch


# The offline captioning set ------------------------------------------------------------
SIZES = ("small", "big")
COLORS = {"red": (220, 45, 40), "green": (40, 185, 60), "blue": (55, 85, 235),
          "yellow": (235, 215, 40)}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom")
CAPTION_WORDS = ("<NULL>", "<START>", "<END>", "<UNK>", "a", "small", "big", "red", "green",
                 "blue", "yellow", "circle", "square", "triangle", "on", "at", "the", "left",
                 "right", "top", "bottom", "of", "above", "below")
CAPTION_LENGTH = 12      # <START> a big red circle left of a small blue square <END>
FEATURE_DIM = 512
_FEATURE_SHIFT, _FEATURE_SCALE = 0.02, 0.065  # the mean and std of sqrt(features)
_OBJECTS = [(s, c, h) for s in SIZES for c in COLORS for h in SHAPES]  # 24 objects


def _phrase(obj):
    return ["a", *obj]


def _scene_captions(scene):
    """All true captions of a scene, as word lists (without <START>/<END>).

    One object: 'a big red circle on the left' / 'at the top'. Two objects side by side:
    'a A left of a B' and 'a B right of a A'; one above the other: 'a A above a B' and
    'a B below a A' (A is the left or the upper object).
    """
    if scene[0] == "single":
        _, obj, pos = scene
        where = ["on", "the", pos] if pos in ("left", "right") else ["at", "the", pos]
        return [_phrase(obj) + where]
    _, a, b, layout = scene
    first, second = (["left", "of"], ["right", "of"]) if layout == "row" else (["above"], ["below"])
    return [_phrase(a) + first + _phrase(b), _phrase(b) + second + _phrase(a)]


def _is_held_out(scene):
    """The compositions kept for validation: about a fifth of them, fixed in advance.

    Every object, position and pair of objects still appears in training, only these
    combinations do not: for one object, one of the four positions per object; for two
    objects, the (A, B, layout) with index(A) + index(B) + layout divisible by 5 (a pair
    held out side by side is seen one above the other, and the other way round).
    """
    if scene[0] == "single":
        _, obj, pos = scene
        return POSITIONS.index(pos) == _OBJECTS.index(obj) % 4
    _, a, b, layout = scene
    return (_OBJECTS.index(a) + _OBJECTS.index(b) + (layout == "column")) % 5 == 0


def _all_scenes():
    singles = [("single", o, p) for o in _OBJECTS for p in POSITIONS]
    pairs = [("pair", a, b, lay) for a in _OBJECTS for b in _OBJECTS if a != b
             for lay in ("row", "column")]
    return singles, pairs


@functools.lru_cache(maxsize=4)
def _pixel_centres(side):
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    return yy, xx


def _draw_scene(scene, size, rng):
    """Render a scene as a uint8 (3, size, size) image (drawn at 2x, then averaged down)."""
    s2 = 2 * size
    image = np.empty((s2, s2, 3), np.float32)
    image[:] = rng.uniform(20, 110)  # a plain gray background, darker or lighter
    yy, xx = _pixel_centres(s2)
    if scene[0] == "single":
        places = [(scene[1], scene[2])]
    else:
        first, second = ("left", "right") if scene[3] == "row" else ("top", "bottom")
        places = [(scene[1], first), (scene[2], second)]
    for (obj_size, color, shape), pos in places:
        r = s2 * (rng.uniform(0.09, 0.12) if obj_size == "small" else rng.uniform(0.17, 0.21))
        reach = {"circle": r, "square": 0.886 * r, "triangle": 1.1 * r}[shape]
        near, across = rng.uniform(0.16, 0.26) * s2, rng.uniform(0.32, 0.68) * s2
        near = max(near, reach + 1)  # keep the whole shape inside the picture
        if pos in ("right", "bottom"):
            near = s2 - near
        cy, cx = (across, near) if pos in ("left", "right") else (near, across)
        dy, dx = yy - cy, xx - cx
        if shape == "circle":
            mask = dy ** 2 + dx ** 2 <= r ** 2
        elif shape == "square":
            mask = (np.abs(dy) <= reach) & (np.abs(dx) <= reach)  # the circle's area
        else:  # an upward triangle filling half of a square box: apex at the top middle
            mask = (dy <= reach) & (np.abs(dx) <= (dy + reach) / 2)
        image[mask] = np.clip(np.array(COLORS[color]) + rng.uniform(-15, 15, 3), 0, 255)
    small = (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2]) / 4
    return np.round(small).astype(np.uint8).transpose(2, 0, 1)


def _hue_saturation(x):
    """Hue (0..1, red = 0) and saturation (0..1) of RGB values x (N, 3, H, W) in 0..1."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    hi, lo = x.max(axis=1), x.min(axis=1)
    spread = np.maximum(hi - lo, 1e-6)
    hue = np.where(hi == r, ((g - b) / spread) % 6,
                   np.where(hi == g, (b - r) / spread + 2, (r - g) / spread + 4)) / 6
    return hue, (hi - lo) / np.maximum(hi, 1e-6)


def caption_features(images, grid=4, bins=8):
    """The fixed 512-d feature vector of each picture of the offline captioning set.

    A stand-in for a CNN's fc7 features, built from the same ideas as the hand-made
    features of ``course_utils.features``: the picture is cut into a 4x4 grid of regions and
    each region is described by 32 numbers,
      - 24: for each colour channel, an 8-bin histogram of gradient orientations (unsigned,
        each pixel votes with its gradient magnitude), like HOG: edges, hence shape;
      - 8: an 8-bin hue histogram, each pixel voting with its saturation (gray votes 0):
        colour.
    16 regions x 32 = 512 numbers; the square root of each (which evens out large and small
    histogram entries), shifted and scaled by fixed constants to be of order one. Nothing is
    learned from data, so a picture's features never depend on the rest of the set.

    images: uint8 (N, 3, H, W), H and W multiples of ``grid``. Returns float32 (N, 512).
    """
    x = np.asarray(images, np.float32) / 255.0
    n, c, H, W = x.shape
    gy, gx = np.zeros_like(x), np.zeros_like(x)
    gy[:, :, 1:-1] = (x[:, :, 2:] - x[:, :, :-2]) / 2
    gx[:, :, :, 1:-1] = (x[:, :, :, 2:] - x[:, :, :, :-2]) / 2
    angle = np.arctan2(gy, gx) % np.pi
    orient = np.round(angle / np.pi * bins).astype(np.int64) % bins  # bin 0 centred on 0 deg
    region = (np.arange(H) // (H // grid))[:, None] * grid + np.arange(W) // (W // grid)
    image_region = np.arange(n)[:, None, None] * grid * grid + region     # (N, H, W)
    # histogram slot of every (image, region, channel, bin), filled with one bincount
    slot = ((image_region[:, None] * c + np.arange(c)[:, None, None]) * bins + orient)
    edges = np.bincount(slot.ravel(), weights=np.hypot(gx, gy).ravel(),
                        minlength=n * grid * grid * c * bins).reshape(n, grid * grid, c * bins)
    hue, saturation = _hue_saturation(x)
    hue_bin = np.round(hue * bins).astype(np.int64) % bins                # bin 0 centred on red
    colour = np.bincount((image_region * bins + hue_bin).ravel(), weights=saturation.ravel(),
                         minlength=n * grid * grid * bins).reshape(n, grid * grid, bins)
    pixels_per_region = (H // grid) * (W // grid)
    features = np.concatenate([edges, colour], axis=2).reshape(n, -1) / pixels_per_region
    return ((np.sqrt(features) - _FEATURE_SHIFT) / _FEATURE_SCALE).astype(np.float32)


def load_offline_captions(num_train=4000, num_val=500, seed=0, image_size=32,
                          single_fraction=0.3):
    """A small captioning set that needs no download: pictures of coloured shapes.

    Each picture shows one or two shapes (circle, square, triangle; red, green, blue, yellow;
    small or big) on a plain gray background, placed left/right/top/bottom. Its captions come
    from a small grammar, e.g. "a big red circle left of a small blue square" (pictures with
    two shapes get both orderings, like COCO's several captions per image). Validation
    pictures use compositions that never occur in training (see ``_is_held_out``) and fresh
    random layouts, so a validation metric measures generalisation, not memory.

    Returns the layout of ``load_coco_data``: train_captions / val_captions (int64 (N, 12)
    with <START> ... <END> padded by <NULL>=0; <START>=1, <END>=2, <UNK>=3),
    train_image_idxs / val_image_idxs, train_features / val_features (float32 (M, 512), see
    ``caption_features``, so ``CaptioningRNN(input_dim=512)`` works), train_urls / val_urls
    (names like 'offline-shapes/train/00012'), idx_to_word, word_to_idx, source, and the
    pictures themselves as train_images / val_images (uint8 (M, 3, S, S)).
    Deterministic given ``seed``.
    """
    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
    word_to_idx = {w: i for i, w in enumerate(CAPTION_WORDS)}
    rng = np.random.default_rng(seed)
    singles, pairs = _all_scenes()
    data = {"idx_to_word": list(CAPTION_WORDS), "word_to_idx": word_to_idx}
    for split, n in (("train", num_train), ("val", num_val)):
        held = split == "val"
        pool_single = [s for s in singles if _is_held_out(s) == held]
        pool_pair = [s for s in pairs if _is_held_out(s) == held]
        images = np.empty((n, 3, image_size, image_size), np.uint8)
        captions, image_idxs = [], []
        for i in range(n):
            pool = pool_single if rng.random() < single_fraction else pool_pair
            scene = pool[rng.integers(len(pool))]
            images[i] = _draw_scene(scene, image_size, rng)
            for words in _scene_captions(scene):
                ids = [START, *(word_to_idx[w] for w in words), END]
                captions.append(ids + [NULL] * (CAPTION_LENGTH - len(ids)))
                image_idxs.append(i)
        data[f"{split}_captions"] = np.array(captions, np.int64).reshape(-1, CAPTION_LENGTH)
        data[f"{split}_image_idxs"] = np.array(image_idxs, np.int64)
        data[f"{split}_features"] = (caption_features(images) if n
                                     else np.zeros((0, FEATURE_DIM), np.float32))
        data[f"{split}_images"] = images
        data[f"{split}_urls"] = np.array([f"offline-shapes/{split}/{i:05d}" for i in range(n)])
    data["source"] = (f"offline shapes captioning set (drawn with numpy, seed {seed}): "
                      f"{num_train} train / {num_val} val {image_size}x{image_size} pictures, "
                      f"{len(data['train_captions'])} / {len(data['val_captions'])} captions, "
                      f"{FEATURE_DIM}-d fixed edge+colour features; val uses held-out "
                      "compositions")
    return data

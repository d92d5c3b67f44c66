"""Tests of course_utils.data: CIFAR-10 files, the offline sets, COCO, captions and BLEU."""
import json
import pickle
import re
import subprocess
import sys
from math import exp
from pathlib import Path

import numpy as np
import pytest

from course_utils import data, metrics
from course_utils.data import DatasetCorruptedError, DatasetNotFoundError

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


# --------------------------------------------------------------------------------------
# A tiny CIFAR-10 folder in the official format, written here
# --------------------------------------------------------------------------------------
def write_batch(path, images, labels, keys=bytes):
    """Write one batch as the official archive does: a protocol-2 pickle of a dict holding
    'data' (uint8 (N, 3072), the red plane then green then blue of each image) and 'labels'.
    keys=bytes writes b'data' like a Python 2 str read back as bytes; keys=str writes 'data'."""
    k = (lambda s: s.encode("latin1")) if keys is bytes else str
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    batch = {k("batch_label"): k("a test batch"), k("labels"): [int(v) for v in labels],
             k("data"): np.ascontiguousarray(rows, dtype=np.uint8),
             k("filenames"): [k(f"img_{i}.png") for i in range(len(images))]}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def make_cifar(root, n_per_batch=20, n_test=30, keys=bytes, seed=0):
    """A CIFAR-10 folder with 5 small training batches; returns the images and labels."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    Xtr = rng.integers(0, 256, (5 * n_per_batch, 32, 32, 3), dtype=np.uint8)
    ytr = rng.integers(0, 10, 5 * n_per_batch)
    for b in range(5):
        sl = slice(b * n_per_batch, (b + 1) * n_per_batch)
        write_batch(folder / f"data_batch_{b + 1}", Xtr[sl], ytr[sl], keys)
    Xte = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    yte = rng.integers(0, 10, n_test)
    write_batch(folder / "test_batch", Xte, yte, keys)
    k = (lambda s: s.encode()) if keys is bytes else str
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({k("label_names"): [k(c) for c in data.CIFAR10_CLASSES],
                     k("num_cases_per_batch"): n_per_batch}, f, protocol=2)
    return folder, Xtr, ytr, Xte, yte


@pytest.mark.parametrize("keys", [bytes, str], ids=["bytes-keys", "str-keys"])
def test_cifar_batch_round_trips_pixels_and_labels_for_both_key_spellings(tmp_path, keys):
    folder, Xtr, ytr, _, _ = make_cifar(tmp_path, keys=keys)
    X, y = data.load_CIFAR_batch(folder / "data_batch_2")
    assert X.shape == (20, 32, 32, 3) and X.dtype == np.float32
    assert y.shape == (20,) and y.dtype == np.int64
    np.testing.assert_array_equal(X, Xtr[20:40])  # exact: uint8 values fit float32
    np.testing.assert_array_equal(y, ytr[20:40])


def test_load_CIFAR10_concatenates_the_five_batches_in_order(tmp_path):
    folder, Xtr, ytr, Xte, yte = make_cifar(tmp_path)
    for root in (folder, tmp_path):  # the folder itself or its parent
        A, a, B, b = data.load_CIFAR10(root)
        assert A.shape == (100, 32, 32, 3) and B.shape == (30, 32, 32, 3)
        np.testing.assert_array_equal(A, Xtr)
        np.testing.assert_array_equal(a, ytr)
        np.testing.assert_array_equal(B, Xte)
        np.testing.assert_array_equal(b, yte)


def test_get_CIFAR10_data_splits_in_order_and_puts_channels_first(tmp_path):
    folder, Xtr, ytr, Xte, yte = make_cifar(tmp_path)
    d = data.get_CIFAR10_data(70, 20, 10, subtract_mean=False, root=folder)
    assert d["X_train"].shape == (70, 3, 32, 32) and d["X_train"].dtype == np.float32
    assert d["X_val"].shape == (20, 3, 32, 32) and d["X_test"].shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(d["X_train"], Xtr[:70].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(d["X_val"], Xtr[70:90].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(d["X_test"], Xte[:10].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(d["y_val"], ytr[70:90])
    assert d["class_names"] == list(data.CIFAR10_CLASSES)
    assert d["image_shape"] == (3, 32, 32)
    assert "CIFAR-10" in d["source"] and str(folder) in d["source"]


def test_get_CIFAR10_data_channels_last_keeps_NHWC(tmp_path):
    folder, Xtr, *_ = make_cifar(tmp_path)
    d = data.get_CIFAR10_data(70, 20, 10, subtract_mean=False, channels_first=False,
                              dtype=np.float64, root=folder)
    assert d["X_train"].shape == (70, 32, 32, 3) and d["X_train"].dtype == np.float64
    np.testing.assert_array_equal(d["X_train"], Xtr[:70])


def test_mean_subtraction_uses_the_training_mean_for_every_split(tmp_path):
    folder, Xtr, _, Xte, _ = make_cifar(tmp_path)
    d = data.get_CIFAR10_data(70, 20, 10, root=folder)
    mean = Xtr[:70].astype(np.float64).mean(axis=0).transpose(2, 0, 1)  # computed here, apart
    # float32 storage of values up to 255: agreement to ~1e-4 is what the format allows
    np.testing.assert_allclose(d["mean_image"], mean, atol=1e-4)
    assert np.abs(d["X_train"].mean(axis=0)).max() < 1e-3
    np.testing.assert_allclose(d["X_test"] + d["mean_image"], Xte[:10].transpose(0, 3, 1, 2),
                               atol=1e-3)


def test_asking_for_more_images_than_the_files_hold_is_a_value_error(tmp_path):
    folder, *_ = make_cifar(tmp_path)
    with pytest.raises(ValueError, match="holds 100"):
        data.get_CIFAR10_data(95, 10, 10, root=folder)


def test_missing_cifar_folder_raises_one_clear_error_with_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        data.load_CIFAR10(missing)
    msg = str(info.value)
    assert str(missing) in msg
    assert "python datasets/get.py cifar10" in msg and "COURSE_DATA_DIR" in msg
    assert "load_dataset('auto')" in msg
    assert isinstance(info.value, FileNotFoundError)  # code catching the builtin still works


def test_default_cifar_location_follows_COURSE_DATA_DIR(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert data.data_root() == tmp_path
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path))):
        data.get_CIFAR10_data()
    make_cifar(tmp_path)
    assert data.get_CIFAR10_data(50, 10, 5)["X_train"].shape == (50, 3, 32, 32)
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert data.data_root() == REPO / "datasets"


def test_truncated_batch_raises_corrupted_error_naming_file_and_fix(tmp_path):
    folder, *_ = make_cifar(tmp_path)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetCorruptedError) as info:
        data.load_CIFAR10(folder)
    assert str(path) in str(info.value)
    assert "delete" in str(info.value) and "get.py cifar10" in str(info.value)


def test_a_missing_batch_file_is_reported_by_name(tmp_path):
    folder, *_ = make_cifar(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(DatasetNotFoundError, match="test_batch"):
        data.load_CIFAR10(folder)


@pytest.mark.parametrize("change, found", [
    (lambda b: b.update(data=np.zeros((4, 100), np.uint8)), r"shape \(4, 100\)"),
    (lambda b: b.update(data=np.zeros((4, 3072), np.float32)), "float32"),
    (lambda b: b.update(labels=[0, 1, 2, 10]), r"0\.\.10"),
    (lambda b: b.update(labels=[0, 1]), r"shape \(2,\)"),
    (lambda b: b.pop("labels"), "found"),
], ids=["short-rows", "float-pixels", "label-10", "too-few-labels", "no-labels"])
def test_wrong_contents_raise_corrupted_error_saying_what_was_found(tmp_path, change, found):
    batch = {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 3]}
    change(batch)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetCorruptedError, match=found):
        data.load_CIFAR_batch(path)


def test_a_pickle_that_is_not_a_dict_is_corrupted(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(DatasetCorruptedError, match="list"):
        data.load_CIFAR_batch(path)


# --------------------------------------------------------------------------------------
# The full CIFAR-10, rebuilt from the shared JPEG pack (our machines only)
# --------------------------------------------------------------------------------------
@pytest.mark.shared  # skipped by conftest.py unless the pack and the tool below are there
def test_full_cifar10_from_the_shared_pack_has_the_official_splits(tmp_path):
    tool = SHARED / "tools" / "make_cifar10_batches.py"
    subprocess.run([sys.executable, str(tool), str(tmp_path)], check=True,
                   capture_output=True, timeout=300)
    root = tmp_path / "cifar-10-batches-py"
    d = data.get_CIFAR10_data(root=root)
    assert d["X_train"].shape == (49000, 3, 32, 32) and d["X_train"].dtype == np.float32
    assert d["X_val"].shape == (1000, 3, 32, 32) and d["X_test"].shape == (1000, 3, 32, 32)
    for split in ("train", "val", "test"):
        assert set(np.unique(d[f"y_{split}"])) == set(range(10)), split
    counts = np.bincount(np.concatenate([d["y_train"], d["y_val"]]), minlength=10)
    np.testing.assert_array_equal(counts, 5000)
    assert d["class_names"] == list(data.CIFAR10_CLASSES)

    # the training mean, from the raw pickles and without the loader
    total = np.zeros(3072)
    seen = 0
    for b in range(1, 6):
        with open(root / f"data_batch_{b}", "rb") as f:
            rows = pickle.load(f, encoding="bytes")[b"data"]
        take = rows[:max(0, 49000 - seen)]
        total += take.sum(axis=0, dtype=np.float64)
        seen += len(take)
    # float32 mean of 49,000 values of up to 255: 1e-3 absolute is well within its precision
    np.testing.assert_allclose(d["mean_image"], (total / 49000).reshape(3, 32, 32), atol=1e-3)
    assert np.abs(d["X_train"].mean(axis=0, dtype=np.float64)).max() < 1e-3


# --------------------------------------------------------------------------------------
# load_dataset: one layout for every source
# --------------------------------------------------------------------------------------
SMALL = {"cifar10": (50, 20, 10), "natural-patches": (200, 50, 50), "digits": (300, 100, 100),
         "digits28": (300, 100, 100), "mnist-like": (300, 100, 100)}
SHAPES = {"cifar10": (3, 32, 32), "natural-patches": (3, 32, 32), "digits": (1, 8, 8),
          "digits28": (1, 28, 28), "mnist-like": (1, 28, 28)}


@pytest.fixture
def cifar_env(tmp_path, monkeypatch):
    make_cifar(tmp_path)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", list(SMALL))
def test_every_dataset_returns_the_same_layout(name, cifar_env, capsys):
    d = data.load_dataset(name, *SMALL[name])
    assert {"X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "mean_image",
            "class_names", "source", "image_shape", "name"} <= set(d)
    for split, n in zip(("train", "val", "test"), SMALL[name], strict=True):
        X, y = d[f"X_{split}"], d[f"y_{split}"]
        assert X.shape == (n, *SHAPES[name]) and X.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64
        assert 0 <= y.min() and y.max() < len(d["class_names"])
    assert d["image_shape"] == SHAPES[name] and d["mean_image"].shape == SHAPES[name]
    assert len(d["class_names"]) == 10
    assert isinstance(d["source"], str) and "\n" not in d["source"]
    line = capsys.readouterr().out
    assert line.startswith("Using ") and d["source"] in line
    raw = d["X_train"] + d["mean_image"]
    assert raw.min() >= -1e-3 and raw.max() <= 255 + 1e-3  # 0..255 before the mean goes


def test_offline_sets_are_deterministic_given_the_seed():
    for name in ("natural-patches", "digits"):
        a = data.load_dataset(name, *SMALL[name], seed=3, verbose=False)
        b = data.load_dataset(name, *SMALL[name], seed=3, verbose=False)
        c = data.load_dataset(name, *SMALL[name], seed=4, verbose=False)
        for k in ("X_train", "y_train", "X_test", "y_test"):
            np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a["X_train"], c["X_train"])


def test_offline_sets_are_class_balanced():
    d = data.load_dataset("natural-patches", 200, 50, 50, verbose=False)
    for split, n in (("train", 200), ("val", 50), ("test", 50)):
        np.testing.assert_array_equal(np.bincount(d[f"y_{split}"], minlength=10), n // 10)
    d = data.load_dataset("digits", verbose=False)  # 1797 digits, 174..183 of each class
    for split, n in (("train", 1197), ("val", 300), ("test", 300)):
        counts = np.bincount(d[f"y_{split}"], minlength=10)
        # each class gets its share of the split, give or take the rounding of two classes
        assert counts.sum() == n and counts.min() >= 0.096 * n - 2 and counts.max() <= 0.102 * n + 2


def test_digit_splits_do_not_share_images():
    d = data.load_dataset("digits", subtract_mean=False, verbose=False)
    rows = {s: {x.tobytes() for x in d[f"X_{s}"]} for s in ("train", "val", "test")}
    # load_digits holds a few exact duplicate images; a split may repeat one, but at most a handful
    assert len(rows["train"] & rows["test"]) <= 5 and len(rows["val"] & rows["test"]) <= 5
    assert len(d["y_train"]) + len(d["y_val"]) + len(d["y_test"]) == 1797


def test_natural_patch_val_and_test_never_overlap_training_patches():
    p = data.natural_patches(600, 150, 150, seed=0)
    train = p["corners_train"]
    for split in ("val", "test"):
        for photo, top, left in p[f"corners_{split}"]:
            same = train[train[:, 0] == photo]
            overlap = (np.abs(same[:, 1] - top) < data.PATCH) & \
                      (np.abs(same[:, 2] - left) < data.PATCH)
            assert not overlap.any(), (split, photo, top, left)
    # and every patch lies inside one region of its own split
    regions = data.natural_patch_regions()
    for split in ("train", "val", "test"):
        for photo, top, left in p[f"corners_{split}"]:
            assert any(t <= top and top + data.PATCH <= t + data.TILE and
                       l <= left and left + data.PATCH <= l + data.TILE and s == split
                       for t, l, s in regions[photo])


def test_natural_patches_are_the_pixels_of_their_photo():
    p = data.natural_patches(20, 10, 10, seed=1)
    photos = data._natural_photos()
    for X, (photo, top, left) in zip(p["X_test"], p["corners_test"], strict=True):
        np.testing.assert_array_equal(X, photos[photo][top:top + 32, left:left + 32])


def test_auto_uses_cifar10_when_present(cifar_env, capsys):
    d = data.load_dataset("auto", 50, 20, 10)
    assert d["name"] == "cifar10"
    assert "Using CIFAR-10" in capsys.readouterr().out


def test_auto_falls_back_to_offline_patches_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    d = data.load_dataset("auto", 100, 20, 20)
    assert d["name"] == "natural-patches" and d["X_train"].shape == (100, 3, 32, 32)
    out = capsys.readouterr().out
    assert out.startswith("Using offline data:")
    assert "CIFAR-10 not found at" in out and "python datasets/get.py cifar10" in out
    assert str(tmp_path / "empty") in out


def test_explicit_cifar10_does_not_fall_back(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError):
        data.load_dataset("cifar10", verbose=False)


def test_auto_reports_a_damaged_cifar_instead_of_hiding_it(cifar_env):
    (cifar_env / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80\x02}(")
    with pytest.raises(DatasetCorruptedError):
        data.load_dataset("auto", verbose=False)


def test_unknown_dataset_name_lists_the_choices():
    with pytest.raises(ValueError, match="natural-patches"):
        data.load_dataset("imagenet")


# --------------------------------------------------------------------------------------
# COCO files (a tiny fake in the CS231n layout)
# --------------------------------------------------------------------------------------
def make_coco(base, n_train=12, n_val=6, dim=8):
    import h5py

    base.mkdir(parents=True)
    words = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "dog", "on", "grass"]
    (base / "coco2014_vocab.json").write_text(json.dumps(
        {"idx_to_word": words, "word_to_idx": {w: i for i, w in enumerate(words)}}))
    caption = [1, 4, 5, 6, 4, 7, 2, 0, 0]
    with h5py.File(base / "coco2014_captions.h5", "w") as f:
        f["train_captions"] = np.array([caption] * n_train, np.int32)
        f["train_image_idxs"] = np.arange(n_train) % 4
        f["val_captions"] = np.array([caption] * n_val, np.int32)
        f["val_image_idxs"] = np.arange(n_val) % 3
    for split, n_images in (("train", 4), ("val", 3)):
        for suffix, d in (("", 4 * dim), ("_pca", dim)):
            with h5py.File(base / f"{split}2014_vgg16_fc7{suffix}.h5", "w") as f:
                f["features"] = np.arange(n_images * d, dtype=np.float32).reshape(n_images, d)
        (base / f"{split}2014_urls.txt").write_text(
            "\n".join(f"http://example.org/{split}/{i}.jpg" for i in range(n_images)))


def test_load_coco_data_reads_the_cs231n_layout(tmp_path):
    make_coco(tmp_path / "coco_captioning")
    d = data.load_coco_data(tmp_path / "coco_captioning")
    assert d["train_captions"].shape == (12, 9) and d["val_captions"].shape == (6, 9)
    assert d["train_features"].shape == (4, 8)
    assert data.load_coco_data(tmp_path / "coco_captioning", pca_features=False)[
        "train_features"].shape == (4, 32)
    assert d["val_urls"][2] == "http://example.org/val/2.jpg"
    assert d["word_to_idx"]["dog"] == 5 and d["idx_to_word"][5] == "dog"
    assert data.decode_captions(d["train_captions"][0], d["idx_to_word"]) == "a dog on a grass"
    small = data.load_coco_data(tmp_path / "coco_captioning", max_train=5)
    assert small["train_captions"].shape == (5, 9) and small["train_image_idxs"].shape == (5,)


def test_load_coco_data_follows_COURSE_DATA_DIR(tmp_path, monkeypatch):
    make_coco(tmp_path / "coco_captioning")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert data.load_coco_data()["train_captions"].shape == (12, 9)


def test_missing_coco_file_raises_not_found_with_the_fix(tmp_path):
    make_coco(tmp_path / "coco_captioning")
    (tmp_path / "coco_captioning" / "val2014_vgg16_fc7_pca.h5").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        data.load_coco_data(tmp_path / "coco_captioning")
    assert "val2014_vgg16_fc7_pca.h5" in str(info.value)
    assert "python datasets/get.py coco" in str(info.value)
    assert "load_offline_captions" in str(info.value)


def test_damaged_coco_file_raises_corrupted(tmp_path):
    make_coco(tmp_path / "coco_captioning")
    (tmp_path / "coco_captioning" / "coco2014_captions.h5").write_bytes(b"not hdf5")
    with pytest.raises(DatasetCorruptedError, match="get.py coco"):
        data.load_coco_data(tmp_path / "coco_captioning")


def test_sample_coco_minibatch_pairs_captions_with_their_images(tmp_path):
    make_coco(tmp_path / "coco_captioning")
    d = data.load_coco_data(tmp_path / "coco_captioning")
    captions, features, urls, idxs = data.sample_coco_minibatch(d, 5, "val", seed=0,
                                                                return_idxs=True)
    assert captions.shape == (5, 9) and features.shape == (5, 8) and urls.shape == (5,)
    np.testing.assert_array_equal(features, d["val_features"][idxs])
    again = data.sample_coco_minibatch(d, 5, "val", seed=0)
    np.testing.assert_array_equal(again[0], captions)
    np.testing.assert_array_equal(again[1], features)


# --------------------------------------------------------------------------------------
# The offline captioning set
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes():
    return data.load_offline_captions(num_train=300, num_val=100, seed=0)


OBJECT = r"a (small|big) (red|green|blue|yellow) (circle|square|triangle)"
GRAMMAR = re.compile(rf"^{OBJECT}( (on the (left|right)|at the (top|bottom))|"
                     rf" (left of|right of|above|below) {OBJECT})$")


def test_offline_captions_have_the_coco_layout(shapes):
    coco_keys = {"train_captions", "train_image_idxs", "val_captions", "val_image_idxs",
                 "train_features", "val_features", "idx_to_word", "word_to_idx",
                 "train_urls", "val_urls"}
    assert coco_keys <= set(shapes)
    assert shapes["train_features"].shape == (300, 512)  # CaptioningRNN(input_dim=512)
    assert shapes["train_features"].dtype == np.float32
    assert shapes["train_images"].shape == (300, 3, 32, 32)
    assert shapes["train_images"].dtype == np.uint8
    assert shapes["train_captions"].dtype == np.int64
    assert shapes["train_captions"].shape[1] == data.CAPTION_LENGTH
    assert shapes["train_image_idxs"].max() == 299 and shapes["val_image_idxs"].max() == 99
    assert shapes["idx_to_word"][:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
    assert (shapes["train_captions"][:, 0] == data.START).all()


def test_offline_captions_decode_to_grammatical_sentences_and_round_trip(shapes):
    w2i = shapes["word_to_idx"]
    for split in ("train", "val"):
        for row, text in zip(shapes[f"{split}_captions"],
                             data.decode_captions(shapes[f"{split}_captions"],
                                                  shapes["idx_to_word"]), strict=True):
            assert GRAMMAR.match(text), text
            ids = [data.START, *(w2i[w] for w in text.split()), data.END]
            np.testing.assert_array_equal(row[:len(ids)], ids)
            assert (row[len(ids):] == data.NULL).all()


def test_two_shape_pictures_get_both_orderings_as_captions(shapes):
    texts = data.decode_captions(shapes["train_captions"], shapes["idx_to_word"])
    idxs = shapes["train_image_idxs"]
    i = int(np.flatnonzero(np.bincount(idxs) == 2)[0])
    first, second = [t for t, j in zip(texts, idxs, strict=True) if j == i]
    m1, m2 = re.match(GRAMMAR, first), re.match(GRAMMAR, second)
    a = " ".join(first.split()[:4])
    b = " ".join(second.split()[:4])
    assert first.endswith(b) and second.endswith(a)
    flips = {"left of": "right of", "above": "below"}
    assert flips[m1.group(8)] == m2.group(8)


def test_validation_captions_are_compositions_never_seen_in_training(shapes):
    train = set(data.decode_captions(shapes["train_captions"], shapes["idx_to_word"]))
    val = set(data.decode_captions(shapes["val_captions"], shapes["idx_to_word"]))
    assert not train & val
    # but the words are all known: every val word also occurs in training
    assert {w for t in val for w in t.split()} <= {w for t in train for w in t.split()}


def test_single_shape_pictures_show_the_colour_and_side_of_their_caption(shapes):
    texts = data.decode_captions(shapes["train_captions"], shapes["idx_to_word"])
    idxs = shapes["train_image_idxs"]
    checked = 0
    for text, i in zip(texts, idxs, strict=True):
        words = text.split()
        if len(words) != 7:  # one-shape captions: "a big red circle on the left"
            continue
        img = shapes["train_images"][i].astype(float)
        colourful = img.max(axis=0) - img.min(axis=0) > 60  # the background is gray
        ys, xs = np.nonzero(colourful)
        expected = np.array(data.COLORS[words[2]])
        mean_colour = img[:, colourful].mean(axis=1)
        # edge pixels are mixed with the background, and colours are jittered by +-15
        assert np.abs(mean_colour - expected).max() < 60, (text, mean_colour)
        side = {"left": xs.mean() < 16, "right": xs.mean() > 16, "top": ys.mean() < 16,
                "bottom": ys.mean() > 16}[words[-1]]
        assert side, text
        checked += 1
    assert checked > 30


def test_offline_captions_are_deterministic_given_the_seed(shapes):
    again = data.load_offline_captions(num_train=300, num_val=100, seed=0)
    other = data.load_offline_captions(num_train=300, num_val=100, seed=1)
    for k in ("train_captions", "train_images", "train_features", "val_captions"):
        np.testing.assert_array_equal(shapes[k], again[k])
    assert not np.array_equal(shapes["train_images"], other["train_images"])


def test_caption_features_of_a_picture_do_not_depend_on_the_rest_of_the_set(shapes):
    alone = data.caption_features(shapes["train_images"][5:6])
    np.testing.assert_allclose(alone[0], shapes["train_features"][5], rtol=1e-6)


# --------------------------------------------------------------------------------------
# BLEU
# --------------------------------------------------------------------------------------
def test_bleu_of_a_sentence_with_itself_is_one():
    s = "a big red circle left of a small blue square".split()
    assert metrics.bleu_score(s, s) == pytest.approx(1.0)
    assert metrics.bleu_score(" ".join(s), " ".join(s)) == pytest.approx(1.0)
    assert metrics.bleu_score(np.array([4, 5, 6, 7]), np.array([4, 5, 6, 7])) == pytest.approx(1.0)


def test_bleu_with_no_word_in_common_is_zero():
    assert metrics.bleu_score("the cat sat", "dogs run fast today") == 0.0
    assert metrics.bleu_score("the cat sat", "") == 0.0


def test_bleu_matches_a_hand_computed_example():
    ref, cand = "the cat is on the mat", "the cat sat on the mat"
    # unigrams: the x2, cat, on, mat match, sat does not      -> 5/6
    # bigrams: 'the cat', 'on the', 'the mat' of 5             -> (3+1)/(5+1) smoothed
    # trigrams: 'on the mat' of 4                              -> (1+1)/(4+1)
    # 4-grams: none of 3                                       -> (0+1)/(3+1)
    # same length, so no brevity penalty
    expected = (5 / 6 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25
    assert metrics.bleu_score(ref, cand) == pytest.approx(expected, rel=1e-12)


def test_bleu_brevity_penalty_and_clipping():
    # 'the cat' is all correct but 4 words too short: BP = exp(1 - 6/2), all p_n = 1
    assert metrics.bleu_score("the cat is on the mat", "the cat") == pytest.approx(exp(-2))
    # Papineni et al.'s example: 'the' x7 is credited only twice -> p_1 = 2/7, then
    # p_2..p_4 = (0+1)/(6+1), (0+1)/(5+1), (0+1)/(4+1); c = 7 > r = 6, so BP = 1
    expected = (2 / 7 * 1 / 7 * 1 / 6 * 1 / 5) ** 0.25
    assert metrics.bleu_score("the cat is on the mat", ["the"] * 7) == pytest.approx(expected)


def test_bleu_takes_the_best_of_several_references():
    refs = ["a red circle left of a blue square", "a blue square right of a red circle"]
    assert metrics.bleu_score(refs, refs[1]) == pytest.approx(1.0)
    assert metrics.bleu_score(refs, "a red circle") == pytest.approx(exp(1 - 8 / 3))


def test_corpus_bleu_pools_counts_before_dividing():
    refs = ["the cat is on the mat", "a dog runs"]
    cands = ["the cat is on the mat", "a dog walks"]
    # unigrams 8/9, bigrams 6/7, trigrams 4/5, 4-grams 3/3; lengths 9 vs 9 -> BP = 1
    expected = (8 / 9 * 6 / 7 * 4 / 5 * 3 / 3) ** 0.25
    assert metrics.corpus_bleu([[r] for r in refs], cands) == pytest.approx(expected)
    assert metrics.corpus_bleu(refs, refs) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.corpus_bleu(refs, cands[:1])


# --------------------------------------------------------------------------------------
# Offline really means offline
# --------------------------------------------------------------------------------------
def _no_network_prefix():
    """`unshare -rn` (a private network namespace with no interfaces) where the OS allows it."""
    import shutil

    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"],
                                                  capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    return []


def test_offline_sets_load_with_empty_download_caches_and_no_network(tmp_path):
    import os

    empty = tmp_path / "cache"
    empty.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(empty), "SKIMAGE_DATADIR": str(empty),
           "SCIKIT_LEARN_DATA": str(empty), "COURSE_DATA_DIR": str(tmp_path / "none")}
    env.pop("PYTEST_CURRENT_TEST", None)  # skimage turns a failed fetch into a skip under pytest
    code = ("from course_utils import data\n"
            "for name in ('auto', 'digits', 'digits28'):\n"
            "    data.load_dataset(name, 50, 10, 10, verbose=False)\n"
            "data.load_offline_captions(20, 10)\n"
            "print('ok')\n")
    p = subprocess.run([*_no_network_prefix(), sys.executable, "-c", code], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
    assert list(empty.iterdir()) == []  # nothing was downloaded or cached


def test_offline_captions_at_another_image_size_keep_512_features():
    d = data.load_offline_captions(num_train=10, num_val=5, image_size=64)
    assert d["train_images"].shape == (10, 3, 64, 64)
    assert d["train_features"].shape == (10, 512)


def test_auto_reports_an_incomplete_cifar_folder_instead_of_falling_back(cifar_env):
    (cifar_env / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_4"):
        data.load_dataset("auto", verbose=False)


def test_damaged_coco_feature_file_is_named_in_the_error(tmp_path):
    make_coco(tmp_path / "coco_captioning")
    path = tmp_path / "coco_captioning" / "train2014_vgg16_fc7_pca.h5"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetCorruptedError, match=re.escape(str(path))):
        data.load_coco_data(tmp_path / "coco_captioning")

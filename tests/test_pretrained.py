"""The course convnet that network visualization and style transfer load: trained once, saved,
loaded only for the data and recipe it was trained with, and a damaged file is set aside."""
import json

import numpy as np
import pytest

from course_utils.data import load_dataset
from course_utils.pretrained import course_convnet


@pytest.fixture(scope="module")
def small_data():
    return load_dataset("natural-patches", num_train=64, num_val=20, num_test=20, verbose=False)


def test_trains_once_then_loads_the_same_network(small_data, tmp_path):
    model, info = course_convnet(small_data, fast=True, folder=tmp_path, verbose=False)
    assert not info["loaded"] and info["num_train"] == 64
    # the reported accuracy is the returned network's, on the whole validation set
    X_val, y_val = small_data["X_val"], small_data["y_val"]
    assert info["val_accuracy"] == np.mean(np.argmax(model.loss(X_val), axis=1) == y_val)
    assert len(list(tmp_path.glob("convnet-natural-patches-fast-*.npz"))) == 1
    assert not list(tmp_path.glob("*tmp*"))
    again, info2 = course_convnet(small_data, fast=True, folder=tmp_path, verbose=False)
    assert info2["loaded"] and info2["val_accuracy"] == info["val_accuracy"]
    X = small_data["X_val"][:5]
    assert np.array_equal(again.loss(X), model.loss(X))
    _, info3 = course_convnet(small_data, fast=True, folder=tmp_path, retrain=True, verbose=False)
    assert not info3["loaded"]


def test_other_data_trains_a_new_model(small_data, tmp_path, capsys):
    course_convnet(small_data, fast=True, folder=tmp_path, verbose=False)
    other = load_dataset("natural-patches", num_train=64, num_val=20, num_test=20, seed=1,
                         verbose=False)
    _, info = course_convnet(other, fast=True, folder=tmp_path, verbose=False)
    assert not info["loaded"]
    assert len(list(tmp_path.glob("convnet-natural-patches-fast-*.npz"))) == 2  # both kept


def test_a_model_saved_for_another_recipe_is_not_loaded(small_data, tmp_path, capsys):
    course_convnet(small_data, fast=True, folder=tmp_path, verbose=False)
    meta_path, = tmp_path.glob("convnet-natural-patches-fast-*.json")
    meta = json.loads(meta_path.read_text())
    meta["fingerprint"]["recipe"]["learning_rate"] = 1.0     # as if the recipe had changed
    meta_path.write_text(json.dumps(meta))
    _, info = course_convnet(small_data, fast=True, folder=tmp_path)
    assert not info["loaded"]
    assert "trained on other data or with another recipe" in capsys.readouterr().out


def test_damaged_file_is_set_aside_not_lost(small_data, tmp_path, capsys):
    course_convnet(small_data, fast=True, folder=tmp_path, verbose=False)
    saved, = tmp_path.glob("convnet-natural-patches-fast-*.npz")
    saved.write_bytes(b"not a zip file")
    _, info = course_convnet(small_data, fast=True, folder=tmp_path)
    out = capsys.readouterr().out
    assert not info["loaded"] and "Could not use the saved model" in out
    assert saved.with_name(saved.name + ".broken-1").read_bytes() == b"not a zip file"
    assert saved.with_suffix(".json.broken-1").exists()        # its record is kept beside it
    meta = json.loads(saved.with_suffix(".json").read_text())
    assert meta["info"]["num_train"] == 64
    _, info = course_convnet(small_data, fast=True, folder=tmp_path, verbose=False)
    assert info["loaded"]                       # the replacement is usable

"""A small convnet that the course trains once and keeps on disk.

Network visualization and style transfer study a *trained* network rather than train one.
`course_convnet(data)` trains the course's ConvNet on the notebook's data the first time
(a few minutes on a laptop) and saves it under ``data_root()/models``; later runs load it in
a second. The file is tied to the data it was trained on: a different dataset, split size or
recipe trains a fresh model, and a damaged file is set aside (never deleted) and replaced.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .data import data_root
from .models import ConvNet
from .solver import Solver

# conv32-pool-conv64-pool-conv128-pool, spatial batchnorm, then the linear classifier:
# assignment 2's best-convnet architecture, trained for fewer epochs.
RECIPE = dict(conv_layers=(32, "pool", 64, "pool", 128, "pool"), hidden_dims=(),
              normalization="batchnorm", learning_rate=2e-3, lr_end=0.05, batch_size=64,
              num_epochs=2, augment="random_flip", seed=0)
FAST_TRAIN = 512   # COURSE_FAST: training images used (same code path, seconds instead of minutes)


def _mirror_half(X, rng):
    """Each image mirrored left-right with probability 1/2: the recipe's augmentation.

    Written out here, not imported from augment, because students write augment's functions
    (extras/training_craft) and their edition of the package holds stubs there."""
    mirrored = rng.random(X.shape[0]) < 0.5
    out = X.copy()
    out[mirrored] = X[mirrored][..., ::-1]
    return out


def _lr_factor(epoch, epochs, lr_end):
    """The learning rate's factor: 1 at epoch 0, falling on a straight line to lr_end at the
    last epoch (schedules.linear_decay, which students write in extras/training_craft)."""
    done = min(epoch, epochs) / epochs
    return (1 - done) + done * lr_end


def models_dir() -> Path:
    """Where trained course models are kept: ``data_root()/models``."""
    return data_root() / "models"


def _fingerprint(data, recipe):
    """What the model depends on: the data (name, sizes, a hash of the training images'
    first rows and labels) and the recipe. Loading needs an exact match."""
    X, y = data["X_train"], data["y_train"]
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(X[:64]).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return {"dataset": data.get("name", "unknown"), "train_shape": list(X.shape),
            "num_val": int(len(data["y_val"])), "num_classes": len(data["class_names"]),
            "train_hash": digest.hexdigest(), "dtype": str(X.dtype),
            "recipe": json.loads(json.dumps(recipe))}


def _build(data, recipe):
    return ConvNet(input_dim=tuple(data["X_train"].shape[1:]), conv_layers=recipe["conv_layers"],
                   hidden_dims=recipe["hidden_dims"], num_classes=len(data["class_names"]),
                   normalization=recipe["normalization"], dtype=np.float32, seed=recipe["seed"])


def _set_aside(paths, why, say):
    """Rename the saved files we cannot use to <name>.broken-<n>, so that nothing is lost."""
    n = 1
    while any(p.with_name(f"{p.name}.broken-{n}").exists() for p in paths):
        n += 1
    for p in paths:
        if p.exists():
            p.rename(p.with_name(f"{p.name}.broken-{n}"))
    say(f"Could not use the saved model {paths[0]} ({why}); renamed its files to "
        f"*.broken-{n} and training a new one.")


def course_convnet(data, *, fast=False, retrain=False, folder=None, verbose=True):
    """The course's trained ConvNet for `data` (a dict from ``load_dataset``), and a report.

    Loads ``<folder>/convnet-<dataset>.npz`` when it was trained on this very data with this
    recipe; otherwise trains one with the course's Solver (Adam, linear learning-rate decay,
    random flips; 2 epochs) and saves it there. fast=True (COURSE_FAST) trains on 512
    images for one epoch and saves under a '-fast-<data hash>' name, so it never replaces a
    real model and notebooks with different splits do not overwrite each other's.

    Returns (model, info). info: 'path', 'loaded' (bool), 'dataset', 'val_accuracy',
    'train_seconds', 'epochs', 'num_train'.
    """
    say = print if verbose else (lambda *a, **k: None)
    recipe = dict(RECIPE, num_epochs=1) if fast else dict(RECIPE)
    if fast:
        data = dict(data, X_train=data["X_train"][:FAST_TRAIN], y_train=data["y_train"][:FAST_TRAIN])
    folder = models_dir() if folder is None else Path(folder)
    fingerprint = _fingerprint(data, recipe)
    name = f"convnet-{data.get('name', 'unknown')}"
    if fast:  # notebooks load different split sizes: one small file each, never shared
        name += "-fast-" + fingerprint["train_hash"][:8]
    path, meta_path = folder / f"{name}.npz", folder / f"{name}.json"
    model = _build(data, recipe)

    if path.exists() and not retrain:
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("fingerprint") != fingerprint:
                say(f"The saved model {path} was trained on other data or with another recipe; "
                    "training a new one for this data.")
            else:
                model.load(path)
                say(f"Loaded the course convnet from {path} (trained on {meta['dataset_source']}; "
                    f"validation accuracy {meta['info']['val_accuracy']:.3f}).")
                return model, dict(meta["info"], path=str(path), loaded=True)
        except FileNotFoundError:
            say(f"{meta_path.name} is missing beside {path.name}; training a new model.")
        except (ValueError, OSError, EOFError, KeyError) as exc:  # damaged npz or json
            # (Model.load checks everything before it changes the model: it is still fresh.)
            _set_aside([path, meta_path], f"{type(exc).__name__}: {exc}", say)

    say(f"Training the course convnet on {data.get('source', 'the given data')} "
        f"({recipe['num_epochs']} epoch(s) of {len(data['y_train'])} images"
        f"{'; COURSE_FAST' if fast else ''}). It is saved afterwards, so this happens once.")
    epochs = recipe["num_epochs"]
    solver = Solver(model, data, update_rule="adam",
                    optim_config={"learning_rate": recipe["learning_rate"]},
                    lr_schedule=lambda epoch: _lr_factor(epoch, epochs, recipe["lr_end"]),
                    augment=_mirror_half, batch_size=recipe["batch_size"], num_epochs=epochs,
                    print_every=10**9,  # epoch summaries and the bar, no per-step lines
                    verbose=verbose, seed=recipe["seed"])
    start = time.time()
    solver.train()
    seconds = time.time() - start
    info = {"dataset": data.get("name", "unknown"), "val_accuracy": solver.best_val_acc,
            "train_seconds": round(seconds, 1), "epochs": epochs,
            "num_train": int(len(data["y_train"]))}
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"fingerprint": fingerprint, "info": info,
            "dataset_source": data.get("source", "unknown data")}
    # Write both files under temporary names, then rename: a run that is interrupted, or
    # another notebook training at the same time, never leaves a half-written model.
    tmp_npz = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    tmp_json = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.tmp")
    model.save(tmp_npz)
    tmp_json.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_npz, path)
    os.replace(tmp_json, meta_path)
    say(f"Trained in {seconds / 60:.1f} min; validation accuracy {solver.best_val_acc:.3f}; "
        f"saved to {path}.")
    return model, dict(info, path=str(path), loaded=False)

"""What every model in course_utils.models shares: saving and loading its arrays, and a few
input checks.

A model keeps its learnable arrays in `self.params` (name -> array) and may keep extra
non-learnable state, such as batch-norm running statistics, which it exposes through
`_state_arrays()` / `_set_state_arrays()`. `save` writes both to one .npz file on the host;
`load` reads them back onto the active backend.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy

from ..backend import asarray, to_numpy

_PARAM = "param:"
_STATE = "state:"


def layer_functions(model_name: str, defaults: dict, overrides=None) -> SimpleNamespace:
    """The layer functions a model calls: the library's (`defaults`), with any of them
    replaced by `overrides` (name -> function). This is how a notebook trains a model on the
    layers the student wrote: `FullyConnectedNet(..., layers={"batchnorm_forward": mine})`.
    A replacement keeps the library function's signature; caches only pass between a
    forward function and its own backward, so their contents are the student's business."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{model_name}: layers has no {', '.join(map(repr, unknown))}; "
                         f"the functions this model uses are {', '.join(sorted(defaults))}.")
    for name, function in overrides.items():
        if not callable(function):
            raise ValueError(f"{model_name}: layers[{name!r}] must be a function, "
                             f"got {type(function).__name__}.")
    return SimpleNamespace(**{**defaults, **overrides})


class Model:
    """Base class: `save(path)` / `load(path)` for params and running statistics."""

    params: dict

    # Subclasses with batch norm override these two.
    def _state_arrays(self):
        """Non-learnable arrays to save, by name (e.g. 'bn1.running_mean')."""
        return {}

    def _set_state_arrays(self, arrays):
        """Put arrays (same names as _state_arrays) back into the model."""
        if arrays:
            raise ValueError(f"{type(self).__name__}.load: unexpected state {sorted(arrays)}.")

    # Dropout for models that use it: see FullyConnectedNet for the seeding rule.
    def _init_dropout(self, keep_ratio, rng):
        """self.dropout_param = {'mode', 'p'} and a generator (seeded from rng) that gives
        every training-mode forward pass its own mask seed."""
        self.dropout_param = {"mode": "train", "p": keep_ratio}
        self._dropout_rng = numpy.random.default_rng(rng.integers(2**31))

    def _dropout_param(self, mode):
        """The dropout_param for one forward pass. A 'seed' set by the user in
        self.dropout_param is kept (same mask every call, as gradient checks need);
        otherwise training passes get a fresh seed, a host int (no device transfer)."""
        param = dict(self.dropout_param, mode=mode)
        if mode == "train" and "seed" not in self.dropout_param:
            param["seed"] = int(self._dropout_rng.integers(2**31))
        return param

    def save(self, path):
        """Write params and state to `path` (.npz; numpy appends the suffix if missing).

        Arrays are copied to the host first (to_numpy), so a GPU-trained model loads on a
        laptop.
        """
        arrays = {_PARAM + k: to_numpy(v) for k, v in self.params.items()}
        arrays.update({_STATE + k: to_numpy(v) for k, v in self._state_arrays().items()})
        numpy.savez(path, **arrays)

    def load(self, path):
        """Read params and state saved by `save` into this model (built with the same
        architecture) and return the model.

        Raises ValueError naming every missing, unexpected or wrongly shaped array, instead of
        loading half a model. Arrays keep this model's dtypes and go to the active backend.
        """
        cls = type(self).__name__
        if not os.path.exists(path) and os.path.exists(str(path) + ".npz"):
            path = str(path) + ".npz"
        with numpy.load(path) as f:
            stored = {k: f[k] for k in f.files}
        expected = {_PARAM + k: v for k, v in self.params.items()}
        expected.update({_STATE + k: v for k, v in self._state_arrays().items()})

        problems = []
        missing = sorted(set(expected) - set(stored))
        extra = sorted(set(stored) - set(expected))
        if missing:
            problems.append(f"missing {missing}")
        if extra:
            problems.append(f"unexpected {extra}")
        for k in sorted(set(expected) & set(stored)):
            if tuple(stored[k].shape) != tuple(expected[k].shape):
                problems.append(f"{k} has shape {stored[k].shape} in the file but "
                                f"{tuple(expected[k].shape)} in the model")
        if problems:
            raise ValueError(f"{cls}.load({str(path)!r}): the file does not match this model: "
                             + "; ".join(problems) + ". Build the model with the same "
                             "arguments it was saved with.")

        for k, v in self.params.items():
            self.params[k] = asarray(stored[_PARAM + k], dtype=v.dtype)
        state = self._state_arrays()
        self._set_state_arrays({k: asarray(stored[_STATE + k], dtype=v.dtype)
                                for k, v in state.items()})
        return self


def check_images(model, X, shape):
    """X must be (N, *shape) floating point: raise a ValueError naming the model otherwise."""
    if not numpy.issubdtype(X.dtype, numpy.floating):
        raise ValueError(f"{model}.loss: X must be floating point, got dtype {X.dtype}.")
    if tuple(X.shape[1:]) != tuple(shape):
        raise ValueError(f"{model}.loss: X has shape {tuple(X.shape)} but the model was built "
                         f"for inputs of shape (N, {', '.join(map(str, shape))}).")


def check_labels(model, y, N, num_classes):
    """y must be (N,) integer labels in [0, num_classes). The range check costs one scalar
    device->host transfer on cupy, where an out-of-range label would otherwise be wrapped
    around silently by fancy indexing."""
    if y.shape != (N,) or not numpy.issubdtype(y.dtype, numpy.integer):
        raise ValueError(f"{model}.loss: y must be ({N},) integer labels, one per row of X; "
                         f"got shape {tuple(y.shape)}, dtype {y.dtype}.")
    if N and bool(((y < 0) | (y >= num_classes)).any()):
        raise ValueError(f"{model}.loss: labels must lie in [0, {num_classes}).")


def bn_state(bn_params, prefix="bn"):
    """Running statistics of a list of bn_param dicts, named '<prefix><i>.<key>' (1-based)."""
    arrays = {}
    for i, bn_param in enumerate(bn_params, start=1):
        for key in ("running_mean", "running_var"):
            if key in bn_param:
                arrays[f"{prefix}{i}.{key}"] = bn_param[key]
    return arrays


def set_bn_state(bn_params, arrays, prefix="bn"):
    for i, bn_param in enumerate(bn_params, start=1):
        for key in ("running_mean", "running_var"):
            name = f"{prefix}{i}.{key}"
            if name in arrays:
                bn_param[key] = arrays[name]


def new_bn_param(dim, dtype):
    """A bn_param with running statistics initialised explicitly (mean 0, variance 1), so the
    model is usable in test mode before training and always saves the same arrays."""
    from ..backend import xp

    return {"mode": "train", "running_mean": xp.zeros(dim, dtype=dtype),
            "running_var": xp.ones(dim, dtype=dtype)}

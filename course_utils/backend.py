"""The one seam between numpy (CPU) and cupy (GPU).

Layers never import numpy or cupy for their arithmetic: they ask for the array module of
their inputs with `array_module(x)` (so a function given cupy arrays computes on the GPU),
and code that *creates* arrays from nothing (weight init, data loading) uses `xp`, which
always points at the active backend.

Choose the backend with the environment variable ``COURSE_UTILS_BACKEND=numpy|cupy`` or at
run time with ``course_utils.backend.use("cupy")``. cupy is imported only when asked for.
"""
from __future__ import annotations

import os

import numpy

_BACKENDS = ("numpy", "cupy")
_active_name = "numpy"
_active_module = numpy


class BackendUnavailableError(RuntimeError):
    """Raised when cupy is asked for on a machine that cannot run it."""


def _broken_cupy(exc):
    return BackendUnavailableError(
        f"The cupy backend was requested; cupy is installed but fails to import ({exc}). "
        "Reinstall the cupy package that matches this machine's CUDA version, or use the "
        "numpy backend: unset COURSE_UTILS_BACKEND or call course_utils.backend.use('numpy')."
    )


def _load_cupy():
    try:
        import cupy  # noqa: F401  (optional dependency)
    except ModuleNotFoundError as exc:
        if exc.name != "cupy":  # cupy is there, but something it imports is not
            raise _broken_cupy(exc) from exc
        raise BackendUnavailableError(
            "The cupy backend was requested but cupy is not installed. Install the GPU extra "
            "(pip install -e '.[gpu]', which needs an NVIDIA GPU and CUDA), or use the numpy "
            "backend: unset COURSE_UTILS_BACKEND or call course_utils.backend.use('numpy')."
        ) from exc
    except ImportError as exc:  # e.g. CUDA libraries missing, or built for another CUDA
        raise _broken_cupy(exc) from exc
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device found")
    except Exception as exc:  # cupy raises several CUDA error types here
        raise BackendUnavailableError(
            f"The cupy backend was requested but no usable GPU was found ({exc}). "
            "Use the numpy backend: unset COURSE_UTILS_BACKEND or call "
            "course_utils.backend.use('numpy')."
        ) from exc
    return cupy


def use(name: str):
    """Make `name` ('numpy' or 'cupy') the active backend and return its array module."""
    global _active_name, _active_module
    if name not in _BACKENDS:
        raise ValueError(f"Unknown backend {name!r}: choose one of {_BACKENDS}.")
    _active_module = _load_cupy() if name == "cupy" else numpy
    _active_name = name
    return _active_module


def name() -> str:
    """The active backend's name."""
    return _active_name


def get_xp():
    """The active backend's array module (numpy or cupy)."""
    return _active_module


class _ActiveModule:
    """`xp.zeros(...)` etc. forward to whichever backend is active at call time."""

    def __getattr__(self, attr):
        return getattr(_active_module, attr)

    def __repr__(self):
        return f"<xp: the active backend, now {_active_name}>"


xp = _ActiveModule()


def is_cupy_array(a) -> bool:
    return type(a).__module__.split(".")[0] == "cupy"


def array_module(*arrays):
    """numpy, or cupy if any argument is a cupy array: the module to compute with."""
    for a in arrays:
        if is_cupy_array(a):
            import cupy

            return cupy
    return numpy


def asarray(a, dtype=None):
    """`a` as an array of the active backend (copies host->device when cupy is active)."""
    return _active_module.asarray(a, dtype=dtype)


def to_numpy(a):
    """A numpy copy of `a` (device->host for cupy arrays); numbers and numpy arrays pass."""
    if is_cupy_array(a):
        return a.get()
    return numpy.asarray(a)


def to_float(a) -> float:
    """A Python float from a 0-d array of either backend (one explicit device sync)."""
    return float(to_numpy(a))


def default_rng(seed=None) -> numpy.random.Generator:
    """A seeded host-side generator; use it for weight init and data shuffling."""
    return numpy.random.default_rng(seed)


def randn(rng: numpy.random.Generator, *shape, dtype=numpy.float64, scale=1.0):
    """Normal samples drawn on the host with `rng`, returned on the active backend.

    Drawing on the host keeps results identical on numpy and cupy for the same seed.
    """
    return asarray(scale * rng.standard_normal(shape), dtype=dtype)


def random_state(seed, like=None):
    """A legacy RandomState of the array module of `like` (default: active backend).

    Both numpy and cupy have `RandomState(seed).rand(*shape)`, so masks for dropout can be
    drawn where the data lives, with no host<->device copy on the hot path.
    """
    mod = array_module(like) if like is not None else _active_module
    return mod.random.RandomState(seed)


_env_choice = os.environ.get("COURSE_UTILS_BACKEND", "").strip().lower()
if _env_choice:
    use(_env_choice)

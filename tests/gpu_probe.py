"""When may a cupy test be skipped? Only when this machine cannot run it by design.

Two reasons count: cupy is not installed, or the machine has no NVIDIA GPU. Anything else, a
cupy that is installed but fails to import, or that cannot reach the GPU the machine has,
is a broken install; the GPU tests must then fail, not skip, or a broken GPU machine would
report green. With COURSE_REQUIRE_GPU=1 (set it on GPU runners) even the two good reasons
fail the test: there the GPU tests are the point.

conftest.py builds the `cupy` and `cupy_backend` fixtures from these functions.
"""
import glob
import importlib.util
import os
import shutil
import subprocess

import pytest

REQUIRE_GPU_VARIABLE = "COURSE_REQUIRE_GPU"


def nvidia_gpu_present():
    """Whether this machine has an NVIDIA GPU, asked of the system, not of cupy: the device
    nodes the Linux driver creates (/dev/nvidia0, ...), else the driver's own `nvidia-smi -L`
    (Windows, WSL). Hiding every GPU with CUDA_VISIBLE_DEVICES='' or '-1' counts as none."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    if glob.glob("/dev/nvidia[0-9]*"):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listing.returncode == 0 and "GPU " in listing.stdout


def cupy_installed():
    return importlib.util.find_spec("cupy") is not None


def cupy_unavailable_reason():
    """Why this machine cannot run cupy tests by design, or None when it should run them."""
    if not cupy_installed():
        return "cupy is not installed"
    if not nvidia_gpu_present():
        return "there is no NVIDIA GPU on this machine"
    return None


def require_cupy_machine():
    """Skip the calling test where cupy tests cannot run by design; fail it instead when
    COURSE_REQUIRE_GPU=1. Returns normally where they should run."""
    reason = cupy_unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_GPU_VARIABLE, "").strip() == "1":
        pytest.fail(f"{REQUIRE_GPU_VARIABLE}=1 but {reason}", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE_GPU_VARIABLE}=1 to make this a failure)")


def load_cupy():
    """The cupy module on a machine that should run cupy tests. A failing import or no
    visible device is an error here, not a skip: cupy is installed and a GPU is present."""
    require_cupy_machine()
    import cupy

    count = cupy.cuda.runtime.getDeviceCount()
    if count < 1:
        raise RuntimeError("cupy is installed and this machine has an NVIDIA GPU, but cupy "
                           "sees no device: a broken CUDA setup")
    return cupy

"""Shared pytest settings: markers that skip cleanly where their resources are absent, and
the cupy fixtures, which skip only where cupy or a GPU is absent (never on a broken install)."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Test modules import helpers that sit beside them (e.g. hostile_submissions.py).
sys.path.insert(0, str(Path(__file__).parent))
from gpu_probe import load_cupy, require_cupy_machine  # noqa: E402  (needs the path above)

# Headless plotting for every test, the notebook runs included.
os.environ.setdefault("MPLBACKEND", "Agg")


# What tests marked `shared` need: the CIFAR-10 JPEG pack and the tool that rebuilds the
# official batches from it. This is the one place that decides whether they run.
SHARED_PACK = SHARED / "datasets" / "cifar10-jpeg"
SHARED_TOOL = SHARED / "tools" / "make_cifar10_batches.py"


def pytest_collection_modifyitems(config, items):
    shared_missing = not (SHARED_PACK.is_dir() and SHARED_TOOL.is_file())
    for item in items:
        if "shared" in item.keywords and shared_missing:
            item.add_marker(pytest.mark.skip(
                reason=f"needs {SHARED_PACK} and {SHARED_TOOL} (the CIFAR-10 JPEG pack)"))


@pytest.fixture
def cupy():
    """The cupy module, for tests that move arrays to the GPU themselves. Skipped only without
    cupy or without an NVIDIA GPU (a failure with COURSE_REQUIRE_GPU=1); a cupy that is
    installed on a GPU machine but does not work makes the test error (see gpu_probe.py)."""
    return load_cupy()


@pytest.fixture
def cupy_backend():
    """Switch course_utils to cupy for one test; skipped or failed exactly like `cupy`."""
    from course_utils import backend

    require_cupy_machine()
    cp = backend.use("cupy")  # on a machine that should run it, any error here is a failure
    yield cp
    backend.use("numpy")

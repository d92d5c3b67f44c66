"""Shared pytest settings: markers that skip cleanly where their resources are absent."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Test modules import helpers that sit beside them (e.g. hostile_submissions.py).
sys.path.insert(0, str(Path(__file__).parent))
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
def cupy_backend():
    """Switch course_utils to cupy for one test (skipped without cupy and a GPU)."""
    from course_utils import backend
    try:
        cp = backend.use("cupy")
    except backend.BackendUnavailableError as exc:
        pytest.skip(str(exc))
    yield cp
    backend.use("numpy")

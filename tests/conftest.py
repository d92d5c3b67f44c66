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


def pytest_collection_modifyitems(config, items):
    shared_missing = not (SHARED / "datasets" / "cifar10-jpeg").is_dir()
    for item in items:
        if "shared" in item.keywords and shared_missing:
            item.add_marker(pytest.mark.skip(reason="../shared (CIFAR-10 JPEG pack) is absent"))


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

"""The cupy fixtures skip only where cupy or a GPU is absent; a broken cupy install fails.

Before, any exception while loading cupy became a skip, so a GPU machine whose cupy could not
load its CUDA libraries reported every GPU test as skipped, and the run as green. These tests
drive the decision of tests/gpu_probe.py with stand-in `cupy` packages written to a temporary
folder (one that fails to import, one that sees no device, one whose driver call raises) and
with the GPU probe patched, so they run on any machine.
"""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gpu_probe
from course_utils import backend

REPO = Path(__file__).resolve().parents[1]

BROKEN_IMPORT = 'raise ImportError("libcudart.so.12: cannot open shared object file")\n'
MISSING_DEPENDENCY = "import fastrlock_is_not_installed\n"
NO_DEVICE = """
class cuda:
    class runtime:
        @staticmethod
        def getDeviceCount():
            return 0
"""
DRIVER_ERROR = """
class CUDARuntimeError(RuntimeError):
    pass

class cuda:
    class runtime:
        @staticmethod
        def getDeviceCount():
            raise CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is "
                                   "insufficient for CUDA runtime version")
"""


@pytest.fixture
def fake_cupy(tmp_path, monkeypatch):
    """write(source): make `import cupy` load a package with this source, on a machine that
    has a GPU (as far as the probe can tell). The real cupy, if any, is restored afterwards."""
    saved = {k: v for k, v in sys.modules.items() if k == "cupy" or k.startswith("cupy.")}
    for k in saved:
        del sys.modules[k]
    monkeypatch.setattr(gpu_probe, "nvidia_gpu_present", lambda: True)
    monkeypatch.delenv(gpu_probe.REQUIRE_GPU_VARIABLE, raising=False)

    def write(source):
        package = tmp_path / "cupy"
        package.mkdir()
        (package / "__init__.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        importlib.invalidate_caches()

    yield write
    for k in [k for k in sys.modules if k == "cupy" or k.startswith("cupy.")]:
        del sys.modules[k]
    sys.modules.update(saved)
    backend.use("numpy")


def outcome(fn):
    """The exception fn raises, of any kind: pytest's skip and fail are BaseExceptions, and a
    skip must not escape, or this test would itself be skipped instead of failing."""
    try:
        fn()
    except BaseException as exc:  # noqa: B036  (we want skips and failures too)
        return exc
    return None


def test_cupy_not_installed_skips_by_default(monkeypatch):
    monkeypatch.setattr(gpu_probe, "cupy_installed", lambda: False)
    monkeypatch.delenv(gpu_probe.REQUIRE_GPU_VARIABLE, raising=False)
    result = outcome(gpu_probe.require_cupy_machine)
    assert isinstance(result, pytest.skip.Exception)
    assert "cupy is not installed" in str(result)


def test_no_gpu_skips_by_default(monkeypatch):
    monkeypatch.setattr(gpu_probe, "cupy_installed", lambda: True)
    monkeypatch.setattr(gpu_probe, "nvidia_gpu_present", lambda: False)
    monkeypatch.delenv(gpu_probe.REQUIRE_GPU_VARIABLE, raising=False)
    result = outcome(gpu_probe.require_cupy_machine)
    assert isinstance(result, pytest.skip.Exception)
    assert "no NVIDIA GPU" in str(result)


@pytest.mark.parametrize("installed,gpu", [(False, True), (True, False), (False, False)])
def test_course_require_gpu_turns_a_missing_cupy_or_gpu_into_a_failure(monkeypatch, installed,
                                                                       gpu):
    monkeypatch.setattr(gpu_probe, "cupy_installed", lambda: installed)
    monkeypatch.setattr(gpu_probe, "nvidia_gpu_present", lambda: gpu)
    monkeypatch.setenv(gpu_probe.REQUIRE_GPU_VARIABLE, "1")
    result = outcome(gpu_probe.require_cupy_machine)
    assert isinstance(result, pytest.fail.Exception)
    assert "COURSE_REQUIRE_GPU=1 but" in str(result)


def test_installed_cupy_on_a_gpu_machine_is_not_skipped(monkeypatch):
    monkeypatch.setattr(gpu_probe, "cupy_installed", lambda: True)
    monkeypatch.setattr(gpu_probe, "nvidia_gpu_present", lambda: True)
    assert outcome(gpu_probe.require_cupy_machine) is None


@pytest.mark.parametrize("source,error", [(BROKEN_IMPORT, ImportError),
                                          (MISSING_DEPENDENCY, ModuleNotFoundError),
                                          (NO_DEVICE, RuntimeError),
                                          (DRIVER_ERROR, RuntimeError)],
                         ids=["libraries-missing", "dependency-missing", "no-device",
                              "driver-too-old"])
def test_broken_cupy_on_a_gpu_machine_is_an_error_not_a_skip(fake_cupy, source, error):
    fake_cupy(source)
    assert gpu_probe.cupy_installed()
    result = outcome(gpu_probe.load_cupy)
    assert not isinstance(result, (pytest.skip.Exception, pytest.fail.Exception)), result
    assert isinstance(result, error)


@pytest.mark.parametrize("source", [BROKEN_IMPORT, MISSING_DEPENDENCY])
def test_backend_says_a_broken_cupy_is_installed_not_missing(fake_cupy, source):
    # the advice to install cupy would be wrong: it is installed, and broken
    fake_cupy(source)
    with pytest.raises(backend.BackendUnavailableError,
                       match="cupy is installed but fails to import"):
        backend.use("cupy")
    assert backend.name() == "numpy"


def test_hiding_every_gpu_with_cuda_visible_devices_counts_as_no_gpu(monkeypatch):
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert gpu_probe.nvidia_gpu_present() is False


def test_a_gpu_test_run_with_course_require_gpu_fails_where_it_cannot_run():
    # End to end: the real fixture, in a separate pytest run. Where this machine can run cupy
    # tests, the GPU test must pass; elsewhere, COURSE_REQUIRE_GPU=1 must make it fail.
    env = dict(os.environ, COURSE_REQUIRE_GPU="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_solver.py::test_one_solver_step_on_cupy_matches_numpy"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    reason = gpu_probe.cupy_unavailable_reason()
    if reason is None:
        assert run.returncode == 0, run.stdout + run.stderr
    else:
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"COURSE_REQUIRE_GPU=1 but {reason}" in run.stdout
        assert "1 error" in run.stdout  # a fixture failure: reported as an error, not a skip

"""Running one submission: nbgrader's Execute step, with the kernel in an OS sandbox.

nbgrader runs a notebook in a kernel with the grader's permissions, a per-cell timeout and
nothing else (see docs/grading.md). `SandboxedExecute` keeps nbgrader's scoring and changes
only how the kernel runs:

- the kernel starts inside the sandbox of sandbox.py, with the job's snapshot of the
  learning code; it talks to nbgrader over Unix sockets in a folder of its own (the
  sandbox has no network), so nothing else of the grader's disk is in reach;
- memory, file-size and process limits (kernel_launcher.py, sandbox.py): a memory bomb
  fails its own cell, a fork bomb meets the cap;
- the kernel's socket folder is the one host folder it may write to: a watchdog ends the
  kernel when the submission stores more than a few MiB there;
- a time budget for the whole notebook on top of the per-cell timeout, so a looping
  function called by many test cells costs the notebook's budget once;
- a dead kernel (os._exit, segfault, the watchdog) marks its cell and every later cell
  with the reason instead of throwing the notebook away;
- the cell-skipping tag is a fresh random string, so tagging test cells skips nothing.

Whatever happened is written to an incident file that the grade report turns into reasons.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from traitlets import Dict, Integer, Unicode

from nbgrader.preprocessors import Execute

from . import incidents as incident_log
from .sandbox import HOW_TO_GET_ISOLATION, Sandbox, SandboxUnavailable, detect

KERNEL_NAME = "course-grader"
LAUNCHER = Path(__file__).resolve().parent / "kernel_launcher.py"
LEARNING_PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"
SOCKET_FOLDER_LIMIT_MB = 8


def make_learning_snapshot(dest: Path, package: Path = LEARNING_PACKAGE) -> Path:
    """dest/course_utils: a copy of the learning package, the only course code a kernel sees."""
    shutil.copytree(package, Path(dest) / "course_utils",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return Path(dest)


FONT_CACHE = ".matplotlib"  # in the kernel's lib folder: a font list the launcher can seed


def prepare_kernel_lib(lib: Path) -> Path:
    """Make a kernel's start cheaper, once per template instead of once per kernel:
    - bytecode for the package (hash-checked .pyc: valid whatever the unpacked files' mtimes,
      and used although the kernel may not write any);
    - matplotlib's font list, which every fresh kernel HOME would otherwise rebuild (about
      0.3 s); kernel_launcher copies it into the kernel's cache when every font in it exists.
    """
    import compileall
    import py_compile
    import subprocess

    lib = Path(lib)
    compileall.compile_dir(str(lib / "course_utils"), quiet=1, workers=1,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    cache = lib / FONT_CACHE
    cache.mkdir(exist_ok=True)
    env = {**os.environ, "MPLCONFIGDIR": str(cache), "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env,
                   capture_output=True, timeout=300)
    for extra in cache.iterdir():  # keep only the font list
        if not extra.name.startswith("fontlist-"):
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
    return lib


def _folder_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class SandboxedExecute(Execute):
    """nbgrader's Execute with the kernel in an OS sandbox, resource limits and a budget."""

    notebook_timeout = Integer(
        900, help="Seconds the whole notebook may run; cells after that are not run."
    ).tag(config=True)
    memory_limit_mb = Integer(
        6144, help="Address-space limit of the kernel, in MiB (0: none)."
    ).tag(config=True)
    file_limit_mb = Integer(
        256, help="Largest file the kernel may write, in MiB (0: none)."
    ).tag(config=True)
    disk_limit_mb = Integer(
        512, help="Size of the kernel's writable working folder (a tmpfs), in MiB."
    ).tag(config=True)
    max_processes = Integer(
        256, help="Processes and threads the kernel may run at once."
    ).tag(config=True)
    isolation = Unicode(
        "auto", help="'auto' (bwrap, else unshare; refuse when neither works), 'bwrap', "
                     "'unshare' or 'none' (trusted submissions only)."
    ).tag(config=True)
    learning_lib = Unicode(
        "", help="Folder holding the course_utils the kernel imports (default: a snapshot "
                 "of the installed one)."
    ).tag(config=True)
    data_dir = Unicode(
        "", help="Data folder (CIFAR-10, COCO) shown read-only to the kernel, if any."
    ).tag(config=True)
    scratch_root = Unicode("", help="Where the kernel's scratch folders go.").tag(config=True)
    kernel_env = Dict(help="Environment variables set in the kernel (COURSE_FAST ...).").tag(
        config=True)
    incident_dir = Unicode(
        "", help="Folder for one JSON file per graded notebook saying what went wrong."
    ).tag(config=True)

    # ---- the kernel -------------------------------------------------------------------------
    def _sandbox(self, scratch: Path, work: Path, sockets: Path, lib: Path) -> Sandbox:
        method = self.isolation
        if method == "auto":
            found = detect()
            if found.method == "none":
                raise SandboxUnavailable("No sandbox works here ("
                                         + "; ".join(found.why_not) + "). "
                                         + HOW_TO_GET_ISOLATION)
            method = found.method
        robinds = [(Path(self.data_dir).resolve() / name, work / "data" / name)
                   for name in ("cifar-10-batches-py", "coco_captioning")
                   if self.data_dir and (Path(self.data_dir) / name).is_dir()]
        return Sandbox(method, workdir=work, rwdirs=[sockets], rodirs=[lib], robinds=robinds,
                       disk_mb=self.disk_limit_mb, max_processes=self.max_processes,
                       group_tag=batch_tag(self.scratch_root))

    def _install_kernelspec(self, scratch: Path, sandbox: Sandbox, launcher: Path,
                            lib: Path) -> str:
        env = dict(self.kernel_env)
        env.update(HOME=str(sandbox.workdir), TMPDIR="/tmp", PYTHONPATH=str(lib),
                   COURSE_DATA_DIR=str(sandbox.workdir / "data"))
        nproc = 0
        if sandbox.method != "none" and sandbox.make_cgroup() is None and os.geteuid() != 0:
            # No cgroup: RLIMIT_NPROC counts all processes of this user, so allow for those.
            nproc = _processes_of_user() + self.max_processes
        argv = [sys.executable, str(launcher), "--memory-mb", str(self.memory_limit_mb),
                "--file-mb", str(self.file_limit_mb), "--nproc", str(nproc),
                "--env", json.dumps(env), "-f", "{connection_file}"]
        spec_dir = scratch / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {"argv": sandbox.wrap(argv), "display_name": "Python 3 (course grader)",
                "language": "python",
                # SIGINT to the sandbox's outer process would not reach the kernel.
                "interrupt_mode": "message"}
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        return str(scratch / "kernels")

    def preprocess(self, nb, resources=None, km=None):
        resources = resources or {}
        info = resources.get("nbgrader", {})
        scratch = Path(tempfile.mkdtemp(prefix="course-kernel-", dir=self.scratch_root or None))
        work, sockets = scratch / "work", scratch / "sockets"
        sockets.mkdir()
        incidents: list[str] = []
        lib = Path(self.learning_lib).resolve() if self.learning_lib else \
            make_learning_snapshot(scratch / "lib")
        boot = scratch / "boot"
        boot.mkdir()
        shutil.copy2(LAUNCHER, boot / LAUNCHER.name)
        sandbox = self._sandbox(scratch, work, sockets, lib)
        sandbox.rodirs.append(boot)

        # The assignment's data files (not notebooks) are shown read-only in the work folder.
        source_dir = Path(resources.get("metadata", {}).get("path") or ".")
        for item in source_dir.iterdir() if source_dir.is_dir() else []:
            if item.suffix != ".ipynb" and not item.name.startswith("."):
                sandbox.robinds.append((item.resolve(), work / item.name))
        if sandbox.method == "none":  # no tmpfs there: the folder must exist on the host
            work.mkdir()
            for host, inside in sandbox.robinds:
                inside.parent.mkdir(parents=True, exist_ok=True)
                inside.symlink_to(host)
        resources.setdefault("metadata", {})["path"] = str(scratch)

        self._kernel_dirs = [self._install_kernelspec(scratch, sandbox, boot / LAUNCHER.name,
                                                      lib)]
        self._sockets = sockets
        self.kernel_name = KERNEL_NAME
        self.skip_cells_with_tag = "never-skip-" + secrets.token_hex(16)
        self.extra_arguments = []
        self._budget_end = time.monotonic() + self.notebook_timeout
        self._cell_timeout = self.timeout
        self._dead_since = None
        self._incidents = incidents
        self._stop_watch = threading.Event()
        watch = threading.Thread(target=self._watch_sockets_folder, daemon=True)
        try:
            watch.start()
            nb, resources = super().preprocess(nb, resources, km=km)
        finally:
            self._stop_watch.set()
            watch.join()
            self.timeout = self._cell_timeout
            sandbox.remove_cgroup()
            shutil.rmtree(scratch, ignore_errors=True)
            incident_log.record(self.incident_dir, info, incidents)
        return nb, resources

    def create_kernel_manager(self):
        """The kernel manager: our kernelspec, and Unix sockets in the job's socket folder."""
        km = super().create_kernel_manager()
        km.kernel_spec_manager = KernelSpecManager(kernel_dirs=self._kernel_dirs)
        km.transport = "ipc"
        km.connection_file = str(self._sockets / "kernel.json")
        km.ip = str(self._sockets / "k")
        return km

    def _watch_sockets_folder(self):
        """End the kernel when it stores more than a few MiB in its socket folder."""
        limit = SOCKET_FOLDER_LIMIT_MB << 20
        while not self._stop_watch.wait(0.25):
            if _folder_bytes(self._sockets) > limit:
                process = getattr(getattr(getattr(self, "km", None), "provisioner", None),
                                  "process", None)
                if process is not None:
                    self._incidents.append(
                        f"the submission wrote more than {SOCKET_FOLDER_LIMIT_MB} MiB outside "
                        "its working folder; its kernel was stopped")
                    os.kill(process.pid, signal.SIGKILL)
                for item in self._sockets.iterdir():
                    if item.is_file() and not item.is_socket() and item.name != "kernel.json":
                        item.unlink(missing_ok=True)

    # ---- per cell: budget and dead kernels --------------------------------------------------
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if self._dead_since is not None:
            self._mark(cell, "KernelDied", f"not run: the kernel stopped in cell {self._dead_since}")
            return cell, resources
        remaining = self._budget_end - time.monotonic()
        if remaining <= 0:
            self._mark(cell, "NotebookTimeout",
                       f"not run: the notebook used up its {self.notebook_timeout} s time budget")
            return cell, resources
        self.timeout = max(1, int(min(self._cell_timeout or remaining, remaining)))
        self.error_on_timeout = {
            "ename": "CellTimeoutError",
            "evalue": f"the cell ran longer than {self.timeout} s and was stopped",
            "traceback": [f"CellTimeoutError: the cell ran longer than {self.timeout} s and was "
                          "stopped (is there an infinite loop?)"],
        }
        try:
            # On a timeout nbgrader's Execute appends error_on_timeout to the cell's outputs.
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._dead_since = index
            reason = ("the kernel died while running this cell (os._exit, a crash, the "
                      f"{self.memory_limit_mb} MiB memory limit or the disk watchdog)")
            self._incidents.append(f"cell {index}: {reason}")
            self._mark(cell, "KernelDied", reason)
            return cell, resources

    @staticmethod
    def _mark(cell, ename, evalue):
        cell.setdefault("outputs", []).append(NotebookNode(
            output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))


def batch_tag(scratch_root: str) -> str:
    """The tag of the batch folder (course-jobs-<tag>) a job runs in, also used to name its
    cgroups so that the next batch can sweep what a killed one left."""
    for part in Path(scratch_root).parts if scratch_root else ():
        if part.startswith("course-jobs-"):
            return part[len("course-jobs-"):]
    return ""


def _processes_of_user() -> int:
    uid, count = os.getuid(), 0
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                count += 1
        except OSError:
            pass
    return count

"""Running one submission: nbgrader's Execute step, with the limits a class needs.

nbgrader runs a notebook in a kernel that has the grader's permissions, with its working
directory inside the course folder, a per-cell timeout and nothing else (see
shared/docs/grading-facts.md). `SandboxedExecute` keeps nbgrader's scoring but changes how
the kernel runs:

- the kernel works in a scratch folder outside the course, with a scrubbed environment and a
  snapshot of the learning code, so relative paths such as ../../../source or
  ../../../gradebook.db, and course_utils.__file__, lead nowhere;
- memory and file-size limits (see kernel_launcher.py): a memory bomb fails its own cell;
- a time budget for the whole notebook on top of the per-cell timeout, so a looping function
  called by many test cells costs the notebook's budget once, not the batch's time;
- a dead kernel (os._exit, segfault) marks its cell and every later cell with the reason
  instead of throwing the notebook away;
- the cell-skipping tag is a fresh random string, so tagging test cells skips nothing;
- the gradebook's bytes are compared before and after the student's code ran; a change is
  undone from a copy and reported as tampering;
- every process the submission started is ended afterwards, even those that left the session.

Whatever happened is written to an incident file that `course grades` turns into reasons.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from traitlets import Integer, Unicode

from nbgrader.preprocessors import Execute

from . import incidents as incident_log

KERNEL_NAME = "course-grader"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # course_utils/


def _sha256(path: Path) -> str | None:
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _gradebook_path(db_url: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(db_url[len(prefix):]) if db_url and db_url.startswith(prefix) else None


def make_learning_snapshot(dest: Path) -> Path:
    """Copy course_utils without the grading code (except the checks test cells import)."""
    target = dest / "course_utils"
    shutil.copytree(PACKAGE_DIR, target,
                    ignore=shutil.ignore_patterns("__pycache__", "grading"))
    (target / "grading").mkdir()
    for name in ("__init__.py", "checks.py"):
        shutil.copy2(PACKAGE_DIR / "grading" / name, target / "grading" / name)
    shutil.copy2(PACKAGE_DIR / "grading" / "kernel_launcher.py", dest / "kernel_launcher.py")
    return dest


def end_processes_with_token(token: str) -> int:
    """Kill every process whose environment carries COURSE_GRADER_RUN=token (Linux /proc)."""
    needle = f"COURSE_GRADER_RUN={token}".encode()
    killed = 0
    proc = Path("/proc")
    if not proc.is_dir() or not token:
        return 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed


class SandboxedExecute(Execute):
    """nbgrader's Execute with a scratch folder, resource limits and a notebook time budget."""

    notebook_timeout = Integer(
        900, help="Seconds the whole notebook may run; cells after that are not run."
    ).tag(config=True)
    memory_limit_mb = Integer(
        6144, help="Address-space limit of the kernel, in MiB (0: none)."
    ).tag(config=True)
    file_limit_mb = Integer(
        1024, help="Largest file the kernel may write, in MiB (0: none)."
    ).tag(config=True)
    incident_dir = Unicode(
        "", help="Folder for one JSON file per graded notebook saying what went wrong."
    ).tag(config=True)

    # ---- the kernel -------------------------------------------------------------------------
    def _install_kernelspec(self, scratch: Path, token: str) -> str:
        lib = make_learning_snapshot(scratch / "lib")
        spec_dir = scratch / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, str(lib / "kernel_launcher.py"),
                     "--memory-mb", str(self.memory_limit_mb),
                     "--file-mb", str(self.file_limit_mb),
                     "--token", token, "-f", "{connection_file}"],
            "display_name": "Python 3 (course grader)",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        return str(scratch / "kernels")

    def preprocess(self, nb, resources=None, km=None):
        resources = resources or {}
        info = resources.get("nbgrader", {})
        scratch = Path(tempfile.mkdtemp(prefix="course-grading-"))
        work = scratch / "work"
        work.mkdir()
        token = secrets.token_hex(16)
        incidents: list[str] = []

        # The assignment's data files (not notebooks) travel to the scratch folder.
        source_dir = Path(resources.get("metadata", {}).get("path") or ".")
        for item in source_dir.iterdir() if source_dir.is_dir() else []:
            if item.suffix != ".ipynb" and not item.name.startswith("."):
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, work / item.name)
        resources.setdefault("metadata", {})["path"] = str(work)

        kernels_dir = self._install_kernelspec(scratch, token)
        self.kernel_name = KERNEL_NAME
        self.skip_cells_with_tag = "never-skip-" + secrets.token_hex(16)
        self.extra_arguments = []
        gradebook = _gradebook_path(info.get("db_url", ""))
        backup = scratch / "gradebook.backup"
        if gradebook and gradebook.exists():
            shutil.copy2(gradebook, backup)
        before = _sha256(gradebook) if gradebook else None

        self._budget_end = time.monotonic() + self.notebook_timeout
        self._cell_timeout = self.timeout
        self._dead_since = None
        self._incidents = incidents
        grader_cwd = os.getcwd()
        try:
            self._kernel_dirs = [kernels_dir]
            # The kernel can read its parent's working directory (/proc/<ppid>/cwd); make that
            # the scratch folder too. Every path the grader uses is absolute.
            os.chdir(scratch)
            nb, resources = super().preprocess(nb, resources, km=km)
        finally:
            os.chdir(grader_cwd)
            self.timeout = self._cell_timeout
            killed = end_processes_with_token(token)
            if killed:
                incidents.append(f"ended {killed} process(es) the submission left running")
            if gradebook and _sha256(gradebook) != before:
                shutil.copy2(backup, gradebook)
                incidents.append("TAMPERING: the submission changed the gradebook while it ran; "
                                 "the change was undone and the notebook scores 0")
            shutil.rmtree(scratch, ignore_errors=True)
            incident_log.record(self.incident_dir, info, incidents)
        return nb, resources

    def create_kernel_manager(self):
        """The kernel manager, told to find our kernelspec in the scratch folder."""
        km = super().create_kernel_manager()
        km.kernel_spec_manager = KernelSpecManager(kernel_dirs=self._kernel_dirs)
        return km

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
            reason = ("the kernel died while running this cell (os._exit, a crash, or the "
                      f"{self.memory_limit_mb} MiB memory limit)")
            self._incidents.append(f"cell {index}: {reason}")
            self._mark(cell, "KernelDied", reason)
            return cell, resources

    @staticmethod
    def _mark(cell, ename, evalue):
        cell.setdefault("outputs", []).append(NotebookNode(
            output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))

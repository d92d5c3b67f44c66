"""One grading job: one student's submission of one assignment, graded in a folder of its own.

A job is stateless. It gets everything as bytes (the assignment's template and the
submitted notebooks), so it runs the same on this machine or on a Dask worker elsewhere:

1. unpack the template into a throwaway nbgrader course folder: a gradebook that holds only
   assignment definitions, the released notebooks, the assignment's data files, and the
   snapshot of the learning code the kernel will import;
2. put the submission under submitted/<student>/<assignment>/;
3. run nbgrader's real Autograde there; the kernel runs in the OS sandbox (execute.py);
4. read the scores, comments, autograded notebooks and incidents back out of that folder,
   delete it, and return them. Only the coordinator writes the course's gradebook.

A student's timeout, crash or memory bomb is part of the result, not an exception: the
job raises only when the grading machinery itself fails.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from traitlets.config import Config

from . import incidents
from .feedback import FeedbackHTMLExporter, StripHiddenTests
from .repair import RestoreTestCells
from .execute import SandboxedExecute
from .shortcuts import ShortcutGuard

COURSE_ID = "course"


@dataclass
class Limits:
    """What every job of a batch runs under (part of the key of a result)."""

    cell_timeout: int = 120
    notebook_timeout: int = 900
    memory_mb: int = 6144
    disk_mb: int = 512  # the kernel's writable working folder (tmpfs)
    isolation: str = "auto"  # auto | bwrap | unshare | none
    fast: bool = True  # COURSE_FAST=1: smaller data, same code; graded tests do not depend on it
    threads: int = 0  # BLAS threads per kernel (0: the batch picks cores / jobs)
    data_dir: str = ""  # CIFAR-10/COCO folder shown read-only to kernels

    def fingerprint(self) -> str:
        """What a grade depends on (not the thread count, which only changes speed)."""
        settings = {k: v for k, v in asdict(self).items() if k != "threads"}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


@dataclass
class JobSpec:
    student: str
    assignment: str
    notebooks: dict[str, bytes]  # notebook name -> the submitted file's bytes
    limits: Limits = field(default_factory=Limits)

    @property
    def files_sha256(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.notebooks):
            digest.update(name.encode() + b"\0" + hashlib.sha256(self.notebooks[name]).digest())
        return digest.hexdigest()


def grading_config(root: Path, limits: Limits, scratch: Path | None = None,
                   learning_lib: Path | None = None) -> Config:
    """nbgrader's configuration for a course folder at `root`: our sandbox and guards."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput,
                                        DeduplicateIds, GetGrades, IgnorePattern, LimitOutput,
                                        OverwriteCells, OverwriteKernelspec, SaveAutoGrades)

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    c.Autograde.sanitize_preprocessors = [
        ClearOutput, DeduplicateIds, RestoreTestCells, OverwriteKernelspec, OverwriteCells,
        ShortcutGuard, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [
        SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    c.SandboxedExecute.timeout = limits.cell_timeout
    c.SandboxedExecute.notebook_timeout = limits.notebook_timeout
    c.SandboxedExecute.memory_limit_mb = limits.memory_mb
    c.SandboxedExecute.disk_limit_mb = limits.disk_mb
    c.SandboxedExecute.isolation = limits.isolation
    c.SandboxedExecute.data_dir = limits.data_dir
    threads = str(max(1, limits.threads))
    c.SandboxedExecute.kernel_env = {
        "COURSE_FAST": "1" if limits.fast else "0", "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if scratch is not None:
        c.SandboxedExecute.scratch_root = str(scratch)
    if learning_lib is not None:
        c.SandboxedExecute.learning_lib = str(learning_lib)
    incident_dir = str(root / "incidents")
    c.SandboxedExecute.incident_dir = incident_dir
    c.ShortcutGuard.incident_dir = incident_dir
    c.RestoreTestCells.incident_dir = incident_dir
    c.RestoreTestCells.release_root = str(root / "release")
    c.GenerateFeedback.preprocessors = [StripHiddenTests, GetGrades, CSSHTMLHeaderPreprocessor]
    c.GenerateFeedback.exporter_class = FeedbackHTMLExporter
    c.Exchange.root = str(root / "exchange")
    return c


def prepare_nbgrader():
    """Call before nbgrader runs in this process. nbgrader stamps every new gradebook with the
    head of its migrations by running the `alembic` executable: a second Python that imports
    all of nbgrader again, about 4 s per new gradebook (two per release). alembic_head reads
    the same migration scripts in this process, in a tenth of a second. And its metadata
    validator re-checks its own schema for every cell (_SchemaChecked)."""
    import nbgrader.api
    import nbgrader.nbgraderformat.common as metadata_format

    nbgrader.api.get_alembic_version = alembic_head
    metadata_format.jsonschema = _SchemaChecked()
    _no_fsync_in_job_gradebooks()


JOB_PREFIX = "course-job-"


def _no_fsync_in_job_gradebooks():
    """A job's gradebook is thrown away once its scores are read back, and nbgrader commits
    once per graded cell: with SQLite's default durability each commit waits for the disk
    (about 25 ms here, most of a second per notebook). Inside a job folder, and only there,
    commits skip that wait. The course's own gradebook keeps full durability."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if getattr(_no_fsync_in_job_gradebooks, "done", False):
        return

    @event.listens_for(Engine, "connect")
    def _throwaway(dbapi_connection, _record):
        if not hasattr(dbapi_connection, "execute"):
            return
        files = [row[2] or "" for row in
                 dbapi_connection.execute("PRAGMA database_list").fetchall()]
        if any(f"/{JOB_PREFIX}" in path for path in files):
            dbapi_connection.execute("PRAGMA synchronous=OFF")

    _no_fsync_in_job_gradebooks.done = True


class _SchemaChecked:
    """Stands in for the jsonschema module in nbgrader's cell-metadata validator.
    jsonschema.validate(instance, schema) first validates the *schema* against its
    meta-schema, every call: about half a second per graded notebook (two passes over every
    cell). The schema is nbgrader's own file and never changes, so it is checked once; each
    cell's metadata is still validated against it."""

    _validators: dict = {}

    def validate(self, instance, schema):
        import jsonschema

        key = id(schema)
        if key not in self._validators:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self._validators[key] = (schema, cls(schema))  # keep schema alive: id stays valid
        self._validators[key][1].validate(instance)


def alembic_head() -> str:
    """The head of nbgrader's gradebook migrations (see prepare_nbgrader)."""
    import nbgrader.api
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory(str(Path(nbgrader.api.__file__).parent / "alembic")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"nbgrader's gradebook migrations have {len(heads)} heads: {heads}")
    return heads[0]


def pack_folder(folder: Path) -> bytes:
    """A folder as zip bytes (deterministic order), to ship a template to any worker."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():  # __pycache__ included: prepare_kernel_lib's bytecode
                z.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def grade_submission(spec: JobSpec, template: bytes, scratch_root: str | None = None) -> dict:
    """Grade one submission in a throwaway course folder; return everything it produced."""
    t0 = time.perf_counter()
    prepare_nbgrader()
    root = Path(tempfile.mkdtemp(prefix=JOB_PREFIX, dir=scratch_root))
    try:
        course = root / "course"
        with zipfile.ZipFile(io.BytesIO(template)) as z:
            z.extractall(course)
        dest = course / "submitted" / spec.student / spec.assignment
        dest.mkdir(parents=True)
        for name, data in spec.notebooks.items():
            (dest / f"{name}.ipynb").write_bytes(data)
        config = grading_config(course, spec.limits, scratch=root,
                                learning_lib=course / "lib")
        result = _run_autograde(course, config, spec)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result.update(student=spec.student, assignment=spec.assignment,
                  files_sha256=spec.files_sha256, seconds=time.perf_counter() - t0,
                  host=socket.gethostname())
    return result


def _run_autograde(course: Path, config: Config, spec: JobSpec) -> dict:
    import logging

    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    import warnings

    logging.getLogger("traitlets").setLevel(logging.ERROR)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    with warnings.catch_warnings():
        # nbgrader 0.9.6's add_submission trips SQLAlchemy 2's backref-cascade warning; the
        # submission is written all the same (nbgrader adds it explicitly).
        warnings.filterwarnings("ignore", message=".*not in session.*")
        outcome = api.autograde(spec.assignment, spec.student, force=True, create=True)
    result = {"success": bool(outcome["success"]), "error": last_error(outcome)
              if not outcome["success"] else "", "log": (outcome.get("log") or "")[-4000:],
              "notebooks": {}}
    autograded = course / "autograded" / spec.student / spec.assignment
    with Gradebook(config.CourseDirectory.db_url, course_id=COURSE_ID) as gb:
        try:
            submission = gb.find_submission(spec.assignment, spec.student)
        except Exception:
            return result
        for nb in submission.notebooks:
            path = autograded / f"{nb.name}.ipynb"
            if nb.name not in spec.notebooks:
                continue
            result["notebooks"][nb.name] = {
                "autograded": path.read_text() if path.exists() else None,
                "grades": {g.name: {"auto_score": g.auto_score, "manual_score": g.manual_score,
                                    "extra_credit": g.extra_credit,
                                    "needs_manual_grade": bool(g.needs_manual_grade)}
                           for g in nb.grades},
                "comments": {c.name: {"auto_comment": c.auto_comment,
                                      "manual_comment": c.manual_comment}
                             for c in nb.comments},
                "incidents": incidents.read(course / "incidents", spec.assignment,
                                            spec.student, nb.name),
            }
    return result


def last_error(result) -> str:
    text = (result.get("error") or result.get("log") or "").strip().splitlines()
    errors = [line for line in text if "ERROR" in line or "Error" in line]
    return (errors or text or ["unknown error"])[-1][:300]

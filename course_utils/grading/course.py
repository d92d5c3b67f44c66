"""The course as nbgrader sees it, built in a folder of its own.

The repository is not the nbgrader course root: `Course` builds one under build/course from
solutions/ (nbgrader's `source/`) and drives nbgrader's own apps through `NbGraderAPI`:
GenerateAssignment for the release, Autograde for grading, GenerateFeedback for feedback,
and nbgrader's SQLite gradebook for the grades. What this module adds is only what a class
needs around them: finding submissions, limits (sandbox.py), shortcut detection
(shortcuts.py), hidden-test-free feedback (feedback.py) and a grade report with reasons.
"""
from __future__ import annotations

import csv
import filecmp
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from traitlets.config import Config

from . import incidents
from .feedback import StripHiddenTests
from .repair import RestoreTestCells
from .sandbox import SandboxedExecute
from .shortcuts import ShortcutGuard
from .submissions import Submission, discover

REPO = Path(__file__).resolve().parents[2]
GRADER_VERDICTS = ("CellTimeoutError", "KernelDied", "NotebookTimeout", "ShortcutError")


@dataclass
class GradedRow:
    """One line of the grade report: a graded cell, or a file that could not be graded."""

    student: str
    assignment: str
    notebook: str
    cell: str
    score: float | None
    max_score: float
    status: str
    reason: str = ""

    FIELDS = ("student", "assignment", "notebook", "cell", "score", "max_score", "status", "reason")

    def as_dict(self):
        return {k: getattr(self, k) for k in self.FIELDS}


@dataclass
class AutogradeRun:
    submissions: list[Submission] = field(default_factory=list)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)


def _ensure_tools_on_path():
    """nbgrader's gradebook runs the `alembic` executable from this environment's bin/."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


class Course:
    def __init__(self, solutions=None, build=None, release_dir=None, cell_timeout=120,
                 notebook_timeout=900, memory_limit_mb=6144, fast=True):
        self.solutions = Path(solutions or REPO / "solutions").resolve()
        self.root = Path(build or REPO / "build" / "course").resolve()
        self.release_dir = Path(release_dir or REPO / "assignments").resolve()
        self.cell_timeout = cell_timeout
        self.notebook_timeout = notebook_timeout
        self.memory_limit_mb = memory_limit_mb
        # Graded tests check the student's functions, not how long they trained: by default
        # submissions run with COURSE_FAST=1 (smaller data, fewer iterations, same code).
        self.fast = fast
        self.incident_dir = self.root / "incidents"

    # ---- configuration -------------------------------------------------------------------
    def config(self) -> Config:
        from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput,
                                            DeduplicateIds, GetGrades, IgnorePattern, LimitOutput,
                                            OverwriteCells, OverwriteKernelspec, SaveAutoGrades)

        c = Config()
        c.CourseDirectory.root = str(self.root)
        c.CourseDirectory.course_id = "course"
        c.CourseDirectory.db_url = f"sqlite:///{self.root / 'gradebook.db'}"
        c.Autograde.sanitize_preprocessors = [
            ClearOutput, DeduplicateIds, RestoreTestCells, OverwriteKernelspec, OverwriteCells,
            ShortcutGuard, CheckCellMetadata]
        c.Autograde.autograde_preprocessors = [
            SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
            SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
        c.SandboxedExecute.timeout = self.cell_timeout
        c.SandboxedExecute.notebook_timeout = self.notebook_timeout
        c.SandboxedExecute.memory_limit_mb = self.memory_limit_mb
        c.SandboxedExecute.incident_dir = str(self.incident_dir)
        c.ShortcutGuard.incident_dir = str(self.incident_dir)
        c.RestoreTestCells.incident_dir = str(self.incident_dir)
        c.RestoreTestCells.release_root = str(self.root / "release")
        c.GenerateFeedback.preprocessors = [StripHiddenTests, GetGrades, CSSHTMLHeaderPreprocessor]
        c.Exchange.root = str(self.root / "exchange")
        return c

    def write_nbgrader_config(self) -> Path:
        """Write the course's configuration as nbgrader_config.py in the course folder.

        The course command passes the same Config in Python; the file lets an instructor use
        nbgrader's own tools (formgrader, `nbgrader autograde`) in build/course with the same
        sandbox, shortcut guard and feedback filter.
        """
        lines = ['"""Generated by course_utils.grading.Course: edit course.py, not this file."""',
                 "c = get_config()  # noqa: F821", ""]
        imports = set()

        def literal(value):
            if isinstance(value, type):
                imports.add(f"from {value.__module__} import {value.__name__}")
                return value.__name__
            if isinstance(value, list):
                return "[" + ", ".join(literal(v) for v in value) + "]"
            return repr(value)

        for section, settings in sorted(self.config().items()):
            for key, value in sorted(settings.items()):
                lines.append(f"c.{section}.{key} = {literal(value)}")
        path = self.root / "nbgrader_config.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(sorted(imports) + [""] + lines) + "\n")
        return path

    def api(self):
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        _ensure_tools_on_path()
        (self.root / "exchange").mkdir(parents=True, exist_ok=True)
        cfg = self.config()
        return NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)

    def gradebook(self):
        from nbgrader.api import Gradebook

        _ensure_tools_on_path()
        return Gradebook(f"sqlite:///{self.root / 'gradebook.db'}", course_id="course")

    # ---- what the course holds -----------------------------------------------------------
    def assignments(self) -> list[str]:
        return sorted(p.name for p in self.solutions.iterdir()
                      if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.ipynb")))

    def notebooks(self) -> dict[str, str]:
        """notebook name -> assignment, for every notebook in solutions/."""
        found = {}
        for a in self.assignments():
            for nb in sorted((self.solutions / a).glob("*.ipynb")):
                if nb.stem in found:
                    raise ValueError(f"Notebook name {nb.stem!r} is used by two assignments "
                                     f"({found[nb.stem]} and {a}); names must be unique.")
                found[nb.stem] = a
        return found

    # ---- release ---------------------------------------------------------------------------
    def release(self, assignments=None, write_release=True) -> list[str]:
        """Regenerate the student release with nbgrader's GenerateAssignment.

        With write_release, the result replaces assignments/<assignment>/ in the repository.
        """
        assignments = assignments or self.assignments()
        api = self.api()
        self.write_nbgrader_config()
        for a in assignments:
            src = self.root / "source" / a
            shutil.rmtree(src, ignore_errors=True)
            shutil.copytree(self.solutions / a, src,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
            result = api.generate_assignment(a, force=True)
            if not result["success"]:
                raise RuntimeError(f"nbgrader generate_assignment failed for {a}:\n"
                                   f"{result.get('error') or result.get('log')}")
            # Hidden tests stay in the gradebook only: no notebook with them is left where a
            # graded kernel could look for it.
            for nb in src.glob("*.ipynb"):
                nb.unlink()
            if write_release:
                dest = self.release_dir / a
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(self.root / "release" / a, dest)
        return assignments

    def release_is_current(self) -> list[str]:
        """Files in assignments/ that differ from a fresh release (empty when up to date)."""
        fresh = Course(self.solutions, self.root.parent / (self.root.name + "-check"),
                       self.root.parent / (self.root.name + "-check") / "assignments")
        fresh.release()
        stale = []
        for a in self.assignments():
            cmp = filecmp.dircmp(fresh.release_dir / a, self.release_dir / a)
            stale += _dircmp_differences(cmp, a)
        shutil.rmtree(fresh.root, ignore_errors=True)
        return stale

    # ---- autograde -------------------------------------------------------------------------
    def autograde(self, folder, assignment=None, progress=print) -> AutogradeRun:
        """Grade every submission in `folder` with nbgrader's Autograde, one kernel at a time."""
        run = AutogradeRun(discover(Path(folder), self.notebooks(), assignment))
        needed = sorted({s.assignment for s in run.submissions if s.assignment and not s.problem})
        self.release(needed, write_release=False)
        submitted = self.root / "submitted"
        groups: dict[tuple[str, str], list[Submission]] = {}
        for s in run.submissions:
            if not s.problem:
                groups.setdefault((s.student, s.assignment), []).append(s)
        for (student, a), subs in sorted(groups.items()):
            dest = submitted / student / a
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for s in subs:
                shutil.copy2(s.path, dest / f"{s.notebook}.ipynb")
        api = self.api()
        saved_fast = os.environ.get("COURSE_FAST")
        if self.fast:
            os.environ["COURSE_FAST"] = "1"  # the grading kernels inherit it
        try:
            self._grade_groups(api, run, sorted(groups), progress)
        finally:
            if saved_fast is None:
                os.environ.pop("COURSE_FAST", None)
            else:
                os.environ["COURSE_FAST"] = saved_fast
        self._last_run = run
        return run

    def _grade_groups(self, api, run, groups, progress):
        for i, (student, a) in enumerate(groups, 1):
            incidents.clear(self.incident_dir, a, student)
            t0 = time.perf_counter()
            result = api.autograde(a, student, force=True, create=True)
            run.seconds[(student, a)] = time.perf_counter() - t0
            if not result["success"]:
                run.failures[(student, a)] = _last_error(result)
            self._apply_penalties(student, a)
            if progress:
                progress(f"[{i}/{len(groups)}] graded {student} / {a} "
                         f"in {run.seconds[(student, a)]:.1f} s"
                         + (" (nbgrader reported an error)" if not result["success"] else ""))

    def _apply_penalties(self, student, assignment):
        """A notebook whose run tampered with the gradebook scores 0 in every cell."""
        with self.gradebook() as gb:
            try:
                sub = gb.find_submission(assignment, student)
            except Exception:
                return
            for nb in sub.notebooks:
                lines = incidents.read(self.incident_dir, assignment, student, nb.name)
                if any(line.startswith("TAMPERING") for line in lines):
                    for grade in nb.grades:
                        grade.auto_score = 0
                        grade.manual_score = None
                        grade.needs_manual_grade = False
            gb.db.commit()

    # ---- feedback and grades ---------------------------------------------------------------
    def feedback(self, assignment=None) -> list[Path]:
        api = self.api()
        for a in [assignment] if assignment else self.assignments():
            if (self.root / "autograded").is_dir():
                result = api.generate_feedback(a, force=True)
                if not result["success"]:
                    raise RuntimeError(f"nbgrader generate_feedback failed for {a}:\n"
                                       f"{_last_error(result)}")
        return sorted((self.root / "feedback").rglob("*.html"))

    def grade_rows(self, run: AutogradeRun | None = None) -> list[GradedRow]:
        """One row per graded cell of every autograded notebook, plus one per ungradable file."""
        run = run or getattr(self, "_last_run", None)
        rows: list[GradedRow] = []
        with self.gradebook() as gb:
            for a in gb.assignments:
                for nb_entry in a.notebooks:
                    for sub_nb in nb_entry.submissions:
                        student = sub_nb.student.id
                        if run is not None and (student, a.name) not in run.seconds:
                            continue
                        rows += self._rows_for(a.name, student, nb_entry.name, sub_nb, run)
            for s in run.submissions if run else []:
                if s.problem:
                    total = _notebook_max(gb, s.assignment, s.notebook)
                    rows.append(GradedRow(s.student or s.path.stem, s.assignment or "?",
                                          s.notebook or s.path.name, "(whole file)", 0.0, total,
                                          "not graded", s.problem))
        return rows

    def _rows_for(self, assignment, student, notebook, sub_nb, run):
        autograded = self.root / "autograded" / student / assignment / f"{notebook}.ipynb"
        outputs = _test_outputs(autograded) if autograded.exists() else {}
        notes = incidents.read(self.incident_dir, assignment, student, notebook)
        failure = run.failures.get((student, assignment)) if run else None
        rows = []
        for g in sorted(sub_nb.grades, key=lambda g: g.cell.name):
            reason_parts = []
            if not autograded.exists():
                status = "not graded"
                reason_parts.append("notebook missing from the submission"
                                    if not (self.root / "submitted" / student / assignment /
                                            f"{notebook}.ipynb").exists()
                                    else f"nbgrader could not grade it: {failure or 'see the log'}")
            elif g.cell.name not in outputs and g.cell_type == "code":
                status = "failed"
                reason_parts.append("test cell missing from the submission (deleted, or its "
                                    "grade_id changed)")
            elif g.needs_manual_grade:
                status = "needs manual grading"
            elif g.cell_type == "markdown" and not g.score:
                status = "failed"
                reason_parts.append("no answer given")
            elif g.score == g.max_score:
                status = "passed"
            else:
                status = "failed"
                reason_parts.append(outputs.get(g.cell.name) or "")
            reason_parts += [n for n in notes]
            score = None if status == "needs manual grading" else float(g.score or 0)
            rows.append(GradedRow(student, assignment, notebook, g.cell.name, score,
                                  float(g.max_score),
                                  status, "; ".join(p for p in reason_parts if p)))
        return rows

    def write_grades_csv(self, path, rows):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=GradedRow.FIELDS)
            w.writeheader()
            for r in rows:
                w.writerow(r.as_dict())
        return path


def _last_error(result) -> str:
    text = (result.get("error") or result.get("log") or "").strip().splitlines()
    errors = [line for line in text if "ERROR" in line or "Error" in line]
    return (errors or text or ["unknown error"])[-1][:300]


def _notebook_max(gb, assignment, notebook) -> float:
    try:
        return float(gb.find_notebook(notebook, assignment).max_score)
    except Exception:
        return 0.0


def _test_outputs(path: Path) -> dict[str, str]:
    """grade_id -> why that cell failed ('' when it raised nothing).

    The grader's own verdicts (timeout, dead kernel, used-up budget) win over the error the
    kernel reported, since a timeout shows up first as a plain KeyboardInterrupt.
    """
    nb = nbformat.read(path, as_version=4)
    found = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        errors.sort(key=lambda o: o.get("ename") not in GRADER_VERDICTS)
        stderr = [o for o in cell.get("outputs", [])
                  if o.get("output_type") == "stream" and o.get("name") == "stderr"]
        if errors and errors[0].get("ename") == "NotImplementedError" \
                and not errors[0].get("evalue"):
            message = "NotImplementedError: a function it tests is still the release's stub"
        elif errors:
            message = f"{errors[0].get('ename')}: {errors[0].get('evalue')}"
        elif stderr:
            message = "wrote to stderr (nbgrader scores that 0): " + stderr[0].get("text", "")
        else:
            message = ""
        found[meta.get("grade_id")] = message[:300]
    return found


def _dircmp_differences(cmp, prefix):
    diffs = [f"{prefix}/{n}" for n in cmp.left_only + cmp.right_only + cmp.diff_files]
    for name, sub in cmp.subdirs.items():
        diffs += _dircmp_differences(sub, f"{prefix}/{name}")
    return diffs

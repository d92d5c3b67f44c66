"""The real assignments: release up to date, solutions run end to end, grading is exact.

Every notebook under solutions/ is picked up automatically. Notebooks run with
COURSE_FAST=1 (smaller data, fewer iterations, same code path) and on whatever data this
machine has: the offline sets in CI.
"""
import filecmp
from pathlib import Path

import nbformat
import pytest

from course_grader.course import Course
from course_grader.examples import scoring_problems, write_examples

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "solutions").glob("*/*.ipynb"))
ASSIGNMENTS = sorted({p.parent.name for p in SOURCES})


def _differences(cmp, prefix=""):
    diffs = [prefix + n for n in cmp.left_only + cmp.right_only + cmp.diff_files]
    for name, sub in cmp.subdirs.items():
        diffs += _differences(sub, f"{prefix}{name}/")
    return diffs


NOTEBOOKS = [f"{p.parent.name}/{p.stem}" for p in SOURCES]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """One nbgrader release of every assignment, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("released")
    course = Course(build=tmp / "course", release_dir=tmp / "assignments")
    course.release()
    return course, tmp


@pytest.mark.skipif(not SOURCES, reason="no assignment notebooks yet")
def test_committed_release_is_what_nbgrader_generates_from_solutions(released):
    course, tmp = released
    committed = REPO / "assignments"
    assert sorted(p.name for p in committed.iterdir() if p.is_dir()) == ASSIGNMENTS
    diffs = _differences(filecmp.dircmp(tmp / "assignments", committed, ignore=[]))
    assert not diffs, (f"assignments/ is out of date with solutions/ ({diffs}); "
                       "run `course release` and commit the result")


@pytest.fixture(scope="module")
def graded(released):
    """Every example submission of the course (the perfect one, the untouched release and
    every planted bug of every notebook) graded in ONE batch by the real pipeline: parallel
    jobs, slowest notebooks first, the sandbox where there is one. One batch keeps both
    cores busy to the end; the per-notebook tests below only read its results."""
    course, tmp = released
    expected = write_examples(course, tmp / "submissions")
    batch = course.autograde(tmp / "submissions", progress=False, trusted=True)
    return course, expected, batch, course.grade_rows(batch)


# The first test pays for the whole batch (about 300 notebook runs): its timeout covers that.
@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_grading_is_exact_and_the_solution_notebook_runs_top_to_bottom(notebook, graded):
    """The perfect submission scores full marks, the untouched release 0, each planted bug
    loses exactly its parts. The perfect submission is the solution notebook itself
    (answers, visible and hidden tests), so its autograded copy having no error in any cell
    is the solution's top-to-bottom run, done once."""
    course, expected, batch, rows = graded
    assignment, name = notebook.split("/")
    mine = {student: {notebook: nbs[notebook]} for student, nbs in expected.items()
            if notebook in nbs}
    assert mine, f"no example submissions for {notebook}"
    failures = {k: v for k, v in batch.failures.items() if k[0] in mine}
    assert not failures, failures
    assert scoring_problems(rows, mine) == []
    path = course.root / "autograded" / f"example-perfect-{name}" / assignment / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(nb.cells)
              if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, (name, errors)

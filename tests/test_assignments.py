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


@pytest.mark.skipif(not SOURCES, reason="no assignment notebooks yet")
def test_committed_release_is_what_nbgrader_generates_from_solutions(tmp_path):
    course = Course(build=tmp_path / "course", release_dir=tmp_path / "assignments")
    course.release()
    committed = REPO / "assignments"
    assert sorted(p.name for p in committed.iterdir() if p.is_dir()) == ASSIGNMENTS
    diffs = _differences(filecmp.dircmp(tmp_path / "assignments", committed, ignore=[]))
    assert not diffs, (f"assignments/ is out of date with solutions/ ({diffs}); "
                       "run `course release` and commit the result")


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grading_is_exact_and_every_solution_notebook_runs_top_to_bottom(assignment, tmp_path):
    """Every example of the assignment graded by the real pipeline (parallel jobs, sandbox
    where there is one): the perfect submissions score full marks, the untouched release 0,
    each planted bug loses exactly its parts. The perfect submission is the solution
    notebook itself (answers, visible and hidden tests), so its autograded copy having no
    error in any cell is the top-to-bottom run of the solution, done once."""
    course = Course(build=tmp_path / "course", release_dir=tmp_path / "assignments")
    course.release([assignment], write_release=False)
    expected = write_examples(course, tmp_path / "submissions", [assignment])
    batch = course.autograde(tmp_path / "submissions", progress=False, trusted=True)
    assert not batch.failures, batch.failures
    rows = course.grade_rows(batch)
    assert scoring_problems(rows, expected) == []
    for source in sorted((REPO / "solutions" / assignment).glob("*.ipynb")):
        path = course.root / "autograded" / f"example-perfect-{source.stem}" / assignment / source.name
        nb = nbformat.read(path, as_version=4)
        errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, (source.name, errors)

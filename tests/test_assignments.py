"""The real assignments: release up to date, solutions run end to end, grading is exact.

Every notebook under solutions/ is picked up automatically. Notebooks run with
COURSE_FAST=1 (smaller data, fewer iterations, same code path) and on whatever data this
machine has: the offline sets in CI.
"""
import filecmp
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_grader.course import Course
from course_grader.examples import write_examples

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
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_solution_notebook_runs_top_to_bottom(source, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    nb = nbformat.read(source, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grading_is_exact_for_perfect_untouched_and_planted_bug_submissions(
        assignment, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    course = Course(build=tmp_path / "course", release_dir=tmp_path / "assignments")
    course.release([assignment])
    expected = write_examples(course, tmp_path / "submissions", [assignment])
    run = course.autograde(tmp_path / "submissions", progress=None)
    assert not run.failures, run.failures
    rows = course.grade_rows(run)
    assert rows
    for student, notebooks in expected.items():
        for nb_key, breaks in notebooks.items():
            nb_name = nb_key.split("/")[1]
            # Written answers are graded by hand: in a filled-in notebook they are pending,
            # in the untouched release they score 0 like everything else.
            tests = [r for r in rows if r.student == student and r.notebook == nb_name
                     and r.status != "needs manual grading"]
            assert tests, (student, nb_key)
            for r in tests:
                full = r.score == r.max_score
                if breaks is None:  # untouched release: nothing passes
                    assert r.score == 0, (student, r)
                else:
                    assert full == (r.cell not in breaks), (student, r)

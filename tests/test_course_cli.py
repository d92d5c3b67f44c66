"""The instructor's and the student's commands, run as people run them (`course ...`)."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_grader import sandbox
from course_grader.examples import perfect_submission, plant

FIXTURE = Path(__file__).parent / "fixtures" / "mini_course" / "solutions"


def course(tmp, *args, timeout=300):
    command = [sys.executable, "-m", "course_grader", "--solutions", str(FIXTURE),
               "--build", str(tmp / "course"), "--release-dir", str(tmp / "assignments"),
               "--cell-timeout", "20", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    out = course(tmp, "release")
    assert out.returncode == 0, out.stderr
    return tmp


def test_check_prints_the_failing_checks_message_its_grade_id_and_the_unanswered_parts(
        released, tmp_path):
    release = nbformat.read(released / "assignments" / "mini" / "mini.ipynb", as_version=4)
    source = nbformat.read(FIXTURE / "mini" / "mini.ipynb", as_version=4)
    perfect = perfect_submission(source, release)
    buggy = plant(perfect, {"cell": "scale_solution", "find": "* k", "replace": "* (k - 1)"})
    released_cells = {c.metadata["nbgrader"]["grade_id"]: c.source for c in release.cells
                      if "nbgrader" in c.metadata}
    for cell in buggy.cells:  # Part 2 and the question left as released: unanswered
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in ("relu_solution", "question_relu"):
            cell.source = released_cells[gid]
    path = tmp_path / "mini" / "mini.ipynb"
    path.parent.mkdir()
    nbformat.write(buggy, path)
    out = course(released, "check", path)
    assert out.returncode == 1, out.stdout + out.stderr
    # The check's own message, whole (no HTML markup, not cut), with the cell's grade id.
    assert ("FAILED scale_tests: CheckFailed: scale([1, 2], 3): 2 value(s) differ from the "
            "expected ones") in out.stdout
    assert "<span" not in out.stdout
    assert "FAILED relu_tests: NotImplementedError" in out.stdout
    assert "Not answered yet: relu_solution, question_relu" in out.stdout
    nbformat.write(perfect, path)
    out = course(released, "check", path)
    assert out.returncode == 0 and "All visible tests passed." in out.stdout, out.stdout


@pytest.mark.skipif(sandbox.detect().method == "none", reason="no sandbox here")
def test_demo_then_feedback_and_grades_work_for_one_assignment(tmp_path):
    out = course(tmp_path, "demo", "--assignment", "mini", "--jobs", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Grading is exact: 3 example submissions" in out.stdout
    assert "4/4 Feedback HTML for 3 notebook(s)" in out.stdout
    out = course(tmp_path, "feedback", "--assignment", "mini")
    assert out.returncode == 0 and "Wrote 3 feedback file(s)" in out.stdout, out.stderr
    out = course(tmp_path, "feedback", "--assignment", "nosuch")
    assert out.returncode == 2 and "no graded submissions of 'nosuch'" in out.stderr
    out = course(tmp_path, "grades")
    assert out.returncode == 0, out.stderr
    assert "example-untouched" in out.stdout and "missing" not in out.stdout
    # Reasons are cut at a word, never mid-word.
    for line in out.stdout.splitlines():
        if line.strip().startswith("- ") and line.endswith("..."):
            assert line[:-4].endswith(line[:-4].split()[-1])


def test_autograde_refuses_without_a_sandbox_and_says_how_to_get_one(released, tmp_path,
                                                                      monkeypatch):
    from course_grader import batch
    from course_grader.job import Limits

    monkeypatch.setattr(batch, "detect", lambda: sandbox.Isolation("none", ["bwrap not installed"]))
    with pytest.raises(sandbox.SandboxUnavailable) as info:
        batch.resolve_isolation(Limits())
    assert "apt-get install bubblewrap" in str(info.value) and "--no-isolation" in str(info.value)
    said = []
    assert batch.resolve_isolation(Limits(), trusted=True, say=said.append).isolation == "none"
    assert said and "without isolation" in said[0]
    said = []
    batch.resolve_isolation(Limits(isolation="none"), say=said.append)
    assert "WARNING" in said[0]


def test_new_gradebooks_are_stamped_with_the_head_alembic_itself_reports(tmp_path):
    """course_grader reads the migrations' head in process instead of running `alembic`
    (4 s per new gradebook); the stamp must be what nbgrader's own way gives."""
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    from nbgrader.api import Gradebook, _temp_alembic_ini

    from course_grader.job import prepare_nbgrader

    prepare_nbgrader()  # new gradebooks get the head read in this process

    with _temp_alembic_ini(f"sqlite:///{tmp_path / 'x.db'}") as ini:
        out = subprocess.run([str(Path(sys.executable).parent / "alembic"), "-c", ini, "heads"],
                             capture_output=True, text=True, check=True).stdout
    with Gradebook(f"sqlite:///{tmp_path / 'new.db'}"):
        pass
    stamped = sqlite3.connect(tmp_path / "new.db").execute(
        "SELECT version_num FROM alembic_version").fetchall()
    assert stamped == [(out.split()[0],)]


def test_prepared_nbgrader_still_rejects_bad_cell_metadata():
    """prepare_nbgrader checks nbgrader's metadata schema once instead of per cell; every
    cell is still validated against it."""
    import nbformat
    from nbgrader.nbgraderformat import MetadataValidator, ValidationError

    from course_grader.job import prepare_nbgrader

    prepare_nbgrader()
    nb = nbformat.read(Path(__file__).resolve().parents[1] / "solutions" / "assignment1"
                       / "knn.ipynb", as_version=4)
    MetadataValidator().validate_nb(nb)  # the real notebook passes
    graded = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    graded.metadata["nbgrader"]["points"] = "many"
    with pytest.raises(ValidationError, match="'many' is not of type 'number'"):
        MetadataValidator().validate_nb(nb)


def test_only_a_jobs_throwaway_gradebook_skips_the_disk_wait(tmp_path):
    """prepare_nbgrader: SQLite commits skip fsync inside a job folder (course-job-*),
    never elsewhere, so the course's gradebook stays durable."""
    from sqlalchemy import create_engine, text

    from course_grader.job import JOB_PREFIX, prepare_nbgrader

    prepare_nbgrader()
    for folder, want in ((tmp_path / f"{JOB_PREFIX}abc", 0), (tmp_path / "course", 2)):
        folder.mkdir()
        engine = create_engine(f"sqlite:///{folder / 'gradebook.db'}")
        with engine.connect() as con:
            assert con.execute(text("PRAGMA synchronous")).scalar() == want, folder
        engine.dispose()

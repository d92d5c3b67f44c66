"""Fault injection: a batch survives a killed worker, and a killed coordinator resumes.

`course autograde` runs as its own process (as an instructor runs it) on ten slow copies of
the mini assignment's perfect submission, two jobs at a time.
"""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_grader import sandbox
from course_grader.course import Course
from course_grader.examples import perfect_submission, write_examples
from course_grader.gradebook import integrity_problems
from test_grading_pipeline import FIXTURE, leftovers

STUDENTS = [f"s{i:02d}" for i in range(10)]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox.detect().method == "none", reason="no sandbox here")]


@pytest.fixture
def slow_batch(tmp_path):
    """Ten submissions that each take a few seconds, and the command that grades them."""
    course = Course(FIXTURE, tmp_path / "course", tmp_path / "assignments")
    course.release()
    source = nbformat.read(FIXTURE / "mini" / "mini.ipynb", as_version=4)
    release = nbformat.read(course.release_dir / "mini" / "mini.ipynb", as_version=4)
    nb = perfect_submission(source, release)
    nb.cells.insert(2, nbformat.v4.new_code_cell("import time\ntime.sleep(3)"))
    subs = tmp_path / "submissions"
    for student in STUDENTS:
        (subs / student / "mini").mkdir(parents=True)
        nbformat.write(nb, subs / student / "mini" / "mini.ipynb")
    command = [sys.executable, "-m", "course_grader", "--solutions", str(FIXTURE),
               "--build", str(course.root), "--release-dir", str(course.release_dir),
               "autograde", str(subs), "--jobs", "2"]
    return course, command


def _wait_for_journal(course, count, proc, seconds=180):
    folder = course.root / "journal" / "mini"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if len(list(folder.glob("*.json"))) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("no results arrived")


def _descendants(pid):
    children = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _graded_once(course):
    """Every student graded exactly once, and a sound gradebook."""
    db = sqlite3.connect(course.root / "gradebook.db")
    students = [s for (s,) in db.execute("SELECT student_id FROM submitted_assignment")]
    assert sorted(students) == STUDENTS
    merged = [s for (s,) in db.execute("SELECT student FROM course_grader_merge")]
    assert sorted(merged) == STUDENTS
    scores = db.execute("SELECT COUNT(*) FROM grade WHERE auto_score IS NOT NULL "
                        "AND auto_score > 0").fetchone()[0]
    assert scores == 2 * len(STUDENTS)  # both test cells of every submission passed
    assert integrity_problems(course.root / "gradebook.db") == []


def test_a_worker_killed_mid_job_is_replaced_and_its_submission_graded_once(slow_batch):
    course, command = slow_batch
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        _wait_for_journal(course, 1, proc)
        # A worker that is running a kernel right now (its descendants include the kernel).
        end, workers = time.monotonic() + 30, []
        while not workers and time.monotonic() < end:
            workers = [p for p in _descendants(proc.pid) if "spawn_main" in _cmdline(p)
                       and any("kernel_launcher" in _cmdline(c) for c in _descendants(p))]
            time.sleep(0.1)
        assert workers, "no busy worker found"
        os.kill(workers[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    _graded_once(course)
    assert leftovers() == []


def test_a_killed_coordinator_resumes_without_losing_or_repeating_work(slow_batch):
    course, command = slow_batch
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    _wait_for_journal(course, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # power loss: coordinator, workers and kernels
    proc.wait()
    saved = len(list((course.root / "journal" / "mini").glob("*.json")))
    assert 3 <= saved < len(STUDENTS)
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{saved} from the journal" in resumed.stdout
    _graded_once(course)
    assert leftovers() == []


def test_jobs_run_on_a_separate_dask_cluster_given_by_its_address(tmp_path):
    """--scheduler: the same jobs on a cluster the coordinator did not start (here a local
    one with its own worker process); everything a job needs travels with it."""
    from dask.distributed import LocalCluster

    from course_grader.examples import write_examples

    course = Course(FIXTURE, tmp_path / "course", tmp_path / "assignments")
    course.release()
    expected = write_examples(course, tmp_path / "submissions")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        batch = course.autograde(tmp_path / "submissions", scheduler=cluster.scheduler_address,
                                 progress=False)
    assert not batch.failures and len(batch.graded) == len(expected)
    from course_grader.examples import scoring_problems
    assert scoring_problems(course.grade_rows(batch), expected) == []


def test_a_cluster_that_fails_to_start_leaves_no_scratch_folder(tmp_path, monkeypatch):
    """A LocalCluster can fail to start (here: as when a script forgets its __main__ guard
    and the spawned nanny cannot import it). The batch then fails with that error, and its
    folder of job scratch space is gone, so the next batch and the leftover check see
    nothing."""
    import dask.distributed

    def cluster_that_fails(*args, **kwargs):
        raise RuntimeError("Nanny failed to start.")

    course = Course(FIXTURE, tmp_path / "course", tmp_path / "assignments")
    course.release()
    write_examples(course, tmp_path / "submissions")
    before = set(Path("/tmp").glob("course-job*"))
    monkeypatch.setattr(dask.distributed, "LocalCluster", cluster_that_fails)
    with pytest.raises(RuntimeError, match="Nanny failed to start"):
        course.autograde(tmp_path / "submissions", jobs=1, progress=False, trusted=True)
    assert set(Path("/tmp").glob("course-job*")) - before == set()

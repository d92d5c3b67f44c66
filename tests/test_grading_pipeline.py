"""The grading pipeline, end to end, on the small fixture assignment (tests/fixtures).

One batch holds the example submissions and a corpus of broken and hostile ones; nbgrader's
real apps grade it, each submission in its own sandboxed job on a Dask LocalCluster. Each
test then reads the grades, the gradebook, the release, the feedback and the disk.
"""
import hashlib
import json
import socket
import sqlite3
from pathlib import Path

import nbformat
import pytest

import hostile_submissions
from course_grader import sandbox
from course_grader.course import Course
from course_grader.examples import perfect_submission, scoring_problems, write_examples
from course_grader.gradebook import integrity_problems
from course_grader.job import Limits

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "mini_course" / "solutions"
HIDDEN_SNIPPETS = ("hidden input", "linspace(-2.0, 3.0, 11)", "linspace(-1.0, 1.0, 7)")

# Both sandboxes where they work (CI, as root on Debian, has both); skipped where neither.
METHODS = [m for m in ("bwrap", "unshare") if sandbox.why_not(m) is None]
pytestmark = pytest.mark.skipif(not METHODS, reason="no sandbox (bwrap/unshare) on this machine")


def _hashes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers() -> list[str]:
    """Processes, cgroups and scratch folders that a batch must not leave behind."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd[:2] == [b"sleep", b"4242"] or cmd[:1] == [b"bwrap"] \
                or any(b"kernel_launcher.py" in part for part in cmd):
            found.append(b" ".join(cmd).decode(errors="replace")[:120])
    found += [str(p) for p in Path("/sys/fs/cgroup").glob("*/course-grader-*")]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob("course-grader-*")]
    found += [str(p) for p in Path("/tmp").glob("course-job*")]
    return found


def grade_mini(tmp, isolation="auto"):
    """Release the mini course and grade its examples plus the hostile corpus."""
    # Short limits keep the infinite loop cheap; the memory limit is far below the bomb.
    course = Course(FIXTURE, tmp / "course", tmp / "assignments",
                    Limits(cell_timeout=5, notebook_timeout=30, memory_mb=3072, disk_mb=64,
                           isolation=isolation))
    course.release()
    subs = tmp / "submissions"
    examples = write_examples(course, subs)  # nbgrader layout: subs/<student>/mini/
    source = nbformat.read(FIXTURE / "mini" / "mini.ipynb", as_version=4)
    release = nbformat.read(course.release_dir / "mini" / "mini.ipynb", as_version=4)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    targets = dict(repo=REPO, course=course.root, submissions=subs,
                   gradebook=course.root / "gradebook.db", port=listener.getsockname()[1])
    hostile = hostile_submissions.build(perfect_submission(source, release), subs, targets)
    before = _hashes(subs)
    try:
        batch = course.autograde(subs, jobs=2, progress=False)
    finally:
        listener.close()
    return dict(course=course, batch=batch, examples=examples, hostile=hostile, subs=subs,
                before=before, after=_hashes(subs))


@pytest.fixture(scope="module", params=METHODS or ["bwrap"])
def graded(request, tmp_path_factory):
    found = grade_mini(tmp_path_factory.mktemp("course"), isolation=request.param)
    found["feedback"] = found["course"].feedback()
    found["rows"] = found["course"].grade_rows(found["batch"])
    return found


def _by_cell(rows, student):
    return {r.cell: r for r in rows if r.student == student}


def test_perfect_submission_scores_full_marks_and_untouched_release_scores_zero(graded):
    perfect = _by_cell(graded["rows"], "example-perfect-mini")
    assert perfect["scale_tests"].score == 2 and perfect["relu_tests"].score == 3
    assert perfect["question_relu"].status == "needs manual grading"
    untouched = _by_cell(graded["rows"], "example-untouched-mini")
    assert all(r.score == 0 for r in untouched.values()), untouched
    assert "still the release's stub" in untouched["scale_tests"].reason


def test_each_planted_bug_loses_exactly_the_points_of_its_part(graded):
    bugs = {s: e for s, e in graded["examples"].items() if s.startswith("example-bug-")}
    assert len(bugs) == 2
    for student, expectation in bugs.items():
        (breaks,) = expectation.values()
        rows = _by_cell(graded["rows"], student)
        for cell in ("scale_tests", "relu_tests"):
            lost = rows[cell].score < rows[cell].max_score
            assert lost == (cell in breaks), (student, cell, rows[cell])


def test_demo_check_accepts_exact_grading_and_flags_a_wrong_expectation(graded):
    rows, examples = graded["rows"], graded["examples"]
    assert scoring_problems(rows, examples) == []
    wrong = {s: dict(e) for s, e in examples.items()}
    wrong["example-bug-scale_solution"]["mini/mini"] = ["relu_tests"]  # the other part
    problems = scoring_problems(rows, wrong)
    assert len(problems) == 2 and all("example-bug-scale_solution" in p for p in problems)
    wrong = {"example-perfect-mini": {"mini/mini": None}}  # as if it were the untouched release
    assert scoring_problems(rows, wrong)


def test_every_hostile_file_gets_a_row_with_the_expected_outcome_and_a_reason(graded):
    rows = graded["rows"]
    for student, expect in graded["hostile"].items():
        mine = [r for r in rows if r.student == student]
        assert mine, f"no row for {student}"
        if expect == "not graded":
            assert [r.status for r in mine] == ["not graded"] and mine[0].reason, mine
        else:
            cells = _by_cell(rows, student)
            for cell, outcome in expect.items():
                row = cells[cell]
                assert (row.score == row.max_score) == (outcome == "pass"), (student, row)
                if outcome == "fail":
                    assert row.reason, (student, row)


def test_failures_say_why(graded):
    reason = lambda student, cell: _by_cell(graded["rows"], student)[cell].reason
    assert "longer than 5 s" in reason("loop", "scale_tests")
    assert "MemoryError" in reason("bomb", "scale_tests")
    assert "kernel" in reason("exit", "relu_tests")
    assert "kernel" in reason("segfault", "relu_tests")
    assert "more than 8 MiB outside its working folder" in reason("socketfiller", "relu_tests")
    assert "put back" in reason("deleted", "relu_tests")
    assert "unknown grade_id" in reason("renamed", "relu_tests")
    assert "ShortcutError" in reason("shortcut", "relu_tests")
    not_graded = {r.student: r.reason for r in graded["rows"] if r.status == "not graded"}
    assert "empty" in not_graded["empty"]
    assert "invalid JSON" in not_graded["badjson"]
    assert "wrong file name" in not_graded["homework-final"]


def test_no_submission_changed_any_file_or_the_gradebook(graded):
    course = graded["course"]
    assert graded["after"] == graded["before"]  # every submitted file, byte for byte
    assert integrity_problems(course.root / "gradebook.db") == []
    with course.gradebook() as gb:
        for student in ("example-perfect-mini", "ok", "spawner", "writer", "vandal", "forkbomb",
                        "filler"):
            sub = gb.find_submission("mini", student)
            assert sub.score == 5, (student, sub.score)  # 2 + 3 automatic, 1 manual pending
    # The UPDATE the writer aimed at the gradebook never reached it.
    db = sqlite3.connect(course.root / "gradebook.db")
    assert db.execute("SELECT COUNT(*) FROM grade WHERE manual_score IS NOT NULL").fetchone()[0] == 0
    # The autograded notebooks are the ones the jobs returned (journal), untouched since.
    for journal in (course.root / "journal" / "mini").glob("*.json"):
        result = json.loads(journal.read_text())
        for nb, data in result["notebooks"].items():
            path = course.root / "autograded" / result["student"] / "mini" / f"{nb}.ipynb"
            assert path.read_text() == data["autograded"], path


def test_every_submission_is_graded_once(graded):
    course, batch = graded["course"], graded["batch"]
    db = sqlite3.connect(course.root / "gradebook.db")
    rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT student_id) FROM submitted_assignment"
                      ).fetchone()
    assert rows[0] == rows[1] == len(batch.graded) == len(graded["examples"]) + \
        sum(1 for e in graded["hostile"].values() if e != "not graded")
    assert not batch.failures, batch.failures


def test_nothing_of_the_batch_is_left_running_or_on_disk(graded):
    assert leftovers() == []


def test_no_hidden_test_text_in_the_release_or_the_feedback(graded):
    course = graded["course"]
    release_text = (course.release_dir / "mini" / "mini.ipynb").read_text()
    assert "BEGIN HIDDEN TESTS" not in release_text
    assert len(graded["feedback"]) >= 10
    for html in graded["feedback"]:
        text = html.read_text()
        for snippet in HIDDEN_SNIPPETS + ("BEGIN HIDDEN TESTS",):
            assert snippet not in text, (html, snippet)
    source = (FIXTURE / "mini" / "mini.ipynb").read_text()
    assert all(s in source for s in HIDDEN_SNIPPETS[1:])  # the snippets are real, so the check bites


def test_no_solution_is_in_a_job_template(graded):
    template = graded["course"].template("mini")
    for path in template.rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".py", ".json"):
            assert "BEGIN SOLUTION" not in path.read_text(errors="replace"), path
    assert not list(template.rglob("source/*/*.ipynb"))


def test_grades_csv_has_one_row_per_cell_and_file(graded, tmp_path):
    course = graded["course"]
    path = course.write_grades_csv(tmp_path / "grades.csv", graded["rows"])
    lines = path.read_text().splitlines()
    assert lines[0] == "student,assignment,notebook,cell,score,max_score,status,reason"
    assert len(lines) - 1 == len(graded["batch"].graded) * 3 + 3  # three cells each, three bad files


def test_course_folder_has_an_nbgrader_config_that_nbgrader_loads_as_ours(graded):
    from traitlets.config.loader import PyFileConfigLoader

    course = graded["course"]
    path = course.root / "nbgrader_config.py"
    loaded = PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    ours = course.config()
    assert loaded.SandboxedExecute.memory_limit_mb == ours.SandboxedExecute.memory_limit_mb
    assert loaded.Autograde.sanitize_preprocessors == ours.Autograde.sanitize_preprocessors
    assert loaded.GenerateFeedback.preprocessors == ours.GenerateFeedback.preprocessors
    assert loaded.CourseDirectory.db_url == ours.CourseDirectory.db_url

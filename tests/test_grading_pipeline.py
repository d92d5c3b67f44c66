"""The grading pipeline, end to end, on the small fixture assignment (tests/fixtures).

One batch holds the example submissions and a corpus of broken and hostile ones; nbgrader's
real apps grade it with real kernels. Each test then reads the grades, the gradebook, the
release and the feedback it produced.
"""
import json
import sqlite3
from pathlib import Path

import nbformat
import pytest

import hostile_submissions
from course_utils.grading.course import Course
from course_utils.grading.examples import perfect_submission, scoring_problems, write_examples

FIXTURE = Path(__file__).parent / "fixtures" / "mini_course" / "solutions"
HIDDEN_SNIPPETS = ("hidden input", "linspace(-2.0, 3.0, 11)", "linspace(-1.0, 1.0, 7)")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("course")
    # Short limits keep the infinite loop cheap; the memory limit is far below the bomb.
    course = Course(FIXTURE, tmp / "course", tmp / "assignments", cell_timeout=5,
                    notebook_timeout=30, memory_limit_mb=3072)
    course.release()
    subs = tmp / "submissions"
    examples = write_examples(course, subs)  # nbgrader layout: subs/<student>/mini/
    source = nbformat.read(FIXTURE / "mini" / "mini.ipynb", as_version=4)
    release = nbformat.read(course.release_dir / "mini" / "mini.ipynb", as_version=4)
    hostile = hostile_submissions.build(perfect_submission(source, release), subs,  # flat
                                        course.root / "gradebook.db")
    run = course.autograde(subs, progress=None)
    feedback = course.feedback()
    rows = course.grade_rows(run)
    return dict(course=course, run=run, rows=rows, examples=examples, hostile=hostile,
                feedback=feedback)


def _by_cell(rows, student):
    return {r.cell: r for r in rows if r.student == student}


def test_perfect_submission_scores_full_marks_and_untouched_release_scores_zero(graded):
    perfect = _by_cell(graded["rows"], "example-perfect")
    assert perfect["scale_tests"].score == 2 and perfect["relu_tests"].score == 3
    assert perfect["question_relu"].status == "needs manual grading"
    untouched = _by_cell(graded["rows"], "example-untouched")
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
    wrong = {"example-perfect": {"mini/mini": None}}  # as if it were the untouched release
    assert scoring_problems(rows, wrong)


def test_every_hostile_file_gets_a_row_with_the_expected_outcome_and_a_reason(graded):
    rows = graded["rows"]
    for student, expect in graded["hostile"].items():
        mine = [r for r in rows if r.student == student]
        assert mine, f"no row for {student}"
        if expect == "not graded":
            assert [r.status for r in mine] == ["not graded"] and mine[0].reason, mine
        elif expect == "tampering":
            assert all(r.score == 0 for r in mine)
            assert all("TAMPERING" in r.reason for r in mine)
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
    assert "put back" in reason("deleted", "relu_tests")
    assert "unknown grade_id" in reason("renamed", "relu_tests")
    assert "ShortcutError" in reason("shortcut", "relu_tests")
    not_graded = {r.student: r.reason for r in graded["rows"] if r.status == "not graded"}
    assert "empty" in not_graded["empty"]
    assert "invalid JSON" in not_graded["badjson"]
    assert "wrong file name" in not_graded["homework-final"]


def test_the_gradebook_stays_consistent_after_a_submission_wrote_to_it(graded):
    course = graded["course"]
    with course.gradebook() as gb:
        for student in ("example-perfect", "ok", "spawner"):
            sub = gb.find_submission("mini", student)
            assert sub.score == 5, (student, sub.score)  # 2 + 3 automatic, 1 manual pending
        assert gb.find_submission("mini", "writer").score == 0
    # The UPDATE the writer ran (manual_score = 0 everywhere) did not survive.
    db = sqlite3.connect(course.root / "gradebook.db")
    assert db.execute("SELECT COUNT(*) FROM grade WHERE manual_score IS NOT NULL").fetchone()[0] == 0


def test_processes_a_submission_started_do_not_outlive_its_grading(graded):
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        assert cmd[:2] != [b"sleep", b"4242"], "a process started by a submission survived"
    notes = _by_cell(graded["rows"], "spawner")["scale_tests"].reason
    assert "ended 1 process" in notes


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


def test_grades_csv_has_one_row_per_cell_and_file(graded, tmp_path):
    course = graded["course"]
    path = course.write_grades_csv(tmp_path / "grades.csv", graded["rows"])
    lines = path.read_text().splitlines()
    assert lines[0] == "student,assignment,notebook,cell,score,max_score,status,reason"
    graded_students = len(graded["run"].seconds)
    assert len(lines) - 1 == graded_students * 3 + 3  # three graded cells each, three bad files


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

"""`course`: the instructor's command line (also `python -m course_utils.grading`)."""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from .course import REPO, Course


def _course(args) -> Course:
    return Course(solutions=args.solutions, build=args.build, release_dir=args.release_dir,
                  cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                  memory_limit_mb=args.memory_mb, fast=not args.full_size)


NOT_SUBMITTED = "notebook missing from the submission"


def print_table(rows, out=sys.stdout):
    """Totals per student and notebook, with the reasons of what failed underneath."""
    totals = defaultdict(lambda: [0.0, 0.0, 0.0, set()])
    for r in rows:
        t = totals[(r.student, f"{r.assignment}/{r.notebook}")]
        if r.status == "needs manual grading":
            t[2] += r.max_score
        else:
            t[0] += r.score or 0.0
            t[1] += r.max_score
        if r.status in ("failed", "not graded") and r.reason:
            t[3].add(f"{r.cell}: {r.reason}")
            if r.reason.startswith(NOT_SUBMITTED):
                t[3].add(NOT_SUBMITTED)
    width = max([len(s) for s, _ in totals] + [7])
    print(f"{'student':<{width}}  {'notebook':<34} {'auto score':>11}  manual", file=out)
    for (student, nb), (score, best, manual, reasons) in sorted(totals.items()):
        pending = f"{manual:g} point(s) to grade by hand" if manual else ""
        print(f"{student:<{width}}  {nb:<34} {score:>5g} / {best:<4g}  {pending}", file=out)
        if NOT_SUBMITTED in reasons:  # one line instead of one per cell
            reasons = {NOT_SUBMITTED}
        for reason in sorted(reasons)[:6]:
            print(f"{'':<{width}}    - {reason[:150]}", file=out)


def cmd_release(args):
    course = _course(args)
    done = course.release(args.assignment and [args.assignment])
    print(f"Released {', '.join(done)} into {course.release_dir}")


def cmd_autograde(args):
    course = _course(args)
    run = course.autograde(args.folder, args.assignment)
    rows = course.grade_rows(run)
    csv_path = course.write_grades_csv(args.csv or course.root / "grades.csv", rows)
    print_table(rows)
    print(f"\nGrades CSV: {csv_path}")
    if run.seconds:
        times = sorted(run.seconds.values())
        print(f"Seconds per submission: median {times[len(times) // 2]:.1f}, max {times[-1]:.1f}")


def cmd_feedback(args):
    files = _course(args).feedback(args.assignment)
    print(f"Wrote {len(files)} feedback file(s)" + (f" under {files[0].parents[2]}" if files else ""))


def cmd_grades(args):
    course = _course(args)
    rows = course.grade_rows()
    path = course.write_grades_csv(args.csv or course.root / "grades.csv", rows)
    print_table(rows)
    print(f"\nGrades CSV: {path}")


def cmd_check(args):
    """Run a notebook's visible tests the way a student would before submitting."""
    from nbgrader.validator import Validator

    validator = Validator()
    validator.timeout = args.cell_timeout
    result = validator.validate(str(args.notebook))
    failed = result.get("failed", []) + result.get("changed", [])
    passed = not failed and not result.get("type_changed")
    for item in result.get("failed", []):
        print("FAILED:", (item.get("error") or item.get("raw_error") or "")[:400])
    for item in result.get("changed", []):
        print("CHANGED locked cell:", item.get("source", "")[:120])
    print("All visible tests passed." if passed else
          "Some visible tests failed (hidden tests will also run when it is graded).")
    return 0 if passed else 1


def cmd_demo(args):
    """The main job: release, grade the example submissions, feedback, grade table."""
    from .examples import scoring_problems, write_examples

    course = _course(args)
    t0 = time.perf_counter()
    released = course.release(args.assignment and [args.assignment])
    print(f"1/4 Released {', '.join(released)} into {course.release_dir}")
    examples = course.root.parent / "example_submissions"
    expected = write_examples(course, examples, released)
    print(f"2/4 Wrote example submissions (perfect, untouched, planted bugs) to {examples}")
    run = course.autograde(examples)
    print("3/4 Autograded them with nbgrader")
    feedback = course.feedback()
    rows = course.grade_rows(run)
    csv_path = course.write_grades_csv(course.root / "grades.csv", rows)
    print(f"4/4 Feedback HTML for {len(feedback)} notebook(s) under {course.root / 'feedback'}\n")
    # Each example holds only the notebook it is about: show those rows.
    print_table([r for r in rows if f"{r.assignment}/{r.notebook}" in expected.get(r.student, {})])
    problems = scoring_problems(rows, expected)
    for line in problems:
        print("UNEXPECTED:", line)
    print(f"\n{'Grading is NOT exact' if problems else 'Grading is exact'}: "
          f"{len(expected)} example submissions; the perfect ones score full marks, the "
          "untouched release 0, each planted bug loses exactly its parts"
          + (f" except {len(problems)} cell(s) above." if problems else "."))
    print(f"Grades CSV: {csv_path}\nFeedback:   {course.root / 'feedback'}")
    print(f"Done in {time.perf_counter() - t0:.0f} s.")
    return 1 if problems else 0


def main(argv=None):
    import warnings

    # nbgrader 0.9.6's gradebook triggers SQLAlchemy autoflush warnings that mean nothing here.
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    parser.add_argument("--solutions", type=Path, default=REPO / "solutions")
    parser.add_argument("--build", type=Path, default=REPO / "build" / "course",
                        help="the nbgrader course folder this command builds and uses")
    parser.add_argument("--release-dir", type=Path, default=REPO / "assignments")
    parser.add_argument("--cell-timeout", type=int, default=120, help="seconds per cell")
    parser.add_argument("--notebook-timeout", type=int, default=900,
                        help="seconds per notebook, all cells together")
    parser.add_argument("--memory-mb", type=int, default=6144, help="kernel memory limit")
    parser.add_argument("--full-size", action="store_true",
                        help="grade with the notebooks' full data sizes and iteration counts "
                             "(default: COURSE_FAST=1, which the graded tests do not depend on)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="regenerate assignments/ from solutions/")
    p.add_argument("assignment", nargs="?")
    p.set_defaults(func=cmd_release)
    p = sub.add_parser("autograde", help="grade every submission in a folder")
    p.add_argument("folder", type=Path)
    p.add_argument("--assignment", help="only this assignment (needed for ambiguous flat names)")
    p.add_argument("--csv", type=Path)
    p.set_defaults(func=cmd_autograde)
    p = sub.add_parser("feedback", help="feedback HTML, hidden tests stripped")
    p.add_argument("--assignment")
    p.set_defaults(func=cmd_feedback)
    p = sub.add_parser("grades", help="write the grades CSV from the gradebook")
    p.add_argument("--csv", type=Path)
    p.set_defaults(func=cmd_grades)
    p = sub.add_parser("check", help="run a notebook's visible tests before submitting")
    p.add_argument("notebook", type=Path)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("demo", help="release, grade the example submissions, print grades")
    p.add_argument("--assignment")
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"course {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

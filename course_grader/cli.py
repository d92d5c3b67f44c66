"""`course`: the instructor's command line (also `python -m course_grader`)."""
from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

from .course import REPO, Course
from .job import Limits

DEFAULT_BUILD = REPO / "build" / "course"


def _course(args) -> Course:
    isolation = "none" if getattr(args, "no_isolation", False) else args.isolation
    limits = Limits(cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                    memory_mb=args.memory_mb, isolation=isolation, fast=not args.full_size,
                    data_dir=str(args.data_dir or ""))
    return Course(solutions=args.solutions, build=args.build, release_dir=args.release_dir,
                  limits=limits)


def _short(text: str, width: int = 160) -> str:
    """One line, cut at a word boundary (never mid-word)."""
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" ...")


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
            t[3].add(r.reason if r.cell.startswith("(") else f"{r.cell}: {r.reason}")
    width = max([len(s) for s, _ in totals] + [7])
    print(f"{'student':<{width}}  {'notebook':<34} {'auto score':>11}  manual", file=out)
    for (student, nb), (score, best, manual, reasons) in sorted(totals.items()):
        pending = f"{manual:g} point(s) to grade by hand" if manual else ""
        print(f"{student:<{width}}  {nb:<34} {score:>5g} / {best:<4g}  {pending}", file=out)
        for reason in sorted(reasons)[:6]:
            print(f"{'':<{width}}    - {_short(reason)}", file=out)


def cmd_release(args):
    course = _course(args)
    done = course.release(args.assignment and [args.assignment])
    print(f"Released {', '.join(done)} into {course.release_dir}")
    print(f"Student editions (notebooks + course_utils with stubs, and a zip each) in "
          f"{course.editions_dir}")


def _report_batch(course, batch, csv=None):
    rows = course.grade_rows(batch)
    csv_path = course.write_grades_csv(csv or course.root / "grades.csv", rows)
    print_table(rows)
    print(f"\nGrades CSV: {csv_path}")
    if batch.graded:
        times = sorted(batch.graded.values())
        print(f"Seconds per submission: median {times[len(times) // 2]:.1f}, "
              f"max {times[-1]:.1f} ({batch.jobs or 'no'} job(s) at a time, "
              f"{batch.isolation} sandbox; {batch.reused} from the journal)")
    return rows


def cmd_autograde(args):
    course = _course(args)
    try:
        batch = course.autograde(args.folder, args.assignment, jobs=args.jobs,
                                 scheduler=args.scheduler, resume=args.resume)
    except KeyboardInterrupt:
        print("\nInterrupted. Every result that arrived is saved in "
              f"{course.root / 'journal'}; run the same command with --resume to grade "
              "only what is left.", file=sys.stderr)
        return 130
    _report_batch(course, batch, args.csv)
    return 0


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
    """Run a notebook's visible tests the way the grader will (sandbox, COURSE_FAST)."""
    from .check import check_notebook

    report = check_notebook(args.notebook, _course(args).limits)
    for line in report.lines:
        print(line)
    return 0 if report.passed else 1


def cmd_demo(args):
    """The main job: release, grade the example submissions, feedback, grade table."""
    from .batch import run_batch
    from .examples import scoring_problems, write_examples

    import shutil

    course = _course(args)
    if args.build == DEFAULT_BUILD:  # the demo never mixes its examples into a real course
        course.root = course.root.parent / "demo"
    t0 = time.perf_counter()
    for graded_state in ("autograded", "feedback", "journal", "incidents", "gradebook.db"):
        path = course.root / graded_state
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    released = course.release(args.assignment and [args.assignment])
    print(f"1/4 Released {', '.join(released)} into {course.release_dir}")
    examples = course.root.parent / "example_submissions"
    shutil.rmtree(examples, ignore_errors=True)
    expected = write_examples(course, examples, released,
                              bugs_per_assignment=None if args.all else 1)
    which = "every example" if args.all else "a sample: perfect and untouched of every " \
        "notebook, one planted bug per assignment; --all for every example"
    print(f"2/4 Wrote {len(expected)} example submissions ({which}) to {examples}")
    batch = run_batch(course, examples, jobs=args.jobs, scheduler=args.scheduler,
                      trusted=True)
    print(f"3/4 Autograded them with nbgrader, {batch.jobs} job(s) at a time "
          f"({batch.isolation} sandbox)")
    feedback = course.feedback(jobs=batch.jobs or 1) if batch.graded else []
    rows = course.grade_rows(batch)
    csv_path = course.write_grades_csv(course.root / "grades.csv", rows)
    print(f"4/4 Feedback HTML for {len(feedback)} notebook(s) under {course.root / 'feedback'}\n")
    # Each example student hands in only the notebook it is about: show those rows.
    print_table([r for r in rows if f"{r.assignment}/{r.notebook}" in expected.get(r.student, {})
                 or r.status == "not graded" and r.cell != "(whole notebook)"])
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
    parser.add_argument("--build", type=Path, default=DEFAULT_BUILD,
                        help="the nbgrader course folder this command builds and uses "
                             "(the demo's default is build/demo)")
    parser.add_argument("--release-dir", type=Path, default=REPO / "assignments")
    parser.add_argument("--cell-timeout", type=int, default=120, help="seconds per cell")
    parser.add_argument("--notebook-timeout", type=int, default=900,
                        help="seconds per notebook, all cells together")
    parser.add_argument("--memory-mb", type=int, default=6144, help="kernel memory limit")
    parser.add_argument("--isolation", default="auto", choices=("auto", "bwrap", "unshare"),
                        help="the sandbox for student code (auto: bwrap, else unshare)")
    parser.add_argument("--data-dir", type=Path,
                        help="folder with cifar-10-batches-py / coco_captioning, shown "
                             "read-only to graded kernels")
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
    p.add_argument("--jobs", type=int, help="submissions graded at once (default: cores, "
                                            "capped by memory / --memory-mb)")
    p.add_argument("--scheduler", help="a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--resume", action="store_true",
                   help="keep results an interrupted run already saved; grade the rest")
    p.add_argument("--no-isolation", action="store_true",
                   help="run student code without a sandbox (trusted submissions only)")
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
    p.add_argument("--all", action="store_true",
                   help="every example (each planted bug), not the representative sample")
    p.add_argument("--jobs", type=int)
    p.add_argument("--scheduler")
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"course {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

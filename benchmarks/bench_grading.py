"""How long does autograding take, and how much of it is the grader's own overhead?

Run from the repository root:

    .venv/bin/python benchmarks/bench_grading.py                 # every assignment in solutions/
    .venv/bin/python benchmarks/bench_grading.py assignment1     # one assignment
    .venv/bin/python benchmarks/bench_grading.py --solutions tests/fixtures/mini_course/solutions

For every notebook it writes the example submissions (perfect, untouched, one per planted bug),
then measures, per submission:
  plain s   executing the submitted notebook with nbclient alone, in a fresh kernel, in the
            same mode the grader uses (COURSE_FAST=1): the student's compute plus kernel start;
  graded s  `Course.autograde` of that one submission: nbgrader's sanitize + execute + save
            steps, the sandbox, the shortcut guard, the gradebook.
and prints the medians and the overhead (graded - plain). Goal: overhead <= 3 s per notebook.
Times depend on machine load; run it on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_grader.course import Course  # noqa: E402
from course_grader.examples import write_examples  # noqa: E402


def plain_seconds(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as cwd:
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": cwd}}).execute()
        return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("assignment", nargs="*")
    parser.add_argument("--solutions", type=Path, default=REPO / "solutions")
    args = parser.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore")  # nbgrader 0.9.6's SQLAlchemy deprecation chatter
    os.environ["COURSE_FAST"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        course = Course(solutions=args.solutions, build=tmp / "course",
                        release_dir=tmp / "release")
        assignments = course.release(args.assignment or None)
        subs = tmp / "submissions"
        expected = write_examples(course, subs, assignments)
        by_notebook: dict[str, list[tuple[str, float, float]]] = {}
        for student in sorted(expected):
            for key in sorted(expected[student]):
                a, nb = key.split("/")
                path = subs / student / a / f"{nb}.ipynb"
                plain = plain_seconds(path)
                one = tmp / "one" / student
                one.mkdir(parents=True)
                (one / a).mkdir()
                (one / a / f"{nb}.ipynb").write_bytes(path.read_bytes())
                run = course.autograde(tmp / "one", assignment=a, progress=None)
                graded = sum(run.seconds.values())
                (one / a / f"{nb}.ipynb").unlink()
                (one / a).rmdir()
                one.rmdir()
                by_notebook.setdefault(key, []).append((student, plain, graded))
                print(f"{key:<32} {student:<40} plain {plain:6.1f} s   graded {graded:6.1f} s",
                      flush=True)
        print(f"\n{'notebook':<32} {'n':>3} {'median plain s':>15} {'median graded s':>16} "
              f"{'median overhead s':>18}")
        for key, rows in sorted(by_notebook.items()):
            plain = statistics.median(r[1] for r in rows)
            graded = statistics.median(r[2] for r in rows)
            overhead = statistics.median(r[2] - r[1] for r in rows)
            print(f"{key:<32} {len(rows):>3} {plain:>15.1f} {graded:>16.1f} {overhead:>18.1f}")


if __name__ == "__main__":
    main()

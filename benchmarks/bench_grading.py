"""Grading throughput, parallel speed-up and the grader's own overhead (course_grader).

Run from the repository root, on an idle machine (the load average is printed beside every
figure; numbers taken under load say little):

    .venv/bin/python benchmarks/bench_grading.py speedup   # N copies of one notebook, --jobs 1 vs 2
    .venv/bin/python benchmarks/bench_grading.py overhead  # graded vs plain nbclient run, per submission
    .venv/bin/python benchmarks/bench_grading.py simulate  # a 1,000-submission batch of the mini notebook
    .venv/bin/python benchmarks/bench_grading.py project   # 500 students x 28 notebooks, from the demo

speedup:  --notebook assignment1/knn --n 40: the perfect submission under N student ids,
          graded with jobs=1 and then jobs=2, each in a fresh course folder (goal >= 1.7x).
overhead: --notebook ... --n 5: per submission, `plain` = executing the same notebook with
          nbclient in a fresh kernel (COURSE_FAST=1, no sandbox, no nbgrader) and `graded`
          = the job's seconds (unpacking the template, nbgrader's sanitize/execute/save, the
          sandbox, reading the results back). Goal: overhead <= 3 s.
simulate: --n 1000: the mini assignment's examples repeated to N submissions, default jobs;
          throughput, and the peak memory of the coordinator and of the largest child.
project:  a projection on paper for 500 students x 28 notebooks on 16 cores and on a
          10-node cluster, from the per-notebook job times of a `course demo` run
          (build/demo/journal) and a parallel efficiency per core (--efficiency, measured
          by `speedup`).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_grader.course import Course  # noqa: E402
from course_grader.examples import perfect_submission, write_examples  # noqa: E402

MINI = REPO / "tests" / "fixtures" / "mini_course" / "solutions"


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def copies_of_perfect(course: Course, key: str, n: int, out: Path) -> None:
    a, name = key.split("/")
    source = nbformat.read(course.solutions / a / f"{name}.ipynb", as_version=4)
    release = nbformat.read(course.root / "release" / a / f"{name}.ipynb", as_version=4)
    nb = perfect_submission(source, release)
    for i in range(n):
        dest = out / f"student{i:04d}" / a / f"{name}.ipynb"
        dest.parent.mkdir(parents=True)
        nbformat.write(nb, dest)


def grade_copies(key: str, n: int, jobs: int, tmp: Path):
    course = Course(build=tmp / f"course-{jobs}", release_dir=tmp / f"release-{jobs}")
    course.release([key.split("/")[0]], write_release=False)
    subs = tmp / f"subs-{jobs}"
    copies_of_perfect(course, key, n, subs)
    t0 = time.perf_counter()
    batch = course.autograde(subs, jobs=jobs, progress=False)
    wall = time.perf_counter() - t0
    assert not batch.failures, batch.failures
    return wall, batch


def cmd_speedup(args):
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.n} copies of {args.notebook}'s perfect submission; {load()}")
        walls = {}
        for jobs in (1, 2):
            walls[jobs], batch = grade_copies(args.notebook, args.n, jobs, Path(tmp))
            seconds = sorted(batch.graded.values())
            print(f"jobs={jobs}: {walls[jobs]:7.1f} s wall, {args.n / walls[jobs]:.2f} "
                  f"submissions/s, median job {statistics.median(seconds):.1f} s; {load()}")
        print(f"speed-up jobs=2 vs jobs=1: {walls[1] / walls[2]:.2f}x (goal >= 1.7x)")


def plain_seconds(path: Path) -> float:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as cwd:
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": cwd}}).execute()
        return time.perf_counter() - t0


def cmd_overhead(args):
    os.environ["COURSE_FAST"] = "1"
    threads = str(os.cpu_count() or 1)  # what a graded kernel gets with one job at a time
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = threads
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wall, batch = grade_copies(args.notebook, args.n, 1, tmp)
        a, name = args.notebook.split("/")
        plain = [plain_seconds(tmp / "subs-1" / f"student{i:04d}" / a / f"{name}.ipynb")
                 for i in range(args.n)]
        graded = list(batch.graded.values())
        print(f"{args.notebook}, {args.n} submissions, one job at a time; {load()}")
        print(f"plain nbclient run: median {statistics.median(plain):.2f} s")
        print(f"graded (job):       median {statistics.median(graded):.2f} s")
        print(f"overhead per submission: {statistics.median(graded) - statistics.median(plain):.2f} s"
              " (goal <= 3 s, sandbox included)")
        print(f"batch wall time {wall:.1f} s = {wall / args.n:.2f} s per submission "
              "(includes starting the Dask cluster once)")


def cmd_simulate(args):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        course = Course(MINI, tmp / "course", tmp / "release")
        course.release()
        examples = tmp / "examples"
        write_examples(course, examples)
        variants = sorted(p for p in examples.rglob("*.ipynb"))
        subs = tmp / "subs"
        for i in range(args.n):
            dest = subs / f"student{i:05d}" / "mini" / "mini.ipynb"
            dest.parent.mkdir(parents=True)
            dest.write_bytes(variants[i % len(variants)].read_bytes())
        print(f"{args.n} submissions of the mini notebook ({len(variants)} variants); {load()}")
        t0 = time.perf_counter()
        batch = course.autograde(subs, jobs=args.jobs, progress=True)
        wall = time.perf_counter() - t0
        self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size = (course.root / "gradebook.db").stat().st_size / 2**20
        print(f"graded {len(batch.graded)} ({len(batch.failures)} failures) with {batch.jobs} "
              f"job(s) in {wall:.0f} s: {len(batch.graded) / wall:.2f} submissions/s, "
              f"{wall / args.n:.2f} s each; {load()}")
        print(f"peak memory: coordinator {self_mb:.0f} MiB, largest child process "
              f"{child_mb:.0f} MiB; gradebook {size:.1f} MiB")


def notebook_seconds(journal: Path) -> dict[str, float]:
    """Median job seconds per notebook, from the one-notebook results of a journal."""
    import json

    found: dict[str, list[float]] = {}
    for path in journal.glob("*/*.json"):
        result = json.loads(path.read_text())
        if len(result.get("notebooks", {})) == 1:
            (nb,) = result["notebooks"]
            found.setdefault(f"{result['assignment']}/{nb}", []).append(result["seconds"])
    return {k: statistics.median(v) for k, v in sorted(found.items())}


def cmd_project(args):
    seconds = notebook_seconds(Path(args.journal))
    if not seconds:
        raise SystemExit(f"no one-notebook results under {args.journal}: run `course demo` first")
    per_student = sum(seconds.values())
    n = args.students * len(seconds)
    cpu = args.students * per_student
    print(f"{len(seconds)} notebooks; one student's whole course takes {per_student:.0f} s of "
          f"grading (median job seconds per notebook, perfect/untouched/buggy mixed, from "
          f"{args.journal})")
    print(f"{args.students} students x {len(seconds)} notebooks = {n} notebook runs, "
          f"{cpu / 3600:.1f} core-hours; {args.efficiency:.0%} parallel efficiency per core")
    for name, cores in (("1 core", 1), ("16 cores", 16), ("10 nodes x 16 cores", 160)):
        hours = cpu / (cores * (args.efficiency if cores > 1 else 1.0)) / 3600
        print(f"  {name:<22} {hours:8.2f} h")


def main(argv=None):
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("speedup")
    p.add_argument("--notebook", default="assignment1/knn")
    p.add_argument("--n", type=int, default=40)
    p = sub.add_parser("overhead")
    p.add_argument("--notebook", default="assignment1/knn")
    p.add_argument("--n", type=int, default=5)
    p = sub.add_parser("simulate")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--jobs", type=int)
    p = sub.add_parser("project")
    p.add_argument("--journal", default=str(REPO / "build" / "demo" / "journal"))
    p.add_argument("--students", type=int, default=500)
    p.add_argument("--efficiency", type=float, default=0.85,
                   help="parallel efficiency per core (speed-up / jobs, from `speedup`)")
    args = parser.parse_args(argv)
    {"speedup": cmd_speedup, "overhead": cmd_overhead, "simulate": cmd_simulate,
     "project": cmd_project}[args.what](args)


if __name__ == "__main__":
    main()

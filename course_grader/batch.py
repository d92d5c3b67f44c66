"""The coordinator: one sandboxed job per submission on Dask, one writer for the results.

    submissions folder --discover--> JobSpecs --Dask--> job.grade_submission (anywhere)
                                                           |
    course gradebook <--merge-- course folder <--journal-- results, as they arrive

- Jobs run on a dask.distributed LocalCluster (`jobs` worker processes, one thread each)
  or on a running cluster (`scheduler="tcp://host:8786"`). Everything a job needs travels
  as bytes, so workers need the package installed and nothing else of the course.
- A worker that dies mid-job is an infrastructure failure: Dask's scheduler re-runs its
  task elsewhere. A student's timeout, crash or memory bomb is part of a result.
- Each result is written to journal/ the moment it arrives, then merged (gradebook.py).
  An interrupted batch keeps every result it got: `resume=True` grades only what is left.
  Results may arrive twice (a re-run task); merging is keyed, so that changes nothing.
- The slowest notebooks start first (timings of earlier runs), and a progress bar shows
  what is done and the ETA.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import gradebook as gradebook_writer
from .job import JobSpec, Limits, grade_submission, pack_folder
from .sandbox import HOW_TO_GET_ISOLATION, SandboxUnavailable, detect
from .submissions import Submission, discover


@dataclass
class BatchResult:
    graded: dict[tuple[str, str], float] = field(default_factory=dict)  # (a, s) -> seconds
    problems: list[Submission] = field(default_factory=list)  # files that cannot be graded
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # (s, a) -> why
    reused: int = 0  # results taken from the journal (resume)
    isolation: str = ""
    jobs: int = 0


def default_jobs(memory_mb: int) -> int:
    """The number of cores, capped by memory / the per-kernel memory limit."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
    except (ValueError, OSError, AttributeError):
        total_mb = 0
    by_memory = total_mb // memory_mb if memory_mb and total_mb else cores
    return max(1, min(cores or 1, by_memory))


def resolve_isolation(limits: Limits, trusted: bool = False, say=print) -> Limits:
    """The sandbox method for this batch; refuses when none works (unless told otherwise)."""
    if limits.isolation != "auto":
        if limits.isolation == "none":
            say("WARNING: grading with --no-isolation: student code runs with your "
                "permissions and can read solutions and other students' files.")
        return limits
    found = detect()
    if found.method != "none":
        return Limits(**{**limits.__dict__, "isolation": found.method})
    if trusted:
        say(f"No sandbox here ({'; '.join(found.why_not)}); grading the course's own "
            "examples without isolation.")
        return Limits(**{**limits.__dict__, "isolation": "none"})
    raise SandboxUnavailable(f"No sandbox works here ({'; '.join(found.why_not)}). "
                             + HOW_TO_GET_ISOLATION)


def make_specs(submissions: list[Submission], limits: Limits) -> list[JobSpec]:
    groups: dict[tuple[str, str], dict[str, bytes]] = defaultdict(dict)
    for s in submissions:
        groups[(s.student, s.assignment)][s.notebook] = s.path.read_bytes()
    return [JobSpec(student, a, notebooks, limits)
            for (student, a), notebooks in sorted(groups.items())]


def _journal_path(root: Path, assignment: str, student: str) -> Path:
    return root / "journal" / assignment / f"{student}.json"


def _expected_seconds(timings: dict, spec: JobSpec) -> float:
    known = [v for v in timings.values()] or [60.0]
    default = sorted(known)[len(known) // 2]
    return sum(timings.get(f"{spec.assignment}/{nb}", default) for nb in spec.notebooks)


def apply_result(course, gb, result: dict, fingerprint: str) -> bool:
    """Store one result: autograded notebooks and incidents in the course folder, then the
    gradebook (one transaction). Returns False when it was merged before."""
    a, student = result["assignment"], result["student"]
    folder = course.root / "autograded" / student / a
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.ipynb"):
        if old.stem not in result["notebooks"]:
            old.unlink()
    for nb, data in result["notebooks"].items():
        if data.get("autograded") is not None:
            (folder / f"{nb}.ipynb").write_text(data["autograded"])
        notes = course.root / "incidents" / a / student / f"{nb}.json"
        notes.parent.mkdir(parents=True, exist_ok=True)
        notes.write_text(json.dumps(data.get("incidents", []), indent=1))
    return gradebook_writer.merge(gb, result, fingerprint)


def run_batch(course, folder: Path, assignment=None, jobs=None, scheduler=None,
              resume=False, progress=True, trusted=False) -> BatchResult:
    say = (lambda *a: print(*a, file=sys.stderr)) if progress else (lambda *a: None)
    found = discover(folder, course.notebooks(), assignment)
    batch = BatchResult(problems=[s for s in found if s.problem])
    good = [s for s in found if not s.problem]
    limits = resolve_isolation(course.limits, trusted=trusted, say=say)
    batch.isolation = limits.isolation
    needed = sorted({s.assignment for s in good})
    course.ensure_templates(needed)
    jobs = jobs or default_jobs(limits.memory_mb)
    if limits.threads <= 0:  # share the cores among the kernels running at once
        limits = Limits(**{**limits.__dict__, "threads": max(1, (os.cpu_count() or 1) // jobs)})
    templates = {a: pack_folder(course.template(a)) for a in needed}
    fingerprints = {a: hashlib.sha256(templates[a] + limits.fingerprint().encode()).hexdigest()
                    for a in needed}
    specs = make_specs(good, limits)
    timings_path = course.root / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}

    todo = []
    with course.gradebook() as gb:
        for spec in specs:
            journal = _journal_path(course.root, spec.assignment, spec.student)
            if resume and journal.exists():
                saved = json.loads(journal.read_text())
                if (saved.get("files_sha256"), saved.get("fingerprint")) == \
                        (spec.files_sha256, fingerprints[spec.assignment]):
                    apply_result(course, gb, saved, saved["fingerprint"])
                    batch.graded[(spec.assignment, spec.student)] = saved["seconds"]
                    batch.reused += 1
                    continue
            todo.append(spec)
        todo.sort(key=lambda s: -_expected_seconds(timings, s))
        if todo:
            jobs = min(jobs, len(todo))
            batch.jobs = jobs
            say(f"Grading {len(todo)} submission(s) with {jobs} job(s) at a time "
                f"({limits.isolation} sandbox)" + (f"; {batch.reused} taken from the journal"
                                                   if batch.reused else ""))
            # Local jobs keep their throwaway folders under one folder of this course, so a
            # batch that was killed (power loss) leaves nothing that the next run misses.
            scratch = None if scheduler else job_scratch(course)
            for result in _run_on_dask(todo, templates, jobs, scheduler, progress, batch,
                                       scratch):
                a, student = result["assignment"], result["student"]
                result["fingerprint"] = fingerprints[a]
                write_json_atomically(_journal_path(course.root, a, student), result)
                if result["notebooks"] or result["success"]:
                    apply_result(course, gb, result, result["fingerprint"])
                    batch.graded[(a, student)] = result["seconds"]
                else:
                    batch.failures[(student, a)] = result["error"] or "no result"
                per_notebook = result["seconds"] / max(1, len(result["notebooks"]))
                for nb in result["notebooks"]:
                    timings[f"{a}/{nb}"] = round(per_notebook, 2)
                write_json_atomically(timings_path, timings)
    return batch


def write_json_atomically(path: Path, data) -> None:
    """Write a journal entry so that a crash leaves the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def job_scratch(course) -> Path:
    """An empty folder for this course's local jobs (short: Unix socket paths are short)."""
    import shutil
    import tempfile

    from .sandbox import sweep_cgroups

    tag = hashlib.sha256(str(course.root).encode()).hexdigest()[:8]
    folder = Path(tempfile.gettempdir()) / f"course-jobs-{tag}"
    sweep_cgroups(tag)  # what a killed batch of this course left
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _run_on_dask(specs, templates, jobs, scheduler, progress, batch, scratch=None):
    """Yield each job's result as it completes (the caller is the only writer)."""
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = client = bar = None
    try:  # from here on, even a cluster that fails to start leaves nothing behind
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                   memory_limit=0, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
        bar = tqdm(total=len(specs), unit="submission", desc="grading",
                   disable=not progress, file=sys.stderr)
        shipped = {a: client.scatter(data, broadcast=True) for a, data in templates.items()}
        scratch_root = str(scratch) if scratch else None
        futures = {client.submit(grade_submission, spec, shipped[spec.assignment],
                                 scratch_root, pure=False,
                                 key=f"grade-{spec.assignment}-{spec.student}-"
                                     f"{spec.files_sha256[:12]}"): spec
                   for spec in specs}
        for future in as_completed(futures):
            spec = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # the grading machinery failed, repeatedly
                batch.failures[(spec.student, spec.assignment)] = \
                    f"{type(exc).__name__}: {str(exc)[:200]}"
                bar.update()
                continue
            bar.set_postfix_str(f"{spec.student}/{spec.assignment}", refresh=False)
            bar.update()
            yield result
    finally:
        for part in (bar, client, cluster):
            if part is not None:
                part.close()
        if scratch is not None:
            import shutil

            from .sandbox import sweep_cgroups
            from .execute import batch_tag

            sweep_cgroups(batch_tag(str(scratch)))
            shutil.rmtree(scratch, ignore_errors=True)

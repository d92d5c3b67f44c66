"""`course check NOTEBOOK`: the visible tests, run the way the grader runs them.

Same kernel sandbox and limits as grading (execute.py), COURSE_FAST=1, the notebook's own
test cells (hidden tests only exist in the gradebook). It prints, for every failing test
cell, its grade id and the check's own message, and names the questions still unanswered.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import failure_message
from .job import Limits, grading_config
from .sandbox import detect

UNANSWERED = re.compile(r"YOUR (CODE|ANSWER) HERE|raise NotImplementedError")


@dataclass
class CheckReport:
    passed: bool
    lines: list[str] = field(default_factory=list)


def check_notebook(path: Path, limits: Limits) -> CheckReport:
    from .execute import SandboxedExecute

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no notebook at {path}")
    nb = nbformat.read(path, as_version=4)
    lines = []
    isolation = limits.isolation
    if isolation == "auto" and detect().method == "none":
        isolation = "none"  # your own code on your own machine: nothing to protect
        lines.append("(no sandbox on this machine: the checks run without one)")
    config = grading_config(path.parent, Limits(**{**limits.__dict__, "isolation": isolation,
                                                    "threads": os.cpu_count() or 1}))
    executor = SandboxedExecute(config=config)
    executor.incident_dir = ""
    resources = {"metadata": {"path": str(path.parent)},
                 "nbgrader": {"notebook": path.stem, "assignment": path.parent.name}}
    nb, _ = executor.preprocess(nb, resources)
    failed, unanswered = [], []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and UNANSWERED.search(cell.source):
            unanswered.append(meta.get("grade_id", "?"))
        if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
            why = failure_message(cell)
            if why:
                failed.append(f"FAILED {meta.get('grade_id', '?')}: {why}")
    lines += failed
    if unanswered:
        lines.append("Not answered yet: " + ", ".join(unanswered))
    lines.append("All visible tests passed." if not failed else
                 f"{len(failed)} visible test cell(s) failed (hidden tests also run when it "
                 "is graded).")
    return CheckReport(not failed, lines)

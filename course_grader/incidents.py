"""One JSON list of sentences per graded notebook: what went wrong while grading it.

The steps that notice something (shortcut detection, the sandboxed run) append here; the
grade report reads it back so that every row can say *why* it scored what it scored.
"""
from __future__ import annotations

import json
from pathlib import Path


def incident_file(folder, assignment: str, student: str, notebook: str) -> Path:
    return Path(folder) / assignment / student / f"{notebook}.json"


def record(folder, info: dict, lines: list[str]) -> None:
    """Append `lines` for the notebook described by nbgrader's resources['nbgrader']."""
    if not folder or not info or not lines:
        return
    path = incident_file(folder, info.get("assignment", "_"), info.get("student", "_"),
                         info.get("notebook", "_"))
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(old + list(lines), indent=1))


def read(folder, assignment: str, student: str, notebook: str) -> list[str]:
    path = incident_file(folder, assignment, student, notebook)
    return json.loads(path.read_text()) if path.exists() else []

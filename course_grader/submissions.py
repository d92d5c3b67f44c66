"""Finding submissions in whatever folder layout an instructor brings, and vetting them.

Layouts understood:
- nbgrader's own:  DIR/<student>/<assignment>/<notebook>.ipynb
- per student:     DIR/<student>/<notebook>.ipynb            (assignment found by notebook name)
- flat:            DIR/<student>_<notebook>.ipynb or DIR/<notebook>_<student>.ipynb
                   (also with '-' or '.' as the separator)

Every file found becomes a `Submission`; a file that cannot be graded (empty, invalid JSON,
not a notebook, a name that matches no notebook of the course) keeps a `problem` sentence,
so that it still gets a row, with the reason, in the grade report.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


@dataclass
class Submission:
    path: Path
    student: str | None
    assignment: str | None
    notebook: str | None
    problem: str | None = None


def _split_flat(stem: str, notebooks: dict[str, str]):
    """(student, notebook) from a flat file name, trying the longest notebook names first."""
    for nb in sorted(notebooks, key=len, reverse=True):
        for sep in ("_", "-", "."):
            if stem.startswith(nb + sep) and len(stem) > len(nb) + 1:
                return stem[len(nb) + 1:], nb
            if stem.endswith(sep + nb) and len(stem) > len(nb) + 1:
                return stem[: -len(nb) - 1], nb
    return None, None


def vet_notebook(path: Path) -> str | None:
    """Why this file cannot be graded as a notebook, or None when it can."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return f"cannot read the file ({exc.strerror})"
    if not raw.strip():
        return "the file is empty"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"not a notebook: invalid JSON ({exc.__class__.__name__}: {str(exc)[:80]})"
    try:
        nb = nbformat.from_dict(data)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several validation error types
        return f"not a valid Jupyter notebook ({str(exc).splitlines()[0][:100]})"
    return None


def discover(folder: Path, notebooks: dict[str, str], assignment: str | None = None):
    """Every .ipynb under `folder`, as Submissions. `notebooks` maps notebook name -> assignment."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No submissions folder at {folder}: pass a folder that holds "
                                "student notebooks (nbgrader layout or a flat folder).")
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .ipynb_checkpoints and other hidden folders
        stem = path.stem
        if len(rel.parts) == 3:
            student, asg, nb = rel.parts[0], rel.parts[1], stem
        elif len(rel.parts) == 2:
            student, nb = rel.parts[0], stem
            asg = notebooks.get(nb, assignment)
        elif len(rel.parts) == 1:
            student, nb = _split_flat(stem, notebooks)
            asg = notebooks.get(nb) if nb else assignment
        else:
            found.append(Submission(path, None, None, None,
                                    f"unexpected folder depth in {rel}: use "
                                    "<student>/<assignment>/<notebook>.ipynb or a flat folder"))
            continue
        sub = Submission(path, student, asg, nb)
        if student is None:
            sub.problem = (f"wrong file name '{path.name}': it names no notebook of the course "
                           f"(expected <student>_<notebook>.ipynb with a notebook among "
                           f"{sorted(notebooks)})")
        elif not STUDENT_ID.match(student):
            sub.problem = f"student id {student!r} has characters that are not allowed"
        elif nb not in notebooks or (asg is not None and notebooks.get(nb) != asg):
            sub.problem = (f"wrong file name '{path.name}': no notebook '{nb}' in "
                           f"{asg or 'the course'} (expected one of {sorted(notebooks)})")
        else:
            sub.problem = vet_notebook(path)
        if assignment and sub.assignment not in (None, assignment):
            continue
        found.append(sub)
    return found

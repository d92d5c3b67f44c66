"""Example submissions made from the solutions, for the demo and for the pipeline's tests.

For every notebook of the course:
- `example-perfect-<notebook>`: the release with every solution cell filled from the
  solution notebook;
- `example-untouched-<notebook>`: the release as students receive it;
- `example-bug-<cell>` (`-2`, `-3`... for more bugs in the same cell): the perfect one with one
  planted bug in one solution cell, as listed in solutions/planted_bugs.json:

    {"<assignment>/<notebook>": [
        {"cell": "<grade_id of a solution cell>", "find": "<text>", "replace": "<text>",
         "breaks": ["<grade_id of each test cell that must fail>"]}]}

planted_bugs.json sits beside the assignment folders, so nbgrader never releases it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.MULTILINE)


def solution_text(source: str) -> str:
    """A solution cell's source as a student who solved it would submit it."""
    return MARKER.sub("", source)


def perfect_submission(source_nb, release_nb):
    """The release notebook with the solution notebook's answers in its solution cells."""
    answers = {c.metadata["nbgrader"]["grade_id"]: solution_text(c.source)
               for c in source_nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.from_dict(json.loads(json.dumps(release_nb)))
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") in answers:
            cell.source = answers[meta["grade_id"]]
    return nb


def planted_bugs(solutions: Path) -> dict:
    path = Path(solutions) / "planted_bugs.json"
    return json.loads(path.read_text()) if path.exists() else {}


def plant(nb, bug):
    """A copy of `nb` with `bug` applied; raises if its text is not found (a stale bug list)."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == bug["cell"]:
            if bug["find"] not in cell.source:
                raise ValueError(f"planted bug for cell {bug['cell']!r}: text {bug['find']!r} "
                                 "not found; update solutions/planted_bugs.json")
            cell.source = cell.source.replace(bug["find"], bug["replace"], 1)
            return nb
    raise ValueError(f"planted bug names cell {bug['cell']!r}, which the notebook lacks")


def write_examples(course, out: Path, assignments=None, bugs_per_assignment=None,
                   notebooks=None) -> dict[str, dict]:
    """Write the example submissions in nbgrader's layout; returns what each should score.

    The returned dict maps student id -> {"<assignment>/<notebook>": breaks}, where "breaks"
    lists the test cells that must fail (None: every test cell must fail).
    bugs_per_assignment=k keeps k planted bugs per assignment, taken in turn from its
    notebooks: the demo's representative sample. None keeps them all.
    notebooks: only these notebook names (default: all).
    """
    out = Path(out)
    bugs = planted_bugs(course.solutions)
    expect = {}
    for a in assignments or course.assignments():
        sources = [p for p in sorted((course.solutions / a).glob("*.ipynb"))
                   if notebooks is None or p.stem in notebooks]
        if bugs_per_assignment is not None:  # round robin over the notebooks' bug lists
            lists = [list(bugs.get(f"{a}/{p.stem}", [])) for p in sources]
            kept: dict[str, list] = {f"{a}/{p.stem}": [] for p in sources}
            for _round in range(max(map(len, lists), default=0)):
                for p, found in zip(sources, lists, strict=True):
                    if found and sum(map(len, kept.values())) < bugs_per_assignment:
                        kept[f"{a}/{p.stem}"].append(found.pop(0))
            bugs = {**bugs, **kept}
        for src_path in sources:
            name = src_path.stem
            release_path = course.root / "release" / a / f"{name}.ipynb"
            source_nb = nbformat.read(src_path, as_version=4)
            release_nb = nbformat.read(release_path, as_version=4)
            perfect = perfect_submission(source_nb, release_nb)
            # One example student per notebook: each is a job of its own, so they spread.
            variants = {f"example-perfect-{name}": (perfect, []),
                        f"example-untouched-{name}": (release_nb, None)}
            for bug in bugs.get(f"{a}/{name}", []):
                student = f"example-bug-{bug['cell']}"
                n = 2
                while student in variants:  # a second bug in the same cell
                    student, n = f"example-bug-{bug['cell']}-{n}", n + 1
                variants[student] = (plant(perfect, bug), bug["breaks"])
            for student, (nb, breaks) in variants.items():
                dest = out / student / a / f"{name}.ipynb"
                dest.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, dest)
                expect.setdefault(student, {})[f"{a}/{name}"] = breaks
    return expect


def scoring_problems(rows, expected) -> list[str]:
    """Where the graded examples did not score as they must (empty: grading is exact).

    rows: Course.grade_rows(); expected: what write_examples returned. A filled-in example
    scores full marks on every test cell except the "breaks" of its planted bug; the
    untouched release scores 0 everywhere. Hand-graded answers are left out.
    """
    problems = []
    for student, notebooks in sorted(expected.items()):
        for key, breaks in sorted(notebooks.items()):
            name = key.split("/")[1]
            tests = [r for r in rows if r.student == student and r.notebook == name
                     and r.status != "needs manual grading"]
            if not tests:
                problems.append(f"{student} {key}: no graded cells in the report")
            for r in tests:
                full = r.score == r.max_score
                if breaks is None and r.score != 0:
                    problems.append(f"{student} {key} {r.cell}: untouched release scored "
                                    f"{r.score}")
                elif breaks is not None and full == (r.cell in breaks):
                    want = "lose its points" if r.cell in breaks else "score full marks"
                    problems.append(f"{student} {key} {r.cell}: should {want}, scored "
                                    f"{r.score} / {r.max_score} ({r.reason[:80]})")
    return problems

"""The one writer of the course's gradebook.

Jobs grade in gradebooks of their own and return results; only the coordinator calls the
functions here, one submission at a time, each in one database transaction. A merge is
keyed by (assignment, student, hash of the submitted files, grading fingerprint) and kept in
a table of our own beside nbgrader's (`course_grader_merge`): merging the same result again
changes nothing, and a new version of the files replaces the old grades.

nbgrader has no gradebook merge (jupyter/nbgrader#1424); its maintainers' recipe is the one
followed here: create the student and the submission, then copy each grade and comment.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import text

from .job import COURSE_ID, prepare_nbgrader


MERGE_TABLE = """CREATE TABLE IF NOT EXISTS course_grader_merge (
    assignment TEXT NOT NULL, student TEXT NOT NULL, files_sha256 TEXT NOT NULL,
    fingerprint TEXT NOT NULL, notebooks TEXT NOT NULL, merged_at REAL NOT NULL,
    PRIMARY KEY (assignment, student))"""


def open_gradebook(path: Path):
    from nbgrader.api import Gradebook

    prepare_nbgrader()
    gb = Gradebook(f"sqlite:///{path}", course_id=COURSE_ID)
    gb.db.execute(text(MERGE_TABLE))
    gb.db.commit()
    return gb


def copy_definitions(src_path: Path, gb, assignment: str) -> None:
    """Copy one assignment's definition (notebooks, cells, hidden tests) into `gb`."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{src_path}", course_id=COURSE_ID) as src:
        a = src.find_assignment(assignment)
        gb.update_or_create_assignment(assignment, duedate=a.duedate)
        for nb in a.notebooks:
            gb.update_or_create_notebook(nb.name, assignment)
            for c in nb.grade_cells:
                gb.update_or_create_grade_cell(c.name, nb.name, assignment,
                                               max_score=c.max_score, cell_type=c.cell_type)
            for c in nb.solution_cells:
                gb.update_or_create_solution_cell(c.name, nb.name, assignment)
            for c in nb.task_cells:
                gb.update_or_create_task_cell(c.name, nb.name, assignment,
                                              max_score=c.max_score, cell_type=c.cell_type)
            for c in nb.source_cells:
                gb.update_or_create_source_cell(c.name, nb.name, assignment,
                                                cell_type=c.cell_type, locked=c.locked,
                                                source=c.source, checksum=c.checksum)


def merged_key(gb, assignment: str, student: str) -> tuple[str, str] | None:
    row = gb.db.execute(text("SELECT files_sha256, fingerprint FROM course_grader_merge "
                             "WHERE assignment = :a AND student = :s"),
                        {"a": assignment, "s": student}).fetchone()
    return tuple(row) if row else None


def submitted_notebooks(gb) -> dict[tuple[str, str], list[str]]:
    """(assignment, student) -> the notebooks that submission held."""
    rows = gb.db.execute(text("SELECT assignment, student, notebooks FROM course_grader_merge"))
    return {(a, s): json.loads(nbs) for a, s, nbs in rows}


def merge(gb, result: dict, fingerprint: str) -> bool:
    """Write one job's result into the gradebook in one transaction.

    Returns False (and writes nothing) when this very result was merged before.
    """
    assignment, student = result["assignment"], result["student"]
    if merged_key(gb, assignment, student) == (result["files_sha256"], fingerprint):
        return False
    db = gb.db
    try:
        a = gb.find_assignment(assignment)
        with db.no_autoflush:  # build the whole submission, then write it at once
            _fill_submission(db, a, student, result)
        db.execute(text("INSERT OR REPLACE INTO course_grader_merge VALUES "
                        "(:a, :s, :h, :f, :n, :t)"),
                   {"a": assignment, "s": student, "h": result["files_sha256"],
                    "f": fingerprint, "n": json.dumps(sorted(result["notebooks"])),
                    "t": time.time()})
        db.commit()
    except Exception:
        db.rollback()
        raise
    return True


def _fill_submission(db, a, student, result):
    """Create or update the submission's notebooks, grades and comments in the session."""
    from nbgrader.api import (Comment, Grade, Student, SubmittedAssignment,
                              SubmittedNotebook)

    who = db.get(Student, student)
    if who is None:
        who = Student(id=student)
        db.add(who)
    sub = db.query(SubmittedAssignment).filter_by(assignment_id=a.id,
                                                  student_id=student).one_or_none()
    if sub is None:
        sub = SubmittedAssignment(assignment=a, student=who)
        db.add(sub)
    existing = {n.notebook.name: n for n in sub.notebooks}
    for nb in a.notebooks:
        snb = existing.get(nb.name)
        if snb is None:
            # SQLAlchemy 2 does not cascade along backrefs: add each new object.
            snb = SubmittedNotebook(notebook=nb, assignment=sub)
            db.add(snb)
        found = result["notebooks"].get(nb.name) or {}
        grades = {g.cell_id: g for g in snb.grades}
        for cell in list(nb.grade_cells) + list(nb.task_cells):
            g = grades.get(cell.id)
            if g is None:
                g = Grade(cell_id=cell.id, notebook=snb)
                db.add(g)
            values = found.get("grades", {}).get(cell.name, {})
            g.auto_score = values.get("auto_score")
            g.manual_score = values.get("manual_score")
            g.extra_credit = values.get("extra_credit")
            g.needs_manual_grade = bool(values.get("needs_manual_grade", False))
        comments = {c.cell_id: c for c in snb.comments}
        for cell in list(nb.solution_cells) + list(nb.task_cells):
            c = comments.get(cell.id)
            if c is None:
                c = Comment(cell_id=cell.id, notebook=snb)
                db.add(c)
            values = found.get("comments", {}).get(cell.name, {})
            c.auto_comment = values.get("auto_comment")
            c.manual_comment = values.get("manual_comment")


def integrity_problems(path: Path) -> list[str]:
    """What is wrong with the gradebook file (empty list: it is sound)."""
    import sqlite3

    problems = []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        status = con.execute("PRAGMA integrity_check").fetchone()[0]
        if status != "ok":
            problems.append(f"sqlite integrity_check: {status}")
        for table, ref, parent in (("grade", "notebook_id", "submitted_notebook"),
                                   ("comment", "notebook_id", "submitted_notebook"),
                                   ("submitted_notebook", "assignment_id",
                                    "submitted_assignment")):
            orphans = con.execute(f"SELECT COUNT(*) FROM {table} WHERE {ref} NOT IN "
                                  f"(SELECT id FROM {parent})").fetchone()[0]
            if orphans:
                problems.append(f"{orphans} row(s) of {table} point at no {parent}")
        twice = con.execute("SELECT COUNT(*) FROM (SELECT assignment_id, student_id FROM "
                            "submitted_assignment GROUP BY 1, 2 HAVING COUNT(*) > 1)").fetchone()[0]
        if twice:
            problems.append(f"{twice} submission(s) stored twice")
    finally:
        con.close()
    return problems

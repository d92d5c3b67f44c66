"""Putting the instructor's test cells back where a submission removed or renamed them.

nbgrader restores the *source* of locked cells it can find by grade_id, but a submission
that deletes a test cell simply loses it, and one that changes a test cell's grade_id makes
nbgrader give up on the whole notebook. `RestoreTestCells` runs before nbgrader's
OverwriteCells: cells whose grade_id the gradebook does not know lose their nbgrader
metadata (they become ordinary student cells), and every graded test cell missing from the
submission is put back, after the cell that precedes it in the release, so the tests run
and score as if nothing had been touched.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from . import incidents


class RestoreTestCells(NbGraderPreprocessor):
    release_root = Unicode("", help="The course's release/ folder (cell order).").tag(config=True)
    incident_dir = Unicode("", help="Where to record what was repaired.").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"], course_id=info.get("course_id", "course")) as gb:
            try:
                entry = gb.find_notebook(info["notebook"], info["assignment"])
            except MissingEntry:
                return nb, resources
            known = {c.name for c in entry.grade_cells} | {c.name for c in entry.solution_cells} \
                | {c.name for c in entry.source_cells} | {c.name for c in entry.task_cells}
            tests = {c.name: c for c in entry.grade_cells if c.cell_type == "code"}
            sources = {c.name: c.source for c in entry.source_cells}
        notes = []
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid is not None and gid not in known:
                del cell.metadata["nbgrader"]
                notes.append(f"cell with unknown grade_id {gid!r} treated as a student cell")
        present = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
        missing = [name for name in tests if name not in present]
        if missing:
            order = self._release_order(info)
            for name in sorted(missing, key=lambda n: order.index(n) if n in order else len(order)):
                cell = nbformat.v4.new_code_cell(sources.get(name, ""))
                cell.metadata["nbgrader"] = {
                    "grade": True, "solution": False, "locked": True, "task": False,
                    "grade_id": name, "points": float(tests[name].max_score), "schema_version": 3}
                nb.cells.insert(self._position(nb, order, name), cell)
                notes.append(f"test cell {name!r} was missing and was put back")
        incidents.record(self.incident_dir, info, notes)
        return nb, resources

    def _release_order(self, info) -> list:
        path = Path(self.release_root) / info["assignment"] / f"{info['notebook']}.ipynb"
        if not path.exists():
            return []
        release = nbformat.read(path, as_version=4)
        return [c.metadata.get("nbgrader", {}).get("grade_id") for c in release.cells]

    @staticmethod
    def _position(nb, order, name) -> int:
        """Just after the nearest cell that precedes `name` in the release, else at the end."""
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        if name in order:
            for prev in reversed(order[: order.index(name)]):
                if prev is not None and prev in ids:
                    return ids.index(prev) + 1
        return len(nb.cells)

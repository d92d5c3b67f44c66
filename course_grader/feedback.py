"""Feedback students can read without learning the hidden tests.

nbgrader's feedback HTML shows each test cell's full source, hidden tests included, and
tracebacks quote the failing lines. `StripHiddenTests` runs before nbgrader's own feedback
steps: it removes every BEGIN/END HIDDEN TESTS block from test cells and reduces each error
in a test cell to its one-line message (our checks write messages that describe what was
tested without quoting hidden inputs).
"""
from __future__ import annotations

import re

from nbgrader.preprocessors import NbGraderPreprocessor

HIDDEN_BLOCK = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[^\n]*\n?",
                          re.DOTALL | re.MULTILINE)
HIDDEN_NOTE = "# (hidden tests ran here; their code is not shown)\n"


def strip_hidden(source: str) -> str:
    return HIDDEN_BLOCK.sub(HIDDEN_NOTE, source)


class StripHiddenTests(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            cell.source = strip_hidden(cell.source)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources

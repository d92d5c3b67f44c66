"""Feedback students can read without learning the hidden tests.

nbgrader's feedback HTML shows each test cell's full source, hidden tests included, and
tracebacks quote the failing lines. `StripHiddenTests` runs before nbgrader's own feedback
steps: it removes every BEGIN/END HIDDEN TESTS block from test cells and reduces each error
in a test cell to its one-line message (our checks write messages that describe what was
tested without quoting hidden inputs).

`FeedbackHTMLExporter` writes the page: nbconvert's HTML exporter without the BeautifulSoup
pass it runs on every page it makes. That pass re-parses the whole page, base64 plots
included, to give images alt text and cells tab stops, and took 60% of feedback time; the
alt text is added here with one regular expression, and the classic template nbgrader's
feedback page builds on has none of the elements that get tab stops.
"""
from __future__ import annotations

import re

from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
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


IMAGE_WITHOUT_ALT = re.compile(r"<img(?![^>]*\balt=)")
NO_DESCRIPTION = "No description has been provided for this image"


class FeedbackHTMLExporter(HTMLExporter):
    """The feedback page, rendered once (see the module docstring)."""

    def from_notebook_node(self, nb, resources=None, **kw):
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name"))
        resources = self._init_resources(resources)
        # The two filters HTMLExporter registers before rendering, then the template itself.
        self.register_filter("highlight_code", self.filters.get(
            "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return IMAGE_WITHOUT_ALT.sub(f'<img alt="{NO_DESCRIPTION}"', html), resources

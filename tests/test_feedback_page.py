"""The feedback page: our exporter renders what nbconvert's does, once, with alt text."""
import base64

import nbformat
from bs4 import BeautifulSoup
from nbconvert.exporters import HTMLExporter

from course_grader.feedback import NO_DESCRIPTION, FeedbackHTMLExporter

# A 1x1 PNG, so the page holds a real embedded image.
PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e21ae6"
    "a90000000049454e44ae426082")).decode()


def notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    cell = nbformat.v4.new_code_cell("import numpy as np\nprint(np.arange(3))  # <b>not bold</b>")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="[0 1 2]\n"),
                    nbformat.v4.new_output("display_data", data={"image/png": PIXEL})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\n\nSome *text* and $x^2$."), cell]
    return nb


def test_feedback_page_has_the_same_content_as_nbconverts_and_alt_text_on_every_image():
    theirs, _ = HTMLExporter(template_name="classic").from_notebook_node(notebook())
    ours, _ = FeedbackHTMLExporter(template_name="classic").from_notebook_node(notebook())
    a, b = BeautifulSoup(theirs, "html.parser"), BeautifulSoup(ours, "html.parser")
    assert a.get_text() == b.get_text()
    assert [i.get("src") for i in a.find_all("img")] == [i.get("src") for i in b.find_all("img")]
    images = b.find_all("img")
    assert images and all(i.get("alt") == NO_DESCRIPTION for i in images)
    # nbconvert's own pass adds nothing else to this template (no element gets a tab stop)
    def stops(soup):
        return [(e.name, e.get("id"), e.get("tabindex")) for e in soup.select("[tabindex]")]
    assert stops(a) == stops(b)

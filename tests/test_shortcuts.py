"""The shortcut guard's static check, cell by cell (the pipeline test grades whole hostile
notebooks; this pins down which imports count as the course's reference code)."""
import pytest

from course_utils.grading.shortcuts import shortcut_reason


@pytest.mark.parametrize("source", [
    "from course_utils.layers import affine_forward",
    "from course_utils.metrics import bleu_score\ndef sentence_bleu(r, c):\n    return bleu_score(r, c)",
    "import course_utils.metrics as m",
    "from course_utils import metrics",
    "import course_utils",
])
def test_reference_code_is_flagged(source):
    assert shortcut_reason(source, set()) is not None


@pytest.mark.parametrize("source", [
    "import numpy as np\ndef f(x):\n    return np.maximum(x, 0)",
    "from course_utils.gradient_check import eval_numerical_gradient",
    "from course_utils.data import decode_captions",
    "def broken(:\n",  # the student's own syntax error: the tests will say so
])
def test_own_work_and_allowed_modules_pass(source):
    assert shortcut_reason(source, set()) is None


def test_names_a_locked_cell_imported_are_flagged_unless_redefined():
    assert "bleu_score" in shortcut_reason("score = bleu_score(a, b)", {"bleu_score"})
    assert shortcut_reason("def bleu_score(a, b):\n    return 1.0", {"bleu_score"}) is None

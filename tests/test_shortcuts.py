"""The shortcut guard's static check, cell by cell (the pipeline test grades whole hostile
notebooks; this pins down which imports count as the course's reference code)."""
import pytest

from course_grader.shortcuts import shortcut_reason


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


def test_a_parameter_or_local_shadows_a_tainted_global():
    # A locked cell may bind `model = ConvNet(...)`; a solution that takes its own `model`
    # argument (or assigns a local of that name) is not using the reference object.
    tainted = {"model", "affine_forward"}
    ok = [
        "def saliency(model, X):\n    return model.forward(X)",
        "def f(X):\n    model = make(X)\n    return model(X)",
        "def f(X, **model):\n    return [model for model in X]",
        "f = lambda model: model + 1",
        "def f(xs):\n    return [m * 2 for m in xs]",
        "def affine_forward(x, w, b):\n    return x @ w + b\nout = affine_forward(1, 2, 3)",
        "model = MyNet()\nmodel.fit(X)",                       # rebound before it is read
    ]
    for source in ok:
        assert shortcut_reason(source, tainted) is None, source
    flagged = [
        "def f(X):\n    return model.forward(X)",             # the notebook's global model
        "def f(X, scale=model):\n    return scale",            # default: evaluated outside
        "def f(X):\n    global model\n    model = 1\n    return model",
        "def f(X):\n    def g():\n        return affine_forward(X)\n    return g()",
        "out = [model(x) for x in xs]",
        "model = model\nmodel.fit(X)",                         # the value reads the global
        "if cond:\n    model = MyNet()\nmodel.fit(X)",         # maybe still the global
    ]
    for source in flagged:
        assert shortcut_reason(source, tainted) is not None, source


def test_a_notebook_can_add_its_own_reference_modules():
    """training_craft asks students to write schedules and augmentations, so there (and only
    there) importing course_utils.schedules / course_utils.augment is a shortcut."""
    from course_grader.shortcuts import reference_modules

    cell = "from course_utils.schedules import step_decay\n"
    assert shortcut_reason(cell, set(), reference=reference_modules("training_craft"))
    assert shortcut_reason(cell, set(), reference=reference_modules("fully_connected_nets")) is None
    assert shortcut_reason("import course_utils.augment as A\n", set(),
                           reference=reference_modules("training_craft"))


def test_the_guard_uses_the_graded_notebooks_own_reference_modules():
    from nbformat.v4 import new_code_cell, new_notebook

    from course_grader.shortcuts import ShortcutGuard

    def notebook():
        solution = new_code_cell("def flip(X):\n    return A.random_flip(X)\n")
        solution.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "flip"}
        return new_notebook(cells=[new_code_cell("import course_utils.augment as A"), solution])

    for name, stubbed in (("training_craft", True), ("convolutional_networks", False)):
        nb, _ = ShortcutGuard().preprocess(notebook(), {"nbgrader": {"notebook": name}})
        assert ("ShortcutError" in nb.cells[1].source) == stubbed, name

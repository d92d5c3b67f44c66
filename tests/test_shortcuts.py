"""The shortcut guard, cell by cell: it zeroes a part that uses the library's complete twin of
it, and nothing else (the pipeline test grades whole hostile notebooks)."""
import ast

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_grader.shortcuts import ShortcutGuard, _Bindings, shortcut_reason

NAIVE_HEADER = "def conv_forward_naive(x, w, b, conv_param):\n"


@pytest.mark.parametrize("source", [
    # the part's own name, imported or reached through a module
    "from course_utils.layers import affine_forward as af\n"
    "def affine_forward(x, w, b):\n    return af(x, w, b)",
    "from course_utils import layers as L\ndef relu_forward(x):\n    return L.relu_forward(x)",
    "import course_utils.layers\ndef relu_forward(x):\n    return course_utils.layers.relu_forward(x)",
    "import course_utils\ndef relu_forward(x):\n    return course_utils.layers.relu_forward(x)",
    # a twin under another name: the fast layer beside the naive part
    "from course_utils.fast_layers import conv_forward_fast\n" + NAIVE_HEADER +
    "    return conv_forward_fast(x, w, b, conv_param)",
    "import course_utils.fast_layers as F\n" + NAIVE_HEADER +
    "    return F.conv_forward_fast(x, w, b, conv_param)",
    # literal names handed to the dynamic machinery
    NAIVE_HEADER + "    m = __import__('course_utils.fast_layers', fromlist=['x'])\n"
    "    return getattr(m, 'conv_forward_fast')(x, w, b, conv_param)",
    NAIVE_HEADER + "    return eval('__import__(\"course_utils.fast_layers\").fast_layers"
    ".conv_forward_fast')(x, w, b, conv_param)",
    "import importlib\n" + NAIVE_HEADER +
    "    return importlib.import_module('course_utils.fast_layers').conv_forward_fast("
    "x, w, b, conv_param)",
    "import sys\n" + NAIVE_HEADER +
    "    return sys.modules['course_utils.fast_layers'].conv_forward_fast(x, w, b, conv_param)",
    # a class part and its methods
    "from course_utils.models import ConvNet\nclass ThreeLayerConvNet(ConvNet):\n    pass",
])
def test_a_part_that_uses_its_library_twin_is_flagged(source):
    reason = shortcut_reason(source)
    assert reason is not None
    assert "\n" not in reason and "course_utils" in reason and "instead of" in reason


@pytest.mark.parametrize("source", [
    # getattr, vars, globals, eval on the student's own values; docstrings and comments that
    # name the library; a string that mentions course_utils
    "import numpy as np\n"
    "def affine_forward(x, w, b):\n"
    "    '''Like course_utils.layers.affine_forward, which I did not use.'''\n"
    "    dot = getattr(np, 'dot')\n"
    "    rows = eval('x.shape[0]')\n"
    "    assert 'np' in globals() and 'x' in vars()\n"
    "    # course_utils.layers.affine_forward would be cheating\n"
    "    note = 'not from course_utils'\n"
    "    return dot(x.reshape(rows, -1), w) + b, (x, w, b)",
    # a library function that is not a twin of this part: a tool from an earlier set
    "from course_utils.layers import affine_forward\n"
    "def rnn_step_forward(x, prev_h, Wx, Wh, b):\n"
    "    import numpy as np\n    h = np.tanh(x @ Wx + prev_h @ Wh + b)\n"
    "    return h, (x, prev_h, Wx, Wh, h)",
    "from course_utils.gradient_check import eval_numerical_gradient\n"
    "def relu_forward(x):\n    return x * (x > 0), x",
    "from course_utils.data import decode_captions",   # no part: nothing to take
    "def broken(:\n",  # the student's own syntax error: the tests will say so
    # the part's own name used for its own definition, and a method named like a twin
    "def conv_forward_naive(x, w, b, conv_param):\n    return conv_forward_naive_impl(x)\n",
    "class ThreeLayerConvNet:\n    def loss(self, X, y=None):\n        return self.forward(X)",
    # a method that calls another object's method of the same name
    "class LSTMCaptioner(Base):\n    def loss(self, X, y):\n        return super().loss(X, y)\n"
    "    def sample(self, f):\n        return self.model.sample(f)",
])
def test_honest_code_is_never_flagged(source):
    assert shortcut_reason(source) is None


def _bindings(*cells):
    b = _Bindings()
    for c in cells:
        b.visit(ast.parse(c))
    return b


def test_names_another_cell_bound_to_a_twin_are_flagged_unless_redefined():
    given = _bindings("from course_utils.fast_layers import conv_forward_fast\n"
                      "from course_utils.layers import relu_forward\n")
    assert shortcut_reason(NAIVE_HEADER + "    return conv_forward_fast(x, w, b, conv_param)",
                           given)
    # relu_forward bound by the given cell, and redefined by the part itself: the student's
    assert shortcut_reason("def relu_forward(x):\n    return x * (x > 0), x", given) is None


def test_a_helper_in_another_cell_that_calls_a_twin_is_followed():
    helper = _bindings("import course_utils.fast_layers as F\n"
                       "def helper(*a):\n    return F.conv_forward_fast(*a)\n")
    assert shortcut_reason(NAIVE_HEADER + "    return helper(x, w, b, conv_param)", helper)
    assert shortcut_reason("def other_part(x):\n    return helper(x)", helper) is None


def test_a_parameter_or_local_shadows_a_bound_global():
    given = _bindings("from course_utils.layers import relu_forward as model\n")
    ok = ["def relu_forward(model, X):\n    return model.forward(X)",
          "def relu_forward(X):\n    model = make(X)\n    return model(X)",
          "def relu_forward(X):\n    return [model * 2 for model in X]"]
    for source in ok:
        assert shortcut_reason(source, given) is None, source
    flagged = ["def relu_forward(X):\n    return model(X)",
               "def relu_forward(X, f=model):\n    return f(X)",
               "def relu_forward(X):\n    def g():\n        return model(X)\n    return g()"]
    for source in flagged:
        assert shortcut_reason(source, given) is not None, source


def test_the_guard_replaces_only_the_cell_that_took_a_twin():
    def solution(source, grade_id):
        cell = new_code_cell(source)
        cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": grade_id}
        return cell

    nb = new_notebook(cells=[
        new_code_cell("import course_utils.fast_layers as F"),
        solution(NAIVE_HEADER + "    return F.conv_forward_fast(x, w, b, conv_param)", "naive"),
        solution("def conv_relu_pool_forward(x, w, b, cp, pp):\n"
                 "    return F.conv_forward_fast(x, w, b, cp)", "sandwich")])
    nb, _ = ShortcutGuard().preprocess(nb, {"nbgrader": {"notebook": "convolutional_networks"}})
    assert "ShortcutError" in nb.cells[1].source
    assert "conv_forward_fast, its twin" in nb.cells[1].source
    assert "ShortcutError" not in nb.cells[2].source  # the fast layer is that part's tool

"""The library's hot path must run unchanged on cupy arrays, and no GPU is needed to check
the one rule that makes that true: compute with the array module of the inputs
(``xp = array_module(x)``), never with numpy directly.

On a machine without a GPU the cupy tests skip, so a stray ``np.dot(x, w)`` in a layer would
pass every test here and only break (or silently copy to the host) on a student's GPU. This
test reads the hot-path modules' source and lists every attribute they take from the numpy
module; anything outside a short list of backend-neutral uses fails, naming the line.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "course_utils"
HOT_PATH = sorted(
    [PACKAGE / name for name in ("layers.py", "fast_layers.py", "rnn_layers.py",
                                 "layer_utils.py", "optim.py", "augment.py", "solver.py",
                                 "schedules.py", "attention.py", "transformer.py",
                                 "contrastive.py", "diffusion.py")]
    + list((PACKAGE / "models").glob("*.py"))
    + list((PACKAGE / "classifiers").glob("*.py"))
)

# numpy attributes that are safe with cupy arrays, and why
ALLOWED = {
    "issubdtype": "dtype checks: cupy arrays carry numpy dtypes",
    "floating": "dtype checks", "integer": "dtype checks", "bool_": "dtype checks",
    "float32": "dtype defaults", "float64": "dtype defaults", "dtype": "dtype handling",
    "random": "host-side seeded generators (drawn on the host, then moved with asarray)",
    "savez": "saving parameters to disk (host copies)", "load": "loading parameters",
    "prod": "products of shape tuples (Python ints, not arrays)",
    "arange": "small host index arrays moved with xp.asarray (augment.random_crop)",
    "add": "numpy's branch of the scatter-add whose cupy branch is cupyx.scatter_add",
    "inf": "a Python float constant",
}


def numpy_uses(path):
    """[(line, attribute)] for every `np.X` / `numpy.X` in the file's code (not strings)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {"np", "numpy"}
    return [(node.lineno, node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in names]


@pytest.mark.parametrize("path", HOT_PATH, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_hot_path_computes_with_the_inputs_array_module(path):
    bad = [f"{path.name}:{line}: np.{attr}" for line, attr in numpy_uses(path)
           if attr not in ALLOWED]
    assert not bad, (
        "numpy used directly on the hot path (breaks or copies to the host on cupy); use "
        "xp = array_module(x) and xp.<function> instead:\n" + "\n".join(bad))


def test_the_check_finds_a_direct_numpy_call(tmp_path):
    """The scan itself works: a layer written with np.dot is reported, a docstring is not."""
    sample = tmp_path / "layer.py"
    sample.write_text('import numpy as np\n\ndef f(x, w):\n    """np.dot in prose"""\n'
                      '    return np.dot(x, w).astype(np.float32)\n')
    assert sorted(numpy_uses(sample)) == [(5, "dot"), (5, "float32")]

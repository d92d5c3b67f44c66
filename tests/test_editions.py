"""Student editions: no answer key in a student's hands, generated from the one library."""
import ast
import importlib
import inspect
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from course_grader.edition import (PACKAGE, marked_functions, stub_source, stubbed_in,
                                   write_edition)

REPO = Path(__file__).resolve().parents[1]
ORDER = sorted(p.name for p in (REPO / "solutions").iterdir()
               if p.is_dir() and any(p.glob("*.ipynb")))
# Library functions that share a name with a function a notebook asks for, and stay complete
# in every edition on purpose (why, in each value).
GIVEN_ON_PURPOSE = {
    ("extras/conv_arithmetic", "conv_output_size"):
        "the library's is the shape check every conv layer, fast ones included, calls; its "
        "formula is stated in its docstring and in convolutional_networks",
    ("lectures/conv_variants", "conv_transpose_output_size"):
        "the shape check of the given fast transposed convolution; formula in its docstring",
}


# Private helpers that only student-written functions call, complete in every edition: none
# holds a step of an answer.
GIVEN_HELPERS = {
    "_keep_prob": "reads and checks dropout's keep probability",
    "_bn_state": "reads eps, momentum and the running averages (CS231n's skeleton gives these)",
    "_pad_hw": "zero padding of H and W, a tool",
    "_nonnegative": "an input check",
}


@pytest.fixture(scope="module")
def editions(tmp_path_factory):
    out = tmp_path_factory.mktemp("editions")
    return {a: write_edition(a, REPO / "assignments" / a, out, ORDER) for a in ORDER}


def _normalized(line: str) -> str:
    return re.sub(r"\s+", "", line)


def _code_lines(text: str, start: int, end: int) -> set[str]:
    """Lines start..end (1-based) without comments and blanks, whitespace removed."""
    out = set()
    for line in text.splitlines()[start - 1:end]:
        code = line if ('"' in line or "'" in line) else line.split("#")[0]
        if _normalized(code):
            out.add(_normalized(code))
    return out


def _given_lines(assignment: str) -> set[str]:
    """Every code line of the full library outside the bodies that `assignment`'s edition
    stubs: code that edition may hold because it is given (validation, fast layers, models
    students use, functions of earlier sets)."""
    stubbed = [m for m in marked_functions() if stubbed_in(m, assignment, ORDER)]
    lines = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(PACKAGE).as_posix()
        skip = set()
        for m in stubbed:
            if m.path == rel:
                skip.update(range(m.body_start, m.end_line + 1))
        for i in range(1, len(text.splitlines()) + 1):
            if i not in skip:
                lines |= _code_lines(text, i, i)
    return lines


# A line that computes something: an arithmetic or matrix operator (a minus that is not a
# negative index or slice bound). Unpacking a cache, `return loss, dW` or a loop header
# are the same in every answer and in the notebooks' own skeletons.
COMPUTES = re.compile(r"[+*/@%]|(?<![\[:,(=e])-")
# Lines of a stubbed body that a released notebook gives on purpose, outside any answer.
GIVEN_IN_NOTEBOOKS = {
    "gx[:,1:-1]=(gray[:,2:]-gray[:,:-2])/2": "features.ipynb computes the gradients; the "
    "student writes the histogram of one cell from them",
    "gy[1:-1,:]=(gray[2:,:]-gray[:-2,:])/2": "(the same)",
    'self.conv_param={"stride":1,"pad":(filter_size-1)//2}': "convolutional_networks gives "
    "ThreeLayerConvNet's padding, as CS231n does",
}


def _edition_lines(folder: Path) -> set[str]:
    lines = set()
    for path in folder.rglob("*"):
        if path.suffix == ".py":
            lines |= {_normalized(l) for l in path.read_text().splitlines()}
        elif path.suffix == ".ipynb":
            for cell in nbformat.read(path, as_version=4).cells:
                lines |= {_normalized(l) for l in cell.source.splitlines()}
    return lines


def test_every_marker_names_a_notebook_of_the_course():
    marked = marked_functions()
    assert len(marked) > 50
    notebooks = {f"{p.parent.name}/{p.stem}" for p in (REPO / "solutions").glob("*/*.ipynb")}
    unknown = [(m.qualname, nb) for m in marked for nb in m.notebooks if nb not in notebooks]
    assert unknown == []


def test_a_marker_above_anything_but_a_def_is_refused(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("# student-writes: assignment1/knn\nX = 1\n")
    with pytest.raises(ValueError, match="right above a function"):
        marked_functions(pkg)


def _leaks(folder: Path, assignment: str) -> list[tuple[str, str]]:
    """(function, line) of every computing line of a function that `assignment`'s edition
    must stub, found in `folder` though the full library gives it nowhere else."""
    given = _given_lines(assignment)
    found = _edition_lines(folder)
    leaks = []
    for m in marked_functions():
        if stubbed_in(m, assignment, ORDER):
            body = _code_lines((PACKAGE / m.path).read_text(), m.body_start, m.end_line)
            leaks += [(m.qualname, line) for line in sorted(body - given)
                      if line in found and COMPUTES.search(line)
                      and line not in GIVEN_IN_NOTEBOOKS]
    return leaks


@pytest.mark.parametrize("assignment", ORDER)
def test_no_line_of_a_stubbed_body_is_in_its_edition(assignment, editions):
    """Every line of every function this set or a later one asks for is gone from the
    edition (package and notebooks), unless the full library gives that same line in code
    that is not a student's to write (validation, fast layers, the models students use)."""
    assert _leaks(editions[assignment], assignment) == []


def test_the_leak_check_finds_answers_left_in_place(editions):
    """Checked as if it were assignment2's, extras' edition (where assignment2's functions
    are complete) is full of leaks: the check above can fail."""
    leaked = {name for name, _ in _leaks(editions["extras"], "assignment2")}
    assert {"affine_backward", "batchnorm_backward", "conv_forward_naive"} <= leaked


def test_a_private_helper_used_only_by_stubbed_functions_is_stubbed_too():
    """A helper that only marked functions call would keep their answer in the edition."""
    marked = {(m.path, m.qualname.split(".")[-1]) for m in marked_functions()}
    trees = {p.relative_to(PACKAGE).as_posix(): ast.parse(p.read_text())
             for p in PACKAGE.rglob("*.py")}
    home = {n.name: rel for rel, tree in trees.items() for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name.startswith("_")}
    callers: dict[tuple[str, str], set[tuple[str, bool]]] = {}
    for rel, tree in trees.items():  # calls from any module (fast_layers imports helpers)
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for call in ast.walk(fn):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                        and call.func.id in home):
                    callers.setdefault((home[call.func.id], call.func.id), set()).add(
                        (fn.name, (rel, fn.name) in marked))
    missing = [helper for helper, who in callers.items()
               if all(is_marked for _, is_marked in who) and helper not in marked
               and not helper[1].startswith(("_require", "_check", "_fail"))  # input checks
               and helper[1] not in GIVEN_HELPERS]
    assert missing == [], missing


def _notebook_functions():
    """(notebook, name) of every function a solution cell defines, methods as Class.name."""
    found = set()
    for nb_path in sorted((REPO / "solutions").glob("*/*.ipynb")):
        key = f"{nb_path.parent.name}/{nb_path.stem}"
        for cell in nbformat.read(nb_path, as_version=4).cells:
            if not cell.metadata.get("nbgrader", {}).get("solution") or cell.cell_type != "code":
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            def asked(node):  # the student writes part of it
                return "BEGIN SOLUTION" in (ast.get_source_segment(cell.source, node) or "")

            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and asked(node):
                    found.add((key, node.name))
                elif isinstance(node, ast.ClassDef):
                    found |= {(key, f"{node.name}.{m.name}") for m in node.body
                              if isinstance(m, ast.FunctionDef) and asked(m)}
    return found


def test_every_library_twin_of_a_notebook_function_is_marked():
    """A notebook that asks for a function the library also has must find it marked, so its
    edition holds a stub (or be listed in GIVEN_ON_PURPOSE with the reason)."""
    library = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                library.add(node.name)
            elif isinstance(node, ast.ClassDef):
                library |= {f"{node.name}.{m.name}" for m in node.body
                            if isinstance(m, ast.FunctionDef)}
    marks = {m.qualname: m for m in marked_functions()}
    unmarked = []
    for notebook, name in sorted(_notebook_functions()):
        if name not in library or (notebook, name) in GIVEN_ON_PURPOSE:
            continue
        m = marks.get(name)
        set_ = notebook.split("/")[0]
        # Asked again after an earlier set asked for it (relu in activations_and_init): its
        # answer is out by then, so the first asking set is the one that counts.
        if m is None or (notebook not in m.notebooks
                         and not any(ORDER.index(s) < ORDER.index(set_) for s in m.sets)):
            unmarked.append((notebook, name))
    assert unmarked == []


def _run_in(folder: Path, code: str) -> str:
    """stdout of `code` run by a Python that imports course_utils from `folder`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_a_stub_keeps_the_signature_and_says_where_it_is_written(editions):
    full = importlib.import_module("course_utils.layers")
    code = (
        "import inspect, course_utils.layers as L\n"
        "print(inspect.signature(L.batchnorm_forward))\n"
        "try:\n    L.batchnorm_forward(None, None, None, {})\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
        "import numpy as np\n"
        "try:\n    print('relu', L.relu_forward(np.array([-1.0, 2.0]))[0].tolist())\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n")
    a2 = _run_in(editions["assignment2"], code)
    assert str(inspect.signature(full.batchnorm_forward)) in a2
    assert "NotImplementedError batchnorm_forward is yours to write: see " \
           "assignment2/batch_normalization.ipynb" in a2
    assert "NotImplementedError relu_forward is yours to write" in a2  # assignment2's too
    a3 = _run_in(editions["assignment3"], code)
    assert "NotImplementedError" not in a3 and "relu [0.0, 2.0]" in a3, \
        "earlier sets stay complete"
    assert "ValueError batchnorm_forward: x must be a floating-point array" in a3


def test_an_edition_holds_the_release_and_the_package_and_nothing_of_the_grading(editions):
    for assignment, folder in editions.items():
        names = {p.relative_to(folder).parts[0] for p in folder.rglob("*")}
        released = {p.name for p in (REPO / "assignments" / assignment).iterdir()}
        assert names == released | {"course_utils", "README.txt"}
        text = "\n".join(p.read_text() for p in folder.rglob("*") if p.is_file())
        for secret in ("BEGIN SOLUTION", "BEGIN HIDDEN", "course_grader", "student-writes"):
            assert secret not in text, (assignment, secret)
        with zipfile.ZipFile(folder.parent / f"{assignment}.zip") as zf:
            zipped = {n.split("/", 1)[1] for n in zf.namelist()}
        assert zipped == {p.relative_to(folder).as_posix() for p in folder.rglob("*")
                          if p.is_file()}


def test_stub_source_replaces_a_method_body_and_keeps_the_class_usable():
    text = ('class A:\n'
            '    def keep(self):\n        return 1\n\n'
            '    # student-writes: assignment1/knn\n'
            '    def mine(self, x,\n             y=2):\n'
            '        """Add.\n\n        The answer: x + y.\n        """\n'
            '        return x + y  # the answer\n')
    from course_grader.edition import Marked
    m = Marked("m.py", "A.mine", ("assignment1/knn",), 6, 12, 12, 7, "Add.")
    out = stub_source(text, [m])
    ns = {}
    exec(out, ns)
    assert ns["A"]().keep() == 1
    with pytest.raises(NotImplementedError, match="assignment1/knn.ipynb"):
        ns["A"]().mine(1)
    assert "x + y" not in out and "student-writes" not in out

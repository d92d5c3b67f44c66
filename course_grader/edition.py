"""Student editions: the learning package as a student of one assignment receives it.

The library in course_utils/ is the instructor's and the self-learner's: every function is
complete. A student of assignment S must not find there the answers to S or to a later set.
The functions students write are marked in the library source, one comment line right above
their `def`:

    # student-writes: assignment2/fully_connected_nets
    def affine_forward(x, w, b):

(several notebooks, comma-separated, when more than one asks for it). `write_edition` copies
the package and replaces the body of every marked function whose notebook belongs to S or to
a later set with a `raise NotImplementedError` that names the notebook where it is written.
Its signature and the first paragraph of its docstring stay (the rest of a docstring may hold
the formula that is the answer). Sets are ordered by folder name: assignment1 < assignment2 <
assignment3 < extras < lectures. Functions of earlier sets stay complete: an instructor
releases them after their deadline.

An edition holds the released notebooks of S and that package, nothing of solutions/, the
hidden tests or course_grader. Nothing is hand-copied, so nothing drifts.
"""
from __future__ import annotations

import ast
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

MARK = re.compile(r"^[ \t]*# student-writes:[ \t]*(?P<notebooks>\S.*?)[ \t]*$")
PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"


@dataclass(frozen=True)
class Marked:
    """One library function a notebook asks students to write."""
    path: str                   # relative to the package, e.g. "layers.py"
    qualname: str               # "affine_forward" or "TwoLayerNet.loss"
    notebooks: tuple[str, ...]  # ("assignment2/fully_connected_nets", ...)
    first_line: int             # 1-based line of the `def`
    body_start: int             # first line replaced by the stub (after the docstring)
    end_line: int               # last line of the function
    header_end: int             # last line of the `def` header
    summary: str | None         # the docstring's first paragraph

    @property
    def sets(self) -> set[str]:
        return {nb.split("/")[0] for nb in self.notebooks}


def _functions(tree):
    """(qualname, node) of every module-level function and method, in source order."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{item.name}", item


def _docstring_node(node):
    first = node.body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return first
    return None


def marked_functions(package: Path = PACKAGE) -> list[Marked]:
    """Every marked function of the package. A marker that sits above anything but a `def`
    is an error: a stray marker would silently leave an answer in the edition."""
    package = Path(package)
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        marks = {i + 1: m["notebooks"] for i, line in enumerate(lines) if (m := MARK.match(line))}
        if not marks:
            continue
        by_start = {}
        for qualname, node in _functions(ast.parse(text)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            by_start[start - 1] = (qualname, node)
        for line_no, notebooks in marks.items():
            if line_no not in by_start:
                raise ValueError(f"{path}:{line_no}: '# student-writes:' must be the line right "
                                 "above a function's `def` (or its decorators)")
            qualname, node = by_start[line_no]
            doc = _docstring_node(node)
            if doc is not None and doc is node.body[-1]:
                raise ValueError(f"{path}:{node.lineno}: {qualname} has no body to stub")
            body_start = doc.end_lineno + 1 if doc is not None else node.body[0].lineno
            if body_start <= node.lineno and doc is None:
                raise ValueError(f"{path}:{node.lineno}: {qualname} is a one-line function; "
                                 "give it a body of its own to be stubbed")
            names = tuple(n.strip() for n in notebooks.split(",") if n.strip())
            bad = [n for n in names if n.count("/") != 1]
            if bad:
                raise ValueError(f"{path}:{line_no}: write notebooks as <set>/<notebook>, got {bad}")
            summary = None
            if doc is not None:
                summary = doc.value.value.strip().split("\n\n")[0]
            found.append(Marked(path.relative_to(package).as_posix(), qualname, names,
                                node.lineno, body_start, node.end_lineno,
                                node.body[0].lineno - 1, summary))
    return found


def stubbed_in(marked: Marked, assignment: str, order: list[str]) -> bool:
    """Whether the edition of `assignment` holds this function as a stub: some notebook that
    asks for it belongs to this set or a later one."""
    rank = {name: i for i, name in enumerate(order)}
    return any(rank.get(s, len(order)) >= rank[assignment] for s in marked.sets)


def _stub_lines(marked: Marked, lines: list[str]) -> list[str]:
    """The function's header, the first paragraph of its docstring, and a raise."""
    def_line = lines[marked.first_line - 1]
    body_indent = def_line[:len(def_line) - len(def_line.lstrip())] + "    "
    where = " or ".join(f"{nb}.ipynb" for nb in marked.notebooks)
    name = marked.qualname.split(".")[-1]
    out = lines[marked.first_line - 1:marked.header_end]
    if marked.summary is not None:
        doc = [line.strip() for line in marked.summary.splitlines()]
        doc += ["", f"You write this in {where}."]
        out.append(f'{body_indent}"""{doc[0]}')
        out += [f"{body_indent}{line}" if line else "" for line in doc[1:]]
        out.append(f'{body_indent}"""')
    out.append(f"{body_indent}raise NotImplementedError(")
    out.append(f'{body_indent}    "{name} is yours to write: see {where} (this is the student '
               'edition of the course package)")')
    return out


def stub_source(text: str, stubs: list[Marked]) -> str:
    """`text` with the bodies of `stubs` (all from this file) replaced; marker lines dropped."""
    lines = text.splitlines()
    for marked in sorted(stubs, key=lambda m: m.first_line, reverse=True):
        lines[marked.first_line - 1:marked.end_line] = _stub_lines(marked, lines)
    kept = [line for line in lines if not MARK.match(line)]
    return "\n".join(kept) + "\n"


def write_package(dest: Path, assignment: str, order: list[str], package: Path = PACKAGE) -> list[Marked]:
    """dest/course_utils: the package of `assignment`'s edition. Returns the stubbed functions."""
    package = Path(package)
    target = Path(dest) / "course_utils"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    stubs = [m for m in marked_functions(package) if stubbed_in(m, assignment, order)]
    for path in sorted(target.rglob("*.py")):
        rel = path.relative_to(target).as_posix()
        text = path.read_text()
        mine = [m for m in stubs if m.path == rel]
        if mine or "student-writes:" in text:  # stubs to write, or marker lines to drop
            path.write_text(stub_source(text, mine))
    return stubs


README = """\
Student edition of {assignment}
{underline}

notebooks: {notebooks}
course_utils/: the course's learning package. The functions this set or a later one asks you
to write are stubs here: each raises NotImplementedError and names the notebook where you
write it. Functions of earlier sets are complete.

Set up once (Python 3.11 or newer), then start Jupyter in this folder:
    python -m pip install "numpy>=2" scipy matplotlib scikit-learn scikit-image pillow h5py tqdm jupyter
    jupyter lab
The notebooks import course_utils from this folder. They run on real images that those
packages ship; for CIFAR-10, put cifar-10-batches-py/ in ./datasets/ or point COURSE_DATA_DIR
at the folder that holds it.
"""


def write_edition(assignment: str, release: Path, out: Path, order: list[str],
                  package: Path = PACKAGE) -> Path:
    """out/<assignment>/ (the folder) and out/<assignment>.zip: one student edition.

    release: the folder of `assignment`'s released notebooks (nbgrader's output).
    """
    folder = Path(out) / assignment
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    notebooks = sorted(p.name for p in Path(release).glob("*.ipynb"))
    for item in sorted(Path(release).iterdir()):
        if item.name.startswith("."):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, folder / item.name)
    write_package(folder, assignment, order, package)
    (folder / "README.txt").write_text(README.format(
        assignment=assignment, underline="=" * (len(assignment) + 23),
        notebooks=", ".join(notebooks)))
    archive = Path(out) / f"{assignment}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(f"{assignment}/{path.relative_to(folder).as_posix()}",
                                       date_time=(2024, 1, 1, 0, 0, 0))  # the same bytes each time
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    return folder

"""Shortcut detection: a part must be the student's own work, not the library's twin of it.

Grading runs in the set's student edition (edition.py): the library functions this set asks
for are stubs there, so importing them gets a student nothing. What the edition still holds
complete is a *twin* of some parts: the fast layers beside a naive part (conv_forward_fast
for conv_forward_naive), a function an earlier set asked for and a later one asks again (relu
in activations_and_init), a checked helper the library gives (conv_output_size).

Before the notebook runs, `ShortcutGuard` reads every code cell with Python's `ast` (no
student code runs). A solution cell that reaches a twin of a part it defines -- by an import,
an attribute of a course_utils module, a name another cell bound to one, a helper that calls
one, or a literal name handed to getattr, eval or the import machinery -- is replaced by a
cell whose functions raise `ShortcutError` with the reason in one line: that part scores 0,
the rest of the notebook is graded normally. Nothing else costs points: getattr, vars,
globals and eval on the student's own values, docstrings, comments and strings that mention
the library are the student's business.
"""
from __future__ import annotations

import ast
import re

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from . import incidents

PACKAGE = "course_utils"
# Library functions that answer a part under another name (a part is also answered by a
# library function of its own name: that needs no entry). Keyed by the part's name.
TWINS = {
    "conv_forward_naive": ("conv_forward_fast", "conv_forward_1x1"),
    "conv_backward_naive": ("conv_backward_fast", "conv_backward_1x1"),
    "max_pool_forward_naive": ("max_pool_forward_fast",),
    "max_pool_backward_naive": ("max_pool_backward_fast",),
    "conv_transpose_forward_naive": ("conv_transpose_forward_fast",),
    "conv_transpose_backward_naive": ("conv_transpose_backward_fast",),
    "conv_transpose_forward": ("conv_transpose_forward_fast", "conv_transpose_forward_naive"),
    "residual_block_forward": ("residual_basic_forward",),
    "residual_block_backward": ("residual_basic_backward",),
    "preact_block_forward": ("preact_residual_forward",),
    "preact_block_backward": ("preact_residual_backward",),
    "sentence_bleu": ("bleu_score", "corpus_bleu"),
    "sgd_momentum_update": ("sgd_momentum",),
    "two_layer_scores": ("TwoLayerNet",),
    "two_layer_loss": ("TwoLayerNet",),
    "ThreeLayerConvNet": ("ConvNet",),
    "hog_cell_histogram": ("hog_feature", "hog_features"),
    "mse_loss": ("l2_loss",),
    "bce_loss": ("bce_with_logits",),
    "relu": ("relu_forward",),
    "pixel_softmax_loss": ("softmax_loss", "temporal_softmax_loss"),
}
# Calls whose literal string arguments name what they reach.
DYNAMIC_CALLS = {"getattr", "eval", "exec", "compile", "__import__", "import_module",
                 "attrgetter", "find_spec"}
_WORD = re.compile(r"[A-Za-z_]\w*")


def twins(part: str) -> set[str]:
    """The library names that answer `part`: its own name and its TWINS."""
    return {part, *TWINS.get(part, ())}


def _module_of(node) -> str | None:
    """'course_utils.x.y' for an attribute chain course_utils.x.y (names only), else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


class _Bindings(ast.NodeVisitor):
    """What the notebook's names stand for, from every code cell: course_utils modules
    (`import course_utils.layers as L`) and names that reach library functions (`from
    course_utils.fast_layers import conv_forward_fast`, or a helper that calls one)."""

    def __init__(self):
        self.modules: dict[str, str] = {}           # alias -> module path
        self.reaches: dict[str, set[str]] = {}      # name -> library names it reaches

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                if alias.asname:
                    self.modules[alias.asname] = alias.name
                else:
                    self.modules[PACKAGE] = PACKAGE

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if not (module == PACKAGE or module.startswith(PACKAGE + ".")):
            return
        for alias in node.names:
            bound = alias.asname or alias.name
            # `from course_utils import layers` binds a module; anything else a function.
            self.modules[bound] = f"{module}.{alias.name}"
            self.reaches[bound] = {alias.name}

    def visit_Assign(self, node):
        found = reached(node.value, self)
        if found:
            for target in node.targets:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name):
                        self.reaches.setdefault(n.id, set()).update(found)
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        # A helper, in any cell, that reaches library code reaches it for whoever calls it.
        found = reached(node, self, skip={node.name})
        if found:
            self.reaches.setdefault(node.name, set()).update(found)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_ClassDef = visit_FunctionDef


def reached(node, bindings: _Bindings, skip=frozenset(), names=None) -> set[str]:
    """Library names that `node` reaches: attributes of course_utils modules, names bound to
    library functions (when read as globals: `names`), literal names handed to DYNAMIC_CALLS,
    and names it imports from course_utils itself."""
    found: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute):
            base = _module_of(n.value)
            if base is not None:
                root = base.split(".")[0]
                if root in bindings.modules or root == PACKAGE and PACKAGE in bindings.modules:
                    found.add(n.attr)
        elif isinstance(n, ast.ImportFrom) and (n.module or "").startswith(PACKAGE):
            found |= {a.name for a in n.names}
        elif isinstance(n, ast.Import):
            for alias in n.names:
                if alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name.rsplit(".", 1)[1])
        elif isinstance(n, ast.Call):
            func = n.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called in DYNAMIC_CALLS:
                for arg in n.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found |= set(_WORD.findall(arg.value))
    reads = names if names is not None else [
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    for name in reads:
        if name not in skip:
            found |= bindings.reaches.get(name, set())
    return found


def parts_of(tree) -> list[str]:
    """The parts a solution cell answers: the functions and classes it defines at top level
    (a class's methods are its own business: `loss` or `sample` name no library twin)."""
    return [node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _twin_attributes(tree, wanted: set[str]) -> set[str]:
    """Attributes named like a twin on anything but self/cls (`sys.modules[...].conv_forward_
    fast`, `__import__(...).relu_forward`): no honest part reads another object's twin."""
    found = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and n.attr in wanted:
            if not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls")):
                found.add(n.attr)
    return found


def shortcut_reason(cell_source: str, bindings: _Bindings | None = None) -> str | None:
    """Why this solution cell is not the student's own work (one line), or None."""
    try:
        tree = ast.parse(cell_source)
    except SyntaxError:
        return None  # the student's own broken code; its tests will say so
    bindings = bindings or _Bindings()
    local = _Bindings()
    local.modules, local.reaches = dict(bindings.modules), dict(bindings.reaches)
    for node in tree.body:  # the cell's own imports count too
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            local.visit(node)
    parts = parts_of(tree)
    defined = set(parts)
    wanted = set().union(*(twins(p) for p in parts)) if parts else set()
    if not wanted:
        return None
    # A function or class the cell defines replaces that global, so it does not count.
    for name in defined:
        local.reaches.pop(name, None)
    hits = (reached(tree, local, names=_global_reads(tree))
            | _twin_attributes(tree, wanted - defined)) & wanted
    if not hits:
        return None
    name = sorted(hits)[0]
    part = next(p for p in parts if name in twins(p))
    what = "itself" if name == part else f"{name}, its twin"
    return (f"{part} uses the library's complete {what} (course_utils) instead of the "
            "student's own code")


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _function_locals(fn) -> set[str]:
    """Names local to a function or lambda by Python's rules: its parameters and every name
    its body binds (assignment, for, with, except, import, def, class), less those declared
    global or nonlocal. A local is local in the whole body, so a read of it can never reach
    a notebook global. Nested functions and comprehensions are scopes of their own."""
    args = fn.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    declared = set()
    stack = list(fn.body) if isinstance(fn.body, list) else [fn.body]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, *_COMPREHENSIONS)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared |= set(node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names - declared


def _global_reads(tree) -> list[str]:
    """Names the cell reads from the notebook's global namespace, in source order: every
    read that no enclosing function's parameter or local (or comprehension variable), and no
    earlier top-level assignment in the cell, shadows. `def f(model): model.forward(x)`
    reads no global `model`."""
    found = []

    def visit(node, local):
        if isinstance(node, _SCOPES):
            # decorators and default values are evaluated outside the function
            for outer in [*getattr(node, "decorator_list", []), *node.args.defaults,
                          *[d for d in node.args.kw_defaults if d is not None]]:
                visit(outer, local)
            inner = local | _function_locals(node)
            for child in (node.body if isinstance(node.body, list) else [node.body]):
                visit(child, inner)
            return
        if isinstance(node, _COMPREHENSIONS):
            local = local | {n.id for g in node.generators for n in ast.walk(g.target)
                             if isinstance(n, ast.Name)}
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local:
            found.append(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child, local)

    # At the cell's top level, an unconditional assignment rebinds the global for the
    # statements after it (`best_model = MyNet()` then `best_model.fit()` reads the student's
    # object); reads in the assigned value itself are checked first.
    local = frozenset()
    for statement in tree.body:
        visit(statement, local)
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            local = local | {n.id for t in targets for n in ast.walk(t)
                             if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return found


def _stub_cell(source: str, reason: str) -> str:
    """Source that defines the cell's functions as raising ShortcutError(reason)."""
    try:
        tree = ast.parse(source)
        names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    except SyntaxError:
        names = []
    message = f"This part scores 0: {reason}. Write it yourself."
    lines = ["class ShortcutError(Exception):", "    pass", ""]
    for name in names:
        lines += [f"def {name}(*args, **kwargs):", f"    raise ShortcutError({message!r})", ""]
    lines.append(f"print({('ShortcutError: ' + message)!r})")
    return "\n".join(lines)


class ShortcutGuard(NbGraderPreprocessor):
    """Sanitizing step: replaces solution cells that use a library twin (see module doc)."""

    incident_dir = Unicode("", help="Where to record what was found (see incidents.py).").tag(config=True)

    def preprocess(self, nb, resources):
        code = [c for c in nb.cells if c.cell_type == "code"]
        solution = [c for c in code if c.metadata.get("nbgrader", {}).get("solution")
                    and not c.metadata.get("nbgrader", {}).get("grade")]
        bindings = _Bindings()
        for cell in code:
            try:
                bindings.visit(ast.parse(cell.source))
            except SyntaxError:
                continue
        found = []
        for cell in solution:
            reason = shortcut_reason(cell.source, bindings)
            if reason:
                grade_id = cell.metadata["nbgrader"].get("grade_id", "?")
                found.append(f"{grade_id}: {reason}")
                cell.source = _stub_cell(cell.source, reason)
        for line in found:
            self.log.warning("Shortcut detected in %s", line)
        incidents.record(self.incident_dir, resources.get("nbgrader", {}),
                         [f"SHORTCUT in {line}: that part scores 0" for line in found])
        return nb, resources

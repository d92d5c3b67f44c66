"""Shortcut detection: a solution cell must be the student's own work.

The course ships reference implementations (course_utils.layers and friends) that later
notebooks use. A submission could answer "implement affine_forward" with
`from course_utils.layers import affine_forward`, or hide that behind an alias, a helper
defined in a cell of its own, `importlib`, or a string. Before the notebook runs,
`ShortcutGuard` reads every code cell with Python's `ast` (no student code runs), and when a
solution cell reaches a reference implementation it replaces that cell with one that
defines the same names as functions raising `ShortcutError`: that part's tests fail with a
message saying why, and the rest of the notebook is graded normally.
"""
from __future__ import annotations

import ast

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List, Unicode

from . import incidents

# Modules whose functions students are asked to write somewhere in the course.
REFERENCE_MODULES = (
    "course_utils.layers", "course_utils.fast_layers", "course_utils.rnn_layers",
    "course_utils.layer_utils", "course_utils.optim", "course_utils.solver",
    "course_utils.models", "course_utils.classifiers", "course_utils.features",
    "course_utils.metrics",
)
# Modules most notebooks may use freely, but that one notebook asks students to write
# (keyed by notebook name): there they count as reference code too.
NOTEBOOK_REFERENCE_MODULES = {
    "training_craft": ("course_utils.augment", "course_utils.schedules"),
}
# Builtins and attributes that can reach a module without an import statement.
DYNAMIC_NAMES = {"__import__", "importlib", "exec", "eval", "compile", "globals", "vars",
                 "getattr", "__builtins__"}
DYNAMIC_ATTRIBUTES = {"import_module", "modules", "__dict__", "__globals__"}


def _is_reference(module: str, allowed: tuple[str, ...], reference=REFERENCE_MODULES) -> bool:
    if any(module == a or module.startswith(a + ".") for a in allowed):
        return False
    if module == "course_utils":
        return True  # `import course_utils` reaches everything through attributes
    return any(module == m or module.startswith(m + ".") for m in reference)


def reference_modules(notebook: str) -> tuple[str, ...]:
    """The reference modules for one notebook: the course-wide ones plus its own."""
    return REFERENCE_MODULES + NOTEBOOK_REFERENCE_MODULES.get(notebook, ())


class _Tainted(ast.NodeVisitor):
    """Names bound, anywhere in the notebook, to something that reaches a reference module."""

    def __init__(self, allowed, reference=REFERENCE_MODULES):
        self.allowed = allowed
        self.reference = reference
        self.names: set[str] = set()

    def visit_Import(self, node):
        for alias in node.names:
            if _is_reference(alias.name, self.allowed, self.reference):
                self.names.add((alias.asname or alias.name).split(".")[0])

    def visit_ImportFrom(self, node):
        module = node.module or ""
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if (_is_reference(module, self.allowed, self.reference)
                    or _is_reference(full, self.allowed, self.reference)):
                self.names.add(alias.asname or alias.name)

    def visit_Assign(self, node):
        if _mentions(node.value, self.names):
            for target in node.targets:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name):
                        self.names.add(n.id)
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        # A helper defined outside the solution cell that uses a reference name is tainted too.
        if _mentions(node, self.names - {node.name}):
            self.names.add(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef


def _mentions(node, names) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


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


def shortcut_reason(cell_source: str, tainted: set[str], allowed=(),
                    reference=REFERENCE_MODULES) -> str | None:
    """Why this solution cell is not the student's own work, or None if it looks fine.
    `reference`: the reference modules (see reference_modules for one notebook's)."""
    try:
        tree = ast.parse(cell_source)
    except SyntaxError:
        return None  # the student's own broken code; its tests will say so
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_reference(alias.name, allowed, reference):
                    return f"imports {alias.name}, which holds the course's reference code"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if _is_reference(module, allowed, reference) or any(
                    _is_reference(f"{module}.{a.name}", allowed, reference) for a in node.names):
                return f"imports from {module}, which holds the course's reference code"
        elif (isinstance(node, ast.Name) and node.id in DYNAMIC_NAMES
              or isinstance(node, ast.Attribute) and node.attr in DYNAMIC_ATTRIBUTES):
            name = node.id if isinstance(node, ast.Name) else node.attr
            return f"uses '{name}', which can load the course's reference code indirectly"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and "course_utils" in node.value:
            return "names course_utils in a string, which can load the reference code indirectly"
    # A global the cell reads that a locked cell bound to reference code (a function or
    # class the cell defines itself replaces that global, so it does not count).
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for name in _global_reads(tree):
        if name in tainted and name not in defined:
            return f"uses '{name}', which comes from the course's reference code"
    return None


def _stub_cell(source: str, reason: str) -> str:
    """Source that defines the cell's functions as raising ShortcutError(reason)."""
    try:
        tree = ast.parse(source)
        names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    except SyntaxError:
        names = []
    message = f"This part scores 0: the solution cell {reason}. Write it yourself."
    lines = ["class ShortcutError(Exception):", "    pass", ""]
    for name in names:
        lines += [f"def {name}(*args, **kwargs):", f"    raise ShortcutError({message!r})", ""]
    lines.append(f"print({('ShortcutError: ' + message)!r})")
    return "\n".join(lines)


class ShortcutGuard(NbGraderPreprocessor):
    """Sanitizing step: replaces solution cells that reach reference code (see module doc)."""

    allowed_modules = List(
        Unicode(), default_value=["course_utils.backend", "course_utils.gradient_check",
                                  "course_utils.data", "course_utils.vis_utils"],
        help="course_utils modules a solution cell may import.",
    ).tag(config=True)
    incident_dir = Unicode("", help="Where to record what was found (see incidents.py).").tag(config=True)

    def preprocess(self, nb, resources):
        allowed = tuple(self.allowed_modules)
        reference = reference_modules(resources.get("nbgrader", {}).get("notebook", ""))
        code = [c for c in nb.cells if c.cell_type == "code"]
        tainted = _Tainted(allowed, reference)
        for cell in code:
            try:
                tainted.visit(ast.parse(cell.source))
            except SyntaxError:
                continue
        found = []
        for cell in code:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("solution") or meta.get("grade"):
                continue
            reason = shortcut_reason(cell.source, tainted.names, allowed, reference)
            if reason:
                found.append(f"{meta.get('grade_id', '?')}: {reason}")
                cell.source = _stub_cell(cell.source, reason)
        for line in found:
            self.log.warning("Shortcut detected in %s", line)
        incidents.record(self.incident_dir, resources.get("nbgrader", {}),
                         [f"SHORTCUT in {line}: that part scores 0" for line in found])
        return nb, resources

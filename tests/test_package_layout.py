"""Learning code and grading code live apart: students import course_utils, never the grader."""
import ast
from pathlib import Path

from course_grader.execute import make_learning_snapshot

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_no_learning_module_imports_the_grader():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "course_utils").rglob("*.py")
                 if any(m.split(".")[0] == "course_grader" for m in imported_modules(p))]
    assert offenders == []


def test_the_scan_sees_an_import_of_the_grader(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("from course_grader.job import Limits\nimport os\n")
    assert "course_grader.job" in imported_modules(sample)


def test_a_graded_kernel_gets_the_learning_package_and_nothing_else(tmp_path):
    lib = make_learning_snapshot(tmp_path / "lib")
    assert sorted(p.name for p in lib.iterdir()) == ["course_utils"]
    assert (lib / "course_utils" / "checks.py").exists()
    assert not list(lib.rglob("*.ipynb")) and not list(lib.rglob("__pycache__"))

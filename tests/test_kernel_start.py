"""What makes a grading kernel start cheaper: bytecode and a font list made once per
template (execute.prepare_kernel_lib), seeded by the launcher only when it fits."""
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

from course_grader.execute import FONT_CACHE, prepare_kernel_lib

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "course_grader" / "kernel_launcher.py"


def _launcher():
    spec = importlib.util.spec_from_file_location("kernel_launcher_under_test", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepare_kernel_lib_compiles_the_package_and_keeps_only_a_font_list(tmp_path):
    shutil.copytree(REPO / "course_utils", tmp_path / "course_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    prepare_kernel_lib(tmp_path)
    sources = list((tmp_path / "course_utils").rglob("*.py"))
    compiled = list((tmp_path / "course_utils").rglob("*.pyc"))
    assert len(compiled) == len(sources)
    # hash-checked bytecode: flags word (bytes 4-8) has bit 0 set
    assert int.from_bytes(compiled[0].read_bytes()[4:8], "little") & 1
    assert [p.name for p in (tmp_path / FONT_CACHE).iterdir()] and all(
        p.name.startswith("fontlist-") for p in (tmp_path / FONT_CACHE).iterdir())
    # the kernel imports the package from it without writing anything
    run = subprocess.run([sys.executable, "-B", "-c", "import course_utils.layers"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_launcher_seeds_a_font_list_only_when_every_font_exists(tmp_path):
    lib = tmp_path / "lib"
    (lib / FONT_CACHE).mkdir(parents=True)
    launcher = _launcher()
    good = {"ttflist": [{"fname": "fonts/ttf/DejaVuSans.ttf"}], "afmlist": []}
    (lib / FONT_CACHE / "fontlist-v1.json").write_text(json.dumps(good))
    launcher._seed_font_cache(str(lib), str(tmp_path / "home"))
    assert (tmp_path / "home" / ".cache" / "matplotlib" / "fontlist-v1.json").exists()

    stale = {"ttflist": [{"fname": "/no/such/font.ttf"}], "afmlist": []}
    (lib / FONT_CACHE / "fontlist-v1.json").write_text(json.dumps(stale))
    launcher._seed_font_cache(str(lib), str(tmp_path / "home2"))
    assert not (tmp_path / "home2" / ".cache").exists()

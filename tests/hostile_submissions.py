"""A corpus of broken and hostile submissions of the mini assignment (tests/fixtures).

Each entry is a file a real class could hand in; `expected` says what the grader must make
of it. Built from the perfect submission so that every attack is the only thing wrong.
Where an attack would *gain* something if it worked (reading the solutions, reaching the
network), the submission's own answers are blank and only the attack could fill them in:
a leak shows up as points.
"""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat

BUGGY_RELU = "def relu_forward(x):\n    return np.abs(x), x"
BLANK = "# YOUR CODE HERE\nraise NotImplementedError()"
SOLVE_BOTH = ("def scale(x, k):\n    return np.asarray(x) * k\n"
              "def relu_forward(x):\n    return np.maximum(x, 0), x\n")


def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _insert(nb, source, before="relu_md"):
    idx = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells].index(before)
    nb.cells.insert(idx, nbformat.v4.new_code_cell(source))


def _blank(nb):
    for gid in ("scale_solution", "relu_solution"):
        _cell(nb, gid).source = BLANK


def build(perfect, folder: Path, targets: dict) -> dict:
    """Write the corpus into `folder` (flat layout: <student>_mini.ipynb) and return
    {student: expectation}, where an expectation is a dict of grade_id -> 'pass' | 'fail',
    or the string 'not graded'.

    targets: absolute paths the attacks aim at, as if they had found them ('repo',
    'course', 'submissions', 'gradebook') and 'port', a TCP port listening on 127.0.0.1.
    """
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}

    def variant(student, change, expect):
        nb = copy.deepcopy(perfect)
        change(nb)
        nbformat.write(nb, folder / f"{student}_mini.ipynb")
        expected[student] = expect

    both_pass = {"scale_tests": "pass", "relu_tests": "pass"}
    only_scale = {"scale_tests": "pass", "relu_tests": "fail"}
    only_relu = {"scale_tests": "fail", "relu_tests": "pass"}
    nothing = {"scale_tests": "fail", "relu_tests": "fail"}

    variant("ok", lambda nb: None, both_pass)
    variant("loop", lambda nb: setattr(_cell(nb, "scale_solution"), "source",
                                       "def scale(x, k):\n    while True:\n        pass"), only_relu)
    variant("bomb", lambda nb: setattr(_cell(nb, "scale_solution"), "source",
                                       "def scale(x, k):\n    hog = np.ones((10**6, 10**6))\n"
                                       "    return np.asarray(x) * k"), only_relu)
    variant("exit", lambda nb: _insert(nb, "import os\nos._exit(3)"), only_scale)
    variant("segfault", lambda nb: _insert(nb, "import ctypes\nctypes.string_at(0)"), only_scale)

    def delete_test(nb):
        _cell(nb, "relu_solution").source = BUGGY_RELU
        nb.cells.remove(_cell(nb, "relu_tests"))
    variant("deleted", delete_test, only_scale)

    def edit_test(nb):
        _cell(nb, "relu_solution").source = BUGGY_RELU
        _cell(nb, "relu_tests").source = "pass"
    variant("edited", edit_test, only_scale)

    def rename_test(nb):
        _cell(nb, "relu_solution").source = BUGGY_RELU
        _cell(nb, "relu_tests").metadata.nbgrader["grade_id"] = "my_own_cell"
    variant("renamed", rename_test, only_scale)

    def skip_tag(nb):
        _cell(nb, "relu_solution").source = BUGGY_RELU
        for c in nb.cells:
            if c.metadata.get("nbgrader", {}).get("grade"):
                c.metadata["tags"] = ["skip-execution", "skip", "raises-exception"]
    variant("skiptag", skip_tag, only_scale)

    def reader(nb):
        _blank(nb)
        # Relative paths from nbgrader's working directory, the grader's working directory
        # and root through /proc, the folder course_utils came from, and the absolute paths
        # of the repository and the course: solution cells found anywhere are executed.
        roots = ["..", "../..", "../../..", "../../../..", "/proc/1/root", "/proc/1/cwd",
                 str(targets["repo"]), str(targets["course"]), str(targets["course"].parent)]
        _insert(nb, "import glob, json, os, pathlib, sqlite3\n"
                    "import course_utils\n"
                    f"roots = {roots!r}\n"
                    "roots += ['/proc/%d/cwd' % os.getppid(),\n"
                    "          str(pathlib.Path(course_utils.__file__).parents[1])]\n"
                    "patterns = ['/source/*/*.ipynb', '/solutions/*/*.ipynb', '/**/solutions/*/*.ipynb',\n"
                    "            '/tests/fixtures/*/solutions/*/*.ipynb']\n"
                    "for root in roots:\n"
                    "    for p in [p for pat in patterns for p in glob.glob(root + pat, recursive=True)]:\n"
                    "        for c in json.load(open(p))['cells']:\n"
                    "            text = ''.join(c['source'])\n"
                    "            if 'BEGIN SOLUTION' in text and c['cell_type'] == 'code':\n"
                    "                exec(text, globals())\n"
                    "    for db in glob.glob(root + '/**/gradebook.db', recursive=True):\n"
                    "        for (src,) in sqlite3.connect(db).execute('SELECT source FROM source_cell'):\n"
                    "            if src and 'def ' in src:\n"
                    "                exec(src, globals())\n", before="scale_md")
    variant("reader", reader, nothing)

    # The writer is told where the gradebook is, as if it had found it.
    variant("writer", lambda nb: _insert(
        nb, "import glob, sqlite3\n"
            f"for db in glob.glob('../../../gradebook.db') + [{str(targets['gradebook'])!r}]:\n"
            "    con = sqlite3.connect(db)\n"
            "    con.execute('UPDATE grade SET manual_score = 0, auto_score = 0')\n"
            "    con.commit()\n"), both_pass)

    # The vandal empties every other student's folders it can name.
    variant("vandal", lambda nb: _insert(
        nb, "import os, shutil\n"
            f"for top in [{str(targets['submissions'])!r}, {str(targets['course'])!r}]:\n"
            "    for root, dirs, files in os.walk(top):\n"
            "        for name in files:\n"
            "            try:\n"
            "                open(os.path.join(root, name), 'w').close()\n"
            "            except OSError:\n"
            "                pass\n"
            "    shutil.rmtree(top, ignore_errors=True)\n"), both_pass)

    # The caller reaches for the network (a port that is listening on the grader's
    # loopback, e.g. Dask's scheduler) and would solve both parts if it got through.
    def caller(nb):
        _blank(nb)
        _insert(nb, "import socket\n"
                    "try:\n"
                    f"    socket.create_connection(('127.0.0.1', {targets['port']}), timeout=2)\n"
                    f"    exec({SOLVE_BOTH!r})\n"
                    "except OSError:\n"
                    "    pass\n", before="scale_md")
    variant("caller", caller, nothing)

    def shortcut(nb):
        _cell(nb, "relu_solution").source = (
            "from course_utils import layers as L\n"
            "def relu_forward(x):\n    return L.relu_forward(x)")
    variant("shortcut", shortcut, only_scale)

    def monkeypatch(nb):
        _cell(nb, "relu_solution").source = BUGGY_RELU
        _insert(nb, "import numpy\nnumpy.allclose = lambda *a, **k: True\n"
                    "numpy.testing.assert_allclose = lambda *a, **k: None\n")
    variant("monkeypatch", monkeypatch, only_scale)

    variant("spawner", lambda nb: _insert(
        nb, "import subprocess\nsubprocess.Popen(['sleep', '4242'], start_new_session=True)\n"),
        both_pass)

    # A fork bomb (every child forks too) for three seconds; the process cap holds it.
    variant("forkbomb", lambda nb: _insert(
        nb, "import os, time\nend = time.time() + 3\n"
            "while time.time() < end:\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            while time.time() < end:\n"
            "                try:\n"
            "                    os.fork()\n"
            "                except OSError:\n"
            "                    pass\n"
            "            os._exit(0)\n"
            "    except OSError:\n"
            "        pass\n"), both_pass)

    # Fills its working folder until the quota says no; the rest of the notebook still runs.
    variant("filler", lambda nb: _insert(
        nb, "chunk = b'x' * (1 << 20)\n"
            "try:\n"
            "    for i in range(100000):\n"
            "        with open(f'fill{i}', 'wb') as f:\n"
            "            f.write(chunk * 16)\n"
            "except OSError as exc:\n"
            "    print('disk full:', exc)\n"), both_pass)

    # Fills the one host folder it can write (the kernel's sockets): the watchdog ends it.
    variant("socketfiller", lambda nb: _insert(
        nb, "import os, sys, time\n"
            "folder = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])\n"
            "chunk = b'x' * (1 << 20)\n"
            "for i in range(2000):\n"
            "    with open(os.path.join(folder, f'fill{i}'), 'wb') as f:\n"
            "        f.write(chunk)\n"
            "    time.sleep(0.01)\n"), only_scale)

    (folder / "badjson_mini.ipynb").write_text('{"cells": [')
    expected["badjson"] = "not graded"
    (folder / "empty_mini.ipynb").write_text("")
    expected["empty"] = "not graded"
    nbformat.write(perfect, folder / "homework-final.ipynb")
    expected["homework-final"] = "not graded"
    return expected

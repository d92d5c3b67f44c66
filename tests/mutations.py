"""Break the library on purpose, one way at a time, and check that some test notices.

Each mutation below is a small edit of the source that a real bug could make (rel_error that
always says 0, average instead of max pooling, a backward that forgets a gradient, a resumed
training run that quietly starts over, ...). For each one this script copies the repository's
code and tests to a temporary folder, applies the edit there (the working tree is never
touched), runs the test files that should catch it, and prints one line:

    caught  <mutation>   (how many tests failed, and the first of them)
    MISSED  <mutation>   (every test passed: the tests have a gap)

First it runs all those test files once on the unmodified copy, so that a failure counts only
when the code was fine before the edit. Run it from the repository root:

    .venv/bin/python tests/mutations.py            # all mutations (about a minute)
    .venv/bin/python tests/mutations.py pool relu  # only those whose name contains a word

It exits with status 1 if any mutation is missed or no longer applies. It is not part of the
pytest run (it runs pytest many times over); run it after changing tests.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ["course_utils", "tests", "pyproject.toml"]


@dataclass
class Edit:
    path: str          # file to edit, relative to the repository root
    old: str           # text to replace: its first occurrence after `after`
    new: str
    after: str = ""    # anchor (a def line), so the edit lands in the right function


@dataclass
class Mutation:
    name: str
    edits: list        # applied together
    tests: list        # pytest arguments: the test files (and -k) that must catch it


GRADCHECK = "course_utils/gradient_check.py"

MUTATIONS = [
    Mutation("rel_error returns 0",
             [Edit(GRADCHECK, "return to_float(xp.max(", "return 0.0 * to_float(xp.max(")],
             ["tests/test_gradient_check.py"]),
    Mutation("rel_error takes the min instead of the max",
             [Edit(GRADCHECK, "return to_float(xp.max(", "return to_float(xp.min(")],
             ["tests/test_gradient_check.py"]),
    Mutation("eval_numerical_gradient returns zeros",
             [Edit(GRADCHECK, "    grad = xp.zeros_like(x)\n",
                   "    grad = xp.zeros_like(x)\n    return grad\n",
                   after="def eval_numerical_gradient(")],
             ["tests/test_gradient_check.py"]),
    Mutation("eval_numerical_gradient_array returns zeros",
             [Edit(GRADCHECK, "    grad = xp.zeros_like(x)\n",
                   "    grad = xp.zeros_like(x)\n    return grad\n",
                   after="def eval_numerical_gradient_array(")],
             ["tests/test_gradient_check.py"]),
    # forward and backward swapped together, so the gradient checks stay consistent
    Mutation("convnets: average pooling instead of max pooling (forward + backward)",
             [Edit("course_utils/layer_utils.py",
                   "    max_pool_backward_fast,\n    max_pool_forward_fast,\n)",
                   ")\nfrom .layers import avg_pool_backward_naive as max_pool_backward_fast\n"
                   "from .layers import avg_pool_forward_naive as max_pool_forward_fast")],
             ["tests/test_models.py"]),
    # the overfitting tests would notice; the point is that other tests do too
    Mutation("FullyConnectedNet without its ReLUs (forward + backward; overfit tests left out)",
             [Edit("course_utils/models/fc_net.py", "h, relu_cache = f.relu_forward(h)",
                   "relu_cache = None"),
              Edit("course_utils/models/fc_net.py", "dh = f.relu_backward(dh, relu_cache)",
                   "pass")],
             ["tests/test_models.py", "-k", "not overfit"]),
    Mutation("a backward returns one gradient too few (maxout_backward drops db)",
             [Edit("course_utils/layers.py", "return dx, dw, db", "return dx, dw",
                   after="def maxout_backward(")],
             ["tests/test_layers.py"]),
    Mutation("Solver: a second train() restarts from scratch",
             [Edit("course_utils/solver.py",
                   "        num_train = len(self.X_train)\n",
                   "        self._reset()\n        num_train = len(self.X_train)\n",
                   after="def train(")],
             ["tests/test_solver.py"]),
    Mutation("LinearClassifier: a second train() starts from fresh weights",
             [Edit("course_utils/classifiers/linear_classifier.py", "if self.W is None:",
                   "if True:")],
             ["tests/test_classifiers_linear.py"]),
    Mutation("LinearClassifier: batches larger than the data take every row, then repeats",
             [Edit("course_utils/classifiers/linear_classifier.py",
                   "rng.choice(num_train, batch_size, replace=batch_size > num_train)",
                   "xp.resize(rng.permutation(num_train), batch_size)")],
             ["tests/test_classifiers_linear.py"]),
    Mutation("Solver.check_accuracy divides by the full size after subsampling",
             [Edit("course_utils/solver.py", "            N = num_samples\n", "")],
             ["tests/test_solver.py"]),
    Mutation("HOG: L1 instead of L2 gradient magnitude (both versions)",
             [Edit("course_utils/features.py", "magnitude = np.hypot(gx, gy)",
                   "magnitude = np.abs(gx) + np.abs(gy)", after="def hog_feature("),
              Edit("course_utils/features.py", "magnitude = np.hypot(gx, gy)",
                   "magnitude = np.abs(gx) + np.abs(gy)", after="def hog_features(")],
             ["tests/test_features.py"]),
    Mutation("cupy fixture: a broken cupy install becomes a skip",
             [Edit("tests/gpu_probe.py", "    import cupy\n",
                   "    try:\n        import cupy\n    except ImportError as exc:\n"
                   "        pytest.skip(str(exc))\n", after="def load_cupy(")],
             ["tests/test_gpu_probe.py"]),
]


def copy_repo(dest):
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)


def apply(root, edit):
    """Edit the copy; raise LookupError if the text to replace is gone (the code moved on)."""
    path = root / edit.path
    text = path.read_text()
    start = text.find(edit.after) if edit.after else 0
    at = text.find(edit.old, start) if start >= 0 else -1
    if at < 0:
        raise LookupError(f"{edit.path}: {edit.old!r} not found after {edit.after!r}")
    path.write_text(text[:at] + edit.new + text[at + len(edit.old):])


def run_pytest(root, args):
    """(return code, names of failed tests) of pytest on args, run inside the copy."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("COURSE_REQUIRE_GPU", "COURSE_UTILS_BACKEND", "PYTHONPATH")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
           "-m", "not slow", *args]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.M)
    return done.returncode, failed, done.stdout + done.stderr


def check_copy_imports_itself(root):
    """The copy's own course_utils must be the one imported, not the installed checkout."""
    code = "import course_utils, sys; print(course_utils.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, check=True).stdout.strip()
    if not Path(out).resolve().is_relative_to(root.resolve()):
        sys.exit(f"mutations.py: the copy imports {out}, not its own course_utils")


def main(words):
    chosen = [m for m in MUTATIONS if not words or any(w in m.name for w in words)]
    if not chosen:
        sys.exit(f"no mutation name contains any of {words}")
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        clean = Path(tmp) / "clean"
        clean.mkdir()
        copy_repo(clean)
        check_copy_imports_itself(clean)
        files = sorted({a for m in chosen for a in m.tests if a.startswith("tests/")})
        code, failed, out = run_pytest(clean, files)
        if code != 0:
            print(out[-3000:])
            sys.exit(f"mutations.py: the unmodified code fails {failed}: fix that first")
        print(f"baseline: {', '.join(files)} pass on the unmodified code")

        missed = 0
        for i, mutation in enumerate(chosen):
            root = Path(tmp) / f"m{i}"
            root.mkdir()
            copy_repo(root)
            try:
                for edit in mutation.edits:
                    apply(root, edit)
            except LookupError as exc:
                print(f"STALE   {mutation.name}: {exc}")
                missed += 1
                continue
            code, failed, out = run_pytest(root, mutation.tests)
            if code == 1 and failed:
                shown = failed[0].split("::", 1)[-1]
                print(f"caught  {mutation.name}  ({len(failed)} failed, e.g. {shown})")
            elif code == 0:
                print(f"MISSED  {mutation.name}  (every test in {mutation.tests} passed)")
                missed += 1
            else:
                print(f"ERROR   {mutation.name}  (pytest exit code {code}, not a test "
                      f"failure)\n{out[-2000:]}")
                missed += 1
            shutil.rmtree(root)
    print(f"{len(chosen) - missed} of {len(chosen)} mutations caught in "
          f"{time.time() - start:.0f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Starts the IPython kernel that runs one submission, inside resource limits.

Run as a *script* inside the sandbox (sandbox.py), never imported from the repository:

    python kernel_launcher.py --memory-mb 4096 --file-mb 256 --nproc 0 --env JSON -f CONNECTION

Why each limit: RLIMIT_AS turns a memory bomb into a MemoryError inside the cell (a clean,
graded failure) instead of the kernel being killed; RLIMIT_FSIZE stops one file from taking
the working folder's whole quota; RLIMIT_NPROC caps processes where no cgroup does. The
environment is rebuilt from a short list plus what the grader passes (`--env`), so nothing
of the grader's environment (paths, tokens) reaches student code.
"""
import argparse
import json
import os
import resource
import sys

KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "NBGRADER_EXECUTION", "MPLBACKEND", "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
        "COURSE_UTILS_BACKEND", "COURSE_FAST", "CUDA_VISIBLE_DEVICES")


def _limit(which, value):
    if value and value > 0:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard if hard != resource.RLIM_INFINITY else value))


def _mpl_data():
    """matplotlib's mpl-data folder (relative font paths start there), without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return os.sep + "nonexistent"
    return os.path.join(spec.submodule_search_locations[0], "mpl-data")


def _seed_font_cache(lib, home):
    """Copy the grader's matplotlib font list (execute.prepare_kernel_lib) into this
    kernel's cache, so that the first plot does not rebuild it. Only a list whose every font
    file exists here is used: a stale one would make matplotlib warn on stderr."""
    folder = os.path.join(lib, ".matplotlib")
    if not os.path.isdir(folder):
        return
    target = os.path.join(home, ".cache", "matplotlib")
    for name in os.listdir(folder):
        if not name.startswith("fontlist-"):
            continue
        try:
            with open(os.path.join(folder, name)) as f:
                text = f.read()
            fonts = [entry["fname"] for key in ("ttflist", "afmlist")
                     for entry in json.loads(text).get(key, [])]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if fonts and all(os.path.exists(os.path.join(_mpl_data(), p)) for p in fonts):
            os.makedirs(target, exist_ok=True)
            with open(os.path.join(target, name), "w") as f:
                f.write(text)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--file-mb", type=int, default=0)
    parser.add_argument("--nproc", type=int, default=0)
    parser.add_argument("--env", default="{}")
    parser.add_argument("-f", dest="connection_file", required=True)
    args = parser.parse_args()

    # Not JPY_PARENT_PID: in its own PID namespace the kernel's parent is PID 1, which
    # ipykernel's parent poller reads as "orphaned" and exits. The sandbox ends the kernel
    # with its parent instead (bwrap --die-with-parent, unshare --kill-child).
    env = {k: v for k, v in os.environ.items()
           if k in KEEP or k.startswith("JPY_") and k != "JPY_PARENT_PID"}
    env.update(json.loads(args.env))
    env.setdefault("MPLBACKEND", "Agg")
    os.environ.clear()
    os.environ.update(env)
    home = env.get("HOME", os.getcwd())
    os.makedirs(home, exist_ok=True)
    os.chdir(home)
    os.makedirs(os.path.join(home, "data"), exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    lib = env.get("PYTHONPATH", "")
    sys.path[:] = [lib] + [p for p in sys.path if p and os.path.abspath(p) not in (here, lib)]
    if lib:
        _seed_font_cache(lib, home)

    _limit(resource.RLIMIT_AS, args.memory_mb << 20)
    _limit(resource.RLIMIT_FSIZE, args.file_mb << 20)
    _limit(resource.RLIMIT_NPROC, args.nproc)

    # ipykernel prints a connection banner on stdout; the grader's log has no use for it.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    from ipykernel import kernelapp

    sys.argv = [sys.argv[0], "-f", args.connection_file, "--HistoryManager.hist_file=:memory:",
                "--log-level=ERROR"]
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()

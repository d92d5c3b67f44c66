"""Starts the IPython kernel that runs one submission, inside resource limits.

This file is copied next to a snapshot of the learning code and run as a *script* (never
imported from the repository), so the kernel imports `course_utils` from the snapshot and
finds no path back to solutions/ or the gradebook through `course_utils.__file__`.

    python kernel_launcher.py --memory-mb 4096 --file-mb 512 --token T -f CONNECTION_FILE

Why each limit: RLIMIT_AS turns a memory bomb into a MemoryError inside the cell (a clean,
graded failure) instead of the kernel being killed; RLIMIT_FSIZE stops a submission from
filling the disk. The token is put into the environment so that the grader can find and end
every process the submission started, even ones that left the kernel's session.
"""
import argparse
import os
import resource
import sys


def _limit(which, megabytes):
    if megabytes and megabytes > 0:
        value = int(megabytes) * 1024 * 1024
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard if hard != resource.RLIM_INFINITY else value))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--file-mb", type=int, default=0)
    parser.add_argument("--token", default="")
    parser.add_argument("-f", dest="connection_file", required=True)
    args = parser.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "NBGRADER_EXECUTION", "MPLBACKEND",
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "COURSE_UTILS_BACKEND",
            "COURSE_DATA_DIR", "COURSE_FAST", "CUDA_VISIBLE_DEVICES")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("JPY_")}
    env.update(HOME=os.getcwd(), PYTHONPATH=here, COURSE_GRADER_RUN=args.token,
               MPLBACKEND=env.get("MPLBACKEND", "Agg"))
    os.environ.clear()
    os.environ.update(env)
    sys.path[:] = [here] + [p for p in sys.path if p and os.path.abspath(p) != here]

    _limit(resource.RLIMIT_AS, args.memory_mb)
    _limit(resource.RLIMIT_FSIZE, args.file_mb)

    from ipykernel import kernelapp

    sys.argv = [sys.argv[0], "-f", args.connection_file, "--HistoryManager.hist_file=:memory:",
                "--log-level=ERROR"]
    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()

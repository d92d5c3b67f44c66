"""How long does each solution notebook take, and what accuracy does it reach?

Run from the repository root:

    .venv/bin/python benchmarks/bench_notebooks.py                       # every notebook
    .venv/bin/python benchmarks/bench_notebooks.py solutions/assignment1/knn.ipynb
    COURSE_DATA_DIR=/path/with/cifar-10-batches-py .venv/bin/python benchmarks/bench_notebooks.py
    COURSE_FAST=1 .venv/bin/python benchmarks/bench_notebooks.py         # the CI sizes

Each notebook runs top to bottom in a fresh kernel (full sizes unless COURSE_FAST=1 is set);
the script prints its wall time, the dataset line it printed, and every printed line that
mentions an accuracy, and keeps the executed copy under build/executed/ to look at the plots.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
INTERESTING = re.compile(r"(^Using |accuracy|acc\b)", re.IGNORECASE)


def printed_lines(nb):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                yield from out["text"].splitlines()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--lines", type=int, default=12,
                        help="how many accuracy lines to print per notebook (the last ones)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((REPO / "solutions").glob("*/*.ipynb"))
    mode = "fast" if os.environ.get("COURSE_FAST") == "1" else "full"
    data = "cifar10" if os.environ.get("COURSE_DATA_DIR") else "default-data"
    out_dir = REPO / "build" / "executed" / f"{data}-{mode}"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        error = ""
        try:
            NotebookClient(nb, timeout=1800, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        except Exception as exc:  # report and go on with the next notebook
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"
        seconds = time.perf_counter() - t0
        nbformat.write(nb, out_dir / path.name)
        lines = [ln.strip() for ln in printed_lines(nb) if INTERESTING.search(ln)]
        print(f"\n=== {path.relative_to(REPO) if path.is_absolute() else path}: "
              f"{seconds:.0f} s ({mode} sizes){'  FAILED ' + error if error else ''}", flush=True)
        for ln in [x for x in lines if x.startswith("Using ")][:1] + \
                  [x for x in lines if not x.startswith("Using ")][-args.lines:]:
            print("   ", ln[:160])
        summary.append((path.stem, seconds, error))
    print(f"\n{'notebook':<20} {'seconds':>8}")
    for name, seconds, error in summary:
        print(f"{name:<20} {seconds:>8.0f}  {'FAILED' if error else ''}")
    print(f"Executed copies: {out_dir}")
    return 1 if any(e for _, _, e in summary) else 0


if __name__ == "__main__":
    sys.exit(main())

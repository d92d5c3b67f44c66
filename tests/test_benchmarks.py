"""The benchmark scripts run and print their tables (smoke test: one repeat, one dtype).
Their figures are not asserted: speed goals live in the printed numbers, not in tests."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script, *args):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_bench_conv_prints_speed_and_memory_tables():
    out = run("bench_conv.py", "--repeat", "1", "--dtypes", "float32")
    assert "GEMM peak (float32" in out
    rows = [line for line in out.splitlines() if line.startswith(("conv (", "max pool", "avg pool"))]
    assert len(rows) == 5 + 3 + 5  # conv and pool cases, then the conv memory table
    assert "peak@8MiB" in out


@pytest.mark.slow
def test_bench_training_prints_layers_and_model_steps():
    out = run("bench_training.py", "--repeat", "1", "--dtypes", "float32", "--batch", "8")
    for name in ("affine", "spatial batchnorm", "LSTM", "ThreeLayerConvNet", "best convnet",
                 "FullyConnectedNet", "CaptioningRNN"):
        assert name in out, name
    assert "--backend cupy" in out  # says how to get the GPU columns on this CPU machine


@pytest.mark.slow
def test_bench_grading_simulates_a_batch_and_projects_a_term(tmp_path):
    out = run("bench_grading.py", "simulate", "--n", "6", "--jobs", "2")
    assert "graded 6 (0 failures) with 2 job(s)" in out and "peak memory" in out
    for student, nb, seconds in (("s1", "x", 10.0), ("s2", "y", 20.0), ("s3", "y", 30.0)):
        result = {"assignment": "a", "student": student, "seconds": seconds,
                  "notebooks": {nb: {}}}
        (tmp_path / "a").mkdir(exist_ok=True)
        (tmp_path / "a" / f"{student}.json").write_text(json.dumps(result))
    out = run("bench_grading.py", "project", "--journal", str(tmp_path), "--students", "500")
    assert "one student's whole course takes 35 s" in out  # 10 + median(20, 30)
    assert "500 students x 2 notebooks = 1000 notebook runs" in out
    assert "16 cores" in out and "10 nodes x 16 cores" in out

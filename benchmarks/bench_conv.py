"""How fast are the fast layers? Convolution and pooling, forward + backward.

Run from the repository root:

    .venv/bin/python benchmarks/bench_conv.py                  # numpy, CPU
    .venv/bin/python benchmarks/bench_conv.py --backend cupy   # cupy, GPU (needs cupy + a GPU)

For every shape it prints, per dtype:
  naive ms  the teaching loops in course_utils.layers. They are slow, so they are timed on a
            small slice of the batch (--naive-images images, min over --naive-repeat runs) and
            scaled linearly to the full batch: their cost is exactly proportional to the number
            of images.
  fast ms   course_utils.fast_layers on the full batch.
  speedup   naive / fast.
  GFLOP/s   of the fast conv: 2*N*F*C*HH*WW*Hout*Wout flops forward, 3x that forward+backward
            (dx and dw each cost one more GEMM of the same size).
  %peak     that rate over the GEMM peak measured at the start of the same run.
  torch ms  torch.nn.functional conv2d / max_pool2d + autograd on the same device, when torch
            imports; 'ratio' is fast / torch (below 1: we are faster).
  peak MiB  (numpy only) the most memory the fast conv's forward + backward allocates beyond
            its inputs, measured with tracemalloc; a second table shows it staying under a
            small im2col budget (conv_param['max_im2col_bytes']) when the batch is chunked.
Every time is the minimum over --repeat runs (the least disturbed by other processes); fast
and torch runs alternate so both see the same machine load.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from course_utils import fast_layers as FL  # noqa: E402
from course_utils import layers as L  # noqa: E402

CONV_CASES = [  # (N, C, H, W), F, HH (= WW), stride, pad
    ((100, 3, 31, 31), 25, 3, 2, 1),
    ((50, 3, 32, 32), 32, 7, 1, 3),
    ((64, 64, 16, 16), 64, 3, 1, 1),
    # the large shapes: 3x3 convolutions as wide as VGG-16's conv3 and conv4/5 stages (256 and
    # 512 channels), where the GEMM dominates and %peak says how close to the machine we get
    ((32, 256, 16, 16), 256, 3, 1, 1),
    ((16, 512, 8, 8), 512, 3, 1, 1),
]
POOL_CASES = [  # (N, C, H, W), window, stride, kind
    ((100, 64, 32, 32), 2, 2, "max"),
    ((100, 64, 33, 33), 3, 2, "max"),  # 33, not 32: (32 - 3) / 2 + 1 is not an integer
    ((100, 64, 32, 32), 2, 2, "avg"),
]


def make_timer(xp):
    """A function timing f() in seconds: min over `repeat` runs after one warm-up run."""
    if xp.__name__ == "cupy":
        sync = xp.cuda.Device().synchronize
    else:
        def sync():
            pass

    def once(f):
        sync()
        start = time.perf_counter()
        f()
        sync()
        return time.perf_counter() - start

    return once


def best_of(fns, once, repeat):
    """Run each function in `fns` once to warm up, then `repeat` rounds, alternating; mins."""
    for f in fns:
        once(f)
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, f in enumerate(fns):
            best[k] = min(best[k], once(f))
    return best


def gemm_peak(xp, dtype, once, n=2048, repeat=5):
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype=dtype)
    (t,) = best_of([lambda: a @ a], once, repeat)
    return 2 * n**3 / t / 1e9


def torch_setup(backend):
    """(torch, device) or (None, reason)."""
    try:
        import torch
    except ImportError:
        return None, ("torch is not installed: its columns are left out "
                      "(pip install torch to add them)")
    if backend == "cupy":
        if not torch.cuda.is_available():
            return None, "this torch build has no CUDA: its columns are left out on the GPU"
        return torch, "cuda"
    return torch, "cpu"


def torch_conv_step(torch, device, x, w, b, stride, pad):
    tx = torch.as_tensor(np.asarray(x), device=device).requires_grad_()
    tw = torch.as_tensor(np.asarray(w), device=device).requires_grad_()
    tb = torch.as_tensor(np.asarray(b), device=device).requires_grad_()

    def step():
        out = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad)
        out.backward(torch.ones_like(out))
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def torch_pool_step(torch, device, x, size, stride, kind):
    tx = torch.as_tensor(np.asarray(x), device=device).requires_grad_()
    pool = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d

    def step():
        out = pool(tx, size, stride)
        out.backward(torch.ones_like(out))
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def peak_extra_mib(f):
    """Peak bytes allocated while f() runs (numpy reports its buffers to tracemalloc), MiB."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        f()
        return (tracemalloc.get_traced_memory()[1] - base) / 2**20
    finally:
        tracemalloc.stop()


def fmt(v, spec=".1f", width=9):
    return f"{'-' if v is None else format(v, spec):>{width}}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--naive-images", type=int, default=1,
                        help="batch slice the naive layers are timed on (then scaled)")
    parser.add_argument("--naive-repeat", type=int, default=2,
                        help="timed runs of the naive layers (min taken, as for the others)")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive columns")
    args = parser.parse_args(argv)

    if args.backend == "cupy":
        from course_utils.backend import use

        xp = use("cupy")
    else:
        xp = np
    once = make_timer(xp)
    torch, torch_device = torch_setup(args.backend)
    if torch is not None and torch_device == "cpu":
        torch_note = f"torch {torch.__version__} on CPU, {torch.get_num_threads()} threads"
    else:
        torch_note = torch_device if torch is None else f"torch {torch.__version__} on CUDA"
    dtypes = [getattr(np, d) for d in args.dtypes.split(",")]

    print(f"backend: {args.backend}; CPU cores: {os.cpu_count()}; {torch_note}")
    print(f"times: min over {args.repeat} runs ({args.naive_repeat} for naive); naive timed on "
          f"{args.naive_images} image(s) "
          f"and scaled linearly to the batch (naive cost is proportional to N)")
    peaks = {}
    for dt in dtypes:
        peaks[dt] = gemm_peak(xp, dt, once)
        print(f"GEMM peak ({np.dtype(dt).name}, 2048x2048 matmul): {peaks[dt]:.1f} GFLOP/s")
    print()

    header = (f"{'layer (fwd+bwd)':44} {'dtype':>7} {'naive ms':>9} {'fast ms':>9} {'speedup':>9} "
              f"{'GFLOP/s':>9} {'%peak':>6} {'torch ms':>9} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for shape, F, K, S, P in CONV_CASES:
        N, C, H, W = shape
        Hout, Wout = L.conv_output_size(H, K, P, S), L.conv_output_size(W, K, P, S)
        flops = 3 * 2 * N * F * C * K * K * Hout * Wout
        for dt in dtypes:
            x = xp.asarray(rng.standard_normal(shape), dtype=dt)
            w = xp.asarray(rng.standard_normal((F, C, K, K)) * 0.1, dtype=dt)
            b = xp.asarray(rng.standard_normal(F), dtype=dt)
            param = {"stride": S, "pad": P}
            dout = xp.ones((N, F, Hout, Wout), dtype=dt)

            def fast():
                _, cache = FL.conv_forward_fast(x, w, b, param)
                FL.conv_backward_fast(dout, cache)

            fns = [fast]
            if torch is not None:
                fns.append(torch_conv_step(torch, torch_device, _host(x), _host(w), _host(b), S, P))
            times = best_of(fns, once, args.repeat)
            t_fast = times[0]
            t_torch = times[1] if torch is not None else None
            t_naive = None
            if not args.no_naive:
                n = args.naive_images
                xs, ds = x[:n], dout[:n]

                def naive():
                    _, cache = L.conv_forward_naive(xs, w, b, param)
                    L.conv_backward_naive(ds, cache)

                t_naive = min(once(naive) for _ in range(args.naive_repeat)) * N / n
            gflops = flops / t_fast / 1e9
            name = f"conv {shape} x {F} {K}x{K} s{S} p{P}"
            print(f"{name:44} {np.dtype(dt).name:>7} {fmt(_ms(t_naive))} {fmt(_ms(t_fast))} "
                  f"{fmt(_ratio(t_naive, t_fast), '.0f')} {fmt(gflops)} "
                  f"{fmt(100 * gflops / peaks[dt], '.0f', 6)} {fmt(_ms(t_torch))} "
                  f"{fmt(_ratio(t_fast, t_torch), '.2f', 6)}")

    for shape, K, S, kind in POOL_CASES:
        fast_fwd, fast_bwd, naive_fwd, naive_bwd = {
            "max": (FL.max_pool_forward_fast, FL.max_pool_backward_fast,
                    L.max_pool_forward_naive, L.max_pool_backward_naive),
            "avg": (FL.avg_pool_forward_fast, FL.avg_pool_backward_fast,
                    L.avg_pool_forward_naive, L.avg_pool_backward_naive),
        }[kind]
        for dt in dtypes:
            x = xp.asarray(rng.standard_normal(shape), dtype=dt)
            param = {"pool_height": K, "pool_width": K, "stride": S}
            out, _ = fast_fwd(x, param)
            dout = xp.ones(out.shape, dtype=dt)

            def fast():
                _, cache = fast_fwd(x, param)
                fast_bwd(dout, cache)

            fns = [fast]
            if torch is not None:
                fns.append(torch_pool_step(torch, torch_device, _host(x), K, S, kind))
            times = best_of(fns, once, args.repeat)
            t_fast = times[0]
            t_torch = times[1] if torch is not None else None
            t_naive = None
            if not args.no_naive:
                n = args.naive_images
                xs, ds = x[:n], dout[:n]

                def naive():
                    _, cache = naive_fwd(xs, param)
                    naive_bwd(ds, cache)

                t_naive = min(once(naive) for _ in range(args.naive_repeat)) * shape[0] / n
            name = f"{kind} pool {shape} {K}x{K} s{S}"
            print(f"{name:44} {np.dtype(dt).name:>7} {fmt(_ms(t_naive))} {fmt(_ms(t_fast))} "
                  f"{fmt(_ratio(t_naive, t_fast), '.0f')} {fmt(None)} {fmt(None, width=6)} "
                  f"{fmt(_ms(t_torch))} {fmt(_ratio(t_fast, t_torch), '.2f', 6)}")
    if xp is np:
        memory_table(rng)
    if torch is None:
        print(f"\nnote: {torch_note}")


def memory_table(rng, budget_mib=8):
    """Peak extra memory of the fast conv (forward + backward), whole batch vs chunked."""
    print(f"\nfast conv memory, float32 (forward + backward, beyond the inputs): the im2col "
          f"matrix alone, then the measured peak with the default budget and with a "
          f"{budget_mib} MiB im2col budget (the batch is then processed in chunks)")
    header = (f"{'conv':44} {'im2col MiB':>11} {'peak MiB':>9} {f'peak@{budget_mib}MiB':>12} "
              f"{'ms':>7} {f'ms@{budget_mib}MiB':>10}")
    print(header)
    print("-" * len(header))
    once = make_timer(np)
    for shape, F, K, S, P in CONV_CASES:
        N, C, H, W = shape
        Hout, Wout = L.conv_output_size(H, K, P, S), L.conv_output_size(W, K, P, S)
        x = rng.standard_normal(shape).astype(np.float32)
        w = (rng.standard_normal((F, C, K, K)) * 0.1).astype(np.float32)
        b = np.zeros(F, np.float32)
        dout = np.ones((N, F, Hout, Wout), np.float32)
        cols_mib = C * K * K * Hout * Wout * N * 4 / 2**20
        row = [f"conv {shape} x {F} {K}x{K} s{S} p{P}", f"{cols_mib:11.1f}"]
        timings = []
        for budget in (None, budget_mib * 2**20):
            param = {"stride": S, "pad": P}
            if budget is not None:
                param["max_im2col_bytes"] = budget

            def step(param=param):
                _, cache = FL.conv_forward_fast(x, w, b, param)
                FL.conv_backward_fast(dout, cache)

            row.append(f"{peak_extra_mib(step):{9 if budget is None else 12}.1f}")
            timings.append(best_of([step], once, 3)[0])
        print(f"{row[0]:44} {row[1]} {row[2]} {row[3]} {1e3 * timings[0]:7.1f} "
              f"{1e3 * timings[1]:10.1f}")


def _host(a):
    return a.get() if hasattr(a, "get") else a


def _ms(t):
    return None if t is None else 1e3 * t


def _ratio(a, b):
    return None if a is None or b is None else a / b


if __name__ == "__main__":
    main()

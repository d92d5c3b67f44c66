"""How long does a training step take? Layers beyond conv/pool, and whole models.

Run from the repository root:

    .venv/bin/python benchmarks/bench_training.py                  # numpy, CPU
    .venv/bin/python benchmarks/bench_training.py --backend cupy   # also on the GPU

Part 1, layers (forward + backward, float32 and float64): affine, batchnorm (the step-by-step
graph backward vs the closed form), spatial batchnorm, LSTM over a sequence; each next to
PyTorch CPU (autograd) when torch imports, 'ratio' = ours / torch (below 1: we are faster).

Part 2, models: one full Solver-style training step (loss + gradients + Adam update) of
ThreeLayerConvNet, of the best convnet of the ConvolutionalNetworks notebook, of a
FullyConnectedNet and of the LSTM CaptioningRNN, in float32, as ms per step and images per
second. With --backend cupy the same steps also run on the GPU and the table gains the
GPU-over-CPU speedup.
Every time is the minimum over --repeat runs, as in bench_conv.py.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_conv import _host, best_of, fmt, make_timer, torch_setup  # noqa: E402

from course_utils import backend, optim  # noqa: E402
from course_utils import layers as L  # noqa: E402
from course_utils import rnn_layers as R  # noqa: E402
from course_utils.models import (CaptioningRNN, ConvNet, FullyConnectedNet,  # noqa: E402
                                 ThreeLayerConvNet)

#: The best convnet of solutions/assignment2/convolutional_networks.ipynb (keep in step).
BEST_CONVNET = dict(conv_layers=(32, "pool", 64, "pool", 128, "pool"), hidden_dims=(),
                    normalization="batchnorm")


# ------------------------------------------------------------------------------------------
# Part 1: layers
# ------------------------------------------------------------------------------------------

def layer_cases(xp, dt, rng):
    """[(name, our step, torch step builder or None)] for one dtype."""
    def arr(*shape, scale=1.0):
        return xp.asarray(rng.standard_normal(shape) * scale, dtype=dt)

    cases = []
    # affine: a CIFAR-10 batch into a 1024-unit hidden layer
    x, w, b = arr(128, 3072), arr(3072, 1024, scale=0.02), arr(1024)
    dout = arr(128, 1024)

    def affine():
        _, cache = L.affine_forward(x, w, b)
        L.affine_backward(dout, cache)

    def torch_affine(torch, dev):
        tx, tw, tb = (_leaf(torch, dev, a) for a in (x, w, b))
        td = torch.as_tensor(_host(dout), device=dev)
        return lambda: (tx @ tw + tb).backward(td)

    cases.append(("affine (128, 3072) -> 1024", affine, torch_affine))

    # batchnorm on (N, D) features: graph backward vs closed form
    xb, g, be, db = arr(256, 1024), arr(1024), arr(1024), arr(256, 1024)
    for name, backward in (("graph", L.batchnorm_backward), ("closed form", L.batchnorm_backward_alt)):
        def bn(backward=backward):
            _, cache = L.batchnorm_forward(xb, g, be, {"mode": "train"})
            backward(db, cache)

        cases.append((f"batchnorm (256, 1024), {name} backward", bn,
                      _torch_bn(xb, g, be, db)))

    # spatial batchnorm on a conv activation
    xs, gs, bs, ds = arr(64, 32, 32, 32), arr(32), arr(32), arr(64, 32, 32, 32)

    def sbn():
        _, cache = L.spatial_batchnorm_forward(xs, gs, bs, {"mode": "train"})
        L.spatial_batchnorm_backward(ds, cache)

    cases.append(("spatial batchnorm (64, 32, 32, 32)", sbn, _torch_bn(xs, gs, bs, ds)))

    # LSTM over a captioning-sized sequence
    N, T, D, H = 64, 16, 128, 256
    xl, h0 = arr(N, T, D), arr(N, H)
    Wx, Wh, bl = arr(D, 4 * H, scale=D ** -0.5), arr(H, 4 * H, scale=H ** -0.5), arr(4 * H)
    dh = arr(N, T, H)

    def lstm():
        _, cache = R.lstm_forward(xl, h0, Wx, Wh, bl)
        R.lstm_backward(dh, cache)

    def torch_lstm(torch, dev):
        tx, th0, tWx, tWh, tb = (_leaf(torch, dev, a) for a in (xl, h0, Wx, Wh, bl))
        tdh = torch.as_tensor(_host(dh), device=dev)

        def step():  # the same cell written out in torch ops (gates i, f, o, g)
            h, c, hs = th0, torch.zeros_like(th0), []
            for t in range(T):
                a = tx[:, t] @ tWx + h @ tWh + tb
                i, f, o = (torch.sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))
                c = f * c + i * torch.tanh(a[:, 3 * H:])
                h = o * torch.tanh(c)
                hs.append(h)
            torch.stack(hs, 1).backward(tdh)

        return step

    cases.append((f"LSTM forward+backward N={N} T={T} D={D} H={H}", lstm, torch_lstm))
    return cases


def _torch_bn(x, g, b, d):
    def build(torch, dev):
        tx, tg, tb = (_leaf(torch, dev, a) for a in (x, g, b))
        td = torch.as_tensor(_host(d), device=dev)
        fn = torch.nn.functional.batch_norm
        return lambda: fn(tx, None, None, tg, tb, training=True, eps=1e-5).backward(td)

    return build


def _leaf(torch, dev, a):
    return torch.as_tensor(_host(a), device=dev).requires_grad_()


# ------------------------------------------------------------------------------------------
# Part 2: models
# ------------------------------------------------------------------------------------------

def model_cases(batch):
    """[(name, build() -> (model, inputs, targets), examples per step)]: built on demand so
    each backend creates its own arrays."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    vocab = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "<UNK>"]
                                        + [f"w{i}" for i in range(996)])}
    feats = rng.standard_normal((batch, 512)).astype(np.float32)
    caps = rng.integers(3, 1000, (batch, 17))
    caps[:, 0] = 1

    def conv3():
        return ThreeLayerConvNet(dtype=np.float32, seed=0), images, labels

    def best():
        return ConvNet(**BEST_CONVNET, dtype=np.float32, seed=0), images, labels

    def fc():
        model = FullyConnectedNet([512, 256], normalization="batchnorm", dtype=np.float32, seed=0)
        return model, images.reshape(batch, -1), labels

    def caption():
        return CaptioningRNN(vocab, cell_type="lstm", hidden_dim=512, wordvec_dim=256,
                             dtype=np.float32, seed=0), feats, caps

    return [("ThreeLayerConvNet (32 7x7 filters, 100 hidden)", conv3),
            ("best convnet (32-pool-64-pool-128-pool, batchnorm)", best),
            ("FullyConnectedNet [512, 256] batchnorm", fc),
            ("CaptioningRNN LSTM H=512, T=16, V=1000", caption)]


def time_model_step(build, once, repeat):
    """Seconds per training step (forward, backward, Adam on every parameter)."""
    model, X, y = build()
    X, y = backend.asarray(X), backend.asarray(y)
    configs = {k: {"learning_rate": 1e-3} for k in model.params}

    def step():
        _, grads = model.loss(X, y)
        for k, w in model.params.items():
            model.params[k], configs[k] = optim.adam(w, grads[k], configs[k])

    (t,) = best_of([step], once, repeat)
    return t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                        help="cupy: run the model steps on the GPU as well as on the CPU")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="examples per training step")
    parser.add_argument("--dtypes", default="float32,float64")
    args = parser.parse_args(argv)

    once_cpu = make_timer(np)
    torch, torch_device = torch_setup("numpy")
    note = (torch_device if torch is None
            else f"torch {torch.__version__} on CPU, {torch.get_num_threads()} threads")
    print(f"CPU cores: {os.cpu_count()}; {note}")
    print(f"times: min over {args.repeat} runs\n")

    header = f"{'layer (fwd+bwd)':48} {'dtype':>7} {'ours ms':>9} {'torch ms':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for dt in (getattr(np, d) for d in args.dtypes.split(",")):
        for name, ours, torch_builder in layer_cases(np, dt, np.random.default_rng(0)):
            fns = [ours]
            if torch is not None and torch_builder is not None:
                fns.append(torch_builder(torch, "cpu"))
            times = best_of(fns, once_cpu, args.repeat)
            t_torch = times[1] if len(times) > 1 else None
            print(f"{name:48} {np.dtype(dt).name:>7} {fmt(1e3 * times[0])} "
                  f"{fmt(None if t_torch is None else 1e3 * t_torch)} "
                  f"{fmt(None if t_torch is None else times[0] / t_torch, '.2f', 6)}")

    gpu = args.backend == "cupy"
    once_gpu = None
    if gpu:
        once_gpu = make_timer(backend.use("cupy"))
        backend.use("numpy")
    print(f"\ntraining step, float32, batch {args.batch} (loss + backward + Adam)")
    header = (f"{'model':52} {'CPU ms':>9} {'img/s':>8}"
              + (f" {'GPU ms':>9} {'img/s':>8} {'GPU/CPU':>8}" if gpu else ""))
    print(header)
    print("-" * len(header))
    for name, build in model_cases(args.batch):
        t_cpu = time_model_step(build, once_cpu, args.repeat)
        line = f"{name:52} {fmt(1e3 * t_cpu)} {fmt(args.batch / t_cpu, '.0f', 8)}"
        if gpu:
            backend.use("cupy")
            try:
                t_gpu = time_model_step(build, once_gpu, args.repeat)
            finally:
                backend.use("numpy")
            line += (f" {fmt(1e3 * t_gpu)} {fmt(args.batch / t_gpu, '.0f', 8)} "
                     f"{fmt(t_cpu / t_gpu, '.1f', 8)}")
        print(line)
    if not gpu:
        print("\n(GPU columns: run with --backend cupy on a machine with cupy and a GPU)")


if __name__ == "__main__":
    main()

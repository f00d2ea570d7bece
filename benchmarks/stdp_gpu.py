"""STDP (Diehl & Cook 2015, fast mode) on a GPU: replicas and the torch engines on CUDA.

Two parts, each printed as a table:

* **agreement** — the fast-mode network on ``--device`` against the same network on the CPU (compiled loops where
  numba is installed), both fed the *same* random draws (Poisson inputs and one-spike choices: the CPU
  generator's, copied to the device), 100 neurons, ideal crossbar with exact writes and software synapses:
  images with identical spike counts, and the largest weight and θ differences after ``--agree-images`` images;
* **speed** — training images/s (learning on) of R independent networks in one loop for each ``--replicas`` R,
  ideal crossbar and the TaOx/HfOx RRAM's pulses, 100 and 400 neurons, and test images/s (learning off,
  ``--test-batch`` images in lockstep); ``× R=1``: image-networks/s over one network's on the same device, and
  the CPU rows (one thread) in the same process for reference.

Usage: ``python benchmarks/stdp_gpu.py --data <mnist dir> [--device cuda] [--replicas 1 8 64] [--images 20]``.
On a CPU-only machine ``--device cpu`` runs the same code (the agreement part then compares the CPU with itself).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stdp import build, test_rate, train_rate  # noqa: E402


def mnist_images(data: str) -> torch.Tensor:
    """MNIST training images ``[60000, 784]`` in [0, 1] straight from the idx files (no framework import: the
    device machine may lack the framework's config dependencies)."""
    import gzip

    import numpy as np

    with gzip.open(Path(data) / "train-images-idx3-ubyte.gz", "rb") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16)
    return torch.from_numpy(raw.reshape(-1, 784).astype(np.float32) / 255.0)


def shared_draws(nets, seed: int = 7) -> None:
    """Make every network in ``nets`` draw its uniforms from one CPU stream (the same values for all)."""
    for net in nets:
        g = torch.Generator().manual_seed(seed)

        def uniform(t_steps, b, a, net=net, g=g):
            u = torch.rand(t_steps, net.R, b, a, generator=g, dtype=net.dtype)
            return u.to(net.device)

        net._uniform = uniform


def agreement(x, device: str, n_img: int) -> None:
    print(f"## agreement: fast mode, 100 neurons, {device} against cpu, the same draws, {n_img} MNIST images")
    print("| synapses | images with equal spike counts | spikes (cpu) | max abs Δw | max abs Δθ [V] |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("ideal", "software"):
        try:
            _agree_row(x, device, n_img, kind)
        except Exception as e:  # report and go on
            print(f"| {kind} | failed: {type(e).__name__}: {e} |", flush=True)
    print()


def _agree_row(x, device: str, n_img: int, kind: str) -> None:
    a = build(100, "fast", kind, 1, x.shape[1], torch_device="cpu")
    b = build(100, "fast", kind, 1, x.shape[1], torch_device=device)
    shared_draws([a, b])
    same, spikes = 0, 0.0
    for i in range(n_img):
        ca = a.present(x[i])
        cb = b.present(x[i].to(device))
        same += int(torch.equal(ca, cb.cpu()))
        spikes += float(ca.sum())
    dw = float((a.syn.weights() - b.syn.weights().cpu()).abs().max())
    dth = float((a.theta - b.theta.cpu()).abs().max())
    print(f"| {kind} | {same} / {n_img} | {spikes:.0f} | {dw:.2e} | {dth:.2e} |", flush=True)


def speed(x, device: str, sizes, replicas, n_img: int, test_batch: int) -> None:
    print(f"## speed: fast mode, training images/s (learning on), one process, {device} and cpu (one thread)")
    print("| neurons | device | synapses | R | train images/s | image-networks/s | × R=1 | test images/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for n in sizes:
        for syn in ("ideal", "rram"):
            for dev in (device, "cpu") if device != "cpu" else ("cpu",):
                rs = replicas if dev != "cpu" else [r for r in replicas if r <= 8]
                base = None
                for r in rs:
                    try:
                        net = build(n, "fast", syn, r, x.shape[1], torch_device=dev)
                    except Exception as e:  # report and go on: one device run must bring back every row it can
                        print(f"| {n} | {dev} | {syn} | {r} | failed: {type(e).__name__}: {e} |", flush=True)
                        continue
                    xd = x.to(dev)
                    train_rate(net, xd, 2, warm=1)  # warm up (compile, allocator)
                    k = max(4, n_img if r <= 8 else n_img // 2)
                    rate = train_rate(net, xd[3:], k, warm=0)
                    base = rate if base is None else base
                    test = test_rate(net, xd, test_batch) if r == rs[0] else float("nan")
                    print(f"| {n} | {dev} | {syn} | {r} | {rate:.1f} | {rate * r:.1f} | {rate * r / base:.2f} | "
                          f"{test:.1f} |", flush=True)
                    del net
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("XBARSIM_DATA"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 400])
    ap.add_argument("--images", type=int, default=20, help="training images per configuration")
    ap.add_argument("--agree-images", type=int, default=20)
    ap.add_argument("--test-batch", type=int, default=256)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    x, name = mnist_images(args.data), "mnist"
    from algorithms.neurons import current_kernel

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "none"
    print(f"# STDP on {args.device} ({gpu}), torch {torch.__version__}, {name}; CPU engine: "
          f"{'numba-compiled loops' if current_kernel.AVAILABLE else 'torch engines'}")
    print()
    agreement(x, args.device, args.agree_images)
    speed(x, args.device, args.sizes, args.replicas, args.images, args.test_batch)


if __name__ == "__main__":
    main()

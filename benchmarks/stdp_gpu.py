"""STDP (Diehl & Cook 2015, fast mode) on a GPU: replicas and the torch engines on CUDA.

Three parts (``--parts``), each printed as a table:

* **agreement** — the fast-mode network on ``--device`` against the same network on the CPU (compiled loops where
  numba is installed), both fed the *same* random draws (Poisson inputs and one-spike choices: the CPU
  generator's, copied to the device), 100 neurons, ideal crossbar with exact writes and software synapses:
  images with identical spike counts, and the largest weight and θ differences after ``--agree-images`` images
  (paper mode too: the torch step loop on the device against the CPU's numpy engine);
* **algorithm** — ``algorithm: stdp`` end to end (fit, labels, vote) on the device and on the CPU;
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


def mnist_images(data: str, split: str = "train") -> torch.Tensor:
    """MNIST images ``[n, 784]`` in [0, 1] straight from the idx files (no framework import: the device machine
    may lack the framework's config dependencies). ``split``: ``train`` or ``t10k``."""
    import gzip

    import numpy as np

    with gzip.open(Path(data) / f"{split}-images-idx3-ubyte.gz", "rb") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16)
    return torch.from_numpy(raw.reshape(-1, 784).astype(np.float32) / 255.0)


def mnist_labels(data: str, split: str = "train") -> torch.Tensor:
    """MNIST labels ``[n]`` (int64) from the idx files."""
    import gzip

    import numpy as np

    with gzip.open(Path(data) / f"{split}-labels-idx1-ubyte.gz", "rb") as f:
        return torch.from_numpy(np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64))


def shared_draws(nets, seed: int = 7) -> None:
    """Make every network in ``nets`` draw its uniforms from one CPU stream (the same values for all)."""
    for net in nets:
        g = torch.Generator().manual_seed(seed)

        def uniform(t_steps, b, a, net=net, g=g):
            u = torch.rand(t_steps, net.R, b, a, generator=g, dtype=net.dtype)
            return u.to(net.device)

        net._uniform = uniform


def agreement(x, device: str, n_img: int) -> None:
    print(f"## agreement: 100 neurons, {device} against cpu, the same draws, {n_img} MNIST images (paper: a quarter)")
    print("| mode | synapses | images with equal spike counts | spikes (cpu) | max abs Δw | max abs Δθ [V] |")
    print("|---|---|---:|---:|---:|---:|")
    for mode, kind in (("fast", "ideal"), ("fast", "software"), ("paper", "ideal")):
        try:
            _agree_row(x, device, n_img if mode == "fast" else max(2, n_img // 4), kind, mode)
        except Exception as e:  # report and go on
            print(f"| {mode} | {kind} | failed: {type(e).__name__}: {e} |", flush=True)
    print()


def _agree_row(x, device: str, n_img: int, kind: str, mode: str) -> None:
    a = build(100, mode, kind, 1, x.shape[1], torch_device="cpu")
    b = build(100, mode, kind, 1, x.shape[1], torch_device=device)
    shared_draws([a, b])
    same, spikes = 0, 0.0
    for i in range(n_img):
        ca = a.present(x[i])
        cb = b.present(x[i].to(device))
        same += int(torch.equal(ca, cb.cpu()))
        spikes += float(ca.sum())
    dw = float((a.syn.weights() - b.syn.weights().cpu()).abs().max())
    dth = float((a.theta - b.theta.cpu()).abs().max())
    print(f"| {mode} | {kind} | {same} / {n_img} | {spikes:.0f} | {dw:.2e} | {dth:.2e} |", flush=True)


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


def algorithm(data: str, device: str, n_train: int, n_test: int) -> None:
    """``algorithm: stdp`` end to end (fit, label assignment, vote) on ``device`` and on the CPU: fast mode, 100
    neurons, ideal crossbar, the 100-neuron setting (θ+ 0.02 mV, rates annealed); different random streams, so
    the accuracies agree within sampling noise, not exactly."""
    from algorithms.base import Hardware
    from algorithms.registry import get_algorithm
    from circuits import ADC, EnergyLedger
    from device_models import IdealDevice

    class D:
        x_train, y_train = mnist_images(data)[:n_train], mnist_labels(data)[:n_train]
        image_shape, n_classes = (1, 28, 28), 10

    xt, yt = mnist_images(data, "t10k")[:n_test], mnist_labels(data, "t10k")[:n_test]
    print(f"## algorithm stdp end to end: {n_train} training images (labels from the last half), {n_test} test images")
    print("| device | accuracy | proportion weighting | train images/s | test images/s | energy / test image [J] |")
    print("|---|---:|---:|---:|---:|---:|")
    cls = get_algorithm("stdp")
    for dev in (device, "cpu") if device != "cpu" else ("cpu",):
        try:
            p = cls.make_params(n_neurons=100, mode="fast", n_assign=n_train // 2, theta_plus=2e-5,
                                nu_schedule="exponential", nu_final=0.05, eval_batch=256)
            alg = cls(p, Hardware(device=IdealDevice(), adc=ADC(bits=None),
                                  generator=torch.Generator(device=dev).manual_seed(0)))
            alg.fit(D, EnergyLedger())
            r = alg.evaluate(xt.to(dev), yt.to(dev), 0.0)[0]
            c = alg.columns()
            print(f"| {dev} | {r['accuracy']:.4f} | {r['accuracy_proportion']:.4f} | {c['images_per_s']:.1f} | "
                  f"{r['test_images_per_s']:.1f} | {r['energy_per_inference_J']:.3e} |", flush=True)
        except Exception as e:  # report and go on
            print(f"| {dev} | failed: {type(e).__name__}: {e} |", flush=True)
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
    ap.add_argument("--algo-train", type=int, default=2000, help="algorithm part: training images (0: skip)")
    ap.add_argument("--algo-test", type=int, default=2000)
    ap.add_argument("--parts", nargs="+", default=["agreement", "algorithm", "speed"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    x, name = mnist_images(args.data), "mnist"
    from algorithms.neurons import current_kernel

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "none"
    print(f"# STDP on {args.device} ({gpu}), torch {torch.__version__}, {name}; CPU engine: "
          f"{'numba-compiled loops' if current_kernel.AVAILABLE else 'torch engines'}")
    print()
    if "agreement" in args.parts:
        agreement(x, args.device, args.agree_images)
    if "algorithm" in args.parts and args.algo_train:
        algorithm(args.data, args.device, args.algo_train, args.algo_test)
    if "speed" in args.parts:
        speed(x, args.device, args.sizes, args.replicas, args.images, args.test_batch)


if __name__ == "__main__":
    main()

"""Speed of stochastic STDP on binary synapses against deterministic STDP (Diehl & Cook network), one thread.

Prints ``images_per_s`` of ``fit`` (learning on, fast mode, MNIST) for ``stdp`` with software weights (the
baseline, column normalisation by reprogramming) and ideal-crossbar weights, and ``stochastic_stdp`` with
Bernoulli draws and with STT-MTJ cells (``synapse: device``), each with the settings given, on the same
images in the same process; the learners are run in interleaved rounds and the best round counts (the
machine may be shared). Ratios are to ``stdp`` software.

Usage: ``python benchmarks/stochastic_stdp.py [--neurons 100 400] [--images 200] [--rounds 2]``
(MNIST from ``$XBARSIM_DATA`` or ``--data``; digits 8×8 when MNIST is missing).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algorithms.base import Hardware  # noqa: E402
from algorithms.registry import get_algorithm  # noqa: E402
from circuits import EnergyLedger  # noqa: E402
from device_models import IdealDevice, load_preset  # noqa: E402

STOCHASTIC = dict(gamma_pot=0.015, gamma_dep=0.005, depression="anti_hebbian", normalisation="gain")  # the defaults


def learners():
    """(label, algorithm, params, device factory)."""
    return [
        ("`stdp`, software weights", "stdp", dict(synapses="software"), IdealDevice),
        ("`stdp`, ideal crossbar (`CrossbarSynapses`)", "stdp", dict(synapses="crossbar"), IdealDevice),
        ("`stochastic_stdp`, bernoulli", "stochastic_stdp", dict(synapse="bernoulli", **STOCHASTIC), IdealDevice),
        ("`stochastic_stdp`, STT-MTJ `device`", "stochastic_stdp", dict(synapse="device", **STOCHASTIC),
         lambda: load_preset("stt_mtj")),
    ]


def data(path: str | None):
    from xbarsim.datasets import load_digits, load_mnist

    try:
        d = load_mnist(path)
        return d, (1, 28, 28), "mnist"
    except Exception:
        d = load_digits()
        return d, (1, 8, 8), "digits"


def fit_rate(name, params, device, d, shape, n_img: int, n_neurons: int) -> tuple[float, float]:
    """images/s of ``fit`` on the first ``n_img`` training images and excitatory spikes per image."""
    cls = get_algorithm(name)
    alg = cls(cls.make_params(n_neurons=n_neurons, mode="fast", **params),
              Hardware(device=device(), generator=torch.Generator().manual_seed(0)))

    class D:
        x_train, y_train = d.x_train[:n_img], d.y_train[:n_img]
        image_shape, n_classes = shape, 10

    t0 = time.perf_counter()
    alg.fit(D, EnergyLedger())
    wall = time.perf_counter() - t0
    return n_img / wall, alg.columns()["exc_spikes_per_image"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, nargs="+", default=[100])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    d, shape, dname = data(a.data)
    print(f"# stochastic vs deterministic STDP fit speed: {dname}, {a.images} images, best of {a.rounds} interleaved "
          f"rounds, one thread; stochastic settings {STOCHASTIC}")
    for n in a.neurons:
        best: dict[str, tuple[float, float]] = {}
        for _ in range(a.rounds):
            for label, name, params, dev in learners():
                r, spk = fit_rate(name, params, dev, d, shape, a.images, n)
                if label not in best or r > best[label][0]:
                    best[label] = (r, spk)
        base = best[learners()[0][0]][0]
        print(f"\n{n} neurons\n\n| learner (synapses) | images/s | × `stdp` software | exc. spikes / image |\n|---|---:|---:|---:|")
        for label, (r, spk) in best.items():
            print(f"| {label} | {r:.1f} | {r / base:.2f} | {spk:.1f} |")


if __name__ == "__main__":
    main()

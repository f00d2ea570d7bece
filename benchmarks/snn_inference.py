"""SNN inference speed: the converted MNIST CNN at T = 32 on crossbars vs the same SNN stepped in plain torch.

Network: Conv(1,16,5)-ReLU-AvgPool2-Conv(16,32,5)-ReLU-AvgPool2-Linear(512,10), trained briefly on
MNIST, converted to IF neurons (reset by subtraction, 99.9th-percentile thresholds, direct input).
Rows, one process, one thread, batch 256, T = 32:

* ``torch, step by step``: the usual way (snnTorch / SpikingJelly single-step mode): every time step
  runs conv → IF → pool → conv → IF → pool → linear on the batch (the baseline, ratio 1);
* ``xbarsim software SNN``: the same SNN in xbarsim's software backend (all T steps of a layer in
  one batched product, then the neuron scan);
* ``crossbar, ideal``: 128×128 arrays, ideal cells and wires, 8-bit DAC (first layer) and ADC,
  spikes driving the rows, ADC + digital IF neurons — energy ledger on;
* ``crossbar, exact IR drop``: the same with 1 Ω wire segments (``solver: exact``); again without the
  energy ledger (``no ledger``), to show the cost of the exact read energy (``⟨Y, Σ uᵀu⟩``), and with the
  ledger on and ``read_energy: bounded`` (``bounded energy``: diagonal + rank-K split of Y with a certified
  relative error ≤ each ``--tol``, circuits.crossbar docstring); below the table, per layer, the rank K, the
  certified bound ρ, and the bounded energy's difference from the exact one.

Each crossbar row is run with both poolings of ``algorithm.pooling``: ``fold`` (the default: every
AvgPool2d(2) folded into the next layer, rows see binary spikes, 4× the rows; see
``algorithms.snn.network.fold_pooling``) and ``count`` (the pool's spike counts drive one row with
0–4 read pulses; the layers keep their own rows). The software SNN is the fold network (``count``
in software is the same SNN with the pooled rates fed to the unfolded layer). Accuracy on the
images timed and the crossbar energy per inference are printed too.

    XBARSIM_DATA=/path/to/data python benchmarks/snn_inference.py [--batch 256] [--T 32] [--repeat 1] [--pooling fold count]
        [--tol 1e-3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python benchmarks/snn_inference.py

from algorithms.ann import CrossbarNetwork  # noqa: E402
from algorithms.snn.network import SpikingNetwork, fold_pooling  # noqa: E402
from circuits import ADC, DAC, CrossbarSpec, EnergyLedger  # noqa: E402
from device_models import IdealDevice  # noqa: E402


def mnist_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(512, 10))


@torch.no_grad()
def torch_stepwise(model: nn.Sequential, thresholds: list[float], lams: list[float], x: torch.Tensor, t_steps: int) -> torch.Tensor:
    """The converted SNN stepped one time step at a time in plain torch (SpikingJelly's single-step mode)."""
    c1, c2, fc = model[0], model[3], model[7]
    v1 = v2 = None
    out = 0.0
    for _ in range(t_steps):
        z1 = F.conv2d(x, c1.weight, c1.bias)
        v1 = z1 if v1 is None else v1 + z1
        s1 = (v1 >= thresholds[0]).float()
        v1 -= s1 * thresholds[0]
        z2 = F.conv2d(F.avg_pool2d(s1, 2), c2.weight, c2.bias / lams[0])
        v2 = z2 if v2 is None else v2 + z2
        s2 = (v2 >= thresholds[1]).float()
        v2 -= s2 * thresholds[1]
        out = out + F.linear(F.avg_pool2d(s2, 2).flatten(1), fc.weight, fc.bias / lams[1])
    return out * (lams[1] / t_steps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--T", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--pooling", nargs="+", default=["fold", "count"], choices=["fold", "count"],
                    help="poolings of the crossbar rows (algorithm.pooling)")
    ap.add_argument("--tol", type=float, nargs="+", default=[1e-2, 1e-3],
                    help="read_energy_tol of the bounded-energy rows (one row per value)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from xbarsim.datasets import load_dataset
    from xbarsim.models import train_model

    data = load_dataset("mnist", os.path.join(os.environ.get("XBARSIM_DATA", "data"), "mnist"), 0.0, 0)
    data.x_train, data.y_train = data.x_train[: args.n_train], data.y_train[: args.n_train]
    torch.manual_seed(0)
    model = mnist_cnn()
    train_model(model, data, 1, 1e-3, 64)
    model.eval()
    x, y = data.x_test[: args.batch], data.y_test[: args.batch]
    cal = data.x_train[:256]
    t = args.T
    folded, scales = fold_pooling(model, (1, 28, 28))

    def crossbar(spec: CrossbarSpec, backend: str = "hw", pooling: str = "fold"):
        mapped = folded if pooling == "fold" else model
        net = CrossbarNetwork(mapped, IdealDevice(), spec, DAC(bits=8), ADC(bits=8), generator=torch.Generator().manual_seed(0))
        macs = {net.layer_names[k]: v for k, v in scales.items()} if pooling == "fold" else {}
        snn = SpikingNetwork(net, backend=backend, pool_neurons=False, pool_counts=pooling == "count", macs_scale=macs)
        snn.balance(cal, norm="percentile", timesteps=16)
        return snn

    sw = crossbar(CrossbarSpec(), backend="sw")
    th = [s.theta for s in sw.stages if s.kind == "weight"]
    lams = [s.lam_in for s in sw.stages if s.kind == "weight"][1:]

    def baseline():
        return torch_stepwise(model, th, lams, x, t)

    def timed(fn):
        """Best of ``repeat`` runs of ``fn`` and of the baseline, alternated (baseline, fn, baseline, fn, …): the
        ratio compares runs made under the same machine load."""
        best, best_base, out = float("inf"), float("inf"), None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            baseline()
            t1 = time.perf_counter()
            out = fn()
            t2 = time.perf_counter()
            best_base, best = min(best_base, t1 - t0), min(best, t2 - t1)
        return best, best_base, out

    rows = [("torch, step by step", *timed(baseline), None)]
    rows.append(("xbarsim software SNN", *timed(lambda: sw.run(x, [t])[0][0]), None))
    notes, exact_energy = [], {}
    for label, spec in (("crossbar, ideal", CrossbarSpec()),
                        ("crossbar, exact IR drop (1 Ω)", CrossbarSpec(solver="exact", r_wire_row=1.0, r_wire_col=1.0))):
        for pooling in args.pooling:
            snn = crossbar(spec, pooling=pooling)
            led = [EnergyLedger()]
            sec, base, out = timed(lambda snn=snn, led=led: snn.run(x, [t], led)[0][0])
            rows.append((f"{label}, {pooling}", sec, base, out, led[0].per_inference()["total"]))
            if spec.solver == "exact":  # what the exact read energy (a quadratic form per read) costs
                exact_energy[pooling] = led[0].by_component()["array"]
                sec, base, out = timed(lambda snn=snn: snn.run(x, [t])[0][0])
                rows.append((f"{label}, {pooling}, no ledger", sec, base, out, None))
                for tol in args.tol:  # the bounded read energy: same chips (same seed), certified relative error ≤ tol
                    snn = crossbar(CrossbarSpec(solver="exact", r_wire_row=1.0, r_wire_col=1.0, read_energy="bounded",
                                                read_energy_tol=tol), pooling=pooling)
                    led = [EnergyLedger()]
                    sec, base, out = timed(lambda snn=snn, led=led: snn.run(x, [t], led)[0][0])
                    rows.append((f"{label}, {pooling}, bounded energy {tol:g}", sec, base, out,
                                 led[0].per_inference()["total"]))
                    e_b = led[0].by_component()["array"]
                    per = []
                    for name, mm in zip(snn.net.layer_names, snn.net.mapped):
                        ks = [sp.rank if sp is not None else "exact" for sp in (mm._ysplit[1] if mm._ysplit else [])]
                        per.append(f"{name}: K {ks}, rho {mm.read_energy_rel_bound:.2e}")
                    e_x = exact_energy[pooling]
                    notes.append(f"{pooling}, tol {tol:g}: array energy bounded {e_b:.6e} J vs exact {e_x:.6e} J (relative "
                                 f"difference {abs(e_b - e_x) / e_x:.2e}; certified ≤ rho ≤ tol); " + "; ".join(per))
    ann_acc = float((model(x).argmax(1) == y).float().mean())
    print(f"MNIST CNN, T = {t}, batch {args.batch}, 1 thread; ANN accuracy on these images {ann_acc:.4f}")
    print("ratio: the run's images/s over the baseline's, timed alternately with it (best of --repeat each)")
    print(f"{'run':48s} {'images/s':>10s} {'baseline':>10s} {'ratio':>7s} {'accuracy':>9s} {'energy/inference':>17s}")
    for label, sec, base, out, e in rows:
        acc = float((out.argmax(1) == y).float().mean())
        e_s = f"{e:.3e} J" if e is not None else "-"
        print(f"{label:48s} {args.batch / sec:10.1f} {args.batch / base:10.1f} {base / sec:7.3f} {acc:9.4f} {e_s:>17s}")
    for note in notes:
        print("bounded read energy, " + note)

if __name__ == "__main__":
    main()

"""Inference throughput on crossbars against the software model, measured in one process.

Prints a table: for each MLP size and batch, samples/s of the torch software model
(the baseline), of the crossbar network with the ideal solve, and (when wires have
resistance) with the exact IR-drop solve, with the ratios to the baseline. Programming
and calibration are timed separately (they happen once per programmed array).

    python benchmarks/inference.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from algorithms import CrossbarNetwork
from circuits import ADC, DAC, CrossbarSpec
from device_models import RRAM


def _mlp(widths):
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def _rate(fn, x, repeats):
    fn(x)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return repeats * x.shape[0] / (time.perf_counter() - t0)


def bench(widths, batch, solver, r_wire, repeats, array=256):
    torch.manual_seed(0)
    model = _mlp(widths)
    x = torch.rand(batch, widths[0])
    spec = CrossbarSpec(rows=array, cols=array, r_wire_row=r_wire, r_wire_col=r_wire, solver=solver)
    t0 = time.perf_counter()
    net = CrossbarNetwork(model, RRAM(), spec, DAC(bits=8), ADC(bits=8), generator=torch.Generator().manual_seed(0))
    net.calibrate(x[:256])
    t_setup = time.perf_counter() - t0
    with torch.no_grad():
        sw = _rate(model, x, repeats)
        hw = _rate(net.forward, x, repeats)
    return {"setup_s": t_setup, "sw_per_s": sw, "hw_per_s": hw, "n_arrays": net.n_arrays}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    cases = [((784, 256, 10), 1000), ((784, 1024, 1024, 10), 1000)]
    if args.quick:
        cases = cases[:1]
    repeats = 2 if args.quick else 5
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, arrays 256x256, RRAM, 8-bit DAC/ADC")
    print(f"{'network':>22} {'batch':>6} {'solver':>14} {'arrays':>6} {'setup s':>8} {'sw /s':>10} {'xbar /s':>10} {'xbar/sw':>8}")
    for widths, batch in cases:
        for solver, r in (("ideal", 0.0), ("exact", 1.0)):
            try:
                res = bench(widths, batch, solver, r, repeats)
            except NotImplementedError as exc:
                print(f"{'-'.join(map(str, widths)):>22} {batch:>6} {solver + ' r=1Ω':>14}  skipped: {exc}")
                continue
            label = solver if r == 0 else f"{solver} r={r:g}Ω"
            print(
                f"{'-'.join(map(str, widths)):>22} {batch:>6} {label:>14} {res['n_arrays']:>6} {res['setup_s']:>8.2f} "
                f"{res['sw_per_s']:>10.0f} {res['hw_per_s']:>10.0f} {res['hw_per_s'] / res['sw_per_s']:>8.3f}"
            )


if __name__ == "__main__":
    main()

"""Cost of exact IR drop during on-chip learning: ideal vs exact vs bounded-staleness steps.

A 784×100 unipolar layer (RRAM, 128×128 arrays: 7 input tiles), one learning step = a post-synaptic
spike pulses the 784 synapses of one output column (potentiate the active inputs, depress the others,
as in STDP), then a sparse spike vector (5 % of the inputs) is read as column currents. Modes:

* ``ideal``: ``solver="ideal"`` (the baseline: a matmul of the spiking rows);
* ``exact``: ``solver="exact"``, ``plastic_solve="exact"`` (every changed tile's transfer matrix is re-solved);
* ``bounded``: ``solver="exact"``, ``plastic_solve="bounded"`` (``T0 + ΔG`` until the computed bound on the
  column-current error exceeds ``plastic_tol`` of the tile's full scale; then that tile is re-solved).

The table gives the median time per step, its ratio to the ideal step, the tiles re-solved, and the
bounded mode's largest error against a fresh exact solve of the same conductances at every step
(relative to the tile's full-scale current ``v_read·max_j Σ_i G_ij``), next to its bound.

    python benchmarks/plastic.py [--steps 20] [--r-wire 1.0] [--tol 1e-3] [--threads N] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from circuits import DAC, CrossbarSpec, MappedMatrix, transfer_matrix
from device_models import RRAM


def _layer(solver: str, mode: str, r_wire: float, tol: float, seed: int) -> MappedMatrix:
    spec = CrossbarSpec(rows=128, cols=128, scheme="unipolar", solver=solver, r_wire_row=r_wire, r_wire_col=r_wire,
                        plastic_solve=mode, plastic_tol=tol)
    gen = torch.Generator().manual_seed(seed)
    w = 0.2 + 0.3 * torch.rand(100, 784, generator=gen, dtype=torch.float64)
    return MappedMatrix(w, RRAM(sigma_c2c=0.01), spec, DAC(mode="spikes", bits=None), generator=gen,
                        dtype=torch.float64, w_max=1.0)


def run(steps: int, r_wire: float, tol: float, seed: int = 0) -> list[dict]:
    gen = torch.Generator().manual_seed(seed + 1)
    xs = (torch.rand(steps, 1, 784, generator=gen) < 0.05).to(torch.float64)
    posts = torch.randint(0, 100, (steps,), generator=gen)
    rows = []
    for name, solver, mode in (("ideal", "ideal", "exact"), ("exact", "exact", "exact"), ("bounded", "exact", "bounded")):
        mm = _layer(solver, mode, r_wire, tol, seed)
        mm.column_currents(xs[0])  # first solve outside the timing
        xb = mm.crossbar
        refreshed0 = xb.n_refreshed
        times, errs, bounds = [], [], []
        for s in range(steps):
            n = torch.zeros(100, 784, dtype=torch.float64)
            n[posts[s]] = torch.where(xs[s, 0] > 0, 2.0, -1.0)  # potentiate active inputs, depress the rest
            t0 = time.perf_counter()
            mm.pulse(n)
            i = mm.column_currents(xs[s])
            times.append(time.perf_counter() - t0)
            if name == "bounded":  # error against a fresh exact solve of the same conductances (not timed)
                bounds.append(float(xb.staleness_bound(nonnegative=True).max()))  # spikes: inputs ≥ 0
                t_ex = transfer_matrix(xb.g, r_wire, r_wire)[0]
                g0 = xb._t0[2]
                fs = float((mm.v_read * g0.sum(-2).amax(-1)).min())
                eff = mm._combine(t_ex)
                m = mm._slots_to_weights(eff).transpose(-2, -1)
                i_ex = (xs[s] * mm.v_read) @ m
                errs.append(float((i - i_ex).abs().max()) / fs)
        rows.append({
            "mode": name,
            "step_ms": 1e3 * statistics.median(times),
            "tiles_resolved_per_step": (xb.n_refreshed - refreshed0) / steps,
            "max_err_rel_fs": max(errs) if errs else float("nan"),
            "max_bound_rel_fs": max(bounds) if bounds else float("nan"),
        })
    base = rows[0]["step_ms"]
    for r in rows:
        r["vs_ideal"] = r["step_ms"] / base
    return rows


def table(rows: list[dict], steps: int, r_wire: float, tol: float) -> str:
    out = [f"784×100 unipolar RRAM layer, 7 tiles of 128×128, r_wire = {r_wire} Ω, plastic_tol = {tol:g}, "
           f"{steps} steps, torch threads = {torch.get_num_threads()}", "",
           "| mode | step [ms] | × ideal | tiles re-solved / step | max error / full scale | max bound / full scale |",
           "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['mode']} | {r['step_ms']:.2f} | {r['vs_ideal']:.1f} | {r['tiles_resolved_per_step']:.2f} | "
                   f"{r['max_err_rel_fs']:.2e} | {r['max_bound_rel_fs']:.2e} |")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--r-wire", type=float, default=1.0)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads for this process (default: torch's)")
    ap.add_argument("--out", default=None, help="also write the table to this file")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)  # this benchmark process only
    text = table(run(a.steps, a.r_wire, a.tol), a.steps, a.r_wire, a.tol)
    print(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()

"""Benchmark of the exact crossbar solver (docs/circuits.md).

For n×n arrays (random g in [1, 100] µS; r_wire_row = r_wire_col = 1 Ω, r_source = r_sense = 5 Ω)
it measures, in one run on this machine:

* ``T (ND)``: :func:`circuits.solver.transfer_matrix` — nested dissection with DtN maps (the method
  kept), float64;
* ``block-tri``: a block-tridiagonal elimination, the first design of this solver (rows eliminated with a
  banded solve, dense N×N blocks, forward elimination carrying all inputs), re-implemented here as
  the baseline the method must beat;
* ``sparse-LU T``: the naive transfer matrix — scipy SuperLU of the full nodal matrix, one solve
  per input row (:func:`circuits.netlist.nodal_solve` with ``v = I``) — and its ratio to ``T (ND)``;
* MVM time for 1000 input vectors (float32): with IR drop ``v @ T`` vs ideal ``v @ g``, and ratio;
* the max relative error of ``v @ T`` against a sparse direct solve of the full nodal system
  (4 random input vectors; n ≤ 1024, which takes ~2 min and 6.5 GB at 1024) and against ngspice
  (one vector, n ≤ 64), and ngspice's time.

Usage: ``python benchmarks/solver.py [--sizes 32 64 ...] [--quick] [--out benchmarks/solver_results.md]``; the table is
printed, and written to a file only with ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time

import numpy as np
import scipy.linalg as sla
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from circuits.netlist import crossbar_netlist, nodal_solve, run_ngspice  # noqa: E402
from circuits.solver import transfer_matrix  # noqa: E402

R = dict(r_wire_row=1.0, r_wire_col=1.0, r_source=5.0, r_sense=5.0)


def blocktri_transfer(g: np.ndarray, r_wire_row, r_wire_col, r_source, r_sense) -> np.ndarray:
    """Block-tridiagonal baseline: unknowns row by row; eliminate each row's wire nodes (tridiagonal R_i),
    leaving dense blocks ``K_i = diag(g_i) + D_i − diag(g_i) R_i⁻¹ diag(g_i)`` coupled by ``−g_col``;
    forward block elimination ``X_i = K_i − g_col² X_{i−1}⁻¹`` carrying all inputs. All r > 0."""
    M, N = g.shape
    gr, gc, gs, gq = 1 / r_wire_row, 1 / r_wire_col, 1 / r_source, 1 / r_sense
    B = np.zeros((N, M))
    X_inv = None
    for i in range(M):
        gi = g[i]
        ab = np.zeros((3, N))  # banded R_i: row-wire Laplacian + cells + source at node 0
        ab[0, 1:] = -gr
        ab[2, :-1] = -gr
        ab[1] = gi + gr * np.r_[1, 2 * np.ones(N - 2), 1] if N > 1 else gi
        ab[1, 0] += gs
        e0 = np.zeros((N, 1))
        e0[0] = gs
        sol = sla.solve_banded((1, 1), ab, np.column_stack([np.diag(gi), e0]))  # R_i⁻¹ [diag(g_i), g_s e_0]
        d = gi + gc * (1 if i in (0, M - 1) else 2) + (gq if i == M - 1 else 0) if M > 1 else gi + gq
        K = np.diag(d) - gi[:, None] * sol[:, :N]
        b = gi * sol[:, N]
        if X_inv is not None:
            K -= gc * gc * X_inv
            B = gc * (X_inv @ B)
        B[:, i] = b
        X_inv = np.linalg.inv(K)
    return (gq * (X_inv @ B)).T


def _time(fn, repeat=1):
    best = np.inf
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _mvms(v, mat, k):
    out = v.new_empty(v.shape[0], mat.shape[1])
    for _ in range(k):
        torch.matmul(v, mat, out=out)
    return out


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def run(sizes, quick=False, **limits):
    rows = []
    for n in sizes:
        rows.append(bench_size(n, quick, **limits))
        print(_format(rows[-1:], header=len(rows) == 1), flush=True)
    return rows


def bench_size(n, quick=False, ref_max=1024, lu_max=256, bt_max=512, spice_max=64) -> dict:
    """One table row for an n×n array (see the module docstring)."""
    gen = torch.Generator().manual_seed(n)
    g = 1e-6 + 99e-6 * torch.rand(n, n, generator=gen, dtype=torch.float64)
    row = {"n": n}
    reps = 1 if (quick or n >= 512) else 3
    row["t_nd"], (T, _) = _time(lambda: transfer_matrix(g, **R), reps)
    if n <= bt_max and not (quick and n > 256):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # threaded BLAS slows the small dense steps
            row["t_bt"], Tb = _time(lambda: blocktri_transfer(g.numpy(), **R))
        row["err_bt"] = _rel(Tb, T.numpy())
    if n <= lu_max and not (quick and n > 128):
        row["t_lu"], sol = _time(lambda: nodal_solve(g, np.eye(n), **R))
        row["err_lu"] = _rel(T.numpy(), sol.i)
    # MVM: 1000 input vectors, float32 as in inference
    v = 0.2 * torch.rand(1000, n, generator=gen)
    T32, g32 = T.float(), g.float()
    k = max(3, int(2e8 // (1000 * n * n)))
    best = {"ir": np.inf, "id": np.inf}
    for _ in range(5):  # interleaved, after a warm-up call, best of 5
        for key, mat in (("ir", T32), ("id", g32)):
            best[key] = min(best[key], _time(lambda mat=mat: _mvms(v, mat, k), 2)[0] / k)
    row["t_mvm_ir"], row["t_mvm_id"] = best["ir"], best["id"]
    if n <= ref_max:
        v4 = 0.2 * torch.rand(4, n, generator=gen, dtype=torch.float64)
        row["t_ref"], sol = _time(lambda: nodal_solve(g, v4, **R))
        row["err_ref"] = _rel(v4 @ T, sol.i)
    if n <= spice_max and shutil.which("ngspice"):
        v1 = 0.2 * torch.rand(n, generator=gen, dtype=torch.float64)
        row["t_spice"], ref = _time(lambda: run_ngspice(crossbar_netlist(g, v1, **R)))
        row["err_spice"] = _rel(v1 @ T, ref)
    return row


def _fmt(x, kind):
    if x is None:
        return "—"
    if kind == "s":
        return f"{x:.3g} s" if x >= 0.01 else f"{x * 1e3:.3g} ms"
    if kind == "ms":
        return f"{x * 1e3:.3g} ms"
    if kind == "x":
        return f"{x:.3g}×"
    return f"{x:.1e}"


COLS = [
    ("n×n", lambda r: f"{r['n']}×{r['n']}"),
    ("T (ND)", lambda r: _fmt(r["t_nd"], "s")),
    ("block-tri", lambda r: _fmt(r.get("t_bt"), "s")),
    ("block-tri/ND", lambda r: _fmt(r["t_bt"] / r["t_nd"], "x") if "t_bt" in r else "—"),
    ("sparse-LU T", lambda r: _fmt(r.get("t_lu"), "s")),
    ("LU/ND", lambda r: _fmt(r["t_lu"] / r["t_nd"], "x") if "t_lu" in r else "—"),
    ("MVM×1000 IR", lambda r: _fmt(r["t_mvm_ir"], "ms")),
    ("MVM×1000 ideal", lambda r: _fmt(r["t_mvm_id"], "ms")),
    ("IR/ideal", lambda r: _fmt(r["t_mvm_ir"] / r["t_mvm_id"], "x")),
    ("err vs sparse", lambda r: _fmt(r.get("err_ref"), "e")),
    ("ngspice", lambda r: _fmt(r.get("t_spice"), "s")),
    ("err vs ngspice", lambda r: _fmt(r.get("err_spice"), "e")),
]


def _format(rows, header=True):
    lines = []
    if header:
        lines.append("| " + " | ".join(c for c, _ in COLS) + " |")
        lines.append("|" + "|".join("---" for _ in COLS) + "|")
    for r in rows:
        lines.append("| " + " | ".join(f(r) for _, f in COLS) + " |")
    return "\n".join(lines)


def machine() -> str:
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):  # pragma: no cover
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}; load average {load[0]:.1f}"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024])
    ap.add_argument("--quick", action="store_true", help="sizes ≤ 256, one repeat, baselines only where fast")
    ap.add_argument("--ref-max", type=int, default=1024, help="largest n for the sparse direct reference (1024: ~2 min, 6.5 GB)")
    ap.add_argument("--lu-max", type=int, default=256, help="largest n for the sparse-LU transfer matrix baseline")
    ap.add_argument("--bt-max", type=int, default=512, help="largest n for the block-tridiagonal baseline")
    ap.add_argument("--spice-max", type=int, default=64, help="largest n for ngspice")
    ap.add_argument("--out", default=None, metavar="FILE.md",
                    help="also write the table to this file (the committed results: benchmarks/solver_results.md); "
                         "default: print only")
    args = ap.parse_args(argv)
    sizes = [n for n in args.sizes if n <= 256] if args.quick else args.sizes
    before = machine()
    rows = run(sizes, quick=args.quick, ref_max=args.ref_max, lu_max=args.lu_max, bt_max=args.bt_max, spice_max=args.spice_max)
    after = machine()
    text = "\n".join(
        [
            "# Exact crossbar solver benchmark",
            "",
            f"`python benchmarks/solver.py{' --quick' if args.quick else ''} --sizes {' '.join(map(str, sizes))}`; "
            f"{before} (start), {after.rsplit('; ', 1)[1]} (end).",
            "Random g ∈ [1, 100] µS; r_wire_row = r_wire_col = 1 Ω, r_source = r_sense = 5 Ω; float64 solves, "
            "float32 MVMs of 1000 vectors. Times are the best of up to 3 runs.",
            "",
            _format(rows),
            "",
        ]
    )
    print("\n" + text)
    if args.out is not None:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()

"""Exact crossbar solver (issue 3): nodal-analysis facts, against a sparse direct reference.

The reference is :func:`circuits.netlist.nodal_solve` — modified nodal analysis of the explicit
branch list, solved by scipy's sparse LU — which shares no code with the nested-dissection solver.
Tolerances: both are float64 direct solves whose rounding errors are ~1e-13 relative for these
sizes and conductance/wire ratios (measured), so 1e-9 leaves a wide margin while still catching any
modelling error (a wrong branch changes currents by ≥ 1e-4 relative here).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import SinhCell

from circuits.netlist import crossbar_branches, crossbar_netlist, nodal_solve
from circuits.solver import (
    SolverConvergenceError,
    SolverConvergenceWarning,
    solve_crossbar,
    solve_crossbar_iterative,
    transfer_matrix,
)


def rand_g(rows, cols, seed=0, lo=1e-6, hi=1e-4, stack=()):
    gen = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(*stack, rows, cols, generator=gen, dtype=torch.float64)


def rand_v(batch, rows, seed=1, vmax=0.3):
    gen = torch.Generator().manual_seed(seed)
    return vmax * torch.rand(batch, rows, generator=gen, dtype=torch.float64)


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


# ------------------------------------------------------------------------------------------------
# ideal wires
# ------------------------------------------------------------------------------------------------
def test_all_zero_resistance_is_ideal_mvm():
    g, v = rand_g(13, 7), rand_v(5, 13)
    T, Y = transfer_matrix(g, 0.0, 0.0)
    assert torch.equal(T, g)  # exact: no arithmetic on g
    assert torch.allclose(Y, torch.diag(g.sum(-1)), rtol=1e-15, atol=0)
    assert rel(solve_crossbar(g, v, 0, 0, 0, 0), v @ g) <= 1e-12
    assert rel(solve_crossbar_iterative(g, v, 0, 0, 0, 0, rtol=1e-14), v @ g) <= 1e-12


@pytest.mark.parametrize("r_row,r_col", [(0.0, 1.0), (1.0, 0.0), (1.0, 1.0)])
def test_ir_drop_vanishes_linearly_as_wires_approach_ideal(r_row, r_col):
    # Wire conductances up to 1e15 S against 1e-6 S cells: the deviation from v @ g must keep scaling
    # ∝ r (first-order perturbation) down to rounding, i.e. the small cell-sized parts are not lost.
    g, v = rand_g(9, 11), rand_v(3, 9)
    ideal = v @ g
    dev = [rel(solve_crossbar(g, v, r_row * s, r_col * s), ideal) for s in (1e-6, 1e-9, 1e-12)]
    assert 0.98e3 < dev[0] / dev[1] < 1.02e3
    assert dev[2] < 1e-13


# ------------------------------------------------------------------------------------------------
# against the sparse direct reference
# ------------------------------------------------------------------------------------------------
CASES = [  # rows, cols, r_wire_row, r_wire_col, r_source, r_sense, r_access
    (1, 1, 2.0, 2.0, 1.0, 1.0, 0.0),
    (1, 9, 1.0, 3.0, 0.0, 2.0, 0.0),
    (9, 1, 1.0, 3.0, 2.0, 0.0, 0.0),
    (17, 40, 0.5, 2.5, 10.0, 20.0, 0.0),
    (40, 17, 10.0, 0.1, 0.0, 0.0, 0.0),
    (32, 32, 2.0, 2.0, 5.0, 5.0, 2e3),
    (23, 29, 0.0, 4.0, 3.0, 1.0, 1e3),
    (23, 29, 4.0, 0.0, 3.0, 1.0, 0.0),
    (23, 29, 0.0, 0.0, 3.0, 1.0, 5e2),
    (64, 48, 1.0, 1.0, 0.0, 7.0, 0.0),
]


@pytest.mark.parametrize("case", CASES)
def test_transfer_matrix_matches_sparse_nodal_solve(case):
    M, N, *r = case
    g, v = rand_g(M, N, seed=M * N), rand_v(4, M, seed=M + N)
    ref = nodal_solve(g, v, *r)
    T, Y = transfer_matrix(g, *r)
    assert rel(v @ T, ref.i) <= 1e-9
    # power from the sources: v Y vᵀ = Σ_i v_i·I_src,i
    P = ((v @ Y) * v).sum(-1)
    assert rel(P, (ref.source_i * v.numpy()).sum(-1)) <= 1e-9
    assert rel(solve_crossbar(g, v, *r), ref.i) <= 1e-9


def test_every_zero_resistance_combination():
    g, v = rand_g(6, 5, seed=3), rand_v(2, 6)
    for r in itertools.product([0.0, 1.5], [0.0, 2.5], [0.0, 4.0], [0.0, 3.0], [0.0, 1e3]):
        ref = nodal_solve(g, v, *r)
        assert rel(solve_crossbar(g, v, *r), ref.i) <= 1e-9, r


def test_kirchhoff_source_current_equals_sense_current():
    g, v = rand_g(37, 21, seed=5), rand_v(6, 37)
    r = (2.0, 3.0, 10.0, 15.0, 1e3)
    T, Y = transfer_matrix(g, *r)
    i_src = v @ Y  # current delivered by each source (Y symmetric)
    assert rel(i_src.sum(-1), (v @ T).sum(-1)) <= 1e-10
    assert rel(Y.sum(-1), T.sum(-1)) <= 1e-10  # the same for every v: row sums agree
    assert torch.allclose(Y, Y.mT, rtol=1e-12, atol=0)  # reciprocity


def test_energy_equals_sum_of_branch_dissipation():
    M, N = 19, 23
    g, v = rand_g(M, N, seed=9), rand_v(3, M)
    r = (1.5, 2.5, 8.0, 12.0, 7e2)
    _, Y = transfer_matrix(g, *r)
    P = ((v @ Y) * v).sum(-1).numpy()
    sol = nodal_solve(g, v, *r)
    br = sol.branches
    dv = sol.node_v[:, br.a] - sol.node_v[:, br.b]  # branch voltages from the full nodal solve
    resistive = ~np.isnan(br.r)
    wires = (dv[:, resistive] ** 2 / br.r[resistive]).sum(-1)  # wires, source, sense, access: I²R = ΔV²/R
    cells = (g.numpy().ravel()[br.cell[~resistive]] * dv[:, ~resistive] ** 2).sum(-1)  # devices: g·ΔV²
    assert set(br.kind[resistive]) == {"row", "col", "source", "sense", "access"}
    assert rel(P, wires + cells) <= 1e-9


def test_weak_ir_drop_is_accurate_to_rounding():
    # r·g ≈ 1e-9: the cell-sized parts of the DtN maps sit 9 decades below the wire-sized ones; the
    # diagonal recomputation (GTH) keeps them exact. The cell-current CG is well conditioned here
    # (eigenvalues in [1, 1 + 1e-5]), so it is an independent reference to ~1e-13.
    g, v = rand_g(40, 40, seed=2, lo=1e-8, hi=1e-7), rand_v(3, 40)
    r = (0.01, 0.01, 0.02, 0.03, 0.0)
    direct = solve_crossbar(g, v, *r)
    cg = solve_crossbar_iterative(g, v, *r, rtol=1e-14)
    assert rel(direct, cg) <= 1e-9
    assert rel(direct, v @ g) > 1e-7  # and the (tiny) IR drop is resolved, not rounded away


def test_ir_drop_lowers_currents_monotonically_in_r():
    g, v = rand_g(64, 64, seed=4), torch.full((1, 64), 0.2, dtype=torch.float64)
    totals = [float(solve_crossbar(g, v, r, r).sum()) for r in (0.0, 0.5, 1.0, 2.0, 5.0)]
    assert all(a > b for a, b in zip(totals, totals[1:]))


# ------------------------------------------------------------------------------------------------
# shapes, dtypes, stacks
# ------------------------------------------------------------------------------------------------
def test_stacked_arrays_equal_separate_solves():
    g = rand_g(10, 12, seed=6, stack=(2, 3))
    v = rand_v(4, 10).expand(2, 3, 4, 10)
    r = (1.0, 2.0, 3.0, 4.0, 0.0)
    T, Y = transfer_matrix(g, *r)
    i = solve_crossbar(g, v, *r)
    assert T.shape == (2, 3, 10, 12) and Y.shape == (2, 3, 10, 10) and i.shape == (2, 3, 4, 12)
    for a, b in itertools.product(range(2), range(3)):
        Ta, Ya = transfer_matrix(g[a, b], *r)
        assert torch.allclose(T[a, b], Ta, rtol=1e-12, atol=0)
        assert torch.allclose(Y[a, b], Ya, rtol=1e-12, atol=0)
        assert torch.allclose(i[a, b], v[a, b] @ Ta, rtol=1e-12, atol=0)


def test_float32_in_float32_out_and_broadcast_v():
    g = rand_g(8, 8, seed=7, stack=(3,))
    v = rand_v(5, 8)  # one batch of inputs for all three arrays
    T, Y = transfer_matrix(g.float(), 1.0, 1.0, 2.0, 2.0)
    assert T.dtype == torch.float32 and Y.dtype == torch.float32
    i = solve_crossbar(g.float(), v.float(), 1.0, 1.0, 2.0, 2.0)
    assert i.dtype == torch.float32 and i.shape == (3, 5, 8)
    i64 = solve_crossbar(g, v, 1.0, 1.0, 2.0, 2.0)
    assert rel(i.double(), i64) <= 1e-6  # float32 input rounding only (computed in float64)


def test_single_vector_input():
    g, v = rand_g(6, 4), rand_v(1, 6)
    assert solve_crossbar(g, v[0], 1.0, 1.0).shape == (4,)
    assert torch.allclose(solve_crossbar(g, v[0], 1.0, 1.0), solve_crossbar(g, v, 1.0, 1.0)[0])


# ------------------------------------------------------------------------------------------------
# iterative path
# ------------------------------------------------------------------------------------------------
def test_iterative_converges_to_direct_within_its_bound():
    g, v = rand_g(48, 40, seed=8), rand_v(5, 48)
    r = (2.0, 2.0, 5.0, 5.0, 0.0)
    direct = solve_crossbar(g, v, *r)
    for rtol in (1e-6, 1e-9):
        it = solve_crossbar_iterative(g, v, *r, rtol=rtol)
        # |Δi_j| ≤ √(Σ_i g_ij)·‖Δy‖ ≤ √(Σ_i g_ij)·rtol·‖b‖,  ‖b‖ = ‖√g·v‖ (docstring bound)
        b_norm = torch.sqrt((g[None] * v[..., None] ** 2).sum((-2, -1)))
        bound = torch.sqrt(g.sum(0))[None] * rtol * b_norm[:, None]
        assert bool(((it - direct).abs() <= bound).all())
        assert rel(it, direct) <= 10 * rtol


def _iterations_needed(*args, **kw):
    for m in range(1, 500):
        try:
            solve_crossbar_iterative(*args, max_iter=m, **kw)
            return m
        except SolverConvergenceError:
            pass
    raise AssertionError("did not converge in 500 iterations")


def test_iterative_warm_start_after_small_conductance_change():
    g, v = rand_g(64, 64, seed=10), rand_v(4, 64)
    r = (10.0, 10.0, 0.0, 0.0, 0.0)  # strong IR drop: r·g·n² ≈ 4
    _, x0 = solve_crossbar_iterative(g, v, *r, rtol=1e-10, return_state=True)
    assert x0.shape == (4, 64, 64)
    g2 = g * (1 + 0.01 * rand_g(64, 64, seed=11, lo=-1.0, hi=1.0))  # a 1 % learning step
    cold = _iterations_needed(g2, v, *r, rtol=1e-8)
    warm = _iterations_needed(g2, v, *r, x0=x0, rtol=1e-8)
    assert warm <= cold - 2  # measured 7 vs 10: the start is 1e-2 instead of O(1) from the answer
    i_warm = solve_crossbar_iterative(g2, v, *r, x0=x0, rtol=1e-10)
    assert rel(i_warm, solve_crossbar(g2, v, *r)) <= 1e-8


def test_iterative_too_few_iterations_raises_or_warns():
    g, v = rand_g(32, 32, seed=12), rand_v(2, 32)
    with pytest.raises(SolverConvergenceError, match="max_iter"):
        solve_crossbar_iterative(g, v, 5.0, 5.0, rtol=1e-12, max_iter=3)
    with pytest.warns(SolverConvergenceWarning):
        solve_crossbar_iterative(g, v, 5.0, 5.0, rtol=1e-12, max_iter=3, on_fail="warn")


# ------------------------------------------------------------------------------------------------
# nonlinear I–V (Newton); the ngspice comparison is in test_spice.py
# ------------------------------------------------------------------------------------------------
def test_nonlinear_small_signal_limit_is_the_linear_solution():
    g = rand_g(20, 30, seed=13)
    v = rand_v(3, 20, vmax=1e-4)  # b·v ≤ 2.3e-4: sinh(bv)/b = v·(1 + (bv)²/6 + …)
    r = (2.0, 3.0, 4.0, 5.0, 1e3)
    lin = solve_crossbar(g, v, *r)
    nl = solve_crossbar(g, v, *r, iv=SinhCell())
    assert rel(nl, lin) <= 1e-8  # (2.3e-4)²/6 ≈ 9e-9


def test_nonlinear_ideal_wires_is_sum_of_cell_currents():
    g, v, dev = rand_g(10, 6, seed=14), rand_v(4, 10, vmax=0.8), SinhCell()
    expected = dev.current(g[None], v[..., None]).sum(-2)
    assert rel(solve_crossbar(g, v, 0, 0, 0, 0, iv=dev), expected) <= 1e-12


def test_nonlinear_exceeds_linear_and_is_batch_independent():
    g, v, dev = rand_g(24, 24, seed=15), rand_v(2, 24, vmax=0.5), SinhCell()
    r = (2.0, 2.0, 3.0, 3.0, 0.0)
    i = solve_crossbar(g, v, *r, iv=dev)
    assert bool((i > solve_crossbar(g, v, *r)).all())  # sinh conducts more than its small-signal g
    assert rel(solve_crossbar(g, v[1:], *r, iv=dev), i[1:]) <= 1e-12  # each vector solved on its own


def test_nonlinear_stack_matches_separate():
    g, v, dev = rand_g(8, 9, seed=16, stack=(2,)), rand_v(3, 8, vmax=0.6), SinhCell()
    r = (1.0, 2.0, 3.0, 4.0, 0.0)
    i = solve_crossbar(g, v, *r, iv=dev)
    for a in range(2):
        assert rel(i[a], solve_crossbar(g[a], v, *r, iv=dev)) <= 1e-12


# ------------------------------------------------------------------------------------------------
# argument checks and the netlist text
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["r_wire_row", "r_wire_col", "r_source", "r_sense", "r_access"])
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_resistance_names_the_argument(name, bad):
    g, v = rand_g(3, 3), rand_v(1, 3)
    kw = dict(r_wire_row=1.0, r_wire_col=1.0, r_source=0.0, r_sense=0.0, r_access=0.0)
    kw[name] = bad
    for fn in (lambda: transfer_matrix(g, **kw), lambda: solve_crossbar(g, v, **kw),
               lambda: solve_crossbar_iterative(g, v, **kw)):
        with pytest.raises(ValueError, match=name):
            fn()


def test_bad_shapes_and_values_name_the_argument():
    g = rand_g(4, 5)
    with pytest.raises(ValueError, match="v: got shape"):
        solve_crossbar(g, rand_v(2, 5), 1.0, 1.0)  # v has cols, not rows
    with pytest.raises(ValueError, match="g: got shape"):
        transfer_matrix(g[0], 1.0, 1.0)
    with pytest.raises(ValueError, match="g: conductances"):
        transfer_matrix(-g, 1.0, 1.0)
    with pytest.raises(ValueError, match="v: leading"):
        solve_crossbar(rand_g(4, 5, stack=(2,)), rand_v(2, 4).expand(3, 2, 4), 1.0, 1.0)
    with pytest.raises(ValueError, match="x0"):
        solve_crossbar_iterative(g, rand_v(2, 4), 1.0, 1.0, x0=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="iv"):
        solve_crossbar(g, rand_v(2, 4), 1.0, 1.0, iv=object())


def test_netlist_merges_zero_resistances_and_counts_elements():
    g = rand_g(3, 4)
    g[1, 2] = 0.0  # an open cell is omitted
    deck = crossbar_netlist(g, torch.full((3,), 0.1, dtype=torch.float64), 0.0, 2.0, 0.0, 5.0)
    lines = deck.splitlines()
    assert sum(ln.startswith("Rg") for ln in lines) == 11
    assert sum(ln.startswith("Rcol") for ln in lines) == 2 * 4
    assert sum(ln.startswith("Rsense") for ln in lines) == 4
    assert not any(ln.startswith(("Rrow", "Rsource")) for ln in lines)  # ideal: merged, not 0 Ω
    assert "Vin_2 in2 0 DC 0.10000000000000001" in lines
    assert any(ln.startswith("B") for ln in crossbar_netlist(g, torch.ones(3), 1, 1, 1, 1, iv=SinhCell()).splitlines())
    br = crossbar_branches(3, 4, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert {k: int((br.kind == k).sum()) for k in set(br.kind)} == {
        "row": 9, "col": 8, "source": 3, "sense": 4, "access": 12, "cell": 12}


# ------------------------------------------------------------------------------------------------
# integration: Crossbar(solver="exact") and the quickstart under IR drop
# ------------------------------------------------------------------------------------------------
def test_crossbar_exact_matches_direct_solve():
    from circuits import Crossbar
    from device_models import IdealDevice

    r = dict(r_wire_row=2.0, r_wire_col=3.0, r_source=10.0, r_sense=20.0, r_access=1e3)
    xb = Crossbar(24, 20, IdealDevice(g_min=1e-6, g_max=1e-4), solver="exact", stack=(2,), dtype=torch.float64, **r)
    xb.program(rand_g(24, 20, seed=17, stack=(2,)))
    v = rand_v(5, 24)
    i, p = xb.mvm(v), xb.read_power(v)
    for a in range(2):
        ref = nodal_solve(xb.g[a], v, *r.values())
        assert rel(i[a], ref.i) <= 1e-9
        assert rel(p[a], (ref.source_i * v.numpy()).sum(-1)) <= 1e-9
    ideal = Crossbar(24, 20, IdealDevice(g_min=1e-6, g_max=1e-4), solver="ideal", stack=(2,), dtype=torch.float64, **r)
    ideal.program(xb.g)
    assert rel(ideal.mvm(v), v @ xb.g) <= 1e-12  # "ideal" ignores the wires ...
    assert rel(ideal.mvm(v), i) > 1e-3  # ... which matter here


def test_ir_drop_lowers_quickstart_accuracy_monotonically():
    import xbarsim

    rs = [0.0, 2.0, 5.0, 10.0]
    cfg = {
        # 100 µS on-state RRAM (REFERENCES §4.1/§4.2): r·G·n reaches 0.13 at 10 Ω on 128×128 arrays
        "device": {"model": "rram", "g_min": 1e-5, "g_max": 1e-4},
        "crossbar": {"rows": 128, "cols": 128, "solver": "exact"},
        "sweep_mode": "zip",
        "sweep": {"crossbar.r_wire_row": rs, "crossbar.r_wire_col": rs},
    }
    df = xbarsim.run(cfg, progress=False)
    acc = df.sort_values("crossbar.r_wire_row")["accuracy_hw"].tolist()
    assert all(a >= b for a, b in zip(acc, acc[1:])), acc
    assert acc[0] - acc[-1] > 0.05, acc  # measured 0.972 → 0.789

"""Exact IR drop on plastic arrays: only changed tiles are re-solved; the bounded-staleness mode keeps its bound."""

import pytest
import torch

from circuits import DAC, Crossbar, CrossbarSpec, MappedMatrix, transfer_matrix
from device_models import RRAM

F64 = torch.float64


def _pulses(shape, gen, frac=0.02):
    n = torch.randint(-3, 4, shape, generator=gen).to(F64)
    return n * (torch.rand(shape, generator=gen, dtype=F64) < frac)


def test_exact_mode_refresh_equals_fresh_solve_after_100_pulse_steps():
    """After 100 random pulse steps the incrementally refreshed transfer matrices equal a fresh exact solve
    of the same conductances to ≤ 1e-9 relative, and only the tiles whose cells changed were re-solved."""
    gen = torch.Generator().manual_seed(0)
    spec = CrossbarSpec(rows=24, cols=16, r_wire_row=1.0, r_wire_col=1.0, solver="exact", scheme="unipolar",
                        plastic_solve="exact")
    mm = MappedMatrix(torch.rand(30, 60, dtype=F64, generator=gen), RRAM(sigma_c2c=0.02), spec, DAC(mode="spikes", bits=None),
                      generator=gen, dtype=F64)
    xb = mm.crossbar
    x = (torch.rand(4, 60, generator=gen, dtype=F64) < 0.3).to(F64)
    mm.column_currents(x)  # solve once
    n_tiles = mm.n_arrays
    for step in range(100):
        n = torch.zeros(30, 60, dtype=F64)
        if step % 3:  # most steps touch one input tile only (a few rows), some none
            lo = 24 * (step % mm.n_tiles_in)
            n[:, lo : lo + 24] = _pulses((30, min(24, 60 - lo)), gen, 0.05)
        before, g_before = xb.n_refreshed, xb.g.clone()
        mm.pulse(n)
        mm.column_currents(x)
        changed = int((xb.g != g_before).flatten(-2).any(-1).sum())
        assert xb.n_refreshed - before == changed <= n_tiles
    t_fresh, y_fresh = transfer_matrix(xb.g, 1.0, 1.0)
    t, y = xb.transfer()
    assert float((t - t_fresh).abs().max()) <= 1e-9 * float(t_fresh.abs().max())
    assert float((y - y_fresh).abs().max()) <= 1e-9 * float(y_fresh.abs().max())


@pytest.mark.parametrize("nonnegative", [False, True])
def test_bounded_mode_stays_within_tolerance_of_per_step_exact_solves(nonnegative):
    """Bounded staleness (T0 + ΔG until the computed bound exceeds tol): at every step the
    column currents for random signed inputs are within tol × the tile's full-scale current of a fresh
    exact solve; the computed bound is never below the actual error; and fewer solves are needed (50 steps)."""
    gen = torch.Generator().manual_seed(1)
    tol = 1e-3
    stack = (2,)
    xb = Crossbar(32, 32, RRAM(sigma_c2c=0.01, levels=None), r_wire_row=0.3, r_wire_col=0.3, solver="exact",
                  stack=stack, generator=gen, dtype=F64, plastic_solve="bounded", plastic_tol=tol)
    xb.program(1e-6 + 9e-6 * torch.rand(*stack, 32, 32, generator=gen, dtype=F64))
    v_max = 0.2
    xb.transfer()
    steps, worst = 30, 0.0
    for _ in range(steps):
        xb.pulse(_pulses((*stack, 32, 32), gen, 0.01))
        u = torch.rand(*stack, 8, 32, generator=gen, dtype=F64)
        v = v_max * (u if nonnegative else 2 * u - 1)  # inputs ≥ 0 (spikes) halve the bound: κ = 1
        bound = xb.staleness_bound(nonnegative=nonnegative)  # before transfer() refreshes: the bound of T0 + ΔG
        i_b = xb.mvm(v)
        t_exact = transfer_matrix(xb.g, 0.3, 0.3)[0]
        i_e = v @ t_exact
        g0 = xb._t0[2]
        fs = v_max * g0.sum(-2).amax(-1)  # full-scale current per tile [A]
        err = (i_b - i_e).abs().amax((-2, -1)) / fs  # per tile, relative
        assert bool((err <= tol).all()), (err, bound)
        stale = (bound <= tol)  # tiles that were not refreshed: their bound holds the error
        assert bool((err[stale] <= bound[stale] * (1 + 1e-9) + 1e-15).all())
        worst = max(worst, float(err.max()))
    assert xb.n_refreshed < steps * stack[0]  # the mode saved solves
    assert worst > 0  # and was actually stale some of the time

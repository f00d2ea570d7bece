"""Read energy with wire resistance: ``read_energy: bounded`` (diagonal + low-rank split of Y) stays within its
certified bound of the exact quadratic form ``t·Σ v Y vᵀ`` (circuits.crossbar docstring)."""

import pytest
import torch

from circuits import ADC, DAC, Crossbar, CrossbarSpec, EnergyLedger, MappedMatrix
from circuits.crossbar import split_admittance
from circuits.solver import transfer_matrix
from device_models import RRAM, IdealDevice

F64 = torch.float64


def _exact(y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``Σ_n v_n Y v_nᵀ`` per leading index, float64."""
    return ((v.to(F64) @ y.to(F64)) * v.to(F64)).sum(-1)


@pytest.mark.parametrize("r_wire", [1.0, 10.0])
@pytest.mark.parametrize("tol", [1e-2, 1e-3])
def test_split_within_certified_bound_on_random_inputs_and_conductances(r_wire, tol):
    """Random conductances (1–100 µS and the ideal device's 0–5 µS), 1 Ω and 10 Ω wires: for 64 random signed
    inputs per array the computed form differs from ``v Y vᵀ`` by at most ``‖R‖₂‖v‖²`` (Rayleigh) and by at most
    ρ·E with ρ ≤ tol; float64 reads, so the only slack is float64 rounding (1e-12 relative)."""
    gen = torch.Generator().manual_seed(3)
    for g_lo, g_hi in ((1e-6, 100e-6), (0.0, 5e-6)):
        g = g_lo + (g_hi - g_lo) * torch.rand(2, 40, 40, generator=gen, dtype=F64)
        y = transfer_matrix(g, r_wire, r_wire)[1]
        sp = split_admittance(y, tol, F64, max_rank=40)
        assert sp is not None and bool((sp.rel_bound <= tol).all())
        v = 0.2 * (2 * torch.rand(2, 64, 40, generator=gen, dtype=F64) - 1)
        e_exact = _exact(y, v)  # [2, 64]
        e_split = (v * v * sp.d.unsqueeze(-2)).sum(-1) + ((v @ sp.vec) ** 2 * sp.lam.unsqueeze(-2)).sum(-1)
        err = (e_split - e_exact).abs()
        assert bool((err <= sp.r_norm.unsqueeze(-1) * (v * v).sum(-1) * (1 + 1e-9) + 1e-12 * e_exact).all())
        assert bool((err <= tol * e_exact).all())
        assert sp.rank < 40


def test_crossbar_read_power_bounded_and_cached_per_solve():
    """``Crossbar(read_energy="bounded")`` with 1 Ω wires: read power within ρ ≤ tol of the exact form of the same
    solve, ρ reported in ``read_energy_rel_bound``; float32 storage (the factors' rounding is inside the bound)."""
    gen = torch.Generator().manual_seed(4)
    kw = dict(r_wire_row=1.0, r_wire_col=1.0, solver="exact", stack=(3,), dtype=torch.float32)
    g = 5e-6 * torch.rand(3, 48, 32, generator=gen)
    xb_e = Crossbar(48, 32, IdealDevice(), generator=torch.Generator().manual_seed(0), **kw)
    xb_b = Crossbar(48, 32, IdealDevice(), generator=torch.Generator().manual_seed(0), read_energy="bounded",
                    read_energy_tol=1e-3, **kw)
    for xb in (xb_e, xb_b):
        xb.program(g)
    v = 0.2 * (torch.rand(3, 16, 48, generator=gen) < 0.3).float()
    p_e, p_b = xb_e.read_power(v).double(), xb_b.read_power(v).double()
    assert 0 < xb_b.read_energy_rel_bound <= 1e-3 and xb_e.read_energy_rel_bound == 0.0
    # the float32 reads add ~1e-6 relative rounding on both sides
    assert bool(((p_b - p_e).abs() <= (1e-3 + 1e-5) * p_e).all())
    sp = xb_b.admittance_split()
    assert xb_b.admittance_split() is sp  # cached for the same solve


@pytest.mark.parametrize("plastic_solve", ["exact", "bounded"])
def test_bounded_energy_follows_plastic_writes(plastic_solve):
    """After pulses change some tiles, the split is recomputed from the new Y and stays within its bound of
    ``v Y vᵀ`` of that Y (both plastic modes: re-solved tiles and ``Y0 + diag(ΔG)``)."""
    gen = torch.Generator().manual_seed(5)
    xb = Crossbar(32, 24, RRAM(sigma_c2c=0.02, levels=None), r_wire_row=1.0, r_wire_col=1.0, solver="exact",
                  stack=(2,), generator=gen, dtype=F64, plastic_solve=plastic_solve, read_energy="bounded",
                  read_energy_tol=1e-3)
    xb.program(1e-6 + 9e-6 * torch.rand(2, 32, 24, generator=gen, dtype=F64))
    v = 0.2 * (2 * torch.rand(2, 8, 32, generator=gen, dtype=F64) - 1)
    splits = []
    for _ in range(5):
        n = torch.randint(-3, 4, (2, 32, 24), generator=gen).to(F64)
        n = n * (torch.rand(2, 32, 24, generator=gen, dtype=F64) < 0.05)
        n[1] = 0  # the second array is not written
        xb.pulse(n)
        p = xb.read_power(v)
        y = xb._transfer[1]
        sp = xb.admittance_split()
        splits.append(sp)  # kept alive: distinct objects
        err = (p - _exact(y, v)).abs()
        assert bool((err <= sp.r_norm.unsqueeze(-1) * (v * v).sum(-1) * (1 + 1e-9)).all())
        assert bool((err <= 1e-3 * _exact(y, v)).all())
    assert all(a is not b for i, a in enumerate(splits) for b in splits[i + 1 :])  # a new split after every write


def _pair(spec_kw, dac, w, replicas=None):
    out = []
    for mode in ("exact", "bounded"):
        spec = CrossbarSpec(rows=40, cols=24, read_energy=mode, read_energy_tol=2e-3, **spec_kw)
        out.append(MappedMatrix(w, IdealDevice(), spec, dac, ADC(bits=None), generator=torch.Generator().manual_seed(7),
                                dtype=F64, replicas=replicas))
    return out


@pytest.mark.parametrize("counts", [False, True])
def test_mapped_ledger_bounded_within_bound_multi_tile_replicas(counts):
    """MappedMatrix, 2 replicas, 100 inputs on 40-row arrays (3 input tiles, the last partial), 30 outputs on
    2 output tiles; binary spikes or count-coded reads (4 pulses): the ledger's array energy in bounded mode is
    within the accumulated certified bound ``read_energy_error_J`` of the exact one, and within tol; the other
    components and the outputs are identical."""
    gen = torch.Generator().manual_seed(8)
    w = torch.randn(2, 30, 100, generator=gen, dtype=F64)
    dac = DAC(mode="spikes", bits=None, pulses=4 if counts else 1)
    mms = _pair(dict(r_wire_row=1.0, r_wire_col=1.0, solver="exact"), dac, w, replicas=2)
    if counts:
        x = torch.randint(-4, 5, (2, 16, 100), generator=gen).to(F64) / 4
    else:
        x = (torch.rand(2, 16, 100, generator=gen, dtype=F64) < 0.3).to(F64)
    recs, outs = [], []
    for mm in mms:
        led = EnergyLedger()
        outs.append(mm.matmul(x, led))
        recs.append({r["component"]: r["energy_J"] for r in led.records()})
    exact, bounded = recs
    mb = mms[1]
    assert 0 < mb.read_energy_rel_bound <= 2e-3 and mms[0].read_energy_error_J == 0.0
    assert abs(bounded["array"] - exact["array"]) <= mb.read_energy_error_J * (1 + 1e-9)
    assert abs(bounded["array"] - exact["array"]) <= 2e-3 * exact["array"]
    assert {k: v for k, v in exact.items() if k != "array"} == {k: v for k, v in bounded.items() if k != "array"}
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("spec_kw", [dict(solver="exact"), dict(solver="ideal", r_wire_row=1.0, r_wire_col=1.0)])
def test_ideal_wires_identical_to_exact(spec_kw):
    """Without a network solve (no wire resistance, or solver ideal) Y is never formed: bit-identical energies."""
    gen = torch.Generator().manual_seed(9)
    w = torch.randn(30, 100, generator=gen, dtype=F64)
    x = (torch.rand(16, 100, generator=gen, dtype=F64) < 0.3).to(F64)
    es = []
    for mm in _pair(spec_kw, DAC(mode="spikes", bits=None), w):
        led = EnergyLedger()
        mm.matmul(x, led)
        es.append([r["energy_J"] for r in led.records()])
    assert es[0] == es[1]


def test_no_admissible_rank_falls_back_to_exact():
    """Rows without conductance make λ_min(Y) = 0: no finite relative bound, so the exact form is used (identical)."""
    g = 5e-6 * torch.rand(24, 24, generator=torch.Generator().manual_seed(10), dtype=F64)
    g[3] = 0.0
    kw = dict(r_wire_row=1.0, r_wire_col=1.0, solver="exact", dtype=F64)
    xbs = [Crossbar(24, 24, IdealDevice(), generator=torch.Generator().manual_seed(0), read_energy=m, **kw)
           for m in ("exact", "bounded")]
    v = torch.rand(5, 24, generator=torch.Generator().manual_seed(11), dtype=F64)
    for xb in xbs:
        xb.program(g)
    assert xbs[1].admittance_split() is None
    assert torch.equal(xbs[0].read_power(v), xbs[1].read_power(v))


@pytest.mark.parametrize(("key", "value"), [("read_energy", "fast"), ("read_energy", None), ("read_energy_tol", 0.0),
                                            ("read_energy_tol", 1.0), ("read_energy_tol", -1e-3),
                                            ("read_energy_tol", float("nan")), ("read_energy_tol", True)])
def test_invalid_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"crossbar.{key}: got"):
        CrossbarSpec(**{key: value})
    with pytest.raises(ValueError, match=f"crossbar.{key}: got"):
        Crossbar(4, 4, IdealDevice(), **{key: value})


def test_default_is_exact_and_yaml_keys_exist():
    assert CrossbarSpec().read_energy == "exact" and CrossbarSpec().read_energy_tol == 1e-3
    from xbarsim.schema import yaml_fields

    keys = {k for k, *_ in yaml_fields(CrossbarSpec)}
    assert {"read_energy", "read_energy_tol"} <= keys


def test_rank_zero_split_needs_only_row_counts():
    """With K = 0 on every tile (a loose tol) the bounded energy of count-coded reads is linear in the pulses per
    row: a drive carrying only ``row_counts`` gives the same energy as the full reads, ``energy_needs_reads()``
    says so, and a drive without reads is refused where K > 0 or in exact mode."""
    from circuits.mapping import RowDrive

    gen = torch.Generator().manual_seed(12)
    w = torch.randn(30, 100, generator=gen, dtype=F64)
    k = torch.randint(0, 5, (16, 100), generator=gen).to(F64)
    dac = DAC(mode="spikes", bits=None, pulses=4)
    wires = dict(r_wire_row=1.0, r_wire_col=1.0, solver="exact")
    mm = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=40, cols=24, read_energy="bounded", read_energy_tol=0.5, **wires),
                      dac, generator=torch.Generator().manual_seed(7), dtype=F64)
    assert not mm.energy_needs_reads()
    full = RowDrive(k, [1.0], 0.25, 16, nonnegative=True)
    counts = RowDrive(None, [1.0], 0.25, 16, nonnegative=True, row_counts=k.sum(0))
    e_full, e_counts = float(mm._read_energy(full)), float(mm._read_energy(counts))
    assert e_counts == pytest.approx(e_full, rel=1e-12)
    tight = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=40, cols=24, read_energy="bounded", read_energy_tol=1e-4,
                                                        **wires), dac, generator=torch.Generator().manual_seed(7), dtype=F64)
    exact = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=40, cols=24, **wires), dac,
                         generator=torch.Generator().manual_seed(7), dtype=F64)
    ideal = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=40, cols=24), dac, generator=torch.Generator().manual_seed(7))
    assert tight.energy_needs_reads() and exact.energy_needs_reads() and not ideal.energy_needs_reads()
    for m in (tight, exact):
        with pytest.raises(ValueError, match="needs every read"):
            m._read_energy(counts)
    # and the K = 0 energy is within its certified bound of the exact one
    e_exact = float(exact._read_energy(full))
    assert abs(e_full - e_exact) <= mm.read_energy_rel_bound * e_exact * (1 + 1e-9)


def test_unreachable_tolerance_uses_the_exact_form():
    """A tolerance below the flat bulk of Y − D's spectrum would need K > rows/2: no split, and a bounded matrix
    charges exactly what an exact one does (bit-identical), with no error bound accumulated."""
    gen = torch.Generator().manual_seed(13)
    g = 1e-6 + 99e-6 * torch.rand(32, 32, generator=gen, dtype=F64)
    assert split_admittance(transfer_matrix(g, 1.0, 1.0)[1], 1e-9) is None
    w = torch.randn(30, 100, generator=gen, dtype=F64)
    x = (torch.rand(16, 100, generator=gen, dtype=F64) < 0.3).to(F64)
    es = []
    for mode in ("exact", "bounded"):
        spec = CrossbarSpec(rows=40, cols=24, r_wire_row=1.0, r_wire_col=1.0, solver="exact", read_energy=mode,
                            read_energy_tol=1e-9)
        mm = MappedMatrix(w, IdealDevice(), spec, DAC(mode="spikes", bits=None), generator=torch.Generator().manual_seed(7),
                          dtype=F64)
        led = EnergyLedger()
        mm.matmul(x, led)
        es.append([r["energy_J"] for r in led.records()])
        assert mm.read_energy_error_J == 0.0 and mm.read_energy_rel_bound == 0.0
    assert es[0] == es[1]

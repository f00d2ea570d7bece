"""RRAM: NeuroSim NL→A mapping, nonlinear pulse curves, variation, stuck-at faults, sinh I–V, energy."""

import math

import pytest
import torch

from device_models import RRAM, DeviceParameterError, load_preset, make_device, nl_to_a
from device_models.nonlinearity import nl_to_a_tensor

# REFERENCES §2.1: NeuroSim getParamA values (normalised a) at published NL labels
PUBLISHED_A = {
    2.4: 0.49918,
    -4.88: 0.20030,
    0.04: 31.567,
    -0.63: 1.99733,
    1.94: 0.62925,
    -0.61: 2.06327,
    0.5: 2.51988,
    3.68: 0.30064,
    -6.76: 0.10025,
    1.85: 0.66194,
    -1.79: 0.68550,
    1.0: 1.25165,
}


@pytest.mark.parametrize("nl, a_pub", sorted(PUBLISHED_A.items()))
def test_nl_to_a_matches_published_table(nl, a_pub):
    assert abs(nl_to_a(nl) - a_pub) / a_pub < 1e-4  # the table has 5 significant digits


def test_nl_to_a_vectorised_agrees_and_linear_limit():
    nls = torch.tensor(list(PUBLISHED_A), dtype=torch.float64)
    got = nl_to_a_tensor(nls)
    ref = torch.tensor([nl_to_a(float(x)) for x in nls], dtype=torch.float64)
    assert torch.allclose(got, ref, rtol=1e-10)
    assert nl_to_a(0.0) >= 1e6  # NL = 0: linear


def test_presets_carry_published_a():
    d = load_preset("rram_ag_asi")
    assert d.a_ltp == pytest.approx(0.49918, rel=1e-4) and d.a_ltd == pytest.approx(0.20030, rel=1e-4)
    assert d.a_ltp * d.levels_ltp == pytest.approx(48.4, abs=0.05)  # A_p in pulses (REFERENCES table)


@pytest.mark.parametrize("preset", ["rram_ag_asi", "rram_taox_hfox", "rram_alox_hfo2", "rram_epiram"])
def test_single_pulses_trace_closed_form_curves(preset, gen):
    dev = load_preset(preset, sigma_c2c=0.0)
    # LTP from G_min
    s = dev.new_state((2,), gen, torch.float64)
    got = [s.g[0].item()]
    for _ in range(dev.levels_ltp + 5):
        s, _ = dev.pulse(s, torch.ones(2), gen)
        got.append(s.g[0].item())
    ref = dev.g_ltp_curve(torch.arange(dev.levels_ltp + 6, dtype=torch.float64))
    assert max(abs(a - b) for a, b in zip(got, ref.tolist())) < 1e-12 * dev.g_max
    assert got[dev.levels_ltp] == pytest.approx(dev.g_max, rel=1e-12)  # P_max pulses reach G_max
    # LTD from G_max
    s = s.replace(g=torch.full((2,), dev.g_max, dtype=torch.float64))
    got = [s.g[0].item()]
    for _ in range(dev.levels_ltd + 5):
        s, _ = dev.pulse(s, -torch.ones(2), gen)
        got.append(s.g[0].item())
    ref = dev.g_ltd_curve(torch.arange(dev.levels_ltd + 6, dtype=torch.float64))
    assert max(abs(a - b) for a, b in zip(got, ref.tolist())) < 1e-12 * dev.g_max
    assert got[dev.levels_ltd] == pytest.approx(dev.g_min, rel=1e-9)


def test_n_pulses_at_once_equal_n_single_pulses_with_energy(gen):
    dev = load_preset("rram_ag_asi", sigma_c2c=0.0)
    n_cells = 64
    s0 = dev.new_state((n_cells,), gen, torch.float64)
    g_start = dev.g_min + (dev.g_max - dev.g_min) * torch.rand(n_cells, generator=gen, dtype=torch.float64)
    s0 = s0.replace(g=g_start)
    n = torch.randint(-120, 121, (n_cells,), generator=gen).to(torch.float64)
    batch, e_batch = dev.pulse(s0, n, gen)
    s, e_sum = s0, 0.0
    for k in range(int(n.abs().max())):
        step = torch.sign(n) * (n.abs() > k)
        s, e = dev.pulse(s, step, gen)
        e_sum += e.item()
    assert torch.allclose(batch.g, s.g, rtol=1e-10, atol=1e-12 * dev.g_max)
    assert e_batch.item() == pytest.approx(e_sum, rel=1e-9)


def test_write_energy_is_g_v2_t_per_pulse(gen):
    dev = RRAM(sigma_c2c=0.0)
    s = dev.new_state((3,), gen, torch.float64).replace(g=torch.tensor([2e-6, 5e-6, 8e-6], dtype=torch.float64))
    _, e = dev.pulse(s, torch.tensor([1.0, 0.0, -1.0]), gen)
    expected = 2e-6 * 1.6**2 * 50e-9 + 8e-6 * 1.6**2 * 50e-9
    assert e.item() == pytest.approx(expected, rel=1e-12)
    assert e.dim() == 0
    # at G_max the TaOx/HfOx pulse costs ~1.3 pJ (REFERENCES §4.4)
    s = s.replace(g=torch.full((3,), dev.g_max, dtype=torch.float64))
    _, e = dev.pulse(s, torch.tensor([-1.0, 0.0, 0.0]), gen)
    assert e.item() == pytest.approx(1.28e-12, rel=1e-9)


def test_cycle_to_cycle_sigma_grows_as_sqrt_n(gen):
    n_cells, n = 40_000, 4
    dev = RRAM(sigma_c2c=0.01)
    ref = RRAM(sigma_c2c=0.0)
    s = dev.new_state((n_cells,), gen, torch.float64).replace(g=torch.full((n_cells,), 5e-6, dtype=torch.float64))
    noisy, _ = dev.pulse(s, torch.full((n_cells,), float(n)), gen)
    clean, _ = ref.pulse(s, torch.full((n_cells,), float(n)), gen)
    resid = noisy.g - clean.g
    expected = 0.01 * (dev.g_max - dev.g_min) * math.sqrt(n)
    assert abs(resid.std().item() - expected) < 5 * expected / math.sqrt(2 * (n_cells - 1))


def test_d2d_nl_spread_gives_per_cell_a(gen):
    dev = RRAM(sigma_d2d_nl=0.5, nl_ltp=2.0)
    s = dev.new_state((1000,), gen)
    a = s.d2d["a_ltp"]
    assert a.std().item() > 0
    # cells' a are the NL→A map of some NL: monotone, so the median cell maps from ≈ NL = 2
    assert a.median().item() == pytest.approx(nl_to_a(2.0), rel=0.05)


def test_d2d_window_spread_bounds_pulses_and_program(gen):
    dev = RRAM(sigma_d2d_gmax_rel=0.2, sigma_d2d_gmin_rel=0.2, sigma_c2c=0.0, sigma_prog=0.0)
    s = dev.new_state((5000,), gen)
    gmin, gmax = s.d2d["g_min"], s.d2d["g_max"]
    assert torch.all(gmax > gmin) and torch.equal(s.g, gmin)
    s, _ = dev.pulse(s, torch.full((5000,), 1000.0), gen)
    assert torch.allclose(s.g, gmax)
    s = dev.program(s, torch.full((5000,), dev.g_max), gen)
    assert torch.all(s.g <= gmax + 1e-12)


@pytest.mark.parametrize("p_off, p_on", [(0.0175, 0.0904), (0.3, 0.1)])
def test_stuck_at_fractions_and_frozen_cells(p_off, p_on, gen):
    n = 100_000
    dev = RRAM(p_stuck_off=p_off, p_stuck_on=p_on, sigma_prog=0.0)
    s = dev.new_state((n,), gen)
    stuck = s.d2d["stuck"]
    for code, p in ((1, p_off), (2, p_on)):
        frac = (stuck == code).double().mean().item()
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n)
    s = dev.program(s, torch.full((n,), 5e-6), gen)
    g = dev.read(s, 0.0, gen)
    assert torch.all(g[stuck == 1] == dev.g_min) and torch.all(g[stuck == 2] == dev.g_max)
    s2, _ = dev.pulse(s, torch.full((n,), 10.0), gen)
    assert torch.all(s2.g[stuck == 1] == dev.g_min)


def test_sinh_iv_and_derivative():
    dev = RRAM(iv="sinh", iv_sinh_b=2.29)
    assert dev.nonlinear_iv and not RRAM().nonlinear_iv
    g = torch.tensor([1e-6, 5e-6, 1e-5], dtype=torch.float64)
    v = torch.tensor([1e-4, 0.2, -0.5], dtype=torch.float64)
    i = dev.current(g, v)
    assert torch.allclose(i, g / 2.29 * torch.sinh(2.29 * v), rtol=1e-14)
    assert i[0].item() == pytest.approx(g[0].item() * 1e-4, rel=1e-8)  # small-signal conductance is g
    h = 1e-6
    fd = (dev.current(g, v + h) - dev.current(g, v - h)) / (2 * h)
    assert torch.allclose(dev.current_derivative(g, v), fd, rtol=1e-8)
    lin = RRAM()
    assert torch.equal(lin.current(g, v), g * v) and torch.equal(lin.current_derivative(g, v), g)


def test_program_quantises_and_reads_back(gen):
    dev = RRAM(sigma_prog=0.0, levels=4)
    s = dev.new_state((3,), gen)
    s = dev.program(s, torch.tensor([1e-6, 4.2e-6, 12e-6]), gen)
    assert torch.allclose(dev.read(s, 1e6, gen), torch.tensor([1e-6, 4e-6, 10e-6]))


def test_rram_bad_parameters_name_the_key():
    with pytest.raises(DeviceParameterError, match="g_max"):
        RRAM(g_max=0.5e-6)
    with pytest.raises(DeviceParameterError, match="nl_ltp"):
        RRAM(nl_ltp=20.0)
    with pytest.raises(DeviceParameterError, match="iv"):
        RRAM(iv="cubic")
    with pytest.raises(DeviceParameterError, match="sigma_c2c"):
        RRAM(sigma_c2c=-0.01)
    with pytest.raises(DeviceParameterError, match="levels_ltp"):
        RRAM(levels_ltp=0)
    with pytest.raises(DeviceParameterError, match="t_write_s"):
        RRAM(t_write_s="50ns")
    with pytest.raises(DeviceParameterError, match=r"bogus.*allowed: .*nl_ltp"):
        make_device("rram", bogus=1)

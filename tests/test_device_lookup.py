"""LookupDevice: measured G-vs-pulse curves from CSV, inverted and interpolated per cell."""

import math
from pathlib import Path

import pytest
import torch

from device_models import RRAM, DeviceParameterError, LookupDevice, make_device
from device_models.lookup import read_curve_csv

CSV = Path(__file__).resolve().parents[1] / "examples" / "lookup_taox.csv"


def test_reproduces_csv_curves_with_zero_noise(gen):
    dev = LookupDevice(csv=str(CSV))
    up, down = read_curve_csv(str(CSV))
    assert len(up) == 129 and len(down) == 129
    s = dev.new_state((3,), gen, torch.float64)
    got = [s.g[0].item()]
    for _ in range(len(up) + 3):
        s, _ = dev.pulse(s, torch.ones(3), gen)
        got.append(s.g[0].item())
    assert got[: len(up)] == pytest.approx(up, rel=1e-14) and got[-1] == up[-1]
    got = []
    for _ in range(len(down) - 1):
        s, _ = dev.pulse(s, -torch.ones(3), gen)
        got.append(s.g[0].item())
    assert got == pytest.approx(down[1:], rel=1e-14)


def test_matches_the_neurosim_model_it_was_generated_from(gen):
    """Mixed up/down sequences: equal to RRAM() up to linear-interpolation error (≪ 1e-5 of the window)."""
    lut = LookupDevice(csv=str(CSV))
    ref = RRAM(sigma_c2c=0.0)
    n_cells = 256
    s_l = lut.new_state((n_cells,), gen, torch.float64)
    s_r = ref.new_state((n_cells,), gen, torch.float64)
    e_l = e_r = 0.0
    for _ in range(6):
        n = torch.randint(-40, 41, (n_cells,), generator=gen).to(torch.float64)
        s_l, el = lut.pulse(s_l, n, gen)
        s_r, er = ref.pulse(s_r, n, gen)
        e_l, e_r = e_l + el.item(), e_r + er.item()
    window = ref.g_max - ref.g_min
    assert (s_l.g - s_r.g).abs().max().item() < 1e-5 * window
    assert e_l == pytest.approx(e_r, rel=1e-5)


def test_long_format_and_inline_curves_agree(tmp_path, gen):
    up, down = read_curve_csv(str(CSV))
    long_csv = tmp_path / "long.csv"
    rows = ["# provenance: derived from lookup_taox.csv", "branch,pulse,g_S"]
    rows += [f"down,{k},{g!r}" for k, g in enumerate(down)] + [f"up,{k},{g!r}" for k, g in enumerate(up)]
    long_csv.write_text("\n".join(rows) + "\n")
    a = LookupDevice(csv=str(long_csv))
    b = LookupDevice(g_up=up, g_down=down)
    c = make_device("lookup", csv=str(CSV))
    assert a.g_up == b.g_up == c.g_up and a.g_down == c.g_down
    assert (a.g_min, a.g_max) == pytest.approx((1e-6, 10e-6))


def test_c2c_noise_and_energy(gen):
    n_cells, n = 20_000, 9
    dev = LookupDevice(csv=str(CSV), sigma_c2c=0.01)
    s = dev.new_state((n_cells,), gen, torch.float64).replace(g=torch.full((n_cells,), 5e-6, dtype=torch.float64))
    clean, e = LookupDevice(csv=str(CSV)).pulse(s, torch.full((n_cells,), float(n)), gen)
    noisy, _ = dev.pulse(s, torch.full((n_cells,), float(n)), gen)
    expected = 0.01 * 9e-6 * math.sqrt(n)
    assert abs((noisy.g - clean.g).std().item() - expected) < 5 * expected / math.sqrt(2 * (n_cells - 1))
    # single pulse energy = G·V²·T at the starting conductance
    one = dev.new_state((1,), gen, torch.float64).replace(g=torch.full((1,), 5e-6, dtype=torch.float64))
    _, e1 = dev.pulse(one, torch.ones(1), gen)
    assert e1.item() == pytest.approx(5e-6 * 1.6**2 * 50e-9, rel=1e-12)


def test_bad_curves_raise():
    with pytest.raises(DeviceParameterError, match="g_up"):
        LookupDevice(g_up=[1e-6, 3e-6, 2e-6], g_down=[3e-6, 1e-6])
    with pytest.raises(DeviceParameterError, match="csv"):
        LookupDevice()
    with pytest.raises(DeviceParameterError, match="columns"):
        read_curve_csv("a,b\n1,2\n")
    with pytest.raises(DeviceParameterError, match="gaps"):
        read_curve_csv("pulse,g_up_S,g_down_S\n0,1e-6,2e-6\n2,2e-6,1e-6\n")

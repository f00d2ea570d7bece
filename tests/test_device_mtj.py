"""STT/SOT MTJ: switching probability (Néel–Brown + precessional), inverse, energy, disturb, retention.

Monte-Carlo switching fractions are checked within 4 binomial standard deviations,
sqrt(P(1−P)/N), of the analytic probability.
"""

import math

import pytest
import torch

from device_models import SOTMTJ, STTMTJ, DeviceParameterError

N = 100_000


def _nb(i_over_ic0, t, delta=40.0, tau0=1e-9):
    return -math.expm1(-t / (tau0 * math.exp(delta * max(1.0 - i_over_ic0, 0.0))))


def _butler(i_over_ic0, t, tau_d, delta=40.0):
    return math.exp(-(math.pi**2 / 4) * delta * math.exp(-2 * (i_over_ic0 - 1) * t / tau_d))


def test_worked_numbers_from_references():
    dev = STTMTJ()
    ic0 = dev.i_c0
    assert dev.switching_probability(0.8 * ic0, 10e-9) == pytest.approx(3.3e-3, rel=0.02)
    assert dev.switching_probability(0.9 * ic0, 10e-9) == pytest.approx(0.17, rel=0.02)
    dev60 = STTMTJ(delta=60.0)
    assert dev60.switching_probability(0.8 * ic0, 10e-9) == pytest.approx(6e-5, rel=0.05)
    assert dev60.switching_probability(0.9 * ic0, 10e-9) == pytest.approx(0.024, rel=0.05)


@pytest.mark.parametrize(
    "x, t, regime",
    [(0.8, 10e-9, "thermal"), (0.9, 10e-9, "thermal"), (7.0, 2e-9, "precessional")],
)
def test_switching_fraction_matches_analytic(x, t, regime, gen):
    dev = STTMTJ(sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.0)
    p_ref = _nb(x, t) if regime == "thermal" else max(_nb(x, t), _butler(x, t, dev.tau_d))
    if regime == "precessional":
        assert _butler(x, t, dev.tau_d) > _nb(x, t)  # the point really is in the precessional branch
    assert dev.switching_probability(x * dev.i_c0, t) == pytest.approx(p_ref, rel=1e-12)
    s = dev.new_state((N,), gen)  # all AP
    s2, _ = dev.switch(s, x * dev.i_c0, t, gen)
    frac = dev.is_parallel(s2).double().mean().item()
    assert abs(frac - p_ref) < 4 * math.sqrt(p_ref * (1 - p_ref) / N), (frac, p_ref)


def test_sot_sigmoid_and_monte_carlo(gen):
    dev = SOTMTJ(sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.0)
    assert dev.switching_probability(dev.i_c0, 1e-9) == pytest.approx(1 - math.exp(-1), rel=1e-12)
    x, t = 1.02, 1e-9  # extrapolated Néel–Brown above Ic0: τ = τ0·e^(−Δ·0.02)
    p_ref = -math.expm1(-t / (1e-9 * math.exp(-40 * 0.02)))
    assert dev.switching_probability(x * dev.i_c0, t) == pytest.approx(p_ref, rel=1e-12)
    s = dev.new_state((N,), gen)
    s2, _ = dev.switch(s, x * dev.i_c0, t, gen)
    frac = dev.is_parallel(s2).double().mean().item()
    assert abs(frac - p_ref) < 4 * math.sqrt(p_ref * (1 - p_ref) / N)


@pytest.mark.parametrize("dev", [STTMTJ(), STTMTJ(nb_exponent=2.0), SOTMTJ()], ids=["stt", "stt_beta2", "sot"])
@pytest.mark.parametrize("t", [1e-9, 10e-9, 100e-9])
def test_probability_continuous_and_monotone_across_ic0(dev, t):
    i = torch.linspace(0.0, 4.0, 40_001, dtype=torch.float64) * dev.i_c0
    p = dev.switching_probability(i, t)
    assert torch.all(p.diff() >= -1e-15)
    assert float(p.diff().max()) < 0.05  # no jump anywhere on a 1e-4·Ic0 grid
    eps = 1e-9 * dev.i_c0
    assert dev.switching_probability(dev.i_c0 + eps, t) == pytest.approx(dev.switching_probability(dev.i_c0 - eps, t), abs=1e-6)


@pytest.mark.parametrize("dev", [STTMTJ(), STTMTJ(delta=60.0, nb_exponent=1.5), SOTMTJ()], ids=["stt", "stt60", "sot"])
@pytest.mark.parametrize("t", [1e-9, 10e-9])
def test_inverse_round_trips(dev, t):
    p = torch.tensor([1e-9, 1e-4, 0.01, 0.3, 0.5, 0.9, 0.99, 0.9999], dtype=torch.float64)
    i = dev.current_for_probability(p, t)
    back = dev.switching_probability(i, t)
    ok = i > 0  # p below P(I=0) maps to zero current
    assert torch.all(ok)
    assert torch.allclose(back, p, rtol=1e-8)
    assert torch.all(i.diff() >= 0)
    assert dev.current_for_probability(0.0, t) == 0.0 and math.isinf(dev.current_for_probability(1.0, t))


def test_inverse_beta1_closed_form_of_references():
    dev = STTMTJ()
    p, t = 0.5, 10e-9
    expected = dev.i_c0 * (1 - (1 / dev.delta) * math.log(t / (dev.tau0 * -math.log(1 - p))))
    assert dev.current_for_probability(p, t) == pytest.approx(expected, rel=1e-12)


def test_write_energy_stt_is_i2_r_state_t(gen):
    dev = STTMTJ(sigma_d2d_r_rel=0.0)
    s = dev.new_state((4,), gen)
    s = dev.program(s, torch.tensor([dev.g_p, dev.g_ap, dev.g_p, dev.g_ap]), gen)
    i = torch.tensor([60e-6, 60e-6, -80e-6, 0.0])
    _, e = dev.switch(s, i, 5e-9, gen)
    r_p, r_ap = dev.r_p, dev.r_p * (1 + dev.tmr)
    expected = (60e-6**2 * r_p + 60e-6**2 * r_ap + 80e-6**2 * r_p) * 5e-9
    assert e.item() == pytest.approx(expected, rel=1e-6)
    assert e.dim() == 0
    # REFERENCES §3.5: 100 µA in 5 kΩ for 10 ns = 0.5 pJ
    assert (100e-6) ** 2 * 5e3 * 10e-9 == pytest.approx(0.5e-12)


def test_write_energy_sot_is_i2_rhm_t(gen):
    dev = SOTMTJ()
    s = dev.new_state((10,), gen)
    _, e = dev.switch(s, 200e-6, 1e-9, gen)
    assert e.item() == pytest.approx(10 * (200e-6) ** 2 * 1e3 * 1e-9, rel=1e-6)  # 40 fJ per cell


def test_pulse_counts_geometric_and_energy(gen):
    dev = STTMTJ(sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.0, i_write=0.9 * 49e-6)
    p = dev.switching_probability(dev.i_write, dev.t_write_s)
    s = dev.new_state((N,), gen)
    s3, _ = dev.pulse(s, torch.full((N,), 3.0), gen)
    frac = dev.is_parallel(s3).double().mean().item()
    p3 = 1 - (1 - p) ** 3
    assert abs(frac - p3) < 4 * math.sqrt(p3 * (1 - p3) / N)
    # deterministic write (P ≈ 1): first pulse at R_AP, the rest at R_P
    dev1 = STTMTJ(sigma_d2d_r_rel=0.0, sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0)
    s = dev1.new_state((1,), gen)
    s2, e = dev1.pulse(s, torch.tensor([3.0]), gen)
    assert dev1.is_parallel(s2).all()
    i2t = dev1.i_write**2 * dev1.t_write_s
    assert e.item() == pytest.approx(i2t * (dev1.r_p * (1 + dev1.tmr) + 2 * dev1.r_p), rel=1e-6)


def test_program_snaps_and_read_uses_bias_tmr(gen):
    dev = STTMTJ(sigma_d2d_r_rel=0.0)
    s = dev.new_state((4,), gen)
    mid = 0.5 * (dev.g_p + dev.g_ap)
    s = dev.program(s, torch.tensor([0.0, 0.99 * mid, 1.01 * mid, 1.0]), gen)
    assert dev.is_parallel(s).tolist() == [False, False, True, True]
    g = dev.read(s, 0.0, gen)
    g_ap_bias = dev.g_p / (1 + dev.tmr / (1 + (dev.v_read / dev.tmr_v_half) ** 2))
    assert g[0].item() == pytest.approx(g_ap_bias, rel=1e-6) and g[3].item() == pytest.approx(dev.g_p, rel=1e-6)


def test_read_disturb_probability_and_statistics(gen):
    dev = STTMTJ(sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.0)
    dev.v_read = 0.2 * dev.i_c0 * dev.r_p  # I_read = 0.2·Ic0 through a P cell
    s = dev.program(dev.new_state((2,), gen), torch.tensor([1.0, 0.0]), gen)
    p = dev.read_disturb_probability(s)
    expected = -math.expm1(-10e-9 / (1e-9 * math.exp(40 * 0.8)))  # ≈ 1.3e-13 (REFERENCES §3.2)
    assert p[0].item() == pytest.approx(expected, rel=1e-6) and p[1].item() == 0.0
    assert 1e-13 < expected < 2e-13
    # low-Δ device: disturb is observable; n reads flip 1 − (1 − p)^n of the P cells
    low = STTMTJ(delta=8.0, sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.0, v_read=0.3)
    s = low.program(low.new_state((N,), gen), torch.full((N,), 1.0), gen)
    p1 = low.read_disturb_probability(s)[0].item()
    pn = 1 - (1 - p1) ** 10
    s10 = low.disturb(s, 10, gen)
    frac = (~low.is_parallel(s10)).double().mean().item()
    assert abs(frac - pn) < 4 * math.sqrt(pn * (1 - pn) / N)
    assert not SOTMTJ().read_disturb_probability(s).any()


def test_retention_telegraph_fraction(gen):
    dev = STTMTJ(delta=10.0, sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.0)
    s = dev.program(dev.new_state((N,), gen), torch.full((N,), 1.0), gen)
    t = dev.retention_time()
    g = dev.read(s, t, gen)
    frac = (g < dev.g_p * 0.99).double().mean().item()
    expected = 0.5 * (1 - math.exp(-2.0))
    assert abs(frac - expected) < 4 * math.sqrt(expected * (1 - expected) / N)
    assert torch.all(dev.read(s, 0.0, gen) == dev.g_p)


def test_d2d_spreads(gen):
    dev = STTMTJ(sigma_d2d_delta_rel=0.1, sigma_d2d_ic0_rel=0.05)
    s = dev.new_state((N,), gen)
    for key, nominal, rel in (("delta", 40.0, 0.1), ("i_c0", 49e-6, 0.05)):
        x = s.d2d[key] / nominal - 1
        assert abs(x.std().item() - rel) < 5 * rel / math.sqrt(2 * (N - 1))


def test_mtj_bad_parameters():
    with pytest.raises(DeviceParameterError, match="delta"):
        STTMTJ(delta=-1.0)
    with pytest.raises(DeviceParameterError, match="i_c0"):
        STTMTJ(i_c0=0.0)
    with pytest.raises(DeviceParameterError, match="above_ic0"):
        STTMTJ(above_ic0="magic")
    with pytest.raises(DeviceParameterError, match="r_hm"):
        SOTMTJ(r_hm=0.0)
    with pytest.raises(ValueError, match="p"):
        STTMTJ().current_for_probability(1.5, 1e-9)

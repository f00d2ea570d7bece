"""PCM: IBM statistical inference model (aihwkit PCMLikeNoiseModel equations) and Nandakumar pulses.

Monte-Carlo tolerances are derived from the sampling error of the estimator: the standard
error of a sample standard deviation is σ/sqrt(2(N−1)); of a sample mean σ/sqrt(N); a sample
fraction p has binomial σ = sqrt(p(1−p)/N). Checks allow 5 such errors (4 for fractions).
"""

import math

import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from device_models import PCM

N = 100_000
T_1H = 3600.0


def _programmed(dev, g_target, gen, n=N):
    state = dev.new_state((n,), gen, torch.float64)
    return dev.program(state, torch.full((n,), g_target, dtype=torch.float64), gen)


def _folded_normal_median(mu, sigma):
    """Median of |N(mu, sigma)|: F(m) = Φ((m−μ)/σ) − Φ((−m−μ)/σ) = 1/2."""
    return brentq(lambda m: norm.cdf((m - mu) / sigma) - norm.cdf((-m - mu) / sigma) - 0.5, 0.0, mu + 10 * sigma)


@pytest.mark.parametrize("g_t", [0.25, 0.5, 1.0])
def test_programming_sigma_matches_polynomial(g_t, gen):
    dev = PCM()
    state = _programmed(dev, g_t * dev.g_max, gen)
    expected = (0.26348 + 1.9650 * g_t - 1.1731 * g_t**2) * 1e-6  # aihwkit polynomial [µS] at g_max = 25 µS
    assert float(dev.sigma_prog(g_t * dev.g_max)) == pytest.approx(expected, rel=1e-12)
    sd = state.g.std().item()
    se = expected / math.sqrt(2 * (N - 1))
    assert abs(sd - expected) < 5 * se, (sd, expected, se)
    assert abs(state.g.mean().item() - g_t * dev.g_max) < 5 * expected / math.sqrt(N)


def test_programming_sigma_rescales_with_g_max(gen):
    dev = PCM(g_max=50e-6)
    state = _programmed(dev, 0.5 * dev.g_max, gen)
    expected = (0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25) * 1e-6 * 2.0  # polynomial × g_max/25 µS
    assert abs(state.g.std().item() - expected) < 5 * expected / math.sqrt(2 * (N - 1))


def test_programming_knob_and_clamp(gen):
    state = _programmed(PCM(prog_noise_scale=0.0), 10e-6, gen, n=100)
    assert torch.all(state.g == 10e-6)
    state = _programmed(PCM(), 0.0, gen, n=10_000)
    assert state.g.min().item() >= 0.0  # clamped at 0 (half the draws would be negative)


@pytest.mark.parametrize("g_t", [0.05, 0.25, 1.0])
def test_drift_median_at_1h_matches_closed_form(g_t, gen):
    dev = PCM(prog_noise_scale=0.0, read_noise_scale=0.0)
    state = _programmed(dev, g_t * dev.g_max, gen)
    ratio = dev.read(state, T_1H, gen) / (g_t * dev.g_max)
    mu = min(max(-0.0155 * math.log(g_t) + 0.0244, 0.049), 0.1)
    sig = min(max(-0.0125 * math.log(g_t) - 0.0059, 0.008), 0.045)
    nu_med = _folded_normal_median(mu, sig)
    ratio_med = ((T_1H + 20.0) / 20.0) ** (-nu_med)  # G/G0 is monotone in ν: median maps to median
    # the closed-form median must split the Monte-Carlo sample in half within binomial error
    below = (ratio <= ratio_med).double().mean().item()
    assert abs(below - 0.5) < 4 * math.sqrt(0.25 / N), (below, ratio_med, ratio.median().item())
    if g_t == 1.0:
        assert ratio_med == pytest.approx(0.775, abs=0.002)  # REFERENCES §1.1: "about 0.77 after 1 h"


def test_drift_exponent_drawn_at_program_and_scaled(gen):
    dev = PCM(drift_scale=0.5)
    state = _programmed(dev, 20e-6, gen)
    nu = state.d2d["nu"]
    assert torch.all(nu >= 0)
    # high-G: μ_ν clipped to 0.049, σ_ν to 0.008, times drift_scale 0.5
    assert nu.mean().item() == pytest.approx(0.5 * 0.049, abs=5 * 0.5 * 0.008 / math.sqrt(N))
    # reprogramming draws a new exponent (it belongs with the programmed state)
    state2 = dev.program(state, torch.full((N,), 20e-6, dtype=torch.float64), gen)
    assert not torch.equal(state2.d2d["nu"], nu)
    # t = 0: no drift
    dev0 = PCM(prog_noise_scale=0.0, read_noise_scale=0.0)
    s0 = _programmed(dev0, 20e-6, gen, n=10)
    assert torch.equal(dev0.read(s0, 0.0, gen), s0.g)


@pytest.mark.parametrize("g_t, published", [(1.0, 0.042), (0.5, 0.066), (0.1, 0.19)])
def test_one_over_f_read_noise_at_1h(g_t, published, gen):
    dev = PCM(prog_noise_scale=0.0, drift_scale=0.0)
    state = _programmed(dev, g_t * dev.g_max, gen)
    rel = dev.read(state, T_1H, gen) / (g_t * dev.g_max) - 1.0
    q = min(0.0088 / g_t**0.65, 0.2)
    expected = q * math.sqrt(math.log((T_1H + 20.0 + 250e-9) / (2 * 250e-9)))
    assert float(dev.read_noise_sigma_rel(g_t * dev.g_max, T_1H)) == pytest.approx(expected, rel=1e-12)
    assert abs(rel.std().item() - expected) < 5 * expected / math.sqrt(2 * (N - 1))
    assert expected == pytest.approx(published, abs=0.005)  # REFERENCES §1.1 quoted values


def test_read_noise_fresh_per_call_and_deterministic():
    dev = PCM()
    g1 = torch.Generator().manual_seed(7)
    s = _programmed(dev, 10e-6, g1, n=1000)
    r1, r2 = dev.read(s, 100.0, g1), dev.read(s, 100.0, g1)
    assert not torch.equal(r1, r2)  # a new 1/f sample every read call
    g2 = torch.Generator().manual_seed(7)
    s2 = _programmed(dev, 10e-6, g2, n=1000)
    assert torch.equal(s.g, s2.g)
    assert torch.equal(dev.read(s2, 100.0, g2), r1)


def test_read_noise_rel_is_short_term_sigma():
    assert PCM().read_noise_rel() == 0.0
    assert PCM(sigma_read=0.02).read_noise_rel() == 0.02


def test_set_pulses_follow_mean_recursion_and_batch_equals_singles(gen):
    dev = PCM(g_max=20e-6, pulse_noise_scale=0.0)  # s = 1: the published µS coefficients
    state = dev.new_state((1,), gen, torch.float64)
    state = state.replace(g=torch.full((1,), 0.1e-6, dtype=torch.float64))
    g_inf = 0.892 / 0.084  # µS: mean step vanishes here
    traj = []
    s = state
    for _ in range(30):
        s, e = dev.pulse(s, torch.ones(1), gen)
        traj.append(s.g.item() * 1e6)
        assert e.item() == pytest.approx(dev.e_set)
    closed = [g_inf - (g_inf - 0.1) * (1 - 0.084) ** (k + 1) for k in range(30)]
    assert max(abs(a - b) for a, b in zip(traj, closed)) < 1e-9
    s30, e30 = dev.pulse(state, torch.full((1,), 30.0), gen)
    assert s30.g.item() * 1e6 == pytest.approx(traj[-1], abs=1e-12)
    assert e30.item() == pytest.approx(30 * dev.e_set)


def test_set_step_statistics_and_reset(gen):
    dev = PCM(g_max=20e-6)
    state = dev.new_state((N,), gen, torch.float64).replace(g=torch.full((N,), 5e-6, dtype=torch.float64))
    s1, _ = dev.pulse(state, torch.ones(N), gen)
    dg = (s1.g - 5e-6) * 1e6
    mu, sd = 0.892 - 0.084 * 5, 0.575 + 0.09 * 5
    assert abs(dg.mean().item() - mu) < 5 * sd / math.sqrt(N)
    assert abs(dg.std().item() - sd) < 5 * sd / math.sqrt(2 * (N - 1))
    s2, e = dev.pulse(s1, -torch.ones(N), gen)  # abrupt RESET, whatever the state
    assert abs(s2.g.mean().item() - 0.1e-6) < 5 * 0.01e-6 / math.sqrt(N)
    assert e.item() == pytest.approx(N * dev.e_reset, rel=1e-9)
    # pulsed cells got drift exponents for their new (low) conductance: μ_ν hits the 0.1 clip
    assert s2.d2d["nu"].mean().item() > 0.09


def test_pulse_rescales_with_g_max(gen):
    dev = PCM(g_max=40e-6, pulse_noise_scale=0.0)  # s = 2
    state = dev.new_state((1,), gen, torch.float64).replace(g=torch.full((1,), 10e-6, dtype=torch.float64))
    s1, _ = dev.pulse(state, torch.ones(1), gen)
    assert (s1.g.item() - 10e-6) * 1e6 == pytest.approx(2 * (0.892 - 0.084 * 5), rel=1e-9)


def test_pcm_bad_parameters():
    from device_models import DeviceParameterError

    with pytest.raises(DeviceParameterError, match="g_max"):
        PCM(g_max=-1.0)
    with pytest.raises(DeviceParameterError, match="t0_s"):
        PCM(t0_s=0.0)
    with pytest.raises(DeviceParameterError, match="drift_scale"):
        PCM(drift_scale=-0.1)
    with pytest.raises(DeviceParameterError, match="drift_mu_clip"):
        PCM(drift_mu_clip=(0.1,))

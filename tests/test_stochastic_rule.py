"""Stochastic STDP on binary synapses: rule probabilities, Bernoulli and MTJ-device switching statistics,
device-to-device spread, LT-ST elements, crossbar currents and write energy.

Monte-Carlo frequencies are checked within 4 binomial standard deviations sqrt(P(1−P)/N) of the
probability they estimate (a false failure has probability ≈ 6e-5 per check).
"""

import math

import pytest
import torch

from algorithms.learning.stochastic import BinarySynapses, StochasticSTDP, expected_switch_probability
from circuits import EnergyLedger
from device_models import SOTMTJ, STTMTJ


def _no_spread(cls, **kw):
    return cls(sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.0, **kw)


def _within_binomial(frac, p, n):
    return abs(frac - p) <= 4 * math.sqrt(max(p * (1 - p), 1e-12) / n)


def test_rule_probabilities_follow_traces():
    rule = StochasticSTDP(gamma_pot=0.6, gamma_dep=0.3, depression="anti_hebbian", x_window=0.3, p_min=0.0)
    x_pre = torch.tensor([[1.0, 0.5, 0.2, 0.0]])
    post = torch.tensor([[0.0, 1.0]])
    p = rule.probabilities(torch.zeros(1, 4), post, x_pre, torch.zeros(1, 2))  # [R, in, out]
    assert torch.equal(p[0, :, 0], torch.zeros(4))  # silent post neuron: no attempt
    want = torch.tensor([0.6 * 1.0, 0.6 * 0.5, -0.3 * 0.8, -0.3 * 1.0])
    assert torch.allclose(p[0, :, 1], want)
    # pair-rule depression on a pre spike: P = γ_dep·x_post (trace before this step's post spikes)
    rule = StochasticSTDP(gamma_pot=0.6, gamma_dep=0.3, depression="pre", p_min=0.0)
    p = rule.probabilities(torch.tensor([[0.0, 1.0, 0.0, 0.0]]), torch.zeros(1, 2), x_pre, torch.tensor([[0.5, 0.25]]))
    assert torch.allclose(p[0, 1, :], torch.tensor([-0.15, -0.075]))
    assert int((p != 0).sum()) == 2
    # no events: nothing attempted
    assert rule.probabilities(torch.zeros(1, 4), torch.zeros(1, 2), x_pre, torch.zeros(1, 2)) is None


def test_traces_are_nearest_spike_exponentials():
    rule = StochasticSTDP(tau_pre_s=20e-3, tau_post_s=10e-3, dt_s=1e-3)
    x_pre, x_post = rule.init_traces(1, 2, 1)
    rule.update_traces(x_pre, x_post, torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0]]))
    for _ in range(7):
        rule.update_traces(x_pre, x_post, torch.zeros(1, 2), torch.zeros(1, 1))
    assert x_pre[0, 0].item() == pytest.approx(math.exp(-7e-3 / 20e-3), rel=1e-6)
    assert x_post[0, 0].item() == pytest.approx(math.exp(-7e-3 / 10e-3), rel=1e-6)
    assert x_pre[0, 1].item() == 0.0


def test_bernoulli_switching_frequency_matches_gamma_x_pre(gen):
    gamma, n_in, n_out = 0.7, 2000, 100
    rule = StochasticSTDP(gamma_pot=gamma, depression="none", p_min=0.0)
    levels = torch.tensor([1.0, 0.6, 0.3, 0.1])
    x_pre = levels.repeat_interleave(n_in // 4).unsqueeze(0)
    syn = BinarySynapses(1, n_in, n_out, mode="bernoulli", p_init=0.0, generator=gen)
    p = rule.probabilities(torch.zeros(1, n_in), torch.ones(1, n_out), x_pre, torch.zeros(1, n_out))
    syn.switch(p)
    on = syn.on_fraction()[0].reshape(4, n_in // 4, n_out)
    n = n_out * n_in // 4
    for k, x in enumerate(levels.tolist()):
        assert _within_binomial(on[k].mean().item(), gamma * x, n), (x, on[k].mean().item())


@pytest.mark.parametrize("cls", [STTMTJ, SOTMTJ])
@pytest.mark.parametrize("p_req", [0.05, 0.3, 0.8])
def test_device_mode_nominal_matches_requested_probability(cls, p_req, gen):
    syn = BinarySynapses(1, 250, 400, mode="device", device=_no_spread(cls), p_init=0.0, generator=gen)
    syn.switch(torch.full((1, 250, 400), p_req))
    assert _within_binomial(syn.on_fraction().mean().item(), p_req, 400 * 250)
    # and towards OFF from all-ON
    syn.force(True)
    syn.switch(torch.full((1, 250, 400), -p_req))
    assert _within_binomial(1.0 - syn.on_fraction().mean().item(), p_req, 400 * 250)


@pytest.mark.parametrize("cls, s_delta, s_ic0", [(STTMTJ, 0.05, 0.05), (STTMTJ, 0.2, 0.0), (SOTMTJ, 0.1, 0.05)])
def test_d2d_spread_shifts_mean_as_the_model_predicts(cls, s_delta, s_ic0, gen):
    dev = cls(sigma_d2d_delta_rel=s_delta, sigma_d2d_ic0_rel=s_ic0, sigma_d2d_r_rel=0.0)
    p_req, n = 0.3, 300 * 600
    expected = expected_switch_probability(dev, p_req, dev.t_write_s, generator=torch.Generator().manual_seed(7))
    syn = BinarySynapses(1, 600, 300, mode="device", device=dev, p_init=0.0, generator=gen)
    syn.switch(torch.full((1, 600, 300), p_req))
    frac = syn.on_fraction().mean().item()
    # binomial error of the measurement + Monte-Carlo error of the 200k-cell prediction
    tol = 4 * math.sqrt(expected * (1 - expected) / n + 0.25 / 200_000)
    assert abs(frac - expected) < tol, (frac, expected)
    if s_ic0 > 0:  # the Ic0 spread really moves the mean (Jensen: P_sw(I) is steep in I/Ic0)
        assert abs(expected - p_req) > 5 * tol


def test_miscalibrated_current_changes_probability(gen):
    dev = _no_spread(STTMTJ)
    p = expected_switch_probability(dev, 0.3, dev.t_write_s, current_scale=0.98)
    # Néel–Brown: τ grows by exp(Δ·0.02·I/Ic0) → P = 1 − (1−0.3)^(exp(−Δ·0.02·I/Ic0))
    i = dev.current_for_probability(0.3, dev.t_write_s)
    want = -math.expm1(math.log(0.7) * math.exp(-dev.delta * 0.02 * i / dev.i_c0))
    assert p == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("cls", [STTMTJ, SOTMTJ])
def test_all_on_all_off_column_current_by_hand(cls, gen):
    dev = cls(sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.1)
    syn = BinarySynapses(2, 5, 3, mode="device", device=dev, generator=gen, dtype=torch.float64)
    spikes = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    v = dev.v_read
    g_p = syn.states[0].d2d["g_p"].to(torch.float64)  # per-cell parallel conductance (d2d R spread)
    g_ref = dev.g_p / (1 + dev.tmr_at(v))  # reference column: nominal AP read conductance
    syn.force(True)
    want_on = v * torch.einsum("ri,roi->ro", spikes, g_p - g_ref)
    assert torch.allclose(syn.column_currents(spikes), want_on, rtol=1e-12, atol=0)
    syn.force(False)
    want_off = v * torch.einsum("ri,roi->ro", spikes, g_p / (1 + dev.tmr_at(v)) - g_ref)
    assert torch.allclose(syn.column_currents(spikes), want_off, rtol=1e-12, atol=1e-20)
    # nominal cells: all-ON input in weight units = number of spiking rows × w_max; all-OFF = 0
    nom = BinarySynapses(1, 4, 2, mode="device", device=_no_spread(cls), w_max=0.5, generator=gen, dtype=torch.float64)
    nom.force(True)
    s = torch.tensor([[1.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(nom.input(s), torch.full((1, 2), 1.5, dtype=torch.float64))
    assert torch.allclose(nom.read(s.unsqueeze(1)), torch.full((1, 1, 2), 1.5, dtype=torch.float64))
    assert torch.allclose(nom.column_currents(s), torch.full((1, 2), 3 * v * (dev.g_p - g_ref), dtype=torch.float64))
    nom.force(False)
    assert torch.allclose(nom.input(s), torch.zeros(1, 2, dtype=torch.float64), atol=1e-12)


def test_write_energy_is_i_squared_r_t_per_attempt(gen):
    dev = _no_spread(STTMTJ)
    syn = BinarySynapses(1, 3, 4, mode="device", device=dev, p_init=0.0, generator=gen, dtype=torch.float64)
    p = torch.zeros(1, 3, 4, dtype=torch.float64)
    p[0, :, 1] = torch.tensor([0.2, 0.5, 0.9])
    p[0, 0, 3] = -0.4  # towards OFF on an OFF cell: a pulse that cannot switch still costs energy
    led = EnergyLedger()
    syn.switch(p, led)
    t = dev.t_write_s
    r_ap = dev.r_p * (1 + dev.tmr)  # all cells start AP: R_write = R_AP (pre-pulse state)
    want = sum(dev.current_for_probability(q, t) ** 2 * r_ap * t for q in (0.2, 0.5, 0.9, 0.4))
    assert led.total_J() == pytest.approx(want, rel=1e-9)
    sot = _no_spread(SOTMTJ)
    syn = BinarySynapses(1, 3, 4, mode="device", device=sot, p_init=0.0, generator=gen, dtype=torch.float64)
    led = EnergyLedger()
    syn.switch(p, led)
    want = sum(sot.current_for_probability(q, sot.t_write_s) ** 2 * sot.r_hm * sot.t_write_s for q in (0.2, 0.5, 0.9, 0.4))
    assert led.total_J() == pytest.approx(want, rel=1e-9)


def test_lt_st_elements_sum_and_scale(gen):
    syn = BinarySynapses(1, 500, 200, mode="bernoulli", element_scales=(1.0, 0.2), p_init=0.0, w_max=2.0, generator=gen)
    syn.switch(torch.full((1, 500, 200), 0.5))
    n = 200 * 500
    f0, f1 = (b.float().mean().item() for b in syn.bits)
    assert _within_binomial(f0, 0.5, n) and _within_binomial(f1, 0.1, n)
    # effective weight = w_max·(b0 + b1)/2
    w = syn.weights()
    assert torch.allclose(w, 2.0 * (syn.bits[0].float() + syn.bits[1].float()).transpose(1, 2) / 2)
    assert set(torch.unique(w).tolist()) <= {0.0, 1.0, 2.0}


def test_read_disturb_flips_low_delta_stt_cells(gen):
    dev = STTMTJ(delta=8.0, sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.0)
    syn = BinarySynapses(1, 200, 100, mode="device", device=dev, generator=gen, dtype=torch.float64)
    syn.force(True)
    p1 = float(dev.read_disturb_probability(syn.states[0]).reshape(-1)[0])
    reads = torch.zeros(1, 200)
    reads[0, :100] = 50.0
    syn.read_disturb(reads)
    on = syn.on_fraction()[0]
    p50 = 1 - (1 - p1) ** 50
    assert _within_binomial(1 - on[:100].mean().item(), p50, 100 * 100)
    assert on[100:].min().item() == 1.0  # rows never read are not disturbed


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"gamma_pot": 1.5}, "gamma_pot"),
        ({"depression": "sometimes"}, "depression"),
        ({"tau_pre_s": 0.0}, "tau_pre_s"),
    ],
)
def test_rule_rejects_bad_parameters(kw, key):
    with pytest.raises(ValueError, match=key):
        StochasticSTDP(**kw)


def test_synapses_reject_bad_parameters(gen):
    with pytest.raises(ValueError, match="synapse"):
        BinarySynapses(1, 2, 2, mode="analog", generator=gen)
    with pytest.raises(ValueError, match="synapse"):
        BinarySynapses(1, 2, 2, mode="device", device=None, generator=gen)
    with pytest.raises(ValueError, match="element_scales"):
        BinarySynapses(1, 2, 2, element_scales=(1.0, 0.0), generator=gen)


def test_presentation_equals_step_by_step(gen):
    """``presentation`` (weights frozen, attempts after the image in time order) makes the same attempts as ``step``."""
    T, n_in, n_out = 60, 30, 5
    g = torch.Generator().manual_seed(3)
    pre = (torch.rand(T, 1, n_in, generator=g) < 0.2).float()
    post = torch.zeros(T, 1, n_out)
    post[[5, 17, 18, 40], 0, [1, 3, 1, 4]] = 1.0

    class Recorder(BinarySynapses):
        def switch_events(self, cols, p, ledger=None):
            self.log.append((cols.clone(), p.clone()))
            super().switch_events(cols, p, ledger)

    out = []
    for whole in (False, True):
        syn = Recorder(1, n_in, n_out, p_init=0.3, generator=torch.Generator().manual_seed(9))
        syn.log = []
        rule = StochasticSTDP(gamma_pot=0.5, gamma_dep=0.4).bind(syn)
        if whole:
            rule.presentation(pre, post)
        else:
            for t in range(T):
                rule.step(pre[t], post[t] if bool(post[t].any()) else None)
        cols = torch.cat([c for c, _ in syn.log])
        probs = torch.cat([q for _, q in syn.log])
        out.append((cols, probs, rule.x_pre.clone(), rule.x_post.clone()))
    assert torch.equal(out[0][0], out[1][0]) and out[0][0].tolist() == [1, 3, 1, 4]
    assert torch.allclose(out[0][1], out[1][1], atol=1e-6)
    assert torch.allclose(out[0][2], out[1][2]) and torch.allclose(out[0][3], out[1][3])


def test_repeated_attempts_on_one_column_compose(gen):
    """Two attempts on the same column in one call: the cell ends in the target of its last success."""
    n = 40_000
    syn = BinarySynapses(1, n, 2, p_init=0.0, generator=gen)
    cols = torch.tensor([0, 1, 0])
    p = torch.stack([torch.full((n,), 0.6), torch.full((n,), 0.5), torch.full((n,), -0.5)])
    syn.switch_events(cols, p)
    on = syn.on_fraction()[0]
    # column 0: ON with 0.6, then OFF with 0.5 → P(ON) = 0.6·0.5 = 0.3; column 1: 0.5
    assert _within_binomial(on[:, 0].mean().item(), 0.3, n)
    assert _within_binomial(on[:, 1].mean().item(), 0.5, n)


def test_stt_energy_uses_the_state_before_each_pulse(gen):
    """STT: R_write is the MTJ in its pre-pulse state, also for a second pulse on a cell the first one switched."""
    dev = _no_spread(STTMTJ)
    n = 500
    syn = BinarySynapses(1, n, 1, mode="device", device=dev, p_init=0.0, p_max=1 - 1e-12, generator=gen,
                         dtype=torch.float64)
    led = EnergyLedger()
    p1, p2 = 1 - 1e-12, 0.5  # first pulse switches every cell to P (failure probability 5e-10 in all)
    syn.switch_events(torch.tensor([0, 0]), torch.stack([torch.full((n,), p1), torch.full((n,), -p2)]), led)
    t = dev.t_write_s
    i1, i2 = dev.current_for_probability(p1, t), dev.current_for_probability(p2, t)
    want = n * t * (i1**2 * dev.r_p * (1 + dev.tmr) + i2**2 * dev.r_p)
    assert led.total_J() == pytest.approx(want, rel=1e-9)
    assert _within_binomial(syn.on_fraction().mean().item(), 0.5, n)


def test_read_before_write_skips_settled_cells(gen):
    dev = _no_spread(STTMTJ)
    syn = BinarySynapses(1, 4, 2, mode="device", device=dev, p_init=0.0, generator=gen, dtype=torch.float64,
                         read_before_write=True)
    syn.force(False)
    led = EnergyLedger()
    syn.switch(torch.full((1, 4, 2), -0.5, dtype=torch.float64), led)  # towards OFF on OFF cells: no pulse
    assert syn.attempts == 0 and led.by_component().get("write", 0.0) == 0.0
    e_read = led.by_component()["array"]  # the 8 verify reads of AP cells at v_read
    g_ap_read = dev.g_p / (1 + dev.tmr_at(dev.v_read))
    assert e_read == pytest.approx(8 * dev.t_read_s * dev.v_read**2 * g_ap_read, rel=1e-9)
    p = torch.zeros(1, 4, 2, dtype=torch.float64)
    p[0, :, 0] = 0.3
    syn.states[0] = dev._with_bits(syn.states[0], torch.tensor([[[True, False, True, False], [False] * 4]]))
    led = EnergyLedger()
    syn.switch(p, led)  # column 0: two cells already ON are skipped, two OFF cells get a pulse
    assert syn.attempts == 2
    i = dev.current_for_probability(0.3, dev.t_write_s)
    assert led.by_component()["write"] == pytest.approx(2 * i**2 * dev.r_p * (1 + dev.tmr) * dev.t_write_s, rel=1e-9)

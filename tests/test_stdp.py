"""STDP (Diehl & Cook 2015) on plastic crossbars: rule equations, neurons, crossbar = reference, energy, learning."""

from __future__ import annotations

import math

import pytest
import torch

from algorithms.base import Hardware
from algorithms.learning import (
    CrossbarSynapses,
    DiehlCookConfig,
    DiehlCookNetwork,
    PairSTDP,
    PowerLawSTDP,
    TorchSynapses,
    TripletSTDP,
    additive_trace,
    assign_labels,
    class_rates,
    init_weights,
    labels_from_rates,
    proportion_vote,
    trace_at,
    vote,
)
from algorithms.neurons import DiehlCookConductanceLIF, DiehlCookCurrentLIF
from algorithms.registry import get_algorithm
from algorithms.stdp import receptive_field_similarity
from circuits import ADC, DAC, CrossbarSpec, EnergyLedger, MappedMatrix
from device_models import PCM, IdealDevice

torch.set_num_threads(1)


def _images(n, n_in=784, seed=0, dtype=torch.float32):
    """Sparse random 'images' in [0, 1] (≈ MNIST's 19 % lit pixels)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, n_in, generator=g, dtype=dtype) * (torch.rand(n, n_in, generator=g, dtype=dtype) < 0.2)


def _chip(w0, device, dtype=torch.float64, seed=3, **spec):
    r = w0.shape[0]
    return MappedMatrix(w0.transpose(1, 2).contiguous(), device, spec=CrossbarSpec(scheme="unipolar", **spec),
                        dac=DAC(mode="spikes"), adc=ADC(bits=None),
                        generator=[torch.Generator().manual_seed(seed + k) for k in range(r)], dtype=dtype,
                        w_max=1.0, replicas=r)


# -- rule equations -------------------------------------------------------------------------------
def test_trace_matches_the_recursion():
    g = torch.Generator().manual_seed(1)
    s = (torch.rand(40, 2, 5, generator=g) < 0.2).double()
    x0 = torch.rand(2, 5, generator=g, dtype=torch.float64)
    d = math.exp(-1 / 20)
    x = x0.clone()
    after, before = [], []
    for t in range(40):
        x = x * d
        before.append(x.clone())
        x = torch.where(s[t] > 0, torch.ones_like(x), x)
        after.append(x.clone())
    assert torch.allclose(trace_at(s, d, x0), torch.stack(after), atol=1e-14)
    assert torch.allclose(trace_at(s, d, x0, before=True), torch.stack(before), atol=1e-14)


def _bind(rule, n_in=3, n_out=2, replicas=1):
    syn = TorchSynapses(torch.full((replicas, n_in, n_out), 0.5, dtype=torch.float64))
    return rule.bind(syn), syn


def _spikes(t_steps, n, times):
    s = torch.zeros(t_steps, 1, n, dtype=torch.float64)
    for t, i in times:
        s[t, 0, i] = 1.0
    return s


@pytest.mark.parametrize("bulk", [False, True])
def test_pair_rule_hand_made_pairs(bulk):
    """PostPre: pre at 2, post at 5 → +ν_post·e^(−3/20); post at 2, pre at 5 → −ν_pre·e^(−3/20) (dt 1 ms, τ 20 ms)."""
    rule, syn = _bind(PairSTDP(nu_pre=1e-4, nu_post=1e-2, dt_s=1e-3))
    pre = _spikes(10, 3, [(2, 0), (5, 1)])
    post = _spikes(10, 2, [(5, 0), (2, 1)])
    if bulk:
        rule.presentation(pre, post)
    else:
        for t in range(10):
            rule.step(pre[t], post[t] if bool(post[t].any()) else None)
    dw = syn.pending[0]
    e = math.exp(-3 / 20)
    assert dw[0, 0] == pytest.approx(1e-2 * e, rel=1e-12)  # pre 0 (t=2) → post 0 (t=5): LTP
    assert dw[1, 1] == pytest.approx(-1e-4 * e, rel=1e-12)  # post 1 (t=2) → pre 1 (t=5): LTD
    # same-step pre 1 / post 0 at t=5: +ν_post·1 (pre trace set first) − ν_pre·1 (post trace set first)
    assert dw[1, 0] == pytest.approx(1e-2 - 1e-4, rel=1e-12)
    assert dw[0, 1] == pytest.approx(1e-2 - 1e-4, rel=1e-12)  # pre 0 and post 1 both at t=2
    assert float(dw[2].abs().sum()) == 0.0  # input 2 never spiked


@pytest.mark.parametrize("bulk", [False, True])
def test_triplet_rule_hand_made_triplet(bulk):
    """Diehl & Cook code: pre at 0, post at 4 and 10 (dt 0.5 ms): the first post spike has no earlier post spike
    (x_post2 = 0: no LTP); the second potentiates ν_post·x_pre·x_post2 = ν_post·e^(−5/20 ms)·e^(−3/40 ms);
    a pre spike at 12 depresses by ν_pre·x_post1 = ν_pre·e^(−1/20 ms)."""
    rule, syn = _bind(TripletSTDP(nu_pre=1e-4, nu_post=1e-2, dt_s=0.5e-3), n_in=1, n_out=1)
    pre = _spikes(14, 1, [(0, 0), (12, 0)])
    post = _spikes(14, 1, [(4, 0), (10, 0)])
    if bulk:
        rule.presentation(pre, post)
    else:
        for t in range(14):
            rule.step(pre[t], post[t] if bool(post[t].any()) else None)
    expected = 1e-2 * math.exp(-10 * 0.5 / 20) * math.exp(-6 * 0.5 / 40) - 1e-4 * math.exp(-2 * 0.5 / 20)
    assert float(syn.pending[0, 0, 0]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bulk", [False, True])
def test_power_law_rule_hand_made(bulk):
    """Diehl & Cook Eq. 3: a post spike at 5 changes every input by η·(x_pre − x_tar)·(w_max − w)^μ, with the
    additive pre trace (pre spikes at 0 and 3: x = e^(−5/20) + e^(−2/20); a same-step pre spike counts: x = 1;
    a silent input: x = 0, depressed by η·x_tar·(w_max − w)^μ). dt 1 ms, τ 20 ms, w 0.5."""
    rule, syn = _bind(PowerLawSTDP(eta=1e-2, x_tar=0.4, mu=0.2, dt_s=1e-3), n_in=3, n_out=1)
    pre = _spikes(8, 3, [(0, 0), (3, 0), (5, 1)])
    post = _spikes(8, 1, [(5, 0)])
    if bulk:
        rule.presentation(pre, post)
    else:
        for t in range(8):
            rule.step(pre[t], post[t] if bool(post[t].any()) else None)
    f = 1e-2 * 0.5**0.2
    x0 = math.exp(-5 / 20) + math.exp(-2 / 20)
    assert syn.pending[0, :, 0].tolist() == pytest.approx([f * (x0 - 0.4), f * 0.6, -f * 0.4], rel=1e-12)
    assert rule.x_pre[0].tolist() == pytest.approx([x0 * math.exp(-2 / 20), math.exp(-2 / 20), 0.0], rel=1e-12)


def test_additive_trace_matches_the_recursion():
    """The closed form, in blocks (decay 0.2: 18 steps a block), equals x_t = d·x_(t−1) + s_t."""
    g = torch.Generator().manual_seed(3)
    s = (torch.rand(60, 2, 5, generator=g) < 0.3).double()
    x0 = torch.rand(2, 5, generator=g, dtype=torch.float64)
    for d in (0.2, math.exp(-0.5 / 20)):
        x, ref = x0.clone(), []
        for t in range(60):
            x = x * d + s[t]
            ref.append(x.clone())
        assert torch.allclose(additive_trace(s, d, x0), torch.stack(ref), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", [PairSTDP, TripletSTDP, PowerLawSTDP])
def test_presentation_equals_the_sum_of_steps(cls):
    """The bulk form (``write_every: image``) sums exactly what the per-step form emits, traces included,
    also with the event-driven input subset ``rows``."""
    g = torch.Generator().manual_seed(2)
    pre = (torch.rand(60, 2, 12, generator=g) < 0.15).double()
    post = (torch.rand(60, 2, 4, generator=g) < 0.05).double()
    rows = torch.tensor([1, 3, 4, 8, 11])
    pre_rows = pre.clone()
    pre_rows[:, :, [i for i in range(12) if i not in rows.tolist()]] = 0.0
    a, sa = _bind(cls(dt_s=1e-3), 12, 4, replicas=2)
    b, sb = _bind(cls(dt_s=1e-3), 12, 4, replicas=2)
    for name in [k for k, v in vars(a).items() if k.startswith("x_") and torch.is_tensor(v)]:  # the same non-zero traces carried in
        x0 = torch.rand(getattr(a, name).shape, generator=g, dtype=torch.float64)
        getattr(a, name).copy_(x0)
        getattr(b, name).copy_(x0)
    for t in range(60):
        a.step(pre_rows[t], post[t] if bool(post[t].any()) else None)
    b.presentation(pre_rows[:, :, rows], post, rows)
    tol = 1e-13 if cls is PowerLawSTDP else 1e-15  # the additive trace's closed form: rounding of d^(±k)
    assert torch.allclose(sa.pending, sb.pending, atol=tol)
    for name in [k for k, v in vars(a).items() if k.startswith("x_") and torch.is_tensor(v)]:
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=tol), name


# -- neurons --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [DiehlCookCurrentLIF, DiehlCookConductanceLIF])
def test_adaptive_threshold_rises_by_theta_plus_and_decays(cls):
    n = cls()
    st = n.init_state((1, 1, 3), dtype=torch.float64)
    theta0 = st.theta.clone()
    big = torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64)  # 1 V jump / 1 leak unit: fires at once
    spikes = 0
    for _ in range(40):
        s, st = n.step(n.drive(big) if cls is DiehlCookCurrentLIF else big * 50, st, learning=True)
        spikes += 0 if s is None else int(s[0, 0, 0])
    assert spikes >= 3
    assert float(st.theta[0, 0, 0] - theta0[0, 0, 0]) == pytest.approx(spikes * n.theta_plus, rel=1e-9)
    assert torch.equal(st.theta[0, 0, 1:], theta0[0, 0, 1:])  # silent neurons keep θ
    before = st.theta.clone()
    steps = round(n.tau_theta_s / n.dt_s)  # one τ_θ
    n.decay_theta(st, steps)
    assert torch.allclose(st.theta, before * math.exp(-1.0), rtol=1e-12)
    # learning off: θ frozen
    st2 = n.init_state((1, 1, 3), dtype=torch.float64)
    for _ in range(40):
        n.step(n.drive(big) if cls is DiehlCookCurrentLIF else big * 50, st2, learning=False)
    assert torch.equal(st2.theta, theta0)


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_tau_theta_key_sets_the_threshold_decay(mode):
    """``algorithm.tau_theta_s`` reaches the excitatory layer: over learning presentations of a blank image (no
    spikes) every θ decays by exp(−T/τ_θ), T the time run (rest and paper mode's repeats included); a
    non-positive τ_θ is refused naming the key."""
    cls = get_algorithm("stdp")
    alg = cls(cls.make_params(n_neurons=3, mode=mode, synapses="software", tau_theta_s=20.0),
              Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(0)))

    class D:
        x_train = torch.zeros(1, 784)
        y_train = torch.tensor([0])

    alg.fit(D(), None)
    net = alg.net
    assert net.exc.tau_theta_s == 20.0
    st, _ = net._train_state()
    st.theta.fill_(0.03)
    net.exc.decay_theta(st, 0)  # refreshes the cached threshold
    shown = net.stats.presentations
    net.present(torch.zeros(784), learning=True)
    t = (net.stats.presentations - shown) * (net.cfg.steps + net.cfg.rest_steps) * net.cfg.dt_s
    assert t == pytest.approx(11 * 0.5 if mode == "paper" else 0.25)  # paper: < 5 spikes → 10 repeats
    assert torch.allclose(net.theta, torch.full_like(net.theta, 0.03 * math.exp(-t / 20.0)), rtol=1e-5)
    with pytest.raises(ValueError, match="tau_theta_s"):
        cls(cls.make_params(tau_theta_s=0.0), Hardware(device=IdealDevice()))
    for name in ("asp", "stochastic_stdp"):  # the same key on the algorithms built on this network
        other = get_algorithm(name)
        assert other(other.make_params(tau_theta_s=20.0), Hardware(device=IdealDevice())).cfg.tau_theta_s == 20.0


def test_current_lif_is_bindsnet_leak():
    """Between inputs v relaxes to rest with τ = 100 ms exactly (``v ← rest + (v − rest)·e^(−dt/τ)``)."""
    n = DiehlCookCurrentLIF()
    st = n.init_state((1, 1, 1), dtype=torch.float64)
    st.v.fill_(-0.060)
    for _ in range(50):
        n.step(None, st)
    assert float(st.v) == pytest.approx(-0.065 + 0.005 * math.exp(-50e-3 / 0.1), abs=1e-15)


# -- the crossbar network equals the software reference ----------------------------------------------
@pytest.mark.parametrize("mode,write_every,n_img", [("fast", "image", 20), ("fast", "step", 2), ("paper", "image", 2)])
def test_crossbar_network_equals_torch_reference(mode, write_every, n_img):
    """Ideal device, lossless readout, continuous writes: same spikes and weights within 1e-6 after the images."""
    cfg = DiehlCookConfig.preset(mode, n_neurons=12, write_every=write_every)
    w0 = init_weights(cfg, 784, 2, torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = DiehlCookNetwork(cfg, TorchSynapses(w0.clone()), torch.Generator().manual_seed(5))
    mm = _chip(w0, IdealDevice())
    hw = DiehlCookNetwork(cfg, CrossbarSynapses(mm, rounding="none"), torch.Generator().manual_seed(5))
    x = _images(n_img, dtype=torch.float64)
    total = 0.0
    for i in range(n_img):
        c_ref = ref.present(x[i])
        c_hw = hw.present(x[i], ledger=EnergyLedger())
        assert torch.equal(c_ref, c_hw), f"image {i}"
        total += float(c_ref.sum())
    assert total > 0
    w_chip = mm.weights().transpose(1, 2)
    assert torch.allclose(ref.syn.weights(), w_chip, atol=1e-6, rtol=0)
    assert not torch.allclose(w0, w_chip, atol=1e-3)  # it learned


def test_replicas_equal_separate_networks_bit_for_bit():
    """R = 3 fast-mode networks in one loop (each replica on its own clock) with one generator per replica give
    exactly — spike counts, θ, weights, and test responses (B > 1) — what three one-replica networks give
    with those generators: every replica runs the same operations with the same rounding (on a chip the
    weights to float32 rounding: see below)."""
    cfg = DiehlCookConfig.preset("fast", n_neurons=12)
    r = 3
    w0 = init_weights(cfg, 784, r, torch.Generator().manual_seed(1))
    x = _images(12, seed=4) * 2.0  # dense, bright inputs: many spikes, one-spike ties and inhibition
    x = x.clamp(max=1.0)
    for synapses in ("software", "crossbar"):
        def syn(w, kind=synapses):
            return TorchSynapses(w.clone()) if kind == "software" else CrossbarSynapses(
                _chip(w, IdealDevice(), dtype=torch.float32), rounding="none")

        big = DiehlCookNetwork(cfg, syn(w0), [torch.Generator().manual_seed(10 + k) for k in range(r)])
        sep = [DiehlCookNetwork(cfg, syn(w0[k:k + 1]), torch.Generator().manual_seed(10 + k)) for k in range(r)]
        spikes = 0.0
        for i in range(x.shape[0]):
            c = big.present(x[i])
            for k in range(r):
                assert torch.equal(c[k:k + 1], sep[k].present(x[i])), (synapses, i, k)
            spikes += float(c.sum())
        assert spikes > 20 * r
        for k in range(r):
            if synapses == "software":
                assert torch.equal(big.syn.weights()[k], sep[k].syn.weights()[0]), (synapses, k)
            else:  # a chip's write takes the column-sliced or the whole-array path by the busiest replica's
                # touched columns; the two round differently in float32 (measured ≤ 1.2e-7 = 2 ulp at w ≈ 0.5)
                assert torch.allclose(big.syn.weights()[k], sep[k].syn.weights()[0], atol=5e-7, rtol=0), (synapses, k)
            assert torch.equal(big.theta[k], sep[k].theta[0])
        resp = big.responses(x[:6], 6)
        for k in range(r):
            assert torch.equal(resp[k], sep[k].responses(x[:6], 6)[0])


def test_paper_mode_closed_form_equals_the_step_loop():
    """``mode: paper``: the quiet stretches jumped over in closed form (``scan_horizon`` 64, numpy) give the
    spikes and weights of the step-by-step torch loop (``scan_horizon`` 0), the membranes within float32
    rounding; the learning-off batch path (numpy, every step exact) equals the torch loop bit for bit."""
    from algorithms.neurons.diehl_cook import decay_path

    cfg = DiehlCookConfig.preset("paper", n_neurons=10)
    x = _images(4, seed=7)
    nets = []
    for h in (0, 64):
        w0 = init_weights(cfg, 784, 1, torch.Generator().manual_seed(1))
        net = DiehlCookNetwork(cfg, TorchSynapses(w0), torch.Generator().manual_seed(5))
        net.scan_horizon = h
        counts = torch.stack([net.present(x[i]) for i in range(x.shape[0])])
        nets.append((net, counts))
    (a, ca), (b, cb) = nets
    assert float(ca.sum()) > 10 and torch.equal(ca, cb)
    assert torch.equal(a.syn.weights(), b.syn.weights())
    assert torch.equal(a.state.g_e, b.state.g_e)  # conductances: exactly the step loop's (decay_path)
    # membranes: the step loop's float32 rounding (1 ulp at −65 mV = 7.5e-9 V) accumulated over ~2 000 steps
    assert torch.allclose(a.state.v, b.state.v, atol=2e-7, rtol=0)
    assert torch.allclose(a.istate.v, b.istate.v, atol=2e-7, rtol=0)
    assert torch.equal(a.responses(x, 4), b.responses(x, 4))
    # decay_path: the recursion g ← g·d + x_t bit for bit
    g = torch.Generator().manual_seed(3)
    g0, xs = torch.rand(2, 5, generator=g), torch.rand(30, 2, 5, generator=g) * (torch.rand(30, 2, 5, generator=g) < 0.3)
    ref, gg = [], g0.clone()
    for t in range(30):
        gg.mul_(0.75).add_(xs[t])
        ref.append(gg.clone())
    assert torch.equal(decay_path(g0, 0.75, 30, xs), torch.stack(ref))


def test_paper_mode_spikes_act_on_the_next_step_as_in_brian():
    """Brian 1 (the released Diehl & Cook code) propagates a spike after the state update of the step it is
    emitted in, so it acts on its targets' update of the **next** step: an excitatory spike at step t adds
    w_ei = 10.4 to its inhibitory neuron's g_e used at t+1 (the inhibitory neuron fires at t+1: +31 mV in one
    Euler step), whose spike adds w_ie = 17 to the other excitatory neurons' g_i used at t+2 (not to its own
    excitatory neuron). The increments in flight are carried across calls: one call per step equals one call
    over all steps, and the closed form equals both."""
    cfg = DiehlCookConfig.preset("paper", n_neurons=2)
    w = torch.tensor([[[1.0, 0.0]]])  # input 0 drives excitatory neuron 0 only
    spikes = torch.ones(150, 1, 1, 1, dtype=torch.bool)
    runs = []
    for per_step, h in ((True, 0), (False, 0), (False, 64)):
        net = DiehlCookNetwork(cfg, TorchSynapses(w.clone()), torch.Generator().manual_seed(0))
        net.scan_horizon = h
        st, ist = net._train_state()
        if per_step:
            post, rec = [], []
            for t in range(spikes.shape[0]):
                c, _ = net._run(spikes[t:t + 1], st, ist, learning=False)
                post.append(c[0, 0].clone())
                rec.append((float(ist.g_e[0, 0, 0]), float(ist.refrac[0, 0, 0]), float(st.g_i[0, 0, 0]),
                            float(st.g_i[0, 0, 1])))
            post = torch.stack(post)
        else:
            _, post = net._run(spikes, st, ist, learning=False, record=True)
            post = post[:, 0, 0]
        runs.append((post, st.v.clone(), ist.v.clone()))
    post = runs[0][0]
    t0 = int(torch.nonzero(post[:, 0])[0])
    assert 0 < t0 < 140 and float(post[:, 1].sum()) == 0.0
    assert rec[t0][0] == 0.0  # the inhibitory neuron has not seen the spike in the step it was emitted
    assert rec[t0 + 1][0] == pytest.approx(10.4, rel=1e-6) and rec[t0 + 1][1] > 0  # ... and fires one step later
    assert rec[t0 + 1][3] == 0.0 and rec[t0 + 2][3] == pytest.approx(17.0, rel=1e-6)  # other exc. neuron: t0+2
    assert all(r[2] == 0.0 for r in rec)  # no inhibition of the neuron's own excitatory partner
    for post_b, v_b, vi_b in runs[1:]:
        assert torch.equal(post_b, post)
        assert torch.allclose(v_b, runs[0][1], atol=2e-7, rtol=0) and torch.allclose(vi_b, runs[0][2], atol=2e-7, rtol=0)


def test_paper_mode_stiff_steps_settle_at_the_equilibrium_instead_of_diverging():
    """A volley of inhibition large enough to make the Euler step unstable (dt/τ·(1 + g_i) > 1: g_i ≈ 6 800, what
    400 neurons firing together deliver) puts v at the instantaneous equilibrium v∞ (between E_inh and E_exc, as the
    ODE keeps it) instead of overshooting to −1.26 V and oscillating; an ordinary step stays Euler's bit for bit.
    In a network the guard keeps a synchronous volley from firing on through the input-free rest, and the closed
    form, the numpy steps and the torch step loop still agree."""
    exc = DiehlCookConductanceLIF(dt_s=0.5e-3)
    st = exc.init_state((1, 1, 2), dtype=torch.float64)
    st.v.fill_(-0.065)
    inh = torch.tensor([[[6800.0, 10.0]]], dtype=torch.float64)  # neuron 0: stiff; neuron 1: ordinary
    exc.step(None, st, learning=False, inhibition=inh)
    gi = inh  # g_i decays, then this step's increment arrives (state g_i was 0)
    v_inf = (gi[0, 0, 0] * exc.e_inh + exc.v_rest) / (1 + gi[0, 0, 0])
    euler_stiff = -0.065 + exc.k * ((exc.v_rest + 0.065) + gi[0, 0, 0] * (exc.e_inh + 0.065))
    assert float(euler_stiff) < -1.0  # what plain Euler would have done: −1.26 V
    assert float(st.v[0, 0, 0]) == pytest.approx(float(v_inf), abs=1e-12) and exc.e_inh < float(st.v[0, 0, 0]) < exc.e_exc
    assert float(st.v[0, 0, 1]) == float(-0.065 + exc.k * ((exc.v_rest + 0.065) + gi[0, 0, 1] * (exc.e_inh + 0.065)))
    # a network in which every neuron crosses threshold in the same step (identical weights, strong input)
    cfg = DiehlCookConfig.preset("paper", n_neurons=40)
    spikes = torch.zeros(700, 1, 1, 784, dtype=torch.bool)
    spikes[:, :, :, :200] = torch.rand(700, 1, 1, 200, generator=torch.Generator().manual_seed(0)) < 0.05
    runs = []
    for h in (0, 64):
        net = DiehlCookNetwork(cfg, TorchSynapses(torch.full((1, 784, 40), 0.1)), torch.Generator().manual_seed(0))
        net.scan_horizon = h
        st, ist = net._train_state()
        c, post = net._run(spikes, st, ist, learning=False, record=True)
        rest, _ = net._run(torch.zeros(300, 1, 1, 784, dtype=torch.bool), st, ist, learning=False)
        runs.append((c, post, rest, st.v.clone()))
    (c0, post0, rest0, v0), (c1, post1, rest1, v1) = runs
    first = int(torch.nonzero(post0.sum((1, 2, 3)))[0])
    assert float(post0[first].sum()) == 40  # all 40 fire together: g_i = 39 × 17 = 663 > 1/k − 1 = 199
    assert float(rest0.sum()) == 0.0  # and nothing fires in the input-free rest
    assert float(c0.max()) <= 70  # at most one spike per refractory period (5 ms of 350)
    assert torch.equal(post0, post1) and torch.equal(rest0, rest1) and torch.allclose(v0, v1, atol=2e-7, rtol=0)


def test_paper_mode_test_retries_charge_only_the_samples_shown_again():
    """Inference energy of the "< 5 spikes → intensity +1, repeat" rule: a round charges the neuron updates of
    the samples it presents, not of the whole batch. A blank image never reaches 5 spikes (1 + max_retries
    presentations); a bright one succeeds at once: 1 + 11 presentations of 2·n neurons × 700 steps."""
    cfg = DiehlCookConfig.preset("paper", n_neurons=4)
    net = DiehlCookNetwork(cfg, TorchSynapses(init_weights(cfg, 784, 1, torch.Generator().manual_seed(1))),
                           torch.Generator().manual_seed(2))
    x = torch.stack([torch.ones(784), torch.zeros(784)])
    led = EnergyLedger()
    counts = net.responses(x, batch_size=2, ledger=led)
    assert float(counts[0, 0].sum()) >= cfg.min_spikes and float(counts[0, 1].sum()) == 0.0
    per = 2 * cfg.n_neurons * cfg.steps * net.e_neuron
    assert led.by_component()["neuron"] == pytest.approx((1 + 1 + cfg.max_retries) * per, rel=1e-9)


def test_fast_read_equals_the_matrix_read_path():
    """The linear shortcut ``spikes @ weights()`` equals ``MappedMatrix.matmul`` and charges the same array energy."""
    cfg = DiehlCookConfig.preset("fast", n_neurons=10)
    w0 = init_weights(cfg, 784, 2, torch.Generator().manual_seed(1), dtype=torch.float64)
    mm = _chip(w0, IdealDevice(g_min=1e-7))
    fast, slow = CrossbarSynapses(mm), CrossbarSynapses(mm, fast_read=False)
    assert fast.fast_read
    x = (torch.rand(2, 30, 784, generator=torch.Generator().manual_seed(0), dtype=torch.float64) < 0.05).double()
    la, lb = EnergyLedger(), EnergyLedger()
    assert torch.allclose(fast.read(x, la), slow.read(x, lb), rtol=1e-9, atol=1e-12)
    assert la.by_component()["array"] == pytest.approx(lb.by_component()["array"], rel=1e-9)
    rows = torch.nonzero(x.amax((0, 1)) > 0).flatten()
    assert torch.allclose(fast.read(x[..., rows], None, rows), fast.read(x), atol=1e-12)


# -- energy ---------------------------------------------------------------------------------------
def test_write_energy_is_pulses_times_energy_per_pulse():
    """A 4×3 layer on PCM (noise-free pulses): Δw of hand-chosen whole numbers of local steps → exactly those
    SET pulses, energy e_set per pulse, and the same as ``MappedMatrix.update``."""
    dev = PCM(pulse_noise_scale=0.0, prog_noise_scale=0.0, read_noise_scale=0.0, drift_scale=0.0)
    w0 = torch.full((1, 4, 3), 0.2, dtype=torch.float64)
    n_hand = torch.tensor([[[1, 0, 2], [0, 3, 0], [1, 1, 0], [0, 0, 4]]], dtype=torch.float64)  # [R, in, out]
    syns = []
    for _ in range(2):
        mm = _chip(w0, dev, rows=8, cols=8)
        syn = CrossbarSynapses(mm, rounding="nearest")
        step = mm.pulse_step_w(+1).transpose(1, 2)  # weight change of one SET pulse per cell
        syns.append((mm, syn, n_hand * step))
    (mm_a, syn_a, dw), (mm_b, _, dw_b) = syns
    led_a, led_b = EnergyLedger(), EnergyLedger()
    syn_a.add(dw)
    syn_a.flush(led_a)
    n_b = mm_b.update(dw_b.transpose(1, 2), led_b, rounding="nearest")
    assert syn_a.pulses_pos == float(n_hand.sum()) == float(n_b.sum()) == 12
    e = led_a.by_component()["write"]
    assert e == pytest.approx(12 * dev.e_set, rel=1e-12)
    assert e == pytest.approx(led_b.by_component()["write"], rel=1e-12)
    assert torch.allclose(mm_a.weights(), mm_b.weights(), atol=1e-12)
    assert torch.allclose(syn_a.weights(), mm_a.weights().transpose(1, 2), atol=1e-12)  # cached columns


def test_gain_normalisation_writes_nothing_reprogram_does():
    """Column sum 78.4 as a digital gain: no normalisation writes; as reprogramming: writes with energy."""
    x = _images(3)
    res = {}
    for mode in ("gain", "reprogram"):
        cfg = DiehlCookConfig.preset("fast", n_neurons=8, normalisation=mode, nu_pre=0.0, nu_post=0.0)
        w0 = init_weights(cfg, 784, 1, torch.Generator().manual_seed(1), dtype=torch.float64)
        dev = PCM(pulse_noise_scale=0.0, prog_noise_scale=0.0, read_noise_scale=0.0, drift_scale=0.0)
        syn = CrossbarSynapses(_chip(w0, dev))
        net = DiehlCookNetwork(cfg, syn, torch.Generator().manual_seed(0))
        led = EnergyLedger()
        for i in range(3):
            net.present(x[i], ledger=led)
        res[mode] = (led.by_component().get("write", 0.0), syn)
    assert res["gain"][0] == 0.0 and res["gain"][1].pulses == 0
    sums = (res["gain"][1].weights() * res["gain"][1].gain).sum(1)
    assert torch.allclose(sums, torch.full_like(sums, 78.4), rtol=1e-9)
    assert res["reprogram"][0] > 0 and res["reprogram"][1].pulses > 0


# -- readout --------------------------------------------------------------------------------------
def test_assignment_and_vote_by_hand():
    counts = torch.tensor([[[5.0, 0, 1], [0, 3, 0], [4, 0, 0], [0, 1, 0]]])  # [R=1, n=4, N=3]
    labels = torch.tensor([0, 1, 0, 1])
    a = assign_labels(counts, labels, 3)
    assert a.tolist() == [[0, 1, 0]]  # neuron 2 fires for class 0 only (mean 0.5 vs 0)
    sc = vote(torch.tensor([[[1.0, 4.0, 3.0]]]), a, 3)
    assert sc[0, 0].tolist() == [2.0, 4.0, 0.0]  # class 0: mean of neurons 0 and 2; class 2: none assigned
    never = assign_labels(torch.zeros(1, 4, 3), labels, 3)
    assert never.tolist() == [[-1, -1, -1]]



def test_proportion_weighting_by_hand():
    """BindsNET's proportion weighting: an assigned neuron's spikes count for its class times the share of its
    labelling response that went to that class; neurons silent while labelled count for nothing."""
    lab = torch.tensor([[[4.0, 0, 1, 0], [0, 2, 3, 0], [2, 0, 1, 0], [0, 2, 1, 0]]])  # [R=1, n=4, N=4]
    rates = class_rates(lab, torch.tensor([0, 1, 0, 1]), 2)
    assert rates[0].tolist() == [[3.0, 0.0, 1.0, 0.0], [0.0, 2.0, 2.0, 0.0]]
    assert labels_from_rates(rates).tolist() == [[0, 1, 1, -1]]  # neuron 2: class 1 with share 2/3
    test = torch.tensor([[[1.0, 4.0, 3.0, 9.0], [3.0, 0.0, 6.0, 9.0]]])
    pw = proportion_vote(test, rates)
    assert pw[0, 0].tolist() == pytest.approx([1.0, (4.0 + 3.0 * 2 / 3) / 2])  # neuron 3 ignored, not counted
    assert pw[0, 1].tolist() == pytest.approx([3.0, (0.0 + 6.0 * 2 / 3) / 2])
    dc = vote(test, labels_from_rates(rates), 2)
    assert dc[0, 1].tolist() == [3.0, 3.0]  # the vote ties where the weighting prefers class 0
    # one class per neuron (every share 1): the two readouts agree
    solo = class_rates(lab[:, :, :2], torch.tensor([0, 1, 0, 1]), 2)
    assert torch.equal(proportion_vote(test[:, :, :2], solo), vote(test[:, :, :2], labels_from_rates(solo), 2))


# -- the algorithm ----------------------------------------------------------------------------------
def test_registry_params_and_errors():
    cls = get_algorithm("stdp")
    p = cls.make_params(n_neurons=10, mode="paper")
    assert p.n_neurons == 10 and p.mode == "paper"
    with pytest.raises(ValueError, match="algorithm.mode"):
        cls(cls.make_params(mode="slow"), Hardware(device=IdealDevice()))
    with pytest.raises(ValueError, match="algorithm.bogus"):
        cls.make_params(bogus=1)
    with pytest.raises(ValueError, match="rounding"):
        CrossbarSynapses(_chip(torch.rand(1, 8, 2, dtype=torch.float64) * 0.3, PCM()), rounding="none")


@pytest.mark.parametrize("schedule", ["linear", "exponential"])
def test_learning_rate_schedule_scales_the_rule_per_image(schedule):
    """ν(k) = ν0·(1 − (1 − f)·k/N) or ν0·f^(k/N) for image k of N (all passes): the rule's rates at the last
    image are the hand-computed ones, and the schedule changes the learned weights; ``constant`` is the default
    run bit for bit."""
    from algorithms.learning import rate_scale

    assert rate_scale("constant", 0.05, 0.7) == 1.0
    assert rate_scale("linear", 0.2, 0.5) == pytest.approx(0.6, abs=1e-15)
    assert rate_scale("exponential", 0.01, 0.5) == pytest.approx(0.1, abs=1e-15)
    assert rate_scale("exponential", 0.05, 1.0) == pytest.approx(0.05, abs=1e-15)
    with pytest.raises(ValueError, match="nu_schedule"):
        rate_scale("cosine", 0.05, 0.5)
    with pytest.raises(ValueError, match="nu_final"):
        rate_scale("linear", 0.0, 0.5)

    class D:
        x_train = _images(6, seed=4)
        y_train = torch.tensor([0, 1, 0, 1, 0, 1])

    cls = get_algorithm("stdp")

    def run(**kw):
        alg = cls(cls.make_params(n_neurons=4, epochs=2, synapses="software", **kw),
                  Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(1)))
        alg.fit(D(), None)
        return alg

    base, const = run(), run(nu_schedule="constant")
    assert torch.equal(base.weights(), const.weights())
    alg = run(nu_schedule=schedule, nu_final=0.1)
    k, n = 11, 12  # the last image of 2 passes over 6
    f = 1 - 0.9 * k / n if schedule == "linear" else 0.1 ** (k / n)
    assert alg.net.rule.nu_post == pytest.approx(1e-2 * f, rel=1e-12)
    assert alg.net.rule.nu_pre == pytest.approx(1e-4 * f, rel=1e-12)
    assert not torch.equal(alg.weights(), base.weights())
    with pytest.raises(ValueError, match="algorithm.nu_schedule"):
        cls(cls.make_params(nu_schedule="cosine"), Hardware(device=IdealDevice()))


def test_short_mnist_run_learns(mnist_dir, tmp_path):
    """400 MNIST images on a crossbar (ideal device): accuracy well above chance (10 %), distinct receptive fields."""
    from xbarsim.datasets import load_mnist

    d = load_mnist(mnist_dir)
    d.x_train, d.y_train = d.x_train[:400], d.y_train[:400]
    cls = get_algorithm("stdp")
    alg = cls(cls.make_params(n_neurons=30, eval_batch=150),
              Hardware(device=IdealDevice(), adc=ADC(bits=None), generator=torch.Generator().manual_seed(0)))
    led = EnergyLedger()
    alg.fit(d, led)
    rows = alg.evaluate(d.x_test[:300], d.y_test[:300], 0.0)
    r = rows[0]
    assert r["accuracy"] > 0.3, r["accuracy"]  # 3× chance; 400 images is ~1 % of a pass
    assert r["accuracy_proportion"] > 0.3, r["accuracy_proportion"]  # the same responses, BindsNET's weighting
    assert len(set(alg.assignments()[0].tolist()) - {-1}) >= 5
    assert r["rf_similarity"] < 0.5
    assert receptive_field_similarity(alg.weights()[0]) == pytest.approx(r["rf_similarity"])
    assert r["energy_per_inference_J"] > 0 and led.by_component()["array"] > 0
    assert alg.columns()["images_per_s"] > 0
    pytest.importorskip("matplotlib")
    path = alg.plot_receptive_fields(tmp_path / "rf.png")
    assert path.exists() and path.stat().st_size > 1000


def test_ir_drop_during_learning_uses_the_exact_solve():
    """``crossbar.solver: exact`` with wire resistance: reads go through the matrix's exact solve after every
    write (the column currents fall below the ideal-wire value), and the network keeps learning."""
    import dataclasses

    from device_models import load_preset

    cfg = DiehlCookConfig.preset("fast", n_neurons=6)
    w0 = init_weights(cfg, 64, 1, torch.Generator().manual_seed(1))
    dev = dataclasses.replace(load_preset("rram_taox_hfox"), sigma_read=0.0)
    mm = MappedMatrix(w0.transpose(1, 2).contiguous(), dev,
                      spec=CrossbarSpec(rows=64, cols=64, scheme="unipolar", solver="exact", r_wire_row=5.0, r_wire_col=5.0),
                      dac=DAC(mode="spikes"), adc=ADC(bits=None), generator=[torch.Generator().manual_seed(3)],
                      w_max=1.0, replicas=1)
    syn = CrossbarSynapses(mm)
    assert not syn.fast_read
    net = DiehlCookNetwork(cfg, syn, torch.Generator().manual_seed(0))
    x = _images(4, n_in=64, seed=1) * 4
    led = EnergyLedger()
    for i in range(4):
        net.present(x[i].clamp(max=1.0), ledger=led)
    assert syn.pulses > 0 and led.by_component()["write"] > 0
    xs = (torch.rand(1, 40, 64, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    y, y_ideal = syn.read(xs).sum(), (xs @ syn.weights()).sum()
    assert 0.9 * y_ideal < y < 0.999 * y_ideal  # IR drop: a few per cent at 5 Ω per segment

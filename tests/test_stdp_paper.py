"""STDP ``mode: paper`` (Diehl & Cook 2015, released Brian 1 code): within-presentation weight changes acting on
the drive, and the per-synapse input delays — hand-checked equations and the step-by-step reference."""

from __future__ import annotations

import math

import torch

from algorithms.learning import DiehlCookConfig, DiehlCookNetwork, TorchSynapses, TripletSTDP, init_weights

torch.set_num_threads(1)


def _images(n, n_in=784, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, n_in, generator=g, dtype=dtype) * (torch.rand(n, n_in, generator=g, dtype=dtype) < 0.2)


def test_online_dw_equals_writing_every_step():
    """``online_dw`` (the Δw of a presentation acting on its own drive as it accrues, summed in closed form by
    ``OnlineTripletDrive``) gives the spikes of writing the weights after every step (``write_every: step``,
    the torch step loop, every step read with the current weights), and the same weights (the step path
    normalises at the next presentation: compared normalised) — float64, equal to rounding. Without it
    (weights fixed over the presentation) the spikes differ."""
    x = _images(5, seed=3) * 1.5
    x = x.clamp(max=1.0)
    runs = {}
    for name, kw, h in (("step", dict(write_every="step"), 0), ("online", dict(online_dw=True), 64),
                        ("fixed", dict(), 64)):
        cfg = DiehlCookConfig.preset("paper", n_neurons=8, min_spikes=0, **kw)  # no retries (see below)
        w0 = init_weights(cfg, 784, 1, torch.Generator().manual_seed(1), dtype=torch.float64)
        net = DiehlCookNetwork(cfg, TorchSynapses(w0), torch.Generator().manual_seed(5))
        net.scan_horizon = h
        counts = torch.stack([net.present(x[i]) for i in range(x.shape[0])])
        w = net.syn.weights()
        runs[name] = (counts, w * (cfg.column_sum(784) / w.sum(1, keepdim=True)), net.theta.clone())
    (cs, ws, ths), (co, wo, tho), (cf, wf, _) = runs["step"], runs["online"], runs["fixed"]
    assert float(cs.sum()) > 20
    assert torch.equal(cs, co)
    assert torch.allclose(ws, wo, atol=1e-12, rtol=0) and torch.allclose(ths, tho, atol=1e-15, rtol=0)
    assert not torch.equal(cs, cf) or not torch.allclose(ws, wf, atol=1e-6)
    # (with retries the step path would not renormalise before the repeat, as Brian does and ``image`` does)


def _bound_rule(delays):
    syn = TorchSynapses(torch.full((1, 2, 1), 0.5, dtype=torch.float64))
    rule = TripletSTDP(1e-4, 1e-2, dt_s=0.5e-3).bind(syn)
    rule.delays = torch.tensor(delays).view(1, 2, 1)
    return syn, rule


def test_triplet_rule_with_delays_sees_arrivals():
    """Brian 1's C STDP on a DelayConnection: ``pre = 1`` at the source spike, ``w −= ν_pre·post1`` at the
    arrival t + D, on a post spike ``w += ν_post·pre(t − D)·post2before``: the triplet rule on arrival times.
    Input 0 (D = 3 steps) fires at steps 2 and 10, input 1 (D = 0) at step 5; the post neuron at 1, 6, 9 of
    T = 12. Both inputs arrive at step 5 and see the same Δw; input 0's second spike arrives at step 13,
    after the presentation (the post trace decaying from its final value)."""
    syn, rule = _bound_rule([3, 0])
    t_steps = 12
    pre = torch.zeros(t_steps, 1, 2, dtype=torch.float64)
    pre[2, 0, 0] = pre[10, 0, 0] = pre[5, 0, 1] = 1.0
    post = torch.zeros(t_steps, 1, 1, dtype=torch.float64)
    post[[1, 6, 9], 0, 0] = 1.0
    rule.presentation(pre, post)
    syn.flush()
    dp, d1, d2 = (math.exp(-0.5 / tau) for tau in (20.0, 20.0, 40.0))
    common = -1e-4 * d1**4 + 1e-2 * (dp * d2**5 + dp**4 * d2**3)  # arrival at 5: post1(5⁻) = d1^(5−1)
    late = -1e-4 * d1 ** (11 - 9) * d1 ** (13 - 11)  # arrival at 13: final trace (after 11) decayed 2 steps
    dw = syn.weights()[0, :, 0] - 0.5
    assert abs(float(dw[1]) - common) < 1e-15
    assert abs(float(dw[0]) - (common + late)) < 1e-15
    # traces: the source's (not the arrivals'), as Brian keeps ``pre`` per presynaptic neuron
    assert abs(float(rule.x_pre[0, 0]) - dp ** (11 - 10)) < 1e-15
    # without delays input 0 (source spike at 2) would differ
    syn2, rule2 = _bound_rule([0, 0])
    rule2.delays = None
    rule2.presentation(pre, post)
    syn2.flush()
    assert abs(float(syn2.weights()[0, 0, 0] - 0.5) - float(dw[0])) > 1e-4


def test_input_delays_shift_the_drive_and_carry_over():
    """A spike of input i at step t adds w_ij to column j's conductance at step t + D_ij; what arrives after
    the presentation is carried to the next call (the rest) at the matching step. Delays are floor(U·10 ms/dt):
    0…19 steps at dt 0.5 ms, uniform (mean 9.5)."""
    cfg = DiehlCookConfig.preset("paper", n_neurons=2, input_delay_s=10e-3)
    w = torch.tensor([[[0.3, 0.7], [0.2, 0.1]]], dtype=torch.float64)
    net = DiehlCookNetwork(cfg, TorchSynapses(w), torch.Generator().manual_seed(0))
    d = net._input_delays()
    assert d.shape == (1, 2, 2) and int(d.min()) >= 0 and int(d.max()) <= 19
    net._delays = torch.tensor([[[3, 0], [19, 7]]])
    st, _ = net._train_state()
    t_steps = 10
    spikes = torch.zeros(t_steps, 1, 1, 2, dtype=torch.bool)
    spikes[4, 0, 0, 0] = True  # input 0 at step 4 → column 0 at 7, column 1 at 4
    spikes[9, 0, 0, 1] = True  # input 1 at step 9 → column 0 at 28 (next call: 18), column 1 at 16 (next: 6)
    drive = net._delayed_drive(spikes, None, t_steps, st, True)
    expect = torch.zeros(t_steps, 1, 1, 2, dtype=torch.float64)
    expect[7, 0, 0, 0] = 0.3
    expect[4, 0, 0, 1] = 0.7
    assert torch.equal(drive, expect)
    nxt = net._delayed_drive(torch.zeros(30, 1, 1, 1, dtype=torch.bool), torch.tensor([0]), 30, st, False)
    expect = torch.zeros(30, 1, 1, 2, dtype=torch.float64)
    expect[18, 0, 0, 0] = 0.2
    expect[6, 0, 0, 1] = 0.1
    assert torch.equal(nxt, expect) and st.spill is None
    big = DiehlCookNetwork(DiehlCookConfig.preset("paper", n_neurons=100, input_delay_s=10e-3),
                           TorchSynapses(torch.rand(1, 784, 100, dtype=torch.float64)), torch.Generator().manual_seed(0))
    dd = big._input_delays().double()
    assert abs(float(dd.mean()) - 9.5) < 0.05 and int(dd.max()) == 19 and int(dd.min()) == 0


def _brute_drive(s, post, d, w0, x_pre0, x1_0, x2_0, nu_pre=1e-4, nu_post=1e-2, w_max=1.0, dt=0.5e-3):
    """Reference: weights written after every step by the triplet rule on arrival times (``d`` ``[A, n]``
    steps), the drive of step t read with the weights after step t−1: ``x_j(t) = Σ_a s_a(t − d_aj)·w_aj``."""
    dp, d1, d2 = (math.exp(-dt / tau) for tau in (20e-3, 20e-3, 40e-3))
    t_steps, a_n = s.shape
    n = post.shape[1]
    w = w0.clone()
    xp = x_pre0.clone()  # source traces [A]
    hist = []
    x1, x2 = x1_0.clone(), x2_0.clone()
    drive = torch.zeros(t_steps, n, dtype=torch.float64)
    for t in range(t_steps):
        arr = torch.zeros(a_n, n, dtype=torch.float64)
        for a in range(a_n):
            for j in range(n):
                if t - d[a, j] >= 0:
                    arr[a, j] = s[t - d[a, j], a]
        drive[t] = (arr * w).sum(0)
        xp = torch.where(s[t] > 0, torch.ones_like(xp), xp * dp)
        hist.append(xp.clone())
        x1, x2 = x1 * d1, x2 * d2
        xa = torch.zeros(a_n, n, dtype=torch.float64)  # arrival traces: the source's D earlier
        for a in range(a_n):
            for j in range(n):
                src = t - int(d[a, j])
                xa[a, j] = hist[src][a] if src >= 0 else x_pre0[a] * dp ** (src + 1)
        dw = -nu_pre * arr * x1 + nu_post * xa * (post[t] * x2)
        w = torch.minimum(w + dw, torch.full_like(w, w_max))
        x1 = torch.where(post[t] > 0, torch.ones_like(x1), x1)
        x2 = torch.where(post[t] > 0, torch.ones_like(x2), x2)
    return drive


def test_online_drive_closed_form_equals_per_step_writes():
    """``OnlineTripletDrive``: the drive with the fixed weights plus ``start()`` and the ``spike()`` increments
    equals, to 1e-12, the drive read every step with weights written after every step (brute force, above),
    with and without per-synapse delays, a post trace carried in, and potentiation clipped at w_max."""
    from algorithms.learning.rules import OnlineTripletDrive

    g = torch.Generator().manual_seed(2)
    t_steps, a_n, n = 60, 5, 3
    s = (torch.rand(t_steps, a_n, generator=g) < 0.25).double()
    post = torch.zeros(t_steps, n, dtype=torch.float64)
    post[[7, 12, 30, 33], 0] = 1.0
    post[[20, 21 + 4], 1] = 1.0
    post[[50], 2] = 1.0
    w0 = torch.rand(a_n, n, generator=g, dtype=torch.float64) * 0.5
    w0[1, 0] = 0.995  # potentiation clipped at w_max = 1
    for delays in (None, torch.randint(0, 6, (a_n, n), generator=g)):
        d = delays if delays is not None else torch.zeros(a_n, n, dtype=torch.long)
        syn = TorchSynapses(w0.unsqueeze(0).clone())
        rule = TripletSTDP(1e-4, 1e-2, dt_s=0.5e-3).bind(syn)
        rule.x_pre.copy_(torch.rand(1, a_n, generator=g, dtype=torch.float64) * 0.3)
        rule.x_post1.copy_(torch.tensor([[0.9, 0.0, 0.4]], dtype=torch.float64))  # ≥ a_skip (delays)
        rule.x_post2.copy_(torch.tensor([[0.5, 0.2, 0.0]], dtype=torch.float64))
        ref = _brute_drive(s, post, d, w0, rule.x_pre[0], rule.x_post1[0], rule.x_post2[0])
        on = OnlineTripletDrive(rule, s.unsqueeze(1), None, w0.unsqueeze(0),
                                delays=d.unsqueeze(0) if delays is not None else None)
        fixed = _brute_drive(s, torch.zeros_like(post), d, w0, rule.x_pre[0], torch.zeros(n, dtype=torch.float64),
                             torch.zeros(n, dtype=torch.float64), nu_pre=0.0)
        x = fixed.clone()
        x += torch.from_numpy(on.start()[:, 0])
        for t in range(t_steps):
            for j in torch.nonzero(post[t]).flatten().tolist():
                dx = on.spike(t, 0, j)
                if dx is not None:
                    x[t + 1:, j] += torch.from_numpy(dx)
        assert float((ref - fixed).abs().max()) > 1e-3  # the writes matter
        assert torch.allclose(x, ref, atol=1e-12, rtol=0), float((x - ref).abs().max())

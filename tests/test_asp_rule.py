"""ASP (Panda et al., JETCAS 2018) rule: the decay phase against its ODE, activity-dependent leak,
the recovery-phase update by hand, parameter errors."""

import math

import pytest
import torch

from algorithms.learning.asp import ASPRule


def _rk4(f, w, t_end, n):
    h = t_end / n
    for _ in range(n):
        k1 = f(w)
        k2 = f(w + 0.5 * h * k1)
        k3 = f(w + 0.5 * h * k2)
        k4 = f(w + h * k3)
        w = w + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return w


def test_exponential_decay_without_activity_follows_the_ode():
    # hand-sized example: 2 neurons × 3 synapses, one neuron with P = 30 spikes, threshold θ = 4 mV
    rule = ASPRule(tau_leak0_s=0.5, alpha=0.8, post_ref=10.0, theta_ref=2e-3, w_rest=0.05, decay="exp")
    w0 = torch.tensor([[[0.9, 0.4, 0.05], [0.2, 0.7, 0.01]]], dtype=torch.float64)
    post = torch.tensor([[0.0, 30.0]], dtype=torch.float64)
    theta = torch.tensor([[0.0, 4e-3]], dtype=torch.float64)
    tau = rule.tau_leak(post, theta)
    assert tau[0, 0].item() == pytest.approx(0.5)
    assert tau[0, 1].item() == pytest.approx(0.5 * (1 + 30 / 10) * (1 + 4e-3 / 2e-3))
    # digital leak applied per presentation (0.25 s) for 8 presentations, no activity in between
    w = w0.clone()
    for _ in range(8):
        w = rule.decayed(w, 0.25, tau)
    # τ_leak dw/dt = −α (w − w_rest), integrated by RK4 (error ≪ 1e-6 at 20k steps)
    ref = _rk4(lambda x: -rule.alpha * (x - rule.w_rest) / tau.unsqueeze(2), w0.clone(), 2.0, 20_000)
    assert torch.allclose(w, ref, atol=1e-6, rtol=0)
    # and the closed form in one go
    assert torch.allclose(rule.decayed(w0, 2.0, tau), w, atol=1e-12, rtol=0)


def test_linear_decay_without_activity_follows_the_ode():
    rule = ASPRule(tau_leak0_s=1.0, alpha=0.1, post_ref=5.0, decay="linear", w_rest=0.0)
    w0 = torch.tensor([[[0.9, 0.3, 0.02]]], dtype=torch.float64)
    tau = rule.tau_leak(torch.tensor([[5.0]], dtype=torch.float64))  # τ = 2 s
    w = w0.clone()
    for _ in range(12):
        w = rule.decayed(w, 0.25, tau)  # 3 s in all: Δw = −α·t/τ = −0.15, floored at w_rest
    assert torch.allclose(w, torch.tensor([[[0.75, 0.15, 0.0]]], dtype=torch.float64), atol=1e-12, rtol=0)


def test_active_neuron_forgets_slower_than_silent_one():
    rule = ASPRule(tau_leak0_s=1.0, post_ref=10.0, theta_ref=1e-3)
    w = torch.full((1, 2, 4), 0.8)
    post = torch.tensor([[0.0, 50.0]])
    theta = torch.tensor([[0.0, 2.5e-3]])
    after = rule.decayed(w, 1.0, rule.tau_leak(post, theta))
    assert (after[0, 1] > after[0, 0]).all()
    assert after[0, 0, 0].item() == pytest.approx(0.8 * math.exp(-1.0), rel=1e-6)
    assert after[0, 1, 0].item() == pytest.approx(0.8 * math.exp(-1.0 / (6 * 3.5)), rel=1e-6)


def test_recovery_update_by_hand():
    rule = ASPRule(eta0=0.1, offset=0.4, k_const=0.2, post_ref=10.0, w_max=1.0)
    x_pre = torch.tensor([[1.0, 0.5, 0.0]])
    pre_count = torch.tensor([[3.0, 1.0, 0.0]])
    post = torch.tensor([[1.0, 0.0]])
    post_count = torch.tensor([[10.0, 0.0]])
    dw = rule.recovery_dw(x_pre, pre_count, post, post_count)
    eta = 0.1 / (1 + 10 / 10)
    want = eta * torch.tensor([(1.0 - 0.4) - 0.2 / 8, (0.5 - 0.4) - 0.2 / 2, (0.0 - 0.4) - 0.2])
    assert torch.allclose(dw[0, 0], want)
    assert torch.equal(dw[0, 1], torch.zeros(3))  # silent neuron: no learning
    assert rule.recovery_dw(x_pre, pre_count, torch.zeros(1, 2), post_count) is None
    # η ∝ 1/Post: a very active neuron learns ≈ P_0/P times slower
    assert rule.learning_rate(torch.tensor([990.0])).item() == pytest.approx(0.1 / 100)


def test_activity_bookkeeping():
    rule = ASPRule(tau_pre_s=20e-3, dt_s=1e-3, tau_post_acc_s=None)
    x_pre, pre_count, post_count = torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 1)
    rule.update_activity(x_pre, pre_count, post_count, torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0]]))
    rule.update_activity(x_pre, pre_count, post_count, torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0]]))
    assert x_pre[0, 0].item() == pytest.approx(math.exp(-1e-3 / 20e-3))
    assert x_pre[0, 1].item() == 1.0
    assert pre_count.tolist() == [[1.0, 1.0]] and post_count.item() == 2.0


@pytest.mark.parametrize("kw, key", [({"decay": "cubic"}, "decay"), ({"tau_leak0_s": 0.0}, "tau_leak0_s"),
                                     ({"post_ref": -1.0}, "post_ref"), ({"theta_ref": 0.0}, "theta_ref")])
def test_bad_parameters(kw, key):
    with pytest.raises(ValueError, match=key):
        ASPRule(**kw)


def test_presentation_with_event_rows_equals_dense():
    """The network passes only the inputs that can spike (``rows``); the update must not depend on it."""
    from algorithms.learning.asp import ASPLearning
    from algorithms.learning.synapses import TorchSynapses

    g = torch.Generator().manual_seed(0)
    T, n_in, n_out = 40, 12, 3
    rows = torch.tensor([1, 4, 5, 9])
    pre = torch.zeros(T, 1, n_in)
    pre[:, :, rows] = (torch.rand(T, 1, 4, generator=g) < 0.3).float()
    post = torch.zeros(T, 1, n_out)
    post[[3, 10, 11, 30], 0, [0, 2, 0, 1]] = 1.0
    out = []
    for sub in (False, True):
        syn = TorchSynapses(torch.full((1, n_in, n_out), 0.5))
        rule = ASPLearning(ASPRule(eta0=0.05, tau_leak0_s=0.5)).bind(syn)
        rule.post_count.fill_(3.0)
        rule.presentation(pre[:, :, rows] if sub else pre, post, rows if sub else None)
        syn.flush()
        out.append((syn.weights().clone(), rule.x_pre.clone(), rule.post_count.clone()))
    assert torch.allclose(out[0][0], out[1][0], atol=1e-7)
    assert torch.allclose(out[0][1], out[1][1]) and torch.equal(out[0][2], out[1][2])
    assert not torch.allclose(out[0][0], torch.full((1, n_in, n_out), 0.5))


def test_leak_reference_separate_from_learning_rate_reference():
    """τ_leak = τ0·(1 + P/P_leak)·(1 + θ/θ0) with P_leak (leak_post_ref) independent of the η reference P0."""
    rule = ASPRule(tau_leak0_s=20.0, post_ref=20.0, leak_post_ref=5.0, theta_ref=13e-3)
    post = torch.tensor([[0.0, 1000.0]], dtype=torch.float64)
    theta = torch.tensor([[0.0, 26e-3]], dtype=torch.float64)
    tau = rule.tau_leak(post, theta)
    assert tau[0, 0].item() == pytest.approx(20.0, rel=1e-12)
    assert tau[0, 1].item() == pytest.approx(20.0 * (1 + 1000 / 5) * (1 + 26 / 13), rel=1e-12)
    # the learning rate still halves at P0 = 20 spikes
    assert rule.learning_rate(torch.tensor([20.0])).item() == pytest.approx(rule.eta0 / 2)
    # 300 s later (four 75 s phases) the significant neuron kept 97.5 % of its weight, the silent one e^-15
    w = torch.full((1, 2, 1), 1.0, dtype=torch.float64)
    after = rule.decayed(w, 300.0, tau)
    assert after[0, 1, 0].item() == pytest.approx(math.exp(-300.0 / (20.0 * 201 * 3)), rel=1e-12)
    assert after[0, 1, 0].item() > 0.97 and after[0, 0, 0].item() < 1e-6
    with pytest.raises(ValueError, match="leak_post_ref"):
        ASPRule(leak_post_ref=0.0)


def test_significance_is_cumulative_by_default():
    """With tau_post_acc_s = None (default) P only grows: a neuron keeps its slow leak after its class stops;
    a decaying count forgets its significance with e^(−T/τ_post_acc) per presentation of T without spikes."""
    from algorithms.learning.asp import ASPLearning
    from algorithms.learning.synapses import TorchSynapses

    T, n_in = 50, 4
    pre = torch.zeros(T, 1, n_in)
    post = torch.zeros(T, 1, 2)
    out = {}
    for tau_acc in (None, 0.5):
        syn = TorchSynapses(torch.full((1, n_in, 2), 0.5))
        rule = ASPLearning(ASPRule(tau_post_acc_s=tau_acc, dt_s=1e-3)).bind(syn)
        rule.post_count.copy_(torch.tensor([[400.0, 0.0]]))
        for _ in range(3):
            rule.presentation(pre, post)
        out[tau_acc] = rule.post_count.clone()
    assert torch.equal(out[None], torch.tensor([[400.0, 0.0]]))
    assert out[0.5][0, 0].item() == pytest.approx(400.0 * math.exp(-3 * T * 1e-3 / 0.5), rel=1e-6)


def test_correlated_synapse_forgets_slower_than_uncorrelated_one():
    """Per-synapse leak (``leak_corr_ref``): on a post spike C_ij gains the pre trace x_pre,i, and over a silent
    interval each synapse decays with τ_leak,j·(1 + C_ij/C_ref) (exact, checked against RK4 to 1e-6); the input
    that spiked just before the post spike keeps more of its weight than one that spiked long before or never.
    Presentation (one write per image) and step (one write per step) semantics give the same C."""
    from algorithms.learning.asp import ASPLearning
    from algorithms.learning.synapses import TorchSynapses

    T, n_in = 30, 3
    pre = torch.zeros(T, 1, n_in, dtype=torch.float64)
    pre[4, 0, 0] = 1.0  # early: x_pre = e^(−25/20) at the post spike
    pre[28, 0, 1] = 1.0  # 1 ms before the post spike
    post = torch.zeros(T, 1, 1, dtype=torch.float64)
    post[29, 0, 0] = 1.0
    rule = ASPRule(tau_leak0_s=2.0, leak_post_ref=1e12, post_ref=1e12, eta0=0.0, leak_corr_ref=0.5, w_rest=0.0,
                   dt_s=1e-3)
    x_expected = torch.tensor([math.exp(-25e-3 / 20e-3), math.exp(-1e-3 / 20e-3), 0.0], dtype=torch.float64)
    corr = {}
    for mode in ("presentation", "step"):
        syn = TorchSynapses(torch.full((1, n_in, 1), 0.5, dtype=torch.float64))
        learn = ASPLearning(rule).bind(syn)
        if mode == "presentation":
            learn.presentation(pre, post)
        else:
            for t in range(T):
                learn.step(pre[t], post[t] if post[t].any() else None)
        corr[mode] = learn.corr[0, :, 0].clone()
    assert torch.allclose(corr["presentation"], x_expected, rtol=1e-12, atol=0)
    assert torch.allclose(corr["step"], x_expected, rtol=1e-12, atol=0)
    tau = rule.synapse_tau(torch.tensor([[2.0]], dtype=torch.float64), x_expected.view(1, 1, n_in))
    assert torch.allclose(tau[0, 0], 2.0 * (1 + x_expected / 0.5), rtol=1e-12)
    w0 = torch.full((1, 1, n_in), 0.5, dtype=torch.float64)
    after = rule.decayed(w0, 3.0, tau)
    ref = _rk4(lambda x: -(x - rule.w_rest) / tau, w0.clone(), 3.0, 20_000)
    assert torch.allclose(after, ref, atol=1e-6, rtol=0)
    assert after[0, 0, 1] > after[0, 0, 0] > after[0, 0, 2]
    with pytest.raises(ValueError, match="leak_corr_ref"):
        ASPRule(leak_corr_ref=0.0)

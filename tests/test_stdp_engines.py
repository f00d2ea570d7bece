"""The fast-mode (current-based) STDP engines: the compiled presentation loop and pair-rule walk (numba), the
torch closed-form/replica engines and the torch step loop give the same network; BindsNET's synchronous
spike order; the one-spike choice; column-sparse writes."""

from __future__ import annotations

import pytest
import torch

from algorithms.learning import (
    CrossbarSynapses,
    DiehlCookConfig,
    DiehlCookNetwork,
    TorchSynapses,
    init_weights,
    pair_kernel,
)
from algorithms.neurons import current_kernel
from algorithms.neurons.diehl_cook import _pick_one
from circuits import ADC, DAC, CrossbarSpec, MappedMatrix
from device_models import IdealDevice

torch.set_num_threads(1)
needs_numba = pytest.mark.skipif(not current_kernel.AVAILABLE, reason="numba not installed (pip install xbarsim[fast])")


def _images(n, n_in=784, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, n_in, generator=g) * (torch.rand(n, n_in, generator=g) < 0.2) * 1.5).clamp(max=1.0)


def _run(cfg, w0, x, engine: str, monkeypatch):
    """Train on ``x`` then respond to its first 8 images with the chosen engine: ``compiled`` (numba loops),
    ``closed`` (torch closed-form scans) or ``step`` (the torch step loop: every step, dense rule)."""
    compiled = engine == "compiled"
    monkeypatch.setattr(current_kernel, "AVAILABLE", compiled)
    monkeypatch.setattr(pair_kernel, "AVAILABLE", compiled)
    net = DiehlCookNetwork(cfg, TorchSynapses(w0.clone()), torch.Generator().manual_seed(3))
    net.scan_horizon = 0 if engine == "step" else 64
    counts = torch.stack([net.present(x[i]) for i in range(x.shape[0])])
    resp = net.responses(x[:8], 8)
    crossings = float(net.theta.sum()) / cfg.theta_plus  # every neuron above threshold adapts
    return counts, net.syn.weights(), net.theta, resp, crossings


@needs_numba
@pytest.mark.parametrize("synchronous", [True, False])
def test_compiled_engine_equals_the_torch_step_loop(synchronous, monkeypatch):
    """Same spikes, θ and test responses exactly; weights to float32 rounding (the rule's sums in another order:
    ≤ 1e-6); with ties (several neurons over threshold in one step: one emits, all adapt) exercised."""
    cfg = DiehlCookConfig.preset("fast", n_neurons=30, synchronous=synchronous)
    w0 = init_weights(cfg, 784, 1, torch.Generator().manual_seed(1))
    x = _images(20, seed=4)
    ref = _run(cfg, w0, x, "step", monkeypatch)
    for engine in ("compiled", "closed"):
        got = _run(cfg, w0, x, engine, monkeypatch)
        assert torch.equal(got[0], ref[0]), engine
        assert torch.equal(got[2], ref[2]), engine
        assert torch.equal(got[3], ref[3]), engine
        assert torch.allclose(got[1], ref[1], atol=1e-6, rtol=0), engine
    assert ref[4] > float(ref[0].sum()) + 5  # ties happened: more crossings than emitted spikes
    assert float(ref[0].sum()) > 100


def _two_neuron_net(synchronous: bool):
    cfg = DiehlCookConfig.preset("fast", n_neurons=2, synchronous=synchronous, t_present_s=0.012)
    w = torch.zeros(1, 2, 2)
    w[0, 0, 0] = 1.0  # input 0 drives neuron 0 only: 20 mV per spike (w_unit 1 mV × 20)
    net = DiehlCookNetwork(cfg, TorchSynapses(w * 20.0, 0.0, 20.0), torch.Generator().manual_seed(0))
    return cfg, net


@pytest.mark.parametrize("engine", ["compiled", "step"])
@pytest.mark.parametrize("synchronous", [True, False])
def test_spike_order_input_and_inhibition_delays(synchronous, engine, monkeypatch):
    """One input spike at step 2 on a neuron 13 mV below threshold (20 mV jump). Synchronous (BindsNET's
    ``Network.run``: every connection delivers the spikes of step t−1): the neuron fires at step 3, its
    inhibitory partner at 4, and the other neuron is inhibited from step 5; otherwise: 2, 2 and 3."""
    if engine == "compiled" and not current_kernel.AVAILABLE:
        pytest.skip("numba not installed")
    monkeypatch.setattr(current_kernel, "AVAILABLE", engine == "compiled")
    cfg, net = _two_neuron_net(synchronous)
    net.scan_horizon = 0 if engine == "step" else 64
    st, ist = net._fresh_state(1)
    spikes = torch.zeros(cfg.steps, 1, 1, 2, dtype=torch.bool)
    spikes[2, 0, 0, 0] = True
    counts, post = net._run(spikes, st, ist, learning=False, record=True)
    t_fire = int(torch.nonzero(post[:, 0, 0, 0])[0])
    assert t_fire == (3 if synchronous else 2)
    assert float(counts.sum()) == 1.0
    # the other neuron stays at rest until the inhibition arrives (−120 mV)
    arrive = 5 if synchronous else 3
    for n_steps, inhibited in ((arrive, False), (arrive + 1, True)):
        st, ist = net._fresh_state(1)
        net._run(spikes[:n_steps], st, ist, learning=False)
        v1 = float(st.v[0, 0, 1])
        assert (v1 < -0.15) if inhibited else v1 == pytest.approx(-65e-3, abs=1e-7), (n_steps, v1)


def test_one_spike_pick_is_the_floor_u_m_th_crossing():
    s = torch.tensor([[[0.0, 1.0, 0.0, 1.0, 1.0, 0.0]]])  # m = 3 crossings: neurons 1, 3, 4
    for u, want in ((0.0, 1), (0.33, 1), (0.34, 3), (0.66, 3), (0.67, 4), (0.9999999, 4)):
        out = _pick_one(s, None, torch.tensor([[[u]]]))
        assert torch.equal(torch.nonzero(out[0, 0]).flatten(), torch.tensor([want])), u
    none = torch.zeros(1, 1, 6)
    assert float(_pick_one(none, None, torch.tensor([[[0.5]]])).sum()) == 0.0


def _chip(w0):
    r = w0.shape[0]
    return MappedMatrix(w0.transpose(1, 2).contiguous(), IdealDevice(), spec=CrossbarSpec(scheme="unipolar"),
                        dac=DAC(mode="spikes"), adc=ADC(bits=None),
                        generator=[torch.Generator().manual_seed(3 + k) for k in range(r)], w_max=1.0, replicas=r)


@pytest.mark.parametrize("kind", ["software", "crossbar"])
def test_column_sparse_write_equals_the_dense_write(kind):
    """A normalised write from a column-sparse Δw (``add_block``) gives the weights of the dense write, the
    untouched columns unchanged (ideal device, continuous writes: equal to float32 rounding of the column sums)."""
    g = torch.Generator().manual_seed(0)
    w0 = 0.3 * torch.rand(3, 50, 12, generator=g)
    rows = torch.tensor([1, 4, 7, 20, 33])
    cols = torch.tensor([2, 5, 9])
    block = 0.05 * torch.randn(3, 5, 3, generator=g)
    block[1] = 0.0  # a replica without a change

    def syn(w):
        return TorchSynapses(w.clone()) if kind == "software" else CrossbarSynapses(_chip(w), rounding="none")

    a, b = syn(w0), syn(w0)
    for s in (a, b):
        s.dirty.zero_()
    a.add_block(block, rows, cols)
    dense = torch.zeros(3, 50, 12)
    dense[:, rows.unsqueeze(1), cols.unsqueeze(0)] = block
    b.add(dense)
    assert a.pending_entries() == b.pending_entries() == float((block != 0).sum())
    a.flush(normalise_to=7.8)
    b.flush(normalise_to=7.8)
    wa, wb = a.weights(), b.weights()
    assert torch.allclose(wa, wb, atol=2e-7, rtol=0)
    others = torch.tensor([c for c in range(12) if c not in cols.tolist()])
    assert torch.allclose(wa[:, :, others], w0[:, :, others], atol=1e-7)
    touched = wa[0][:, cols]
    assert torch.allclose(touched.sum(0), torch.full((3,), 7.8), rtol=1e-5)  # renormalised columns
    assert torch.allclose(wa[1], w0[1], atol=1e-7)  # no Δw, not dirty: unchanged


@needs_numba
@pytest.mark.parametrize("synchronous", [True, False])
def test_torch_replica_engine_equals_the_compiled_loop(synchronous, monkeypatch):
    """R = 3 replicas on the torch replica engine (every replica on its own clock, closed-form quiet stretches)
    give the compiled loop's spikes and θ exactly (one generator per replica)."""
    cfg = DiehlCookConfig.preset("fast", n_neurons=20, synchronous=synchronous)
    w0 = init_weights(cfg, 784, 3, torch.Generator().manual_seed(2))
    x = _images(10, seed=6)
    out = {}
    for compiled in (True, False):
        monkeypatch.setattr(current_kernel, "AVAILABLE", compiled)
        net = DiehlCookNetwork(cfg, TorchSynapses(w0.clone()), [torch.Generator().manual_seed(20 + k) for k in range(3)])
        counts = torch.stack([net.present(x[i]) for i in range(x.shape[0])])
        out[compiled] = (counts, net.theta.clone(), net.syn.weights(), net.responses(x[:6], 6))
    assert torch.equal(out[True][0], out[False][0])
    assert torch.equal(out[True][1], out[False][1])
    assert torch.equal(out[True][3], out[False][3])
    assert torch.allclose(out[True][2], out[False][2], atol=1e-6, rtol=0)
    assert float(out[True][0].sum()) > 60


@needs_numba
@pytest.mark.parametrize("read_before_write,depression", [(False, "anti_hebbian"), (True, "anti_hebbian"),
                                                          (False, "none"), (False, "balanced")])
def test_stochastic_compiled_path_equals_torch_path(read_before_write, depression, monkeypatch):
    """Bernoulli stochastic STDP: the compiled trace walk (probabilities in the kernel, or traces for
    ``balanced``) and switching pass give bit for bit the torch path's binary synapses, attempts and switches
    (the same counter-based draws)."""
    from algorithms.learning.stochastic import BinarySynapses, StochasticSTDP

    cfg = DiehlCookConfig.preset("fast", n_neurons=16, normalisation="gain")
    x = _images(12, seed=8)
    out = {}
    for compiled in (True, False):
        monkeypatch.setattr(pair_kernel, "AVAILABLE", compiled)
        syn = BinarySynapses(2, 784, 16, p_init=0.2, generator=torch.Generator().manual_seed(4),
                             element_scales=(1.0, 0.3), read_before_write=read_before_write)
        rule = StochasticSTDP(gamma_pot=0.05, gamma_dep=0.02, depression=depression)
        net = DiehlCookNetwork(cfg, syn, [torch.Generator().manual_seed(30 + k) for k in range(2)], rule=rule)
        counts = torch.stack([net.present(x[i]) for i in range(x.shape[0])])
        out[compiled] = (counts, [b.clone() for b in syn.bits], syn.attempts, syn.switches, rule.x_pre.clone())
    a, b = out[True], out[False]
    assert torch.equal(a[0], b[0])
    assert all(torch.equal(u, v) for u, v in zip(a[1], b[1]))
    assert (a[2], a[3]) == (b[2], b[3])
    assert torch.allclose(a[4], b[4], atol=1e-6)
    assert a[3] > 50  # synapses did switch


def test_isi_input_trains_are_bindsnets_regular_poisson_intervals():
    """``input_spikes: poisson_isi`` (BindsNET 0.3.4 ``PoissonEncoder``): intervals ~ Poisson(1/(r·dt)) steps, so
    the count over T steps has mean ≈ r·T·dt (minus the first interval's offset, < 1 spike) and a variance far
    below a Poisson process's (≈ r·T·dt): for 128 Hz over 250 ms, mean 31.5 ± 1 and variance < 8 (vs ≈ 32)."""
    from algorithms.encoding import isi_spike_trains

    rate = torch.tensor([128.0, 0.0, 20.0]).view(3, 1).expand(3, 4000).contiguous()
    s = isi_spike_trains(rate, 250, 1e-3, torch.Generator().manual_seed(0))
    assert s.shape == (250, 3, 4000) and s.dtype == torch.bool
    c = s.sum(0).double()
    assert abs(float(c[0].mean()) - 31.5) < 1.0
    assert float(c[0].var()) < 8.0
    assert float(c[1].sum()) == 0.0
    assert abs(float(c[2].mean()) - 4.5) < 0.6  # 20 Hz: λ = 50 steps, spikes at ≈ 50, 100, …, 250
    p = (rate[:1] * 1e-3).expand(250, 4000)
    poisson_var = float((torch.rand(250, 4000, generator=torch.Generator().manual_seed(1)) < p).sum(0).double().var())
    assert poisson_var > 4 * float(c[0].var())


def test_isi_input_replicas_equal_separate_networks():
    cfg = DiehlCookConfig.preset("fast", n_neurons=12, input_spikes="poisson_isi")
    w0 = init_weights(cfg, 784, 2, torch.Generator().manual_seed(1))
    x = _images(4, seed=2)
    big = DiehlCookNetwork(cfg, TorchSynapses(w0.clone()), [torch.Generator().manual_seed(7 + k) for k in range(2)])
    sep = [DiehlCookNetwork(cfg, TorchSynapses(w0[k:k + 1].clone()), torch.Generator().manual_seed(7 + k)) for k in range(2)]
    for i in range(4):
        c = big.present(x[i])
        for k in range(2):
            assert torch.equal(c[k:k + 1], sep[k].present(x[i]))
    assert float(big.stats.exc_spikes) > 10
    with pytest.raises(ValueError, match="algorithm.input_spikes"):
        DiehlCookConfig.preset("fast", input_spikes="regular")


def test_column_sparse_dense_fallback_rewrites_only_the_changed_columns():
    """A block touching more than half of the columns goes the whole-array way; a replica without a change in
    a column another replica changed keeps that column's weights (no renormalisation write)."""
    g = torch.Generator().manual_seed(5)
    w0 = 0.3 * torch.rand(2, 30, 6, generator=g)
    syn = CrossbarSynapses(_chip(w0), rounding="none")
    syn.dirty.zero_()
    block = torch.zeros(2, 30, 6)
    block[0] = 0.02 * torch.rand(30, 6, generator=g)  # replica 0 changes every column, replica 1 none
    syn.add_block(block, None, torch.arange(6))
    syn.flush(normalise_to=2.0)
    w = syn.weights()
    assert torch.allclose(w[1], w0[1], atol=1e-7)
    assert torch.allclose(w[0].sum(0), torch.full((6,), 2.0), rtol=1e-5)


def test_post_events_and_final_traces_from_events():
    """The event forms of the post spikes (``spike_events``: ``torch.nonzero`` order) and of the final trace
    (``trace_final_events``, torch and compiled) equal the dense forms."""
    from algorithms.learning.rules import trace_final, trace_final_events

    g = torch.Generator().manual_seed(2)
    post = (torch.rand(50, 3, 7, generator=g) < 0.05).float()
    post[:, 1] = 0.0  # a replica without spikes
    x0 = torch.rand(3, 7, generator=g)
    ev = torch.nonzero(post > 0)
    want = trace_final(post, 0.9, x0)
    assert torch.equal(trace_final_events(ev, 50, 0.9, x0), want)
    if pair_kernel.AVAILABLE:
        assert torch.equal(torch.from_numpy(pair_kernel.spike_events(post.permute(1, 0, 2).contiguous().numpy())), ev)
        got = torch.from_numpy(pair_kernel.trace_final_events(ev.numpy(), x0.numpy(), 0.9, 50))
        assert torch.allclose(got, want, rtol=1e-6, atol=0)

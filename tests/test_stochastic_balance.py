"""Binary-synapse normalisation: the digital input gain and the balanced anti-Hebbian depression.

* ``normalisation: gain`` keeps every neuron's effective input weight sum ``gain_j·Σ_i w_ij`` at the Diehl &
  Cook column sum (float32 sums of ≤ 784 binary weights and one division: exact to a few ulp, checked to 1e-6).
* ``depression: balanced`` scales the depression per post spike so that the expected change of the column's ON
  count is ``−(N_on − N*)/n_j``: checked exactly on the probabilities, by Monte Carlo within 4 standard
  deviations (false-failure probability ≈ 6e-5 per check), and over many events (the ON fraction stays at the
  target where a fixed γ_dep drifts away).
"""

import math

import pytest
import torch

from algorithms.base import Hardware
from algorithms.learning.stochastic import BinarySynapses, StochasticSTDP
from algorithms.registry import get_algorithm
from circuits import EnergyLedger
from device_models import IdealDevice
from xbarsim.datasets import load_digits


def test_gain_keeps_each_neurons_input_sum_at_the_column_sum():
    g = torch.Generator().manual_seed(1)
    syn = BinarySynapses(2, 784, 30, p_init=0.15, generator=g)
    syn.bits[0][0, :5] = True  # a few columns far from the target
    syn.bits[0][1, 5:9] = False
    syn.bits[0][1, 9, :3] = True
    syn._w = None
    total = 78.4
    syn.normalise(total, "gain")
    eff = syn.read(torch.ones(2, 1, 784)).squeeze(1)  # one read of all rows = gain_j·Σ_i w_ij
    sums = syn.weights().sum(1)
    on = sums > 0
    assert torch.allclose(eff[on], torch.full_like(eff[on], total), rtol=1e-6, atol=0)
    assert torch.equal(eff[~on], torch.zeros_like(eff[~on]))  # an all-OFF column keeps gain 1 (no input at all)
    # the per-step input path uses the same gain
    x = (torch.rand(2, 784, generator=g) < 0.2).float()
    assert torch.allclose(syn.input(x), syn.read(x.unsqueeze(1)).squeeze(1), rtol=1e-6)
    # and it is the plain weighted sum times total/Σw
    assert torch.allclose(syn.input(x), torch.einsum("ri,rio->ro", x, syn.weights()) * syn.gain[:, 0], rtol=1e-6)


def _column(n_in, b_on, x, gamma_pot=0.05, on_target=0.1, p_min=0.0):
    syn = BinarySynapses(1, n_in, 1, p_init=0.0, generator=torch.Generator().manual_seed(0))
    syn.bits[0][0, 0] = b_on
    syn._w = None
    rule = StochasticSTDP(gamma_pot=gamma_pot, depression="balanced", on_target=on_target, p_min=p_min).bind(syn)
    return syn, rule


def test_balanced_depression_sets_the_expected_on_count_change():
    n_in = 400
    g = torch.Generator().manual_seed(2)
    x = torch.where(torch.rand(n_in, generator=g) < 0.3, 0.4 + 0.6 * torch.rand(n_in, generator=g),
                    0.3 * torch.rand(n_in, generator=g))
    for frac in (0.12, 0.15):  # ON count above the target N* = 40: depression removes A + (N_on − N*)
        b = torch.rand(n_in, generator=g) < frac
        syn, rule = _column(n_in, b, x)
        cols = torch.zeros(1, dtype=torch.long)
        p = rule.balance(cols, rule.post_probabilities(x.unsqueeze(0)))[0]
        bf = b.float()
        recent = x >= rule.x_window
        assert torch.allclose(p[recent], 0.05 * x[recent])  # potentiation untouched: γ_pot·x_pre
        a = float((p.clamp(min=0) * (1 - bf)).sum())
        s = float((-p).clamp(min=0).mul(bf).sum())
        n_on = float(bf.sum())
        assert a - s == pytest.approx(-(n_on - 40.0), rel=1e-5)
        c = -p[~recent] / (1 - x[~recent])
        assert torch.allclose(c, c[0].expand_as(c), rtol=1e-5) and 0 < float(c[0]) <= 1  # one scale, (1 − x) shape
    # far above the target the scale saturates at c = 1: every silent ON synapse switches with (1 − x)
    b = torch.rand(n_in, generator=g) < 0.5
    syn, rule = _column(n_in, b, x)
    p = rule.balance(torch.zeros(1, dtype=torch.long), rule.post_probabilities(x.unsqueeze(0)))[0]
    assert torch.allclose(p[~recent], -(1 - x[~recent]))
    # two post spikes of one neuron in a presentation share the excess: each pulls (N_on − N*)/2
    b = torch.rand(n_in, generator=g) < 0.2
    syn, rule = _column(n_in, b, x)
    p = rule.balance(torch.zeros(2, dtype=torch.long), rule.post_probabilities(x.expand(2, -1)))
    bf = b.float()
    delta = (p.clamp(min=0) * (1 - bf)).sum(1) - ((-p).clamp(min=0) * bf).sum(1)
    assert torch.allclose(delta, torch.full((2,), -(float(bf.sum()) - 40.0) / 2), rtol=1e-5)
    # below the target: no depression at all
    b = torch.rand(n_in, generator=g) < 0.05
    syn, rule = _column(n_in, b, x)
    p = rule.balance(torch.zeros(1, dtype=torch.long), rule.post_probabilities(x.unsqueeze(0)))
    assert float(p.min()) == 0.0


def test_balanced_depression_monte_carlo_on_count():
    """Bernoulli draws of one balanced event on 200 identical columns: the mean ON-count change matches."""
    n_in, n_col = 400, 200
    g = torch.Generator().manual_seed(3)
    x = torch.where(torch.rand(n_in, generator=g) < 0.3, 0.5 + 0.5 * torch.rand(n_in, generator=g),
                    0.3 * torch.rand(n_in, generator=g))
    b = torch.rand(n_in, generator=g) < 0.2
    syn = BinarySynapses(1, n_in, n_col, p_init=0.0, generator=g)
    syn.bits[0][:] = b
    syn._w = None
    rule = StochasticSTDP(gamma_pot=0.05, depression="balanced", on_target=0.1, p_min=0.0).bind(syn)
    cols = torch.arange(n_col)
    p = rule.balance(cols, rule.post_probabilities(x.expand(n_col, -1)))
    n0 = syn.on_fraction()[0].sum(0)
    syn.switch_events(cols, p)
    dn = syn.on_fraction()[0].sum(0) - n0
    want = -(float(b.sum()) - 40.0)
    q = p[0].abs().double()
    var = float((q * (1 - q)).sum())  # independent Bernoulli switches per cell
    assert abs(float(dn.mean()) - want) <= 4 * math.sqrt(var / n_col)


def test_balanced_on_fraction_is_stationary_where_fixed_depression_drifts():
    """60 post spikes on each of 20 neurons, random inputs (30 % of the pres recent): balanced stays at 0.1,
    γ_dep = γ_pot/3 drifts up (to ≈ 0.5 for these inputs, where 0.03·E[x]·(1 − f)·0.3 = 0.01·E[1 − x]·f·0.7)."""
    n_in, n_out, steps = 784, 20, 60
    fracs = {}
    for mode in ("balanced", "anti_hebbian"):
        g = torch.Generator().manual_seed(4)
        syn = BinarySynapses(1, n_in, n_out, p_init=0.1, generator=g)
        rule = StochasticSTDP(gamma_pot=0.03, gamma_dep=0.01, depression=mode, on_target=0.1).bind(syn)
        for _ in range(steps):
            hot = torch.rand(n_in, generator=g) < 0.3
            x = torch.where(hot, 0.4 + 0.6 * torch.rand(n_in, generator=g), 0.3 * torch.rand(n_in, generator=g))
            rule._emit(torch.arange(n_out), rule.post_probabilities(x.expand(n_out, -1)))
        fracs[mode] = float(syn.on_fraction().mean())
    assert abs(fracs["balanced"] - 0.1) < 0.01  # ± 1 % of the synapses (the count is pulled back every event)
    assert fracs["anti_hebbian"] > 0.15


def test_algorithm_balanced_gain_rows_and_final_gain():
    d = load_digits()
    cls = get_algorithm("stochastic_stdp")
    alg = cls(cls.make_params(n_neurons=6, max_rate_hz=400.0, depression="balanced", normalisation="gain",
                              gamma_pot=0.2), Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(0)))

    class D:
        x_train, y_train = d.x_train[:30], d.y_train[:30]
        image_shape, n_classes = (1, 8, 8), 10

    alg.fit(D, EnergyLedger())
    syn = alg.net.syn
    total = alg.cfg.column_sum(64)
    assert alg.columns()["on_target"] == pytest.approx(total / 64)  # the column sum in ON synapses (w_max = 1)
    assert torch.allclose(syn.gain[:, 0] * syn.weights().sum(1), torch.full((1, 6), total), rtol=1e-6)


@pytest.mark.parametrize("kw, key", [({"on_target": 0.0}, "on_target"), ({"depression": "x"}, "depression")])
def test_bad_balance_settings_are_named(kw, key):
    cls = get_algorithm("stochastic_stdp")
    with pytest.raises(ValueError, match=key):
        cls(cls.make_params(**kw), Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(0)))

"""The counter-based draws of binary-synapse switching (SplitMix64): the published stream, torch = compiled, and
uniform statistics; Bernoulli switching frequency on the torch path (the compiled path: test_stochastic_rule)."""

import math

import pytest
import torch

from algorithms.learning import counter_rng, pair_kernel
from algorithms.learning.stochastic import BinarySynapses, StochasticSTDP


def test_first_outputs_are_splitmix64s_published_stream():
    # splitmix64.c (Vigna) seeded with 0: first output 0xE220A8397B1DCDAF, second 0x6E789E6AA1B965F4
    u = counter_rng.uniform(0, torch.tensor([0, 1]))
    assert u[0].item() == (0xE220A8397B1DCDAF >> 11) * 2.0**-53
    assert u[1].item() == (0x6E789E6AA1B965F4 >> 11) * 2.0**-53


@pytest.mark.skipif(not pair_kernel.AVAILABLE, reason="numba not installed")
def test_torch_and_compiled_draws_are_the_same_numbers():
    import numpy as np

    for seed in (0, 12345, (1 << 62) - 1):
        idx = torch.cat([torch.arange(1000), torch.tensor([10**12, 2**40 + 7])])
        t = counter_rng.uniform(seed, idx)
        c = [pair_kernel._splitmix_uniform(np.uint64(seed), np.uint64(int(i))) for i in idx]
        assert t.tolist() == c


def test_draws_are_uniform_and_uncorrelated():
    n = 1_000_000
    u = counter_rng.uniform(987654321, torch.arange(n))
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 4 * math.sqrt(1 / 12 / n)
    counts = torch.histc(u, bins=100, min=0.0, max=1.0)
    chi2 = float(((counts - n / 100) ** 2 / (n / 100)).sum())
    assert chi2 < 99 + 4 * math.sqrt(2 * 99)  # χ² with 99 degrees of freedom: mean 99, sd 14
    c = u - 0.5
    lag1 = float((c[1:] * c[:-1]).mean() / (c * c).mean())
    assert abs(lag1) < 4 / math.sqrt(n)


def test_torch_path_switching_frequency_matches_gamma_x_pre(monkeypatch):
    monkeypatch.setattr(pair_kernel, "AVAILABLE", False)
    gamma, n_in, n_out = 0.7, 2000, 100
    rule = StochasticSTDP(gamma_pot=gamma, depression="none", p_min=0.0)
    levels = torch.tensor([1.0, 0.6, 0.3, 0.1])
    x_pre = levels.repeat_interleave(n_in // 4).unsqueeze(0)
    syn = BinarySynapses(1, n_in, n_out, mode="bernoulli", p_init=0.0, generator=torch.Generator().manual_seed(5))
    syn.switch(rule.probabilities(torch.zeros(1, n_in), torch.ones(1, n_out), x_pre, torch.zeros(1, n_out)))
    on = syn.on_fraction()[0].reshape(4, n_in // 4, n_out)
    n = n_out * n_in // 4
    for k, x in enumerate(levels.tolist()):
        p = gamma * x
        assert abs(on[k].mean().item() - p) <= 4 * math.sqrt(p * (1 - p) / n)

"""Long STDP runs (``pytest -m slow``): the published MNIST accuracies of Diehl & Cook (2015)."""

from __future__ import annotations

import pytest
import torch

from algorithms.base import Hardware
from algorithms.registry import get_algorithm
from circuits import ADC, EnergyLedger
from device_models import IdealDevice

pytestmark = pytest.mark.slow


def _run(mnist_dir, n_neurons, mode, epochs=1, n_train=60000, device=None, shuffle_seed=None, **params):
    from xbarsim.datasets import load_mnist, shuffle_train

    torch.set_num_threads(1)
    d = load_mnist(mnist_dir)
    if shuffle_seed is not None:
        d = shuffle_train(d, shuffle_seed)
    d.x_train, d.y_train = d.x_train[:n_train], d.y_train[:n_train]
    cls = get_algorithm("stdp")
    alg = cls(cls.make_params(n_neurons=n_neurons, mode=mode, epochs=epochs, n_assign=10000, **params),
              Hardware(device=device or IdealDevice(), adc=ADC(bits=None), generator=torch.Generator().manual_seed(0)))
    alg.fit(d, EnergyLedger())
    return alg.evaluate(d.x_test, d.y_test, 0.0)[0]["accuracy"]


def test_mnist_one_pass_100_neurons_fast(mnist_dir):
    """One pass over the 60 000 training images, 100 neurons, ideal crossbar, all 10 000 test images: ≥ 81 %
    (paper 82.9 %), with fast mode's two documented departures from BindsNET's constants (θ+ 0.02 mV; the rates
    decaying geometrically to 5 % over the pass; ``examples/stdp_mnist_full.yaml``), chosen on held-out
    training images. Measured 86.5 % (seed 0; software synapses, seeds 0–2: 86.0 / 86.5 / 85.9 %)."""
    assert _run(mnist_dir, 100, "fast", theta_plus=2e-5, nu_schedule="exponential", nu_final=0.05) >= 0.81


def test_mnist_one_pass_100_neurons_pcm_mixed_precision(mnist_dir):
    """The same setting on PCM cells (``pcm_ibm``, read noise off): stochastic rounding turns the annealed sub-step Δw
    into rare full pulses (measured 77.7 / 75.7 %, seeds 0 / 1), mixed-precision writes keep them (83.5 / 85.5 %).
    ≥ 81 % with ``rounding: accumulate``."""
    import dataclasses

    from device_models import load_preset

    pcm = dataclasses.replace(load_preset("pcm_ibm"), sigma_read=0.0)
    assert _run(mnist_dir, 100, "fast", device=pcm, theta_plus=2e-5, nu_schedule="exponential", nu_final=0.05,
                rounding="accumulate") >= 0.81


def test_mnist_one_pass_100_neurons_fast_bindsnet_constants(mnist_dir):
    """BindsNET's constants (θ+ 0.05 mV, constant rates): measured 78.6 % (seed 0); ≥ 77 % allows the seed spread
    (software synapses, seeds 0 / 1: 77.9 / 78.1 %)."""
    assert _run(mnist_dir, 100, "fast") >= 0.77


def test_mnist_one_pass_100_neurons_paper(mnist_dir):
    """The paper's own protocol (conductance-based, triplet rule): within 2 points of 82.9 %."""
    assert _run(mnist_dir, 100, "paper") >= 0.809


def test_mnist_one_pass_100_neurons_paper_mode_threshold_memory_scaled(mnist_dir):
    """Paper mode with τ_θ scaled to the network size (10⁴ s × 100/400 = 2 500 s; the released θ+·τ_θ caps a
    100-neuron network's activity, docs/stdp_validation.md): measured 76.8 % (seed 0) and 74.3 % (seed 1), against
    67.1 % with the released constants; ≥ 73 % allows the seed spread and stays 6 points above the released run."""
    assert _run(mnist_dir, 100, "paper", synapses="software", tau_theta_s=2500.0) >= 0.73


def test_mnist_one_pass_100_neurons_paper_mode_half_tau_theta_shuffled(mnist_dir):
    """Paper mode with half of τ_θ (5 000 s) on a shuffled training order (``dataset.shuffle_seed: 0``): measured
    84.2 % (seed 0; order 1: 85.2 %). In the file's order the same network scores 79.6 %, because the file's
    images 55 001–60 000 cost 4 points whenever they come last (docs/stdp_validation.md). ≥ 80.9 % is the issue's
    "within 2 points of 82.9 %", here for this departure from the released constants."""
    assert _run(mnist_dir, 100, "paper", synapses="software", tau_theta_s=5000.0, shuffle_seed=0) >= 0.809


def test_mnist_one_pass_100_neurons_paper_mode_pair_rule(mnist_dir):
    """Paper mode with the pair rule instead of the released triplet rule: measured 78.1 % (seed 0) and 78.6 %
    (seed 1), software synapses; ≥ 77 % allows the ≈ 1-point spread between seeds."""
    assert _run(mnist_dir, 100, "paper", rule="pair", synapses="software") >= 0.77


def test_mnist_400_neurons(mnist_dir):
    """400 neurons, one pass over the 60 000 images (the paper: three passes, 87.0 %): ≥ 85.5 %."""
    assert _run(mnist_dir, 400, "fast") >= 0.855


def test_mnist_400_neurons_paper_mode(mnist_dir):
    """Paper mode (the released code: conductance neurons, triplet rule) at 400 neurons, one pass: measured 87.3 %
    (seed 0, software synapses; seed 1: 87.2 %; the paper: 87.0 % after three passes). ≥ 85.5 %, the issue's 400-neuron target.
    Without the stiff-step guard this network runs away within 1 000 images and ends at chance."""
    assert _run(mnist_dir, 400, "paper", synapses="software") >= 0.855

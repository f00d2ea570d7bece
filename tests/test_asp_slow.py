"""Sequential MNIST digits 0–9, plain STDP against ASP (``pytest -m slow``; ~1 and ~2 min, one thread).

The protocol of ``examples/asp_sequential.yaml``: 300 training images per digit from the first 10 000, labels
from 100 held-out images per seen digit, the first 2 000 test images, ideal software synapses, ASP at its
defaults, seed 0. The README's 10-seed tables give the spread. Seed 0 is asserted with margins below its
measured values, so a regression fails and seed noise does not. At 100 neurons ASP is 0.715 against STDP's 0.621
(+9.4; the 10 seeds: +3.3 to +14.8). At 400 neurons it is 0.711 against 0.494 (+21.7; 20 seeds: −4.9 to
+27.2, two below zero where STDP kept 0.72–0.76, hence a seed-0 test, not a claim for every seed).
"""

from __future__ import annotations

import pytest
import torch

from algorithms.base import Hardware
from algorithms.registry import get_algorithm
from circuits import EnergyLedger
from device_models import IdealDevice

pytestmark = pytest.mark.slow


def _last_phase(mnist_dir, n_neurons: int) -> dict[str, dict]:
    from xbarsim.datasets import Dataset, load_mnist

    torch.set_num_threads(1)
    full = load_mnist(mnist_dir)
    data = Dataset(full.name, full.x_train[:10000], full.y_train[:10000], full.x_test[:2000], full.y_test[:2000],
                   full.image_shape)
    cls = get_algorithm("asp")
    params = cls.make_params(n_neurons=n_neurons, phases=list(range(10)), images_per_phase=300,
                             n_assign_per_class=100, compare_stdp=True)
    alg = cls(params, Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(0)))
    alg.fit(data, EnergyLedger())
    rows = alg.evaluate(data.x_test, data.y_test, 0.0)
    return {r["algorithm"]: r for r in rows if r["phase"] == 9}


def test_asp_keeps_more_old_digits_than_stdp_at_100_neurons(mnist_dir):
    """Seed 0: ASP ≥ STDP + 5 points over the ten digits (measured +9.4); STDP has forgotten (< 0.70)."""
    last = _last_phase(mnist_dir, 100)
    assert last["stdp"]["accuracy_seen"] < 0.70
    assert last["asp"]["accuracy_seen"] >= last["stdp"]["accuracy_seen"] + 0.05


def test_asp_margin_at_400_neurons(mnist_dir):
    """Seed 0: ASP ≥ STDP + 15 points over the ten digits (measured +21.7). ASP's newest digit is well above
    chance (measured 0.747; STDP's 0.979)."""
    last = _last_phase(mnist_dir, 400)
    assert last["asp"]["accuracy_seen"] >= last["stdp"]["accuracy_seen"] + 0.15
    assert last["asp"]["accuracy_newest"] >= 0.5

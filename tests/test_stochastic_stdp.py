"""The stochastic_stdp algorithm: the Diehl & Cook network on binary (Bernoulli or MTJ) synapses, its energy
bookkeeping and result rows."""


import pytest
import torch

from algorithms.base import Hardware
from algorithms.registry import get_algorithm
from circuits import ADC, EnergyLedger
from device_models import STTMTJ, IdealDevice
from xbarsim.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _fit(digits, n_train=24, **kw):
    cls = get_algorithm("stochastic_stdp")
    dev = kw.pop("device", IdealDevice())
    hw = Hardware(device=dev, generator=torch.Generator().manual_seed(0))
    alg = cls(cls.make_params(n_neurons=6, max_rate_hz=400.0, **kw), hw)

    class D:
        x_train, y_train = digits.x_train[:n_train], digits.y_train[:n_train]
        x_test, y_test = digits.x_test, digits.y_test
        image_shape, n_classes = (1, 8, 8), 10

    led = EnergyLedger()
    alg.fit(D, led)
    return alg, led


def test_device_mode_write_energy_bookkeeping(digits):
    alg, led = _fit(digits, synapse="device", device=STTMTJ(), gamma_pot=0.2, gamma_dep=0.2)
    syn = alg.net.syn
    assert syn.attempts > 0 and syn.write_energy_J > 0
    assert led.by_component()["write"] == pytest.approx(syn.write_energy_J, rel=1e-9)
    cols = alg.columns()
    assert cols["write_energy_per_image_J"] == pytest.approx(syn.write_energy_J / 24, rel=1e-9)
    assert cols["write_energy_per_attempt_J"] == pytest.approx(syn.write_energy_J / syn.attempts, rel=1e-9)
    # every attempt is one I²·R·t pulse with I ≤ the current for p = γ (R ≤ R_AP of the spread cells)
    dev = STTMTJ()
    i_max = dev.current_for_probability(0.2, dev.t_write_s)
    r_max = float((1 / syn.states[0].d2d["g_p"]).max()) * (1 + dev.tmr)
    assert cols["write_energy_per_attempt_J"] <= i_max**2 * r_max * dev.t_write_s
    rows = alg.evaluate(digits.x_test[:40], digits.y_test[:40], 0.0)
    assert rows[0]["accuracy"] == rows[0]["accuracy_hw"] and 0 <= rows[0]["accuracy"] <= 1
    assert 0.0 <= rows[0]["on_fraction"] <= 1.0
    assert rows[0]["energy_array_J"] > 0  # input spikes read the MTJ array


def test_bernoulli_mode_has_no_write_energy_and_lt_st_weights(digits):
    alg, led = _fit(digits, synapse="bernoulli", element_scales=[1.0, 0.25], gamma_pot=0.2, gamma_dep=0.2)
    assert led.by_component().get("write", 0.0) == 0.0
    w = alg.net.syn.weights()
    assert set(torch.unique(w).tolist()) <= {0.0, 0.5, 1.0}  # k = 2 elements: weight = mean of the bits
    assert alg.columns()["write_energy_per_attempt_J"] == 0.0  # software draws: attempts cost nothing
    assert alg.columns()["elements"] == 2


@pytest.mark.parametrize("kw, key", [({"synapse": "device"}, "synapse"), ({"element_scales": [0.0]}, "element_scales")])
def test_bad_settings_are_named(kw, key):
    cls = get_algorithm("stochastic_stdp")
    with pytest.raises(ValueError, match=key):
        cls(cls.make_params(**kw), Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(0)))


@pytest.mark.slow
def test_mnist_short_run_learns(mnist_dir):
    """1000 MNIST images, 100 neurons, Bernoulli binary synapses: well above chance (measured ≈ 0.45–0.5)."""
    from xbarsim.datasets import load_mnist

    d = load_mnist(mnist_dir)
    cls = get_algorithm("stochastic_stdp")
    alg = cls(cls.make_params(n_neurons=100), Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(0)))

    class D:
        x_train, y_train = d.x_train[:1000], d.y_train[:1000]
        x_test, y_test = d.x_test, d.y_test
        image_shape, n_classes = (1, 28, 28), 10

    alg.fit(D, EnergyLedger())
    rows = alg.evaluate(d.x_test[:500], d.y_test[:500], 0.0)
    assert rows[0]["accuracy"] > 0.3
    assert rows[0]["rf_similarity"] < 0.5  # receptive fields differ


@pytest.mark.slow
def test_mnist_one_pass_two_mtjs_per_synapse_within_5_points_of_stdp(mnist_dir):
    """The issue's goal with its multi-device synapse: one pass over MNIST, 100 neurons, labels from the last
    10 000 training images, all test images, seed 0. Two binary elements per synapse (``element_scales: [1, 1]``,
    Bernoulli) against deterministic ``stdp`` (ideal crossbar, lossless readout) of the same size and data: measured
    76.7 against 78.6 % (1.9 points; seeds 1 / 2: 1.2 / 1.4; 400 neurons, seeds 0 / 1: 1.5 / 3.2). The goal is 5 points."""
    from xbarsim.datasets import load_mnist

    torch.set_num_threads(1)
    d = load_mnist(mnist_dir)
    acc = {}
    for name, kw in (("stdp", {}), ("stochastic_stdp", {"element_scales": [1.0, 1.0]})):
        cls = get_algorithm(name)
        alg = cls(cls.make_params(n_neurons=100, n_assign=10000, **kw),
                  Hardware(device=IdealDevice(), adc=ADC(bits=None), generator=torch.Generator().manual_seed(0)))
        alg.fit(d, EnergyLedger())
        acc[name] = alg.evaluate(d.x_test, d.y_test, 0.0)[0]["accuracy"]
    assert acc["stochastic_stdp"] >= acc["stdp"] - 0.05


@pytest.mark.slow
def test_crossbar_mode_switches_mapped_mtj_cells(digits):
    """synapse: crossbar — MTJ cells on a unipolar MappedMatrix, written by MappedMatrix.switch."""
    alg, led = _fit(digits, synapse="crossbar", device=STTMTJ(), gamma_pot=0.2, gamma_dep=0.2)
    syn = alg.net.syn
    assert led.by_component()["write"] == pytest.approx(syn.write_energy_J, rel=1e-6) and syn.attempts > 0
    w = syn.weights()
    assert ((w < 0.25) | (w > 0.75)).all()  # binary cells (d2d R spread moves the levels a little)


def test_switching_probability_schedule(digits):
    """nu_schedule scales γ_pot and γ_dep per training image: at the last of 24 images (k = 23) they are
    γ·f^(23/24) (exponential), and the annealed network switches fewer synapses than the constant one."""
    const, _ = _fit(digits, gamma_pot=0.2, gamma_dep=0.1)
    alg, _ = _fit(digits, gamma_pot=0.2, gamma_dep=0.1, nu_schedule="exponential", nu_final=0.1)
    f = 0.1 ** (23 / 24)
    assert alg.net.rule.gamma_pot == pytest.approx(0.2 * f, rel=1e-12)
    assert alg.net.rule.gamma_dep == pytest.approx(0.1 * f, rel=1e-12)
    assert alg.net.syn.switches < const.net.syn.switches

"""The SNN algorithms through the YAML engine: rows per method × T, bring-your-own model (factory = in-memory)."""

import math
import textwrap

import pandas as pd
import pytest
import torch
from torch import nn

import xbarsim
from algorithms.registry import get_algorithm

FAST = {"timesteps": [4, 16], "n_norm": 64, "norm_timesteps": 16}


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _trained_mlp():
    from xbarsim.datasets import load_dataset
    from xbarsim.models import train_model

    model = _mlp()
    train_model(model, load_dataset("digits", None, 0.3, 0), 10, 0.01, 64)
    return model


def _cfg(n_test=120, **alg):
    return {"dataset": {"name": "digits"}, "eval": {"n_test": n_test, "n_calibration": 64},
            "model": {"epochs": 0}, "algorithm": {"name": "conversion", **FAST, **alg}}


def test_registered_with_documented_params():
    for name in ("conversion", "hybrid", "surrogate"):
        cls = get_algorithm(name)
        p = cls.make_params()
        assert list(p.timesteps) == [8, 16, 32, 64]
        assert p.percentile == 99.9
    assert get_algorithm("hybrid").make_params().threshold_scale == 0.7
    assert get_algorithm("hybrid").make_params().alpha == 0.3 and get_algorithm("hybrid").make_params().beta == 0.01
    with pytest.raises(ValueError, match="algorithm.tau"):
        get_algorithm("conversion").make_params(tau=1)


def test_conversion_rows_per_T_and_columns():
    model = _trained_mlp()
    df = xbarsim.run(_cfg(), model=model, progress=False)
    assert list(df.timesteps) == [4, 16]
    assert set(df.method) == {"conversion"}
    for col in ("accuracy_ann", "accuracy_ann_hw", "accuracy_snn_sw", "accuracy_snn_hw", "spike_rate_linear1", "ops_ac",
                "ops_mac", "energy_opcount_ann_J", "energy_opcount_snn_J", "opcount_energy_ratio", "energy_per_inference_J",
                "energy_array_J", "energy_adc_J", "energy_neuron_J", "latency_s"):
        assert col in df.columns, col
    r = df.set_index("timesteps")
    # more steps: more accumulates, more energy, longer latency, at least as accurate on ideal devices (±1 image)
    assert r.ops_ac[16] > r.ops_ac[4] and r.energy_per_inference_J[16] > r.energy_per_inference_J[4]
    assert r.latency_s[16] > r.latency_s[4]
    assert r.accuracy_snn_hw[16] >= r.accuracy_snn_hw[4] - 1 / 120
    # direct input: the first layer costs T·#MAC, every spiking layer ACs; ratio = E_ANN/E_SNN
    assert r.ops_mac[16] == 16 * 64 * 32
    assert r.opcount_energy_ratio[16] == pytest.approx(r.energy_opcount_ann_J[16] / r.energy_opcount_snn_J[16])
    parts = df[[c for c in df.columns if c.startswith("energy_") and c.endswith("_J") and "opcount" not in c
                and c != "energy_per_inference_J"]].sum(axis=1)
    assert ((parts - df.energy_per_inference_J).abs() <= 1e-9 * df.energy_per_inference_J).all()
    assert (df.energy_dac_J > 0).all()  # the analog first layer goes through the DAC


def test_analog_readout_has_no_adc_in_spiking_layers():
    model = _trained_mlp()
    adc = xbarsim.run(_cfg(60, software_snn=False), model=model, progress=False).set_index("timesteps")
    ana = xbarsim.run(_cfg(60, readout="analog", software_snn=False), model=model, progress=False).set_index("timesteps")
    # the analog neurons' energy: 10 fJ per neuron step + 4 fJ per spike (32 hidden + 10 output neurons)
    assert (ana.energy_adc_J < adc.energy_adc_J).all()
    assert (ana.energy_digital_J == 0).all()
    assert ana.energy_neuron_J[16] >= 16 * 42 * 10e-15
    assert abs(ana.accuracy_snn_hw[16] - adc.accuracy_snn_hw[16]) <= 3 / 60


def test_factory_model_from_yaml_gives_the_same_table_as_the_module(tmp_path):
    """model: {factory, weights} in YAML and the same module passed in Python give identical tables."""
    model = _trained_mlp()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    (tmp_path / "mynet.py").write_text(textwrap.dedent("""
        from torch import nn

        def build():
            return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    """))
    (tmp_path / "snn.yaml").write_text(textwrap.dedent("""
        dataset: {name: digits}
        model: {factory: "mynet.py:build", weights: w.pt, epochs: 0}
        eval: {n_test: 120, n_calibration: 64}
        algorithm: {name: conversion, timesteps: [4, 16], n_norm: 64, norm_timesteps: 16}
    """))
    a = xbarsim.run(tmp_path / "snn.yaml", progress=False)
    b = xbarsim.run(_cfg(), model=model, progress=False)
    cols = [c for c in a.columns if c.startswith(("accuracy", "energy", "ops", "spike_rate", "latency")) or c in ("timesteps", "method")]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


def test_maxpool_model_is_refused_naming_average_pooling():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(Exception, match="average pooling"):
        xbarsim.run(_cfg(), model=model, progress=False)


@pytest.mark.slow
def test_hybrid_and_surrogate_train_and_report(tmp_path):
    """Hybrid fine-tuning at T = 4 of a conversion that barely spikes improves the SNN; surrogate training
    from scratch learns (far above chance); both report the trained thresholds and the training loss."""
    model = _trained_mlp()
    conv = xbarsim.run(_cfg(timesteps=[4], norm="spike_norm", threshold_scale=0.7), model=model, progress=False).iloc[0]
    hyb = xbarsim.run(_cfg(name="hybrid", timesteps=[4], epochs=2, lr=1e-3, n_train=600, surrogate="linear"),
                      model=model, progress=False).iloc[0]
    sur = xbarsim.run(_cfg(name="surrogate", timesteps=[4], epochs=10, n_train=1200, lr=5e-3), model=model, progress=False).iloc[0]
    assert hyb.method == "hybrid" and sur.method == "surrogate"
    assert hyb.accuracy_snn_sw > conv.accuracy_snn_sw
    assert sur.accuracy_snn_hw > 0.5
    assert math.isfinite(hyb.train_loss) and "threshold_linear1" in hyb.index


# -- hardware-aware training (algorithms/snn/training.py) ------------------------------------------------------------


def _ideal_snn(model, backend, thresholds=None):
    from conftest import ideal_net

    from algorithms.snn.network import SpikingNetwork

    net = ideal_net(model, rows=32, cols=16)
    for p in net.software.parameters():
        p.requires_grad_(False)
    snn = SpikingNetwork(net, backend=backend, generator=net.generator)
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    net.calibrate(x)
    names = [s.name for s in snn.stages if s.kind == "weight"]
    snn.balance(x, thresholds=thresholds or {n: 0.5 for n in names}, timesteps=8)
    return snn


def test_chip_in_the_loop_training_equals_software_training_on_ideal_devices():
    """Ideal cells and lossless converters (float64): the chip forward is the software product, so training through
    the chips (straight-through gradients, re-programmed every step) gives the software losses and weights to 1e-6."""
    from algorithms.snn.surrogate import STDB
    from algorithms.snn.training import train_bptt

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10)).double()
    x = torch.rand(96, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.randint(0, 10, (96,), generator=torch.Generator().manual_seed(2))
    out = {}
    for hw in (False, True):
        snn = _ideal_snn(model, "hw" if hw else "sw")
        losses = train_bptt(snn, x, y, 6, STDB(), 3, 1e-2, 32, hardware=hw, generator=torch.Generator().manual_seed(3))
        out[hw] = (losses, [p.detach().clone() for p in snn.net.software.parameters()])
    assert out[False][0][-1] < out[False][0][0]  # it learned
    assert out[True][0] == pytest.approx(out[False][0], abs=1e-6)
    for a, b in zip(out[True][1], out[False][1]):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_weight_noise_injection_has_the_requested_sigma():
    """weight_noise η: the training forward uses W + η·max|W|·N(0,1). For the output layer with direct input x = 1, the
    logits move by Σ_i ΔW_ji ~ N(0, n_in·(η·max|W|)²): the sample std over 256 outputs × 20 draws is within 5 % of
    that (standard error 1 %), the mean within 4 standard errors of 0, and η = 0 changes nothing."""
    from algorithms.snn.surrogate import STDB
    from algorithms.snn.training import _check_noise, _draw_noise, bptt_forward

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 256)).double()
    snn = _ideal_snn(model, "sw", thresholds={"linear1": 1.0})
    x = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    eta = 0.05
    clean = bptt_forward(snn, x, 4, STDB())
    diffs = torch.cat([bptt_forward(snn, x, 4, STDB(), noise=_draw_noise(snn, _check_noise(snn, eta), gen)) - clean
                       for _ in range(20)]).flatten()
    expected = eta * float(model[1].weight.detach().abs().max()) * 64**0.5
    assert float(diffs.std()) == pytest.approx(expected, rel=0.05)
    assert abs(float(diffs.mean())) < 4 * expected / diffs.numel() ** 0.5
    assert _draw_noise(snn, _check_noise(snn, 0.0), gen) is None
    with pytest.raises(ValueError, match="weight_noise"):
        _check_noise(snn, {"conv9": 0.1})
    with pytest.raises(ValueError, match="weight_noise"):
        _check_noise(snn, -0.1)


def test_programming_noise_measures_the_device():
    """programming_noise = std(W_chip − W)/max|W|. RRAM (no levels), differential pair, W = w_max/2 everywhere (one cell
    at w_max sets the range): G⁺ gets N(0, σ·window), G⁻ sits at g_min and its noise is clipped to the window (a
    half-normal, variance σ²(1/2 − 1/(2π))), so η = σ·sqrt(3/2 − 1/(2π)) = 1.158·σ; an ideal device gives 0."""
    import math

    from algorithms import CrossbarNetwork
    from algorithms.snn.network import SpikingNetwork
    from algorithms.snn.training import programming_noise
    from circuits import ADC, DAC, CrossbarSpec
    from device_models import RRAM

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64, bias=False)).double()
    with torch.no_grad():
        model[1].weight.fill_(0.5)
        model[1].weight[0, 0] = 1.0
    sigma = 0.05
    net = CrossbarNetwork(model, RRAM(sigma_prog=sigma, levels=None), CrossbarSpec(rows=64, cols=128), DAC(bits=None),
                          ADC(bits=None), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eta = programming_noise(SpikingNetwork(net, backend="hw"))["linear1"]
    assert eta == pytest.approx(sigma * math.sqrt(1.5 - 1 / (2 * math.pi)), rel=0.06)  # 4096 cells: standard error 1.1 %
    assert programming_noise(_ideal_snn(model, "hw", thresholds={"linear1": 1.0}))["linear1"] < 1e-12


def test_hybrid_weight_noise_key_injects_the_measured_programming_noise(monkeypatch):
    """``algorithm.weight_noise: k`` trains with k × the η the chips show (Joshi et al. 2020), per layer."""
    import algorithms.snn.conversion as conv
    from algorithms.snn.training import programming_noise

    seen = {}
    real = conv.train_bptt

    def spy(snn, *a, **kw):
        seen["noise"], seen["clip"] = kw["weight_noise"], kw["clip_std"]
        seen["eta"] = programming_noise(alg_box["alg"].snn_hw)
        return real(snn, *a, **kw)

    alg_box = {}
    real_train = conv._TrainedAlgorithm._train

    def capture(self, *a, **kw):
        alg_box["alg"] = self
        return real_train(self, *a, **kw)

    monkeypatch.setattr(conv, "train_bptt", spy)
    monkeypatch.setattr(conv._TrainedAlgorithm, "_train", capture)
    cfg = _cfg(n_test=60, name="hybrid", timesteps=[4], epochs=1, n_train=64, weight_noise=0.5, clip_std=2.5)
    cfg["device"] = {"model": "rram", "sigma_prog": 0.05}
    df = xbarsim.run(cfg, model=_trained_mlp(), progress=False)
    assert seen["clip"] == 2.5
    assert set(seen["noise"]) == set(seen["eta"]) and len(seen["eta"]) == 2
    for k, eta in seen["eta"].items():
        assert eta > 0.01  # σ_prog 0.05 of the conductance window shows up as weight noise
        assert seen["noise"][k] == pytest.approx(0.5 * eta, rel=1e-12)
        assert df[f"eta_{k}"].iloc[0] == pytest.approx(eta, rel=1e-12)


def test_weight_noise_with_chip_in_the_loop_is_refused():
    cfg = _cfg(n_test=30, name="hybrid", timesteps=[4], epochs=1, n_train=32, weight_noise=1.0, hardware_aware=True)
    with pytest.raises(ValueError, match="algorithm.weight_noise"):
        xbarsim.run(cfg, model=_trained_mlp(), progress=False)

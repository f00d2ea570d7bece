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

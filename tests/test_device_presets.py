"""Presets (YAML with value/unit/source), the registry, the public API and determinism of every model."""

from pathlib import Path

import pytest
import torch

import device_models
from device_models import (
    DEVICE_MODELS,
    PCM,
    RRAM,
    SOTMTJ,
    STTMTJ,
    DeviceParameterError,
    IdealDevice,
    LookupDevice,
    list_presets,
    load_preset,
    make_device,
    preset_table,
)

CSV = str(Path(__file__).resolve().parents[1] / "examples" / "lookup_taox.csv")
EXPECTED = {"ideal", "pcm_ibm", "rram_ag_asi", "rram_taox_hfox", "rram_alox_hfo2", "rram_epiram", "stt_mtj", "sot_mtj"}


def test_public_exports():
    for name in ("IdealDevice", "PCM", "RRAM", "STTMTJ", "SOTMTJ", "LookupDevice", "load_preset", "list_presets"):
        assert name in device_models.__all__ and hasattr(device_models, name)
    assert set(DEVICE_MODELS) >= {"ideal", "rram", "pcm", "stt_mtj", "sot_mtj", "lookup"}


def test_every_preset_loads_with_value_unit_source():
    assert EXPECTED <= set(list_presets())
    for name in list_presets():
        dev = load_preset(name)
        rows = preset_table(name)
        assert rows, name
        for row in rows:
            assert set(row) == {"parameter", "value", "unit", "source"}
            assert row["unit"] and row["source"], (name, row)
            # YAML 1.1 reads 8.0e3 as a string: every numeric field must really be a number
            field_value = getattr(dev, row["parameter"])
            if isinstance(field_value, str):
                assert field_value in ("linear", "sinh", "ap", "p", "precessional", "extrapolate"), (name, row)
            elif field_value is not None and not isinstance(field_value, (bool, tuple)):
                assert isinstance(field_value, (int, float)), (name, row)


def test_preset_values_are_the_published_ones():
    ag = load_preset("rram_ag_asi")
    assert (ag.g_max, ag.g_min, ag.levels_ltp, ag.levels_ltd, ag.nl_ltp, ag.nl_ltd, ag.sigma_c2c) == (
        3.846e-8,
        3.077e-9,
        97,
        100,
        2.4,
        -4.88,
        0.035,
    )
    assert load_preset("rram_epiram").on_off_ratio == pytest.approx(50.2, rel=1e-3)
    assert load_preset("rram_alox_hfo2").on_off_ratio == pytest.approx(4.43, rel=1e-3)
    pcm = load_preset("pcm_ibm")
    assert pcm.prog_coeff == (0.26348, 1.9650, -1.1731) and pcm.t0_s == 20.0 and pcm.t_read_s == 250e-9
    stt = load_preset("stt_mtj")
    assert (stt.delta, stt.i_c0, stt.tmr, stt.tau0) == (40.0, 49e-6, 1.2, 1e-9)
    assert isinstance(load_preset("sot_mtj"), SOTMTJ)


def test_overrides_and_errors():
    dev = load_preset("rram_ag_asi", sigma_c2c=0.05)
    assert isinstance(dev, RRAM) and dev.sigma_c2c == 0.05 and dev.g_max == 3.846e-8
    with pytest.raises(DeviceParameterError, match=r"sigma_c2x.*allowed: .*sigma_c2c"):
        load_preset("rram_ag_asi", sigma_c2x=0.05)
    with pytest.raises(DeviceParameterError, match=r"preset.*allowed: .*rram_ag_asi"):
        load_preset("rram_nope")
    with pytest.raises(DeviceParameterError, match=r"model.*allowed: .*pcm"):
        make_device("flux_capacitor")
    with pytest.raises(DeviceParameterError, match="sigma_c2c"):
        load_preset("rram_ag_asi", sigma_c2c=-1.0)


def _devices():
    return [
        IdealDevice(),
        RRAM(sigma_d2d_nl=0.3, sigma_d2d_gmax_rel=0.1, p_stuck_on=0.05),
        PCM(),
        STTMTJ(),
        SOTMTJ(),
        LookupDevice(csv=CSV, sigma_c2c=0.02, sigma_prog=0.01),
    ]


def _run(dev, seed):
    g = torch.Generator().manual_seed(seed)
    s = dev.new_state((16, 8), g)
    target = torch.linspace(dev.g_min, dev.g_max, 128).reshape(16, 8)
    s = dev.program(s, target, g)
    r = dev.read(s, 3600.0, g)
    n = (torch.arange(128).reshape(16, 8) % 7 - 3).float()
    s2, e = dev.pulse(s, n, g)
    out = [s.g, r, s2.g, e.reshape(1)]
    if isinstance(dev, STTMTJ | SOTMTJ):
        s3, e3 = dev.switch(s, torch.full((16, 8), -dev.i_c0), 5e-9, g)
        out += [s3.g, e3.reshape(1)]
    return out


@pytest.mark.parametrize("dev", _devices(), ids=lambda d: type(d).__name__)
def test_same_seed_identical_other_seed_different(dev):
    a, b, c = _run(dev, 11), _run(dev, 11), _run(dev, 12)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
        assert x.device == torch.device("cpu")
    if not isinstance(dev, IdealDevice):
        assert any(not torch.equal(x, z) for x, z in zip(a, c))


@pytest.mark.parametrize("dev", _devices(), ids=lambda d: type(d).__name__)
def test_energy_is_a_0d_total_and_shapes_kept(dev):
    g = torch.Generator().manual_seed(0)
    s = dev.new_state((4, 5), g)
    s2, e = dev.pulse(s, torch.ones(4, 5), g)
    assert e.dim() == 0 and e.item() >= 0 and s2.g.shape == (4, 5)
    _, e0 = dev.pulse(s, torch.zeros(4, 5), g)
    assert e0.item() == 0.0


def test_describe_lists_parameters():
    d = load_preset("stt_mtj").describe()
    assert d["model"] == "stt_mtj" and d["delta"] == 40.0

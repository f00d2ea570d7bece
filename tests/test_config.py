"""Config validation: every error names the dotted key, the bad value and what is allowed."""

import pytest

from xbarsim import ConfigError, load_config, validate_config
from xbarsim.sweep import expand_sweep


def test_adc_bits_zero():
    with pytest.raises(ConfigError) as e:
        validate_config({"crossbar": {"adc": {"bits": 0}}})
    msg = str(e.value)
    assert "crossbar.adc.bits" in msg and "got 0" in msg and "≥ 1" in msg


def test_unknown_key_lists_allowed():
    with pytest.raises(ConfigError) as e:
        validate_config({"crossbar": {"r_wire": 1.0}})
    msg = str(e.value)
    assert "crossbar.r_wire: unknown key" in msg and "r_wire_row" in msg and "r_wire_col" in msg


def test_unknown_section():
    with pytest.raises(ConfigError, match="devices: unknown key"):
        validate_config({"devices": {}})


def test_negative_conductance():
    with pytest.raises(ConfigError) as e:
        validate_config({"device": {"model": "rram", "g_min": -1e-6}})
    msg = str(e.value)
    assert "device.g_min" in msg and "-1e-06" in msg and "≥ 0" in msg


def test_unknown_device_parameter_and_model():
    with pytest.raises(ConfigError, match=r"device\.sigma: unknown parameter .* allowed: .*sigma_prog"):
        validate_config({"device": {"model": "rram", "sigma": 0.1}})
    with pytest.raises(ConfigError, match=r"device\.model: got 'memristorx'; allowed: .*ideal"):
        validate_config({"device": {"model": "memristorx"}})


def test_negative_wire_resistance():
    with pytest.raises(ConfigError, match=r"crossbar\.r_wire_row: got -1\.0; .*≥ 0"):
        validate_config({"crossbar": {"r_wire_row": -1.0}})


def test_bad_sweep_value_names_key():
    with pytest.raises(ConfigError, match=r"sweep\.crossbar\.adc\.bits = 0: crossbar\.adc\.bits"):
        validate_config({"sweep": {"crossbar.adc.bits": [4, 0]}})
    with pytest.raises(ConfigError, match=r"sweep\.crossbar\.nothing"):
        validate_config({"sweep": {"crossbar.nothing": [1]}})
    with pytest.raises(ConfigError, match=r"sweep\.nosection\.x"):
        validate_config({"sweep": {"nosection.x": [1]}})


def test_grid_expansion():
    cfg = validate_config({"sweep": {"crossbar.adc.bits": [4, 6, 8], "device.g_max": [1e-6, 2e-6]}})
    pts = expand_sweep(cfg)
    assert len(pts) == 6
    assert {(p.crossbar.adc.bits, p.device["g_max"]) for _, p in pts} == {(b, g) for b in (4, 6, 8) for g in (1e-6, 2e-6)}


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("crossbar: {rows: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_relative_paths_resolve_against_the_yaml_file(tmp_path):
    (tmp_path / "sub").mkdir()
    f = tmp_path / "sub" / "c.yaml"
    f.write_text("dataset: {name: mnist, path: ../data}\n")
    assert load_config(f).dataset.path == str((tmp_path / "data").resolve())


def test_yaml_exponent_floats_and_device_csv_path(tmp_path):
    (tmp_path / "cfg").mkdir()
    f = tmp_path / "cfg" / "c.yaml"
    f.write_text("device: {model: rram, g_max: 2e-5, g_min: 1E-6}\ncrossbar: {r_wire_row: 5e-1}\n")
    cfg = load_config(f)
    assert cfg.device["g_max"] == 2e-5 and cfg.device["g_min"] == 1e-6 and cfg.crossbar.r_wire_row == 0.5
    import shutil

    from conftest import ROOT

    shutil.copy(ROOT / "examples" / "lookup_taox.csv", tmp_path / "curve.csv")
    f.write_text("device: {model: lookup, csv: ../curve.csv}\n")
    assert load_config(f).device["csv"] == str((tmp_path / "curve.csv").resolve())

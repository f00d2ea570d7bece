"""The ISAAC-like example end to end: `xbarsim run … --breakdown FILE` and the result columns."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from xbarsim import load_config

EXAMPLE = ROOT / "examples" / "isaac_like.yaml"


def test_isaac_like_example_is_isaac():
    """128×128 arrays, 2-bit cells × 4 slices of 8-bit weights, 8 bit-serial input reads, one 8-bit ADC per
    128 columns at ISAAC's 2 mW / 1.28 GS/s = 1.5625 pJ and 0.78125 ns per conversion, 100 ns reads."""
    cfg = load_config(EXAMPLE)
    xb, m = cfg.crossbar, cfg.mapping
    assert (xb.rows, xb.cols, m.weight_bits, m.bits_per_cell, cfg.device["levels"]) == (128, 128, 8, 2, 4)
    assert (xb.input_mode, xb.dac.bits, xb.adc.bits, xb.adc.cols_per_adc) == ("bit_serial", 8, 8, 128)
    assert xb.adc.energy_model == "fixed" and xb.adc.e_conv_J == pytest.approx(2e-3 / 1.28e9)
    assert xb.adc.t_conv_s == pytest.approx(1 / 1.28e9) and xb.t_read_s == pytest.approx(100e-9)


def test_cli_isaac_like_breakdown_sums_to_totals(tmp_path):
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["eval"]["n_test"] = 60
    cfg["model"]["epochs"] = 5  # a quick model: this checks the plumbing, not the accuracy
    conf = tmp_path / "isaac.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    out, bd = tmp_path / "rows.csv", tmp_path / "breakdown.csv"
    cmd = [sys.executable, "-m", "xbarsim.cli", "run", "-q", str(conf), "--out", str(out), "--breakdown", str(bd)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for col in ("accuracy_hw", "energy_per_inference_J", "latency_s", "energy_adc_J", "energy_digital_J"):
        assert col in res.stdout
    row = pd.read_csv(out).iloc[0]
    parts = sum(row[f"energy_{c}_J"] for c in ("array", "dac", "adc", "digital", "neuron", "write"))
    assert abs(parts - row.energy_per_inference_J) <= 1e-9 * row.energy_per_inference_J
    table = pd.read_csv(bd)
    assert set(table.component) == {"array", "dac", "adc", "digital"} and set(table.layer) == {"linear1", "linear2"}
    assert (table.point_id == row.point_id).all() and (table.t_s == row.t_s).all()
    assert abs(table.energy_per_inference_J.sum() - row.energy_per_inference_J) <= 1e-9 * row.energy_per_inference_J
    assert abs(table.latency_s.sum() - row.latency_s) <= 1e-9 * row.latency_s
    for comp in ("array", "dac", "adc", "digital"):
        got = table.loc[table.component == comp, "energy_per_inference_J"].sum()
        assert abs(got - row[f"energy_{comp}_J"]) <= 1e-9 * row.energy_per_inference_J
    adc = table[table.component == "adc"].set_index("layer")
    # conversions per inference: 8 input bits × 4 slices × outputs (64, then 10), at 1.5625 pJ each
    assert list(adc.events_per_inference) == [8 * 4 * 64, 8 * 4 * 10]
    assert adc.energy_per_inference_J.sum() == pytest.approx((2048 + 320) * 1.5625e-12, rel=1e-12)
    # latency: per layer 8 reads × (100 ns + n_seq × 0.78125 ns), n_seq = min(128, 4 × outputs on the busiest array):
    # layer 1: 31 outputs per array (126 usable columns / 4) → 124; layer 2: 10 outputs → 40
    assert row.latency_s == pytest.approx(8 * (100e-9 + 124 * 0.78125e-9) + 8 * (100e-9 + 40 * 0.78125e-9), rel=1e-12)

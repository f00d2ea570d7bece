"""The built-in quickstart end to end: CLI, table contents, determinism, resumable sweeps."""

import importlib
import subprocess
import sys
import time

import pandas as pd
import pytest

import xbarsim

sweep_mod = importlib.import_module("xbarsim.sweep")


def test_cli_quickstart_writes_table(tmp_path):
    out = tmp_path / "qs.csv"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "xbarsim.cli", "run", "-q", "--out", str(out)], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    assert wall < 60
    df = pd.read_csv(out)
    assert list(df["device"]) == ["ideal", "rram_noisy"]
    for col in ("accuracy_sw", "accuracy_hw", "accuracy_drop", "energy_per_inference_J", "energy_array_J", "energy_adc_J", "energy_dac_J"):
        assert col in df.columns
    assert ((df.accuracy_hw >= 0) & (df.accuracy_hw <= 1)).all()
    assert (df.accuracy_drop - (df.accuracy_sw - df.accuracy_hw)).abs().max() < 1e-12
    ideal, noisy = df.iloc[0], df.iloc[1]
    assert ideal.accuracy_sw > 0.9
    assert ideal.accuracy_drop <= 0.005
    assert noisy.accuracy_drop > ideal.accuracy_drop
    parts = df[["energy_array_J", "energy_dac_J", "energy_adc_J"]].sum(axis=1)
    assert ((parts - df.energy_per_inference_J).abs() <= 1e-9 * df.energy_per_inference_J).all()
    assert "rram_noisy" in res.stdout and "accuracy_hw" in res.stdout
    # both points ran the ann algorithm on the same software model and data (content hashes)
    assert (df.algorithm == "ann").all() and df.model_sha.nunique() == 1 and df.data_sha.nunique() == 1
    assert (df.n_test == 540).all()  # digits, 30 % held out


def _noisy(seed):
    return {
        "seed": seed,
        "device": {"model": "rram", "sigma_prog": 0.05},
        "eval": {"n_test": 200},
    }


def test_same_seed_same_table_other_seed_differs():
    a = xbarsim.run(_noisy(3), progress=False).drop(columns="wall_s")
    b = xbarsim.run(_noisy(3), progress=False).drop(columns="wall_s")
    c = xbarsim.run(_noisy(4), progress=False).drop(columns="wall_s")
    pd.testing.assert_frame_equal(a, b)
    assert a.energy_array_J.iloc[0] != c.energy_array_J.iloc[0]


def test_sweep_writes_each_point_and_resumes(tmp_path, monkeypatch):
    cfg = {"sweep": {"device.g_max": [2e-6, 4e-6, 8e-6]}, "eval": {"n_test": 100}}
    out = tmp_path / "s.csv"
    calls = []
    real = sweep_mod.run_point

    def counting(c):
        calls.append(c.device["g_max"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # interrupted during the second point
        return real(c)

    monkeypatch.setattr(sweep_mod, "run_point", counting)
    with pytest.raises(KeyboardInterrupt):
        xbarsim.sweep(cfg, out=out, progress=False)
    assert len(pd.read_csv(out)) == 1  # the finished point was kept
    calls.clear()
    monkeypatch.setattr(sweep_mod, "run_point", real)
    df = xbarsim.sweep(cfg, out=out, progress=False)
    assert sorted(df["device.g_max"]) == [2e-6, 4e-6, 8e-6]
    assert df["point_id"].is_unique


def test_cli_reports_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("crossbar: {adc: {bits: 0}}\n")
    res = subprocess.run([sys.executable, "-m", "xbarsim.cli", "run", str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "crossbar.adc.bits" in res.stderr and "Traceback" not in res.stderr


def test_process_pool_gives_the_same_table_in_point_order():
    cfg = {"seed": 5, "device": {"model": "rram", "sigma_prog": 0.05}, "eval": {"n_test": 150},
           "sweep": {"crossbar.adc.bits": [4, 8], "seed": [5, 6]}}
    serial = xbarsim.run(cfg, progress=False).drop(columns="wall_s")
    pooled = xbarsim.run(cfg, progress=False, workers=2).drop(columns="wall_s")
    pd.testing.assert_frame_equal(serial, pooled)
    assert list(serial["crossbar.adc.bits"]) == [4, 4, 8, 8]


def test_zip_sweep():
    cfg = {"sweep_mode": "zip", "eval": {"n_test": 50},
           "sweep": {"crossbar.adc.bits": [4, 8], "crossbar.dac.bits": [2, 6]}}
    df = xbarsim.run(cfg, progress=False)
    assert list(zip(df["crossbar.adc.bits"], df["crossbar.dac.bits"])) == [(4, 2), (8, 6)]
    with pytest.raises(xbarsim.ConfigError, match="equal length"):
        xbarsim.run({**cfg, "sweep": {"crossbar.adc.bits": [4, 8], "crossbar.dac.bits": [2]}})

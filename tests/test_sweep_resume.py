"""Resumes that cannot mix experiments: provenance columns, conflicts, --force, locks, breakdown coverage.

The sweep logic is exercised with a stand-in for ``run_point`` (instant, deterministic rows), so these
tests check the bookkeeping, not the physics; tests/test_quickstart.py runs the real thing.
"""

import importlib
import json
import shutil

import pandas as pd
import pytest
from conftest import ROOT

import xbarsim
from xbarsim.results import ResultsLockedError, TableLock, read_table

sweep_mod = importlib.import_module("xbarsim.sweep")


@pytest.fixture
def fake(monkeypatch):
    """``run_point`` stand-in: one row per point, accuracy a function of the config; records calls."""
    calls = []

    def run_point(cfg, breakdown=False, model=None):
        calls.append({"g_max": cfg.device.get("g_max"), "sigma": cfg.device.get("sigma_prog"), "breakdown": breakdown, "model": model})
        row = {"name": cfg.name, "seed": cfg.seed, "device": cfg.device.get("label", cfg.device["model"]), "t_s": 0.0,
               "drift_compensation": False, "accuracy_hw": 1.0 - float(cfg.device.get("sigma_prog", 0.0))}
        if breakdown:
            row["_breakdown"] = [{"layer": "linear1", "component": "adc", "energy_J": 1e-12},
                                 {"layer": "linear1", "component": "dac", "energy_J": 2e-12}]
        return [row]

    monkeypatch.setattr(sweep_mod, "run_point", run_point)
    return calls


def _cfg(sigmas=(0.0, 0.1), g_max=1e-5, **extra):
    return {"name": "t", "device": {"model": "rram", "g_max": g_max}, "sweep": {"device.sigma_prog": list(sigmas)}, **extra}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_carry_provenance(tmp_path, fake, suffix):
    out = tmp_path / f"r{suffix}"
    df = xbarsim.sweep(_cfg(), out=out, progress=False)
    assert list(df["device.sigma_prog"]) == [0.0, 0.1]
    for col in sweep_mod.PROVENANCE:
        assert df[col].notna().all(), col
    cfg0 = json.loads(df["config"].iloc[0])
    assert cfg0["device"] == {"model": "rram", "g_max": 1e-5, "sigma_prog": 0.0}  # the resolved point config
    assert df["point_id"].iloc[0] == sweep_mod.point_id(xbarsim.load_config(_cfg((0.0,)) | {"sweep": {}, "device": cfg0["device"]}))
    assert df["point_id"].is_unique and df["inputs"].iloc[0] == "{}"
    # a resume finds everything done: no point runs again, the table is unchanged
    fake.clear()
    again = xbarsim.sweep(_cfg(), out=out, progress=False)
    assert fake == []
    pd.testing.assert_frame_equal(again, df)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no lock or temporary files left


def test_extended_sweep_runs_only_the_new_point(tmp_path, fake):
    out = tmp_path / "r.csv"
    xbarsim.sweep(_cfg((0.0, 0.1)), out=out, progress=False)
    fake.clear()
    df = xbarsim.sweep(_cfg((0.0, 0.1, 0.2)), out=out, progress=False)
    assert [c["sigma"] for c in fake] == [0.2]
    assert list(df["device.sigma_prog"]) == [0.0, 0.1, 0.2]


def test_changed_fixed_key_is_refused_naming_it(tmp_path, fake):
    out = tmp_path / "r.csv"
    xbarsim.sweep(_cfg(g_max=1e-5), out=out, progress=False)
    before = out.read_bytes()
    fake.clear()
    with pytest.raises(sweep_mod.ResultsConflictError, match=r"device\.sigma_prog=0\.0 .*device\.g_max: 1e-05 in the file, 2e-05 now.*--force"):
        xbarsim.sweep(_cfg(g_max=2e-5), out=out, progress=False)
    assert fake == [] and out.read_bytes() == before  # refused before any work, file untouched


def test_force_keeps_both_and_makes_the_difference_a_column(tmp_path, fake):
    out = tmp_path / "r.csv"
    xbarsim.sweep(_cfg(g_max=1e-5), out=out, progress=False)
    df = xbarsim.sweep(_cfg(g_max=2e-5), out=out, progress=False, force=True)
    assert len(df) == 4 and df["point_id"].is_unique
    full = read_table(out)
    assert sorted(full["device.g_max"]) == [1e-5, 1e-5, 2e-5, 2e-5]  # old rows filled in from their config
    assert full.groupby(["device.g_max", "device.sigma_prog"]).size().eq(1).all()


def test_changed_input_file_is_refused(tmp_path, fake):
    csv = tmp_path / "lookup.csv"
    shutil.copy(ROOT / "examples" / "lookup_taox.csv", csv)
    cfg = {"name": "t", "device": {"model": "lookup", "csv": str(csv)}, "sweep": {"seed": [0, 1]}}
    out = tmp_path / "r.csv"
    df = xbarsim.sweep(cfg, out=out, progress=False)
    assert "device.csv" in json.loads(df["inputs"].iloc[0])
    fake.clear()
    xbarsim.sweep(cfg, out=out, progress=False)
    assert fake == []  # same file contents: resumed as done
    csv.write_text(csv.read_text().replace("127,9.9307867642e-06", "127,9.9300000000e-06"))  # one measured value
    with pytest.raises(sweep_mod.ResultsConflictError, match=r"device\.csv contents changed"):
        xbarsim.sweep(cfg, out=out, progress=False)


def test_in_memory_model_is_hashed_and_passed(tmp_path, fake):
    import torch

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    cfg = {"name": "t", "eval": {"n_test": 10}}
    a = sweep_mod.input_digests(xbarsim.load_config(cfg), net)["model="]
    df = xbarsim.run(cfg, model=net, progress=False, out=tmp_path / "m.csv")
    assert fake[0]["model"] is net
    assert json.loads(df["inputs"].iloc[0])["model="] == a
    with torch.no_grad():
        net[1].weight[0, 0] += 1e-3
    assert sweep_mod.input_digests(xbarsim.load_config(cfg), net)["model="] != a
    with pytest.raises(sweep_mod.ResultsConflictError, match=r"model= contents changed"):
        xbarsim.run(cfg, model=net, progress=False, out=tmp_path / "m.csv")


def test_unpicklable_model_with_workers_is_refused(fake):
    import torch

    net = torch.nn.Linear(64, 10)
    net.hook = lambda x: x  # a lambda attribute: not picklable
    with pytest.raises(ValueError, match=r"model=: the in-memory module cannot be pickled .* workers=1"):
        xbarsim.sweep(_cfg(), model=net, workers=2, progress=False)
    assert fake == []


def test_second_writer_is_refused(tmp_path, fake):
    out = tmp_path / "r.csv"
    with TableLock(out):
        with pytest.raises(ResultsLockedError, match=r"--out: .*r\.csv' is being written by another xbarsim run \(pid \d+\)"):
            xbarsim.sweep(_cfg(), out=out, progress=False)
    assert fake == [] and not out.exists()
    xbarsim.sweep(_cfg(), out=out, progress=False)  # lock released: fine now
    assert len(read_table(out)) == 2


def test_resume_with_breakdown_covers_every_point(tmp_path, fake):
    out, bd = tmp_path / "r.csv", tmp_path / "bd.csv"
    xbarsim.sweep(_cfg((0.0, 0.1)), out=out, progress=False)
    fake.clear()
    xbarsim.sweep(_cfg((0.0, 0.1, 0.2)), out=out, breakdown=bd, progress=False)
    assert sorted(c["sigma"] for c in fake) == [0.0, 0.1, 0.2] and all(c["breakdown"] for c in fake)
    table, blocks = read_table(out), read_table(bd)
    assert len(table) == 3  # the old points were re-run for their breakdown only
    assert set(blocks["point_id"]) == set(table["point_id"]) and len(blocks) == 6
    fake.clear()
    xbarsim.sweep(_cfg((0.0, 0.1, 0.2)), out=out, breakdown=bd, progress=False)
    assert fake == [] and len(read_table(bd)) == 6


def test_bad_out_is_refused_before_any_work(tmp_path, fake):
    with pytest.raises(ValueError, match=r"--out: got .*r\.txt'; the file name must end in \.csv or \.parquet"):
        xbarsim.sweep(_cfg(), out=tmp_path / "r.txt", progress=False)
    with pytest.raises(ValueError, match=r"--breakdown: got"):
        xbarsim.sweep(_cfg(), out=tmp_path / "r.csv", breakdown=tmp_path / "b.json", progress=False)
    assert fake == [] and list(tmp_path.iterdir()) == []


def test_legacy_file_without_provenance_needs_force(tmp_path, fake):
    out = tmp_path / "old.csv"
    pd.DataFrame([{"device.sigma_prog": 0.0, "accuracy_hw": 1.0, "point_id": "abc"}]).to_csv(out, index=False)
    with pytest.raises(sweep_mod.ResultsConflictError, match="older xbarsim"):
        xbarsim.sweep(_cfg(), out=out, progress=False)
    df = xbarsim.sweep(_cfg(), out=out, progress=False, force=True)
    assert len(df) == 3


def test_interrupt_keeps_whole_points_and_resumes(tmp_path, monkeypatch):
    calls = []

    def flaky(cfg, breakdown=False, model=None):
        calls.append(cfg.device["sigma_prog"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return [{"name": cfg.name, "seed": cfg.seed, "accuracy_hw": 0.5}]

    monkeypatch.setattr(sweep_mod, "run_point", flaky)
    out = tmp_path / "r.csv"
    with pytest.raises(sweep_mod.SweepInterrupted, match=r"1 of 3 points are in .*run the same command again to resume"):
        xbarsim.sweep(_cfg((0.0, 0.1, 0.2)), out=out, progress=False)
    assert len(read_table(out)) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]
    df = xbarsim.sweep(_cfg((0.0, 0.1, 0.2)), out=out, progress=False)
    assert list(df["device.sigma_prog"]) == [0.0, 0.1, 0.2] and calls == [0.0, 0.1, 0.1, 0.2]


@pytest.mark.slow
def test_unreachable_scheduler_is_one_clear_error(fake):
    pytest.importorskip("dask.distributed")
    with pytest.raises(ValueError, match=r"--scheduler: cannot reach the dask scheduler 'tcp://127\.0\.0\.1:9'"):
        xbarsim.sweep(_cfg(), scheduler="tcp://127.0.0.1:9", progress=False)
    assert fake == []

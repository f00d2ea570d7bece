"""The shipped examples reproduce the findings the README reports (about 30 s together on 2 cores)."""

import os

from conftest import ROOT

import xbarsim

EX = ROOT / "examples"


def test_ir_drop_sweep_accuracy_falls_with_wire_resistance():
    """IR drop grows with r·G·n: at every array size 10 Ω loses to 0 Ω, and at 256×256 (r·G·n = 0.26
    at 10 Ω, 100 µS) the loss grows with r — a step of one test image (1/540) of noise allowed."""
    df = xbarsim.run(EX / "ir_drop_sweep.yaml", progress=False)
    for n, part in df.groupby("crossbar.rows"):
        acc = part.set_index("crossbar.r_wire_row")["accuracy_hw"].sort_index()
        assert acc.loc[10] < acc.loc[0], n
        if n == 256:
            assert all(b <= a + 1 / 540 for a, b in zip(acc.values, acc.values[1:]))
            assert acc.loc[10] < 0.5


def test_pcm_drift_falls_and_compensation_recovers():
    """Averaged over the example's three device seeds: a year of drift costs accuracy, and global
    drift compensation recovers part of it."""
    df = xbarsim.run(EX / "pcm_drift.yaml", progress=False)
    mean = df.groupby(["t_s", "drift_compensation"])["accuracy_hw"].mean()
    year, first = 3.15e7, 1.0
    assert mean[(year, False)] < mean[(first, False)]
    assert mean[(year, True)] > mean[(year, False)]


def test_cnn_mnist_example(mnist_dir, monkeypatch):
    """MNIST CNN on crossbars: ideal arrays within 1 point of software, noisy RRAM loses more."""
    monkeypatch.setenv("XBARSIM_DATA", os.fspath(mnist_dir.parent))
    df = xbarsim.run(EX / "cnn_mnist.yaml", progress=False)
    ideal = df[df.device == df.device.iloc[0]].iloc[0]
    assert ideal.accuracy_sw > 0.9
    assert abs(ideal.accuracy_drop) <= 0.01
    assert df.accuracy_drop.iloc[-1] > ideal.accuracy_drop

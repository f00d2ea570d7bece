"""Array read energy and the ledger."""

import pytest
import torch

from circuits import ADC, DAC, Crossbar, CrossbarSpec, EnergyLedger, MappedMatrix
from device_models import IdealDevice


def test_array_energy_3x2_hand_calculation(gen):
    """E = t_read·Σ_i v_i²·Σ_j g_ij.
    g = [[1,2],[3,4],[5,6]] µS, v = [0.1,0.2,0.3] V: Σ = 0.01·3 + 0.04·7 + 0.09·11 = 1.30 µS·V²,
    so P = 1.30 µW and, over t_read = 10 ns, E = 13.0 fJ."""
    xb = Crossbar(3, 2, IdealDevice(g_min=0.0, g_max=10e-6), generator=gen, dtype=torch.float64)
    xb.program(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64) * 1e-6)
    v = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    assert float(xb.read_power(v)) == pytest.approx(1.30e-6, rel=1e-12)
    assert float(xb.read_energy(v, t_read_s=10e-9)) == pytest.approx(13.0e-15, rel=1e-12)
    # and the currents are v @ g
    torch.testing.assert_close(xb.mvm(v), torch.tensor([[2.2e-6, 2.8e-6]], dtype=torch.float64))


def test_ledger_counts_and_components(gen):
    """One 3-in/2-out layer on one array, batch of 4: 4·3 DAC and 4·2 ADC conversions, energies as modelled."""
    w = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -2.0]], dtype=torch.float64)
    x = torch.rand(4, 3, dtype=torch.float64, generator=gen)
    dac, adc = DAC(bits=4), ADC(bits=6, range_mode="max")
    mm = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=8, cols=8), dac, adc, generator=gen, dtype=torch.float64)
    mm.calibrate(x)
    ledger = EnergyLedger()
    ledger.count_inferences(4)
    mm.matmul(x, ledger)
    rec = {r["component"]: r for r in ledger.records()}
    assert rec["dac"]["events"] == 12 and rec["adc"]["events"] == 8
    assert rec["dac"]["energy_J"] == pytest.approx(12 * 4 * 0.39e-12)
    assert rec["adc"]["energy_J"] == pytest.approx(8 * max(1e-12, 30e-15 * 64))
    v = mm.dac.normalise(x) * mm.v_read
    g = mm.crossbar.g[0, 0, :3]
    e_array = float(((v**2) @ g.sum(1)).sum()) * IdealDevice().t_read_s
    assert rec["array"]["energy_J"] == pytest.approx(e_array, rel=1e-12)
    per = ledger.per_inference()
    assert per["total"] == pytest.approx(sum(v for k, v in per.items() if k != "total"), rel=1e-12)


def test_ledger_latency_ops_and_opcount_energy():
    """Totals over a batch of 4 → per inference; op-count energy = #MAC·4.6 pJ (+ #AC·0.9 pJ when spiking)."""
    import math

    led = EnergyLedger()
    led.count_inferences(4)
    led.add("l1", "array", 4e-12, events=4, latency_s=40e-9)
    led.add("l1", "adc", 8e-12, events=8, latency_s=20e-9)
    led.add("l2", "neuron", 2e-12)
    led.add_ops("l1", macs=4 * 300)
    assert led.latency_s() == pytest.approx(15e-9)
    assert led.ops_per_inference()["ops_mac"] == 300
    e = led.opcount_energy()
    assert e["energy_opcount_ann_J"] == pytest.approx(300 * 4.6e-12) and math.isnan(e["energy_opcount_snn_J"])
    led.add_ops("l2", macs=0, acs=4 * 50, macs_ann=4 * 100)  # a spike-driven layer: 50 ACs, 100 MACs as an ANN
    e = led.opcount_energy()
    assert e["energy_opcount_ann_J"] == pytest.approx(400 * 4.6e-12)
    assert e["energy_opcount_snn_J"] == pytest.approx(300 * 4.6e-12 + 50 * 0.9e-12)
    df = led.breakdown()
    assert list(df.columns) == ["layer", "component", "energy_J", "events", "energy_per_inference_J", "events_per_inference", "latency_s"]
    assert df.energy_per_inference_J.sum() == pytest.approx(led.per_inference()["total"], rel=1e-12)
    assert df.latency_s.sum() == pytest.approx(led.latency_s(), rel=1e-12)
    assert led.op_records()[1] == {"layer": "l2", "ops_mac": 0.0, "ops_ac": 50.0, "ops_mac_ann": 100.0}


def test_time_snapshot_is_kept_until_time_changes(gen):
    """Asking for the time already read keeps the snapshot (no redundant re-solve); a new time re-reads."""
    from device_models import PCM

    xb = Crossbar(4, 4, PCM(), generator=gen, dtype=torch.float64)
    xb.program(torch.full((4, 4), 10e-6, dtype=torch.float64))
    g0 = xb.g
    xb.set_time(0.0)
    assert xb.g is g0
    xb.set_time(3600.0)
    g1 = xb.g
    assert float(g1.mean()) < float(g0.mean())  # drift lowers G
    xb.set_time(3600.0, reread=True)
    assert not torch.equal(xb.g, g1)  # a fresh 1/f draw

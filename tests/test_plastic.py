"""The plastic MappedMatrix: one chip for its life (program / weights / pulse / update / switch, replicas, stages)."""

import pytest
import torch

from circuits import ADC, DAC, Crossbar, CrossbarSpec, EnergyLedger, MappedMatrix
from device_models import PCM, RRAM, STTMTJ, IdealDevice
from device_models.base import STUCK_OFF, STUCK_ON

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _w(out, inp, seed=0, signed=True):
    w = torch.rand(out, inp, dtype=F64, generator=_gen(seed))
    return 2 * w - 1 if signed else w


# -- programming keeps the chip ---------------------------------------------------------------------
def test_reprogramming_keeps_stuck_cells_and_d2d_draws():
    dev = RRAM(sigma_prog=0.02, p_stuck_off=0.05, p_stuck_on=0.05, sigma_d2d_gmax_rel=0.1, sigma_d2d_gmin_rel=0.1,
               sigma_d2d_nl=0.5, levels=None)
    mm = MappedMatrix(_w(20, 50), dev, CrossbarSpec(rows=32, cols=16), generator=_gen(1), dtype=F64)
    d2d = {k: v.clone() for k, v in mm.crossbar.state.d2d.items()}
    stuck = d2d["stuck"]
    assert int((stuck != 0).sum()) > 0
    mm.program(_w(20, 50, seed=5))
    for k, v in d2d.items():
        assert torch.equal(mm.crossbar.state.d2d[k], v), k  # drawn once, never again
    g = mm.crossbar.g
    gmin, gmax = d2d["g_min"], d2d["g_max"]
    # stuck cells read their own stuck conductance after every re-program, at the same places
    assert torch.equal(g[stuck == STUCK_OFF], gmin[stuck == STUCK_OFF])
    assert torch.equal(g[stuck == STUCK_ON], gmax[stuck == STUCK_ON])


def test_adc_static_errors_drawn_once():
    adc = ADC(bits=8, range_mode="max", gain_sigma=0.05, offset_sigma_lsb=0.5)
    mm = MappedMatrix(_w(10, 40), IdealDevice(), CrossbarSpec(rows=32, cols=16), DAC(bits=None), adc, generator=_gen(2), dtype=F64)
    gain, off = mm._adc_gain.clone(), mm._adc_offset.clone()
    mm.program(_w(10, 40, seed=9))
    assert torch.equal(mm._adc_gain, gain) and torch.equal(mm._adc_offset, off)


@pytest.mark.parametrize("scheme", ["differential", "offset", "unipolar"])
def test_program_then_weights_exact_on_ideal_device_and_a_new_w_on_the_same_chip(scheme):
    """Ideal cells hold W exactly: weights() = W to float64 round-off (|W| ≤ 1 → 1e-12 absolute)."""
    signed = scheme != "unipolar"
    mm = MappedMatrix((30, 70), IdealDevice(g_min=0.1e-6), CrossbarSpec(rows=32, cols=16, scheme=scheme),
                      generator=_gen(3), dtype=F64, w_max=1.0)
    for seed in (0, 1):
        w = _w(30, 70, seed, signed)
        mm.program(w)
        assert float((mm.weights() - w).abs().max()) < 1e-12


def test_program_then_weights_within_programming_noise():
    """RRAM: each cell gets N(0, σ·(g_max − g_min)); a differential weight error is the difference of two
    such draws, σ_w = √2·σ·w_max. All 2000 errors lie within 5σ_w, and their spread matches σ_w to 10 %."""
    sigma = 0.03
    dev = RRAM(sigma_prog=sigma, levels=None)
    w = _w(40, 50) * 0.8  # stay away from the window edges (no clipping of the noise)
    mm = MappedMatrix(w, dev, CrossbarSpec(rows=64, cols=32), generator=_gen(4), dtype=F64, w_max=1.0)
    err = mm.weights() - w
    sw = 2**0.5 * sigma * 1.0
    # zero-side cells sit at g_min and clip their negative noise: check the spread on the active side only
    assert float(err.abs().max()) < 5 * sw
    assert abs(float(err.std()) / sw - 1) < 0.25
    mm.program(-w)  # a different W on the same chip
    assert float((mm.weights() + w).abs().max()) < 5 * sw


def test_unipolar_rejects_negative_weights():
    with pytest.raises(ValueError, match="unipolar.*non-negative"):
        MappedMatrix(_w(3, 4), IdealDevice(), CrossbarSpec(rows=4, cols=8, scheme="unipolar"), generator=_gen())


# -- pulses -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["differential", "offset", "unipolar"])
def test_ideal_pulse_moves_weights_by_exactly_the_step(scheme):
    dev = IdealDevice()
    mm = MappedMatrix((12, 40), dev, CrossbarSpec(rows=16, cols=16, scheme=scheme), generator=_gen(5), dtype=F64, w_max=1.0)
    w = 0.2 + 0.3 * _w(12, 40, signed=False) if scheme == "unipolar" else 0.3 * _w(12, 40)
    mm.program(w)
    n = torch.randint(-5, 6, (12, 40), generator=_gen(6)).to(F64)
    step = dev.step_g / mm.g_scale  # one device pulse in weight units (1 % of the window = 0.01·w_max, or 0.02 for offset)
    assert float(mm.pulse_step_w(+1).sub(step).abs().max()) < 1e-15
    mm.pulse(n)
    assert float((mm.weights() - (w + n * step)).abs().max()) < 1e-12


def test_update_exact_continuous_writes_on_ideal_device():
    """rounding='none' on a continuous ideal device reproduces a software rule w += dw to float precision."""
    mm = MappedMatrix(0.5 * _w(8, 30), IdealDevice(), CrossbarSpec(rows=16, cols=16), generator=_gen(7), dtype=F64, w_max=1.0)
    w = mm.weights()
    for k in range(5):
        dw = 0.05 * _w(8, 30, seed=10 + k)
        mm.update(dw, rounding="none")
        w = w + dw
    assert float((mm.weights() - w).abs().max()) < 1e-12


def test_update_stochastic_rounding_is_unbiased():
    """E[pulses] = dw/step: the mean weight change over 4000 weights matches dw within 3 standard errors."""
    mm = MappedMatrix(torch.zeros(40, 100, dtype=F64), IdealDevice(), CrossbarSpec(rows=128, cols=128, scheme="offset"),
                      generator=_gen(8), dtype=F64, w_max=1.0)
    step = float(mm.pulse_step_w(+1).mean())
    dw = 0.37 * step
    n = mm.update(torch.full((40, 100), dw))
    assert set(n.unique().tolist()) <= {0.0, 1.0}
    se = step * (0.37 * 0.63 / 4000) ** 0.5
    assert abs(float((mm.weights()).mean()) - dw) < 3 * se


def test_rram_pulses_follow_the_nonlinear_curve():
    """Unipolar RRAM cell from g_min: after k LTP pulses G = G_LTP(k) (NeuroSim eq. 8), then LTD from there."""
    dev = RRAM(sigma_prog=0.0, sigma_c2c=0.0, levels=None, nl_ltp=2.4, nl_ltd=-2.4)
    mm = MappedMatrix(torch.zeros(4, 6, dtype=F64), dev, CrossbarSpec(rows=8, cols=8, scheme="unipolar"),
                      generator=_gen(9), dtype=F64, w_max=1.0)
    ks = [1, 3, 10, 40, 128]
    done = 0
    for k in ks:
        mm.pulse(torch.full((4, 6), float(k - done)))
        done = k
        expect = (float(dev.g_ltp_curve(k)) - dev.g_min) / mm.g_scale
        assert float((mm.weights() - expect).abs().max()) < 1e-9 * expect
    # depression from g_max follows the LTD branch
    mm.pulse(torch.full((4, 6), -20.0))
    expect = (float(dev.g_ltd_curve(20)) - dev.g_min) / mm.g_scale
    assert float((mm.weights() - expect).abs().max()) < 1e-9


def test_write_energy_is_pulses_times_device_energy():
    """PCM: every SET pulse costs e_set (Nandakumar 2018 pulse model); SET-only differential pairs and
    unipolar cells alike; the ledger's write component holds the sum and the pulse count."""
    dev = PCM(e_set=5e-12)
    for scheme in ("differential", "unipolar"):
        mm = MappedMatrix((6, 20), dev, CrossbarSpec(rows=32, cols=16, scheme=scheme), generator=_gen(10), dtype=F64, w_max=1.0)
        mm.program(torch.zeros(6, 20))
        n = torch.randint(0 if scheme == "unipolar" else -3, 4, (6, 20), generator=_gen(11)).to(F64)
        led = EnergyLedger()
        e = mm.pulse(n, led)
        rec = [r for r in led.records() if r["component"] == "write"][0]
        assert float(e) == pytest.approx(5e-12 * float(n.abs().sum()), rel=1e-12)
        assert rec["energy_J"] == pytest.approx(float(e), rel=1e-12)
        assert rec["events"] >= float(n.abs().sum())
        assert rec["latency_s"] > 0 or dev.t_write_s == 0


def test_rram_write_energy_matches_device_pulse_energy():
    dev = RRAM(sigma_c2c=0.0)
    mm = MappedMatrix((5, 9), dev, CrossbarSpec(rows=16, cols=8, scheme="unipolar"), generator=_gen(12), dtype=F64, w_max=1.0)
    mm.program(torch.zeros(5, 9))
    st = mm.crossbar.state
    n = torch.randint(0, 5, (5, 9), generator=_gen(13)).to(F64)
    cells = mm._cell_counts(n)
    _, e_dev = dev.pulse(st, cells, _gen(0))
    led = EnergyLedger()
    mm.pulse(n, led)
    assert led.per_inference()["write"] == pytest.approx(float(e_dev), rel=1e-12)


def test_differential_pcm_refreshes_a_saturated_pair():
    """SET-only PCM pairs saturate (mean step → 0 near 10.6·s µS); the pair is then re-programmed and
    keeps its weight within programming noise."""
    dev = PCM(pulse_noise_scale=0.0, prog_noise_scale=0.0, drift_scale=0.0, read_noise_scale=0.0)
    mm = MappedMatrix((2, 3), dev, CrossbarSpec(rows=4, cols=8), generator=_gen(14), dtype=F64, w_max=1.0)
    mm.program(torch.zeros(2, 3))
    for _ in range(30):
        mm.pulse(torch.full((2, 3), 1.0))
        mm.pulse(torch.full((2, 3), -1.0))
    assert getattr(mm, "n_refreshes", 0) > 0
    g = mm.crossbar.g[0, 0, :3, :6]
    assert float(g.max()) < 10.6 * dev.g_max / dev.pulse_g_max_ref * 1e-6  # never stuck at saturation


# -- binary devices ---------------------------------------------------------------------------------
def test_mtj_switch_probability_maps_to_device_current():
    """p → I = current_for_probability(p) at nominal parameters; with no d2d spread the fraction of
    switched cells is p within 4 binomial standard errors."""
    dev = STTMTJ(sigma_d2d_delta_rel=0.0, sigma_d2d_ic0_rel=0.0, sigma_d2d_r_rel=0.0)
    mm = MappedMatrix((50, 100), dev, CrossbarSpec(rows=128, cols=64, scheme="unipolar"), generator=_gen(15), w_max=1.0, dtype=F64)
    mm.program(torch.zeros(50, 100))
    led = EnergyLedger()
    mm.switch(p=torch.full((50, 100), 0.3), ledger=led)
    on = mm.weights() > 0.5
    assert abs(float(on.double().mean()) - 0.3) < 4 * (0.3 * 0.7 / 5000) ** 0.5
    i = dev.current_for_probability(0.3, dev.t_write_s)
    # energy I²·R·t per pulse, R of the pre-pulse (AP) state
    e = led.per_inference()["write"]
    assert e == pytest.approx(5000 * i**2 * (1 / dev.g_ap) * dev.t_write_s, rel=1e-6)
    mm.switch(p=torch.full((50, 100), -1.0))
    assert float(mm.weights().abs().max()) < 1e-6  # all back to AP (the reference state)
    with pytest.raises(ValueError, match="not binary"):
        MappedMatrix((2, 2), IdealDevice(), CrossbarSpec(rows=4, cols=8), generator=_gen(), w_max=1.0).switch(p=torch.ones(2, 2))


# -- replicas ---------------------------------------------------------------------------------------
def test_replicas_equal_separately_built_matrices():
    """replicas=4 with generators g_0..g_3 = four matrices built with g_r: programming, d2d, stuck masks,
    ADC static errors and noise, read noise, pulses and stochastic rounding, bit for bit."""
    dev = RRAM(sigma_prog=0.03, p_stuck_off=0.03, sigma_d2d_gmax_rel=0.1, sigma_read=0.01, levels=None)
    spec = CrossbarSpec(rows=32, cols=16)
    adc = ADC(bits=6, gain_sigma=0.02, offset_sigma_lsb=0.3, noise_sigma_lsb=0.2)
    w = _w(10, 50)
    x = torch.rand(6, 50, dtype=F64, generator=_gen(20))
    dw = 0.05 * _w(10, 50, seed=21)
    rep = MappedMatrix(w, dev, spec, DAC(bits=8), adc, generator=[_gen(100 + r) for r in range(4)], dtype=F64, replicas=4)
    rep.calibrate(x)
    y_rep = rep.matmul(x)
    rep.update(dw)
    y_rep2, w_rep = rep.matmul(x), rep.weights()
    assert y_rep.shape == (4, 6, 10)
    for r in range(4):
        one = MappedMatrix(w, dev, spec, DAC(bits=8), adc, generator=_gen(100 + r), dtype=F64)
        one.calibrate(x)
        assert torch.equal(one.matmul(x), y_rep[r])
        one.update(dw)
        assert torch.equal(one.matmul(x), y_rep2[r])
        assert torch.equal(one.weights(), w_rep[r])
    assert not torch.equal(y_rep[0], y_rep[1])


def test_replicas_take_per_replica_inputs_and_weights():
    rep = MappedMatrix((5, 20), IdealDevice(), CrossbarSpec(rows=16, cols=8), generator=_gen(), dtype=F64, replicas=3, w_max=1.0)
    w = _w(5, 20).expand(3, 5, 20) * torch.tensor([0.2, 0.5, 1.0], dtype=F64).view(3, 1, 1)
    rep.program(w)
    x = torch.rand(3, 4, 20, dtype=F64, generator=_gen(1))
    rep.calibrate(x)
    assert float((rep.matmul(x) - x @ w.transpose(-2, -1)).abs().max()) < 1e-12


# -- stages, unipolar, spikes -----------------------------------------------------------------------
def test_unipolar_equals_x_at_wT_on_ideal_device():
    w = _w(70, 300, signed=False)
    x = torch.rand(9, 300, dtype=F64, generator=_gen(30))
    mm = MappedMatrix(w, IdealDevice(g_min=0.2e-6), CrossbarSpec(rows=128, cols=64, scheme="unipolar"), generator=_gen(31), dtype=F64)
    mm.calibrate(x)
    ref = x @ w.T
    assert float((mm.matmul(x) - ref).abs().max() / ref.abs().max()) < 1e-6
    mm32 = MappedMatrix(w, IdealDevice(g_min=0.2e-6), CrossbarSpec(rows=128, cols=64, scheme="unipolar"), generator=_gen(31))
    mm32.calibrate(x.float())
    assert float((mm32.matmul(x.float()).double() - ref).abs().max() / ref.abs().max()) < 1e-6


@pytest.mark.parametrize("mode", ["amplitude", "spikes"])
def test_stages_compose_to_matmul_and_column_currents(mode):
    dev = RRAM(sigma_prog=0.02, sigma_read=0.0)
    mm = MappedMatrix(_w(20, 200), dev, CrossbarSpec(rows=64, cols=32), DAC(bits=None, mode=mode), ADC(bits=8),
                      generator=_gen(40), dtype=F64)
    x = (torch.rand(5, 200, dtype=F64, generator=_gen(41)) < 0.1).to(F64) if mode == "spikes" else torch.rand(5, 200, dtype=F64, generator=_gen(41))
    mm.calibrate(x)
    drive = mm.drive(x)
    assert torch.equal(mm.digitise(mm.signals(drive), drive), mm.matmul(x))
    i = mm.column_currents(x)
    wt = mm.weights()
    scale = mm.v_read * mm.g_scale / (1.0 if mode == "spikes" else mm.dac.x_max)
    assert float((i / scale - x @ wt.T).abs().max()) < 1e-9 * float((x @ wt.T).abs().max())


def test_sparse_spikes_read_only_active_rows_and_match_dense():
    """Event-driven reads (index_select of the spiking rows) equal the dense read to round-off."""
    dev = IdealDevice()
    w = _w(30, 784, signed=False)
    spec = CrossbarSpec(rows=128, cols=128, scheme="unipolar")
    mm = MappedMatrix(w, dev, spec, DAC(mode="spikes", bits=None), generator=_gen(50), dtype=F64, replicas=2)
    x = (torch.rand(2, 3, 784, dtype=F64, generator=_gen(51)) < 0.02).to(F64)
    drive = mm.drive(x)
    assert drive.active is not None and drive.active.numel() < 0.25 * 784
    dense = (x * mm.v_read) @ (w.T * mm.g_scale)
    assert float((mm.column_currents(x) - dense).abs().max()) < 1e-12 * float(dense.abs().max())
    s = mm.signals(drive)  # per tile
    assert float((s.sum(1).movedim(-3, -2).reshape(2, 3, -1)[..., :30] - dense).abs().max()) < 1e-12 * float(dense.abs().max())


# -- per-cell time, masks ---------------------------------------------------------------------------
def test_masked_pulse_writes_only_masked_weights_and_stamps_their_time():
    dev = PCM(read_noise_scale=0.0, prog_noise_scale=0.0, pulse_noise_scale=0.0)
    mm = MappedMatrix((4, 6), dev, CrossbarSpec(rows=8, cols=8, scheme="unipolar"), generator=_gen(60), dtype=F64, w_max=1.0)
    mm.program(torch.full((4, 6), 0.3))
    mm.set_time(1000.0)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[1, 2] = True
    w0 = mm.weights()
    mm.pulse(torch.full((4, 6), 2.0), mask=mask)
    w1 = mm.weights()
    assert torch.equal(w1[~mask], w0[~mask]) and float(w1[1, 2]) > float(w0[1, 2])
    tw = mm.crossbar.state.t_write_s
    assert tw is not None and float(tw.max()) == 1000.0 and float(tw.min()) == 0.0


# -- no hidden global state -------------------------------------------------------------------------
def test_two_matrices_without_generator_differ():
    dev = RRAM(sigma_prog=0.05)
    a = MappedMatrix(_w(5, 10), dev, CrossbarSpec(rows=16, cols=16))
    b = MappedMatrix(_w(5, 10), dev, CrossbarSpec(rows=16, cols=16))
    assert not torch.equal(a.crossbar.g, b.crossbar.g)
    xa, xb = Crossbar(4, 4, dev), Crossbar(4, 4, dev)
    xa.program(torch.full((4, 4), 5e-6))
    xb.program(torch.full((4, 4), 5e-6))
    assert not torch.equal(xa.g, xb.g)


def test_solve_leaves_torch_threads_unchanged():
    from circuits import transfer_matrix

    before = torch.get_num_threads()
    g = torch.rand(40, 40, dtype=F64, generator=_gen(70)) * 1e-5
    transfer_matrix(g, 1.0, 1.0)
    assert torch.get_num_threads() == before
    xb = Crossbar(40, 40, RRAM(), r_wire_row=1.0, r_wire_col=1.0, solver="exact", generator=_gen(71), dtype=F64)
    xb.program(g)
    xb.mvm(torch.rand(3, 40, dtype=F64))
    assert torch.get_num_threads() == before


def test_solver_without_budget_never_sets_torch_threads(monkeypatch):
    """threads=None, or 'auto' while another Python thread is alive: the solve never calls torch.set_num_threads."""
    import threading

    from circuits import transfer_matrix

    def forbidden(n):
        raise AssertionError("torch.set_num_threads called")

    g = torch.rand(3, 20, 20, dtype=F64, generator=_gen(72)) * 1e-5
    ref = transfer_matrix(g, 1.0, 0.5)[0]
    monkeypatch.setattr(torch, "set_num_threads", forbidden)
    assert torch.equal(transfer_matrix(g, 1.0, 0.5, threads=None)[0], ref)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert torch.equal(transfer_matrix(g, 1.0, 0.5)[0], ref)
    finally:
        stop.set()
        other.join()

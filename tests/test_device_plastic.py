"""Device-level plastic features: capability flags, switch on the base, pulse masks, pulse_step, per-cell write time."""

import math

import pytest
import torch

from device_models import PCM, RRAM, STTMTJ, Device, IdealDevice, LookupDevice
from device_models.base import GeneratorStack, randn, state_work_dtype, work_dtype

F64 = torch.float64


def _gen(s=0):
    return torch.Generator().manual_seed(s)


def test_capability_flags_and_switch_declared_on_base():
    assert STTMTJ.binary and STTMTJ.pulsed
    for cls in (IdealDevice, RRAM, PCM):
        assert cls.pulsed and not cls.binary
    st = IdealDevice().new_state((2, 2), _gen())
    with pytest.raises(NotImplementedError, match="not a binary device"):
        IdealDevice().switch(st, torch.ones(2, 2), 1e-9, _gen())
    assert Device.switch is not None and IdealDevice().continuous_writes and not IdealDevice(levels=8).continuous_writes


def test_rram_re_exports_dtype_helpers():
    from device_models import rram

    assert rram.work_dtype is work_dtype and rram.state_work_dtype is state_work_dtype


@pytest.mark.parametrize("dev", [IdealDevice(), RRAM(sigma_c2c=0.0), PCM(pulse_noise_scale=0.0),
                                 LookupDevice(g_up=(1e-6, 3e-6, 4e-6, 4.5e-6), g_down=(4.5e-6, 2e-6, 1e-6)), STTMTJ()])
def test_pulse_mask_leaves_other_cells_untouched(dev):
    st = dev.new_state((6, 5), _gen(1), F64)
    st = dev.program(st, torch.full((6, 5), 0.5 * (dev.g_min + dev.g_max), dtype=F64), _gen(2))
    mask = torch.zeros(6, 5, dtype=torch.bool)
    mask[2:4, 1] = True
    new, e = dev.pulse(st, torch.full((6, 5), 3.0), _gen(3), mask=mask)
    assert torch.equal(new.g[~mask], st.g[~mask])
    assert e.dim() == 0


@pytest.mark.parametrize("dev", [IdealDevice(), RRAM(), PCM(), LookupDevice(g_up=(1e-6, 3e-6, 4e-6), g_down=(4e-6, 2e-6, 1e-6))])
def test_pulse_step_is_the_noise_free_single_pulse_change(dev):
    """pulse_step(+1) equals the deterministic change of one potentiating pulse (noise off) below saturation."""
    quiet = {IdealDevice: {}, RRAM: {"sigma_c2c": 0.0}, PCM: {"pulse_noise_scale": 0.0}}
    dev = type(dev)(**quiet[type(dev)]) if type(dev) in quiet else dev
    st = dev.new_state((4,), _gen(), F64)
    st = st.replace(g=torch.tensor([0.05, 0.15, 0.3, 0.45], dtype=F64) * (dev.g_max - dev.g_min) + dev.g_min)
    new, _ = dev.pulse(st, torch.ones(4), _gen())
    torch.testing.assert_close(new.g - st.g, dev.pulse_step(st, +1).to(F64), rtol=1e-9, atol=1e-18)


def test_pcm_cells_drift_from_their_own_write_time():
    """G(t) = G0·((t − t_w + t0)/t0)^(−ν) per cell (Le Gallo 2018 drift law, aihwkit t0 = 20 s)."""
    dev = PCM(prog_noise_scale=0.0, read_noise_scale=0.0)
    st = dev.new_state((2,), _gen(), F64)
    st = dev.program(st, torch.full((2,), 10e-6, dtype=F64), _gen(1))
    st = st.replace(t_write_s=torch.tensor([0.0, 1000.0], dtype=F64))
    t = 4000.0
    g = dev.read(st, t, _gen(2))
    nu = st.d2d["nu"]
    expect = st.g * ((torch.tensor([t, t - 1000.0], dtype=F64) + dev.t0_s) / dev.t0_s) ** (-nu)
    torch.testing.assert_close(g, expect, rtol=1e-12, atol=0)
    # all cells written together: the float path, identical to the per-cell one
    st_all = st.replace(t_write_s=torch.zeros(2, dtype=F64))
    torch.testing.assert_close(dev.read(st_all, t, _gen(2)), dev.read(st.replace(t_write_s=None), t, _gen(2)), rtol=1e-15, atol=0)


def test_generator_stack_draws_row_r_from_generator_r():
    gs = GeneratorStack([_gen(5), _gen(6)])
    z = randn((2, 3, 4), gs, F64)
    assert torch.equal(z[0], torch.randn(3, 4, generator=_gen(5), dtype=F64))
    assert torch.equal(z[1], torch.randn(3, 4, generator=_gen(6), dtype=F64))
    with pytest.raises(ValueError, match="stack of 2 generators"):
        randn((3, 4), gs)


def test_mtj_read_age_per_cell():
    dev = STTMTJ(delta=5.0, sigma_d2d_delta_rel=0.0)
    st = dev.new_state((20000,), _gen(), F64)
    tau = dev.tau0 * math.exp(5.0)
    st = st.replace(t_write_s=torch.where(torch.arange(20000) < 10000, 0.0, 10 * tau).to(F64))
    g = dev.read(st, 10 * tau, _gen(1))
    flipped = g > 0.5 * (dev.g_p + dev.g_ap)
    p_old = 0.5 * (1 - math.exp(-20))
    assert abs(float(flipped[:10000].double().mean()) - p_old) < 0.02
    assert int(flipped[10000:].sum()) == 0  # written just now: no retention flips

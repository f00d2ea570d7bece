"""Mapping of weight matrices onto tiled differential crossbars."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits import ADC, DAC, CrossbarSpec, MappedMatrix
from device_models import RRAM, IdealDevice


def _rel_err(y, ref):
    return float((y - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("out_f,in_f,rows,cols", [(70, 300, 128, 64), (10, 64, 128, 128), (129, 257, 64, 32)])
def test_round_trip_ideal_device_no_quantisation(gen, out_f, in_f, rows, cols):
    """Ideal cells, lossless converters: matmul(x) = x @ W.T to 1e-6 relative (float64 gives ~1e-15)."""
    w = torch.randn(out_f, in_f, dtype=torch.float64, generator=gen)
    x = torch.randn(33, in_f, dtype=torch.float64, generator=gen)
    mm = MappedMatrix(w, IdealDevice(g_min=0.1e-6, g_max=5e-6), CrossbarSpec(rows=rows, cols=cols), generator=gen, dtype=torch.float64)
    mm.calibrate(x)
    assert mm.n_tiles_in == math.ceil(in_f / rows) and mm.n_tiles_out == math.ceil(out_f / (cols // 2))
    assert mm.n_arrays > 1 or (in_f <= rows and out_f <= cols // 2)
    assert _rel_err(mm.matmul(x), x @ w.T) < 1e-6


@settings(max_examples=25, deadline=None)
@given(
    out_f=st.integers(1, 90),
    in_f=st.integers(1, 90),
    rows=st.integers(2, 40),
    half_cols=st.integers(1, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_round_trip_any_shape(out_f, in_f, rows, half_cols, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_f, in_f, dtype=torch.float64, generator=g)
    x = torch.rand(5, in_f, dtype=torch.float64, generator=g)
    mm = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=rows, cols=2 * half_cols), generator=g, dtype=torch.float64)
    mm.calibrate(x)
    ref = x @ w.T
    assert float((mm.matmul(x) - ref).abs().max()) <= 1e-9 * max(float(ref.abs().max()), 1e-12) + 1e-15


def test_differential_pair_layout(gen):
    """G+ - G- of each column pair equals s·W^T and both sit at g_min for zero weights."""
    dev = IdealDevice(g_min=1e-6, g_max=5e-6)
    w = torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, -1.0]], dtype=torch.float64)
    mm = MappedMatrix(w, dev, CrossbarSpec(rows=4, cols=4), generator=gen, dtype=torch.float64)
    g = mm.crossbar.g[0, 0]
    s = (5e-6 - 1e-6) / 2.0
    torch.testing.assert_close(g[:3, 0::2] - g[:3, 1::2], s * w.T, rtol=0, atol=1e-18)
    assert torch.all(g[3] == 1e-6)  # the unused row holds g_min
    assert float(g.min()) == pytest.approx(1e-6) and float(g.max()) == pytest.approx(5e-6)


def test_quantised_converters_error_bounded(gen):
    """8-bit DAC and ADC (range = theoretical max): the error stays within the converters' LSB budget."""
    w = torch.randn(20, 50, dtype=torch.float64, generator=gen)
    x = torch.rand(64, 50, dtype=torch.float64, generator=gen)
    mm = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=64, cols=64), DAC(bits=8), ADC(bits=8, range_mode="max"), generator=gen, dtype=torch.float64)
    mm.calibrate(x)
    y, ref = mm.matmul(x), x @ w.T
    # ADC: half an LSB of the full scale (in weight units); DAC: half a step on each input times |w|
    adc_lsb = 2 * mm.theoretical_max_current() / 255 * mm.dac.x_max / (mm.v_read * mm.g_scale)
    dac_err = 0.5 * mm.dac.x_max / 255 * w.abs().sum(1)
    assert torch.all((y - ref).abs() <= adc_lsb / 2 + dac_err + 1e-12)


def test_programming_noise_changes_result_and_is_seeded():
    w = torch.randn(10, 40, generator=torch.Generator().manual_seed(0))
    x = torch.rand(8, 40)

    def hw(seed):
        mm = MappedMatrix(w, RRAM(sigma_prog=0.05, levels=None), CrossbarSpec(rows=64, cols=64), generator=torch.Generator().manual_seed(seed))
        mm.calibrate(x)
        return mm.matmul(x)

    a, b, c = hw(1), hw(1), hw(2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert float((a - x @ w.T).abs().max()) > 0


def test_bad_input_shape(gen):
    mm = MappedMatrix(torch.ones(3, 4), IdealDevice(), CrossbarSpec(rows=8, cols=8), generator=gen)
    mm.calibrate(torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"x: got shape \(2, 5\); expected \[batch, 4\]"):
        mm.matmul(torch.ones(2, 5))

"""DAC/ADC quantisation, clipping and energy."""

import pytest
import torch

from circuits import ADC, DAC, quantize_uniform


@pytest.mark.parametrize("bits", [1, 3, 6, 8])
def test_adc_error_at_most_half_lsb_inside_range(bits):
    adc = ADC(bits=bits, range_mode="fixed", i_range=2e-6)
    i = torch.linspace(-2e-6, 2e-6, 10001, dtype=torch.float64)
    lsb = 4e-6 / (2**bits - 1)
    err = (adc(i) - i).abs()
    assert float(err.max()) <= lsb / 2 * (1 + 1e-9)
    # codes: exactly 2**bits distinct outputs across the range
    assert torch.unique(adc(i)).numel() == 2**bits


def test_adc_clips_outside_range():
    adc = ADC(bits=4, range_mode="fixed", i_range=1e-6)
    i = torch.tensor([-5e-6, -1.0000001e-6, 1.0000001e-6, 3e-6], dtype=torch.float64)
    assert torch.equal(adc(i), torch.tensor([-1e-6, -1e-6, 1e-6, 1e-6], dtype=torch.float64))


def test_adc_unsigned_range_and_calibration():
    adc = ADC(bits=8, range_mode="calibrate", percentile=100.0, signed=False)
    currents = torch.linspace(0, 3e-6, 1000, dtype=torch.float64)
    adc.calibrate(currents)
    assert float(adc.full_scale()) == pytest.approx(3e-6)
    assert float(adc(torch.tensor([-1e-6], dtype=torch.float64))) == 0.0


def test_adc_energy_model():
    # E = max(E_floor, FOM_W * 2^bits): 30 fJ/step x 256 = 7.68 pJ at 8 b; floor 1 pJ at 4 b (0.48 pJ < 1 pJ)
    assert ADC(bits=8).energy_per_conversion_J == pytest.approx(7.68e-12)
    assert ADC(bits=4).energy_per_conversion_J == pytest.approx(1e-12)
    assert ADC(bits=None).energy_per_conversion_J == 0.0


def test_dac_quantisation():
    dac = DAC(bits=4, x_max=2.0)
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    u = dac.normalise(x)
    assert float(u.abs().max()) == 1.0  # clipped at full scale
    inside = x.abs() <= 2.0
    assert float((u[inside] - x[inside] / 2.0).abs().max()) <= 0.5 / 15 + 1e-12


def test_uniform_quantiser_is_idempotent():
    x = torch.randn(1000, dtype=torch.float64)
    q = quantize_uniform(x, -1.0, 1.0, 5)
    assert torch.equal(quantize_uniform(q, -1.0, 1.0, 5), q)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_bits_rejected(bad):
    with pytest.raises(ValueError, match="adc.bits"):
        ADC(bits=bad)
    with pytest.raises(ValueError, match="dac.bits"):
        DAC(bits=bad)

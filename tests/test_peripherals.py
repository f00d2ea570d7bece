"""Peripherals and mapping: offset/reference columns, bit slicing, bit-serial and spike inputs, ADC errors."""

import math

import pytest
import torch

from circuits import ADC, DAC, CrossbarSpec, EnergyLedger, MappedMatrix, neurosim_sar_energy_J, weight_coding
from circuits.constants import ISAAC_ADC_E_CONV_J, SENSE_AMP_E_J
from device_models import IdealDevice


def _int_problem(gen, out_f, in_f, weight_bits, input_bits, batch=11):
    """Integer weights in [−(2^(n−1)−1), 2^(n−1)−1] (both extremes present) and inputs in [0, 2^m−1]."""
    half = 2 ** (weight_bits - 1) - 1
    w = torch.randint(-half, half + 1, (out_f, in_f), generator=gen).double()
    w[0, 0], w[-1, -1] = half, -half
    x = torch.randint(0, 2**input_bits, (batch, in_f), generator=gen).double()
    x[0, 0] = 2**input_bits - 1
    return w, x


@pytest.mark.parametrize("scheme", ["differential", "offset"])
@pytest.mark.parametrize("mode", ["amplitude", "bit_serial"])
@pytest.mark.parametrize("weight_bits,bits_per_cell", [(8, 2), (8, None), (5, 3), (4, 1)])
def test_bit_slicing_reproduces_integer_matmul(gen, scheme, mode, weight_bits, bits_per_cell):
    """Integer weights/inputs on an ideal multi-level device with as many levels as one cell stores and a
    lossless ADC: the sliced, shift-and-added hardware result is the integer matmul (float64: to 1e-12
    relative, and exactly after rounding to integers). Several input and output tiles."""
    m = 6
    w, x = _int_problem(gen, 50, 150, weight_bits, m)
    coding = weight_coding(scheme, weight_bits, bits_per_cell)
    dev = IdealDevice(g_min=1e-6, g_max=5e-6, levels=2**coding.cell_bits)
    spec = CrossbarSpec(rows=64, cols=40, scheme=scheme, weight_bits=weight_bits, bits_per_cell=bits_per_cell)
    mm = MappedMatrix(w, dev, spec, DAC(bits=m, x_max=2**m - 1, mode=mode), ADC(bits=None), generator=gen, dtype=torch.float64)
    mm.calibrate(x)
    assert mm.n_tiles_in == 3 and mm.n_tiles_out > 1
    expect_k = math.ceil((weight_bits - (scheme == "differential")) / (bits_per_cell or weight_bits - (scheme == "differential")))
    assert mm.coding.n_slices == expect_k
    y, ref = mm.matmul(x), x @ w.T
    assert float((y - ref).abs().max()) <= 1e-12 * float(ref.abs().max())
    assert torch.equal(torch.round(y), ref)


def test_slices_are_on_device_levels_and_in_their_own_columns(gen):
    """8-bit weight 77 (differential, 2-bit cells): |77| = 1·4³ + 0·4² + 3·4 + 1 → digits (1, 3, 0, 1) LSB first,
    on G⁺ columns 0, 2, 4, 6 of output 0; G⁻ columns 1, 3, 5, 7 at g_min."""
    w = torch.tensor([[77.0, -127.0]], dtype=torch.float64)
    dev = IdealDevice(g_min=1e-6, g_max=4e-6, levels=4)
    mm = MappedMatrix(w, dev, CrossbarSpec(rows=2, cols=8, weight_bits=8, bits_per_cell=2), generator=gen, dtype=torch.float64)
    g = mm.crossbar.g[0, 0]
    dg = 1e-6  # (4 − 1) µS / (2² − 1)
    torch.testing.assert_close(g[0, 0::2], 1e-6 + dg * torch.tensor([1.0, 3.0, 0.0, 1.0], dtype=torch.float64), rtol=0, atol=1e-18)
    torch.testing.assert_close(g[0, 1::2], torch.full((4,), 1e-6, dtype=torch.float64), rtol=0, atol=1e-18)
    # −127 = −(1·4³ + 3·4² + 3·4 + 3): on the G⁻ side
    torch.testing.assert_close(g[1, 1::2], 1e-6 + dg * torch.tensor([3.0, 3.0, 3.0, 1.0], dtype=torch.float64), rtol=0, atol=1e-18)


def test_offset_scheme_continuous_equals_matmul_and_layout(gen):
    """Offset scheme, continuous ideal device: G = g_min + (W + w_max)·s/2 with the reference column at
    (g_min + g_max)/2; matmul(x) = x @ Wᵀ to 1e-9 relative (signed inputs, several tiles)."""
    dev = IdealDevice(g_min=1e-6, g_max=5e-6)
    w = torch.randn(45, 70, dtype=torch.float64, generator=gen)
    x = torch.randn(17, 70, dtype=torch.float64, generator=gen)
    mm = MappedMatrix(w, dev, CrossbarSpec(rows=32, cols=16, scheme="offset"), generator=gen, dtype=torch.float64)
    mm.calibrate(x)
    assert mm.out_per_tile == 15 and mm.n_tiles_in == 3 and mm.n_tiles_out == 3
    ref = x @ w.T
    assert float((mm.matmul(x) - ref).abs().max()) <= 1e-9 * float(ref.abs().max())
    g = mm.crossbar.g[0, 0]
    w_max = float(w.abs().max())
    s = 4e-6 / w_max
    torch.testing.assert_close(g[:, :15], 1e-6 + (w[:15, :32].T + w_max) * s / 2, rtol=1e-12, atol=0)
    assert torch.allclose(g[:, 15], torch.full((32,), 3e-6, dtype=torch.float64), rtol=1e-12, atol=0)
    assert mm.theoretical_max_current() == pytest.approx(dev.v_read * 32 * 2e-6, rel=1e-12)


def test_offset_sliced_reference_columns(gen):
    """8-bit offset binary X = W + 128 over 2-bit cells: the code of zero, 128 = 2·4³, puts the top slice's
    reference at level 2 and the lower slices' at level 0 (g_min): two reference columns, both device levels."""
    dev = IdealDevice(g_min=1e-6, g_max=4e-6, levels=4)
    mm = MappedMatrix(torch.tensor([[5.0, -127.0]]), dev, CrossbarSpec(rows=2, cols=10, scheme="offset", weight_bits=8, bits_per_cell=2), generator=gen)
    assert mm.coding.n_ref == 2 and mm.out_per_tile == 2
    g = mm.crossbar.g[0, 0].double()
    assert torch.allclose(g[:, 8], torch.full((2,), 1e-6, dtype=torch.float64))  # lower-slice reference: g_min
    assert torch.allclose(g[:, 9], torch.full((2,), 3e-6, dtype=torch.float64))  # top-slice reference: level 2
    # X = 133 = (1, 1, 0, 2) and X = 1 = (1, 0, 0, 0), LSB first
    assert torch.allclose(g[:, :4], 1e-6 + 1e-6 * torch.tensor([[1.0, 1.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64))


def test_spike_inputs_drive_rows_without_dac(gen):
    """Binary spikes drive rows at v_read: result x @ Wᵀ (ideal device, lossless ADC), no DAC energy."""
    w = torch.randn(9, 20, dtype=torch.float64, generator=gen)
    x = (torch.rand(6, 20, generator=gen) < 0.3).double()
    mm = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=16, cols=8), DAC(bits=8, mode="spikes"), ADC(bits=None), generator=gen, dtype=torch.float64)
    mm.calibrate(x)
    led = EnergyLedger()
    torch.testing.assert_close(mm.matmul(x, led), x @ w.T, rtol=1e-12, atol=1e-12)
    rec = {r["component"]: r for r in led.records() if r["layer"] == "matrix"}
    assert rec["dac"]["energy_J"] == 0.0 and rec["dac"]["events"] == 0
    with pytest.raises(ValueError, match="spikes"):
        mm.matmul(x * 0.5)


def test_bit_serial_equals_amplitude_dac_when_lossless(gen):
    """Same input quantisation (m bits of |x|/x_max, sign kept): bit-serial and amplitude agree to 1e-12."""
    w = torch.randn(12, 30, dtype=torch.float64, generator=gen)
    x = torch.randn(8, 30, dtype=torch.float64, generator=gen)
    out = []
    for mode in ("amplitude", "bit_serial"):
        mm = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=32, cols=32), DAC(bits=5, mode=mode), ADC(bits=None), generator=gen, dtype=torch.float64)
        mm.calibrate(x)
        out.append(mm.matmul(x))
    torch.testing.assert_close(out[0], out[1], rtol=1e-12, atol=1e-12)


def _hand_layer(gen, cols_per_adc):
    w = torch.tensor([[1.0, -2.0, 3.0], [0.0, 3.0, -1.0]], dtype=torch.float64)
    dev = IdealDevice(g_min=0.0, g_max=3e-6, levels=2, v_read=0.2, t_read_s=10e-9)
    spec = CrossbarSpec(rows=4, cols=8, weight_bits=3, bits_per_cell=1)
    adc = ADC(bits=4, range_mode="max", cols_per_adc=cols_per_adc)
    mm = MappedMatrix(w, dev, spec, DAC(bits=2, x_max=3.0, mode="bit_serial"), adc, generator=gen, dtype=torch.float64)
    x = torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64)
    mm.calibrate(x)
    led = EnergyLedger()
    led.count_inferences(1)
    y = mm.matmul(x, led)
    return mm, led, y


def test_energy_and_latency_hand_calculation(gen):
    """W = [[1, −2, 3], [0, 3, −1]] as 3-bit weights (2 magnitude bits) on 1-bit cells, differential: K = 2 slices,
    4 columns per output, both outputs on one 4×8 array; Δg = 3 µS; x = [3, 1, 2] as 2 bit-serial reads.

    Cells at Δg per row (1 bits of |W| over both outputs, slices and polarities): input 0: 1 (|1|);
    input 1: 1 (|−2| = 10₂) + 2 (|3| = 11₂) = 3; input 2: 2 (|3|) + 1 (|−1|) = 3.
    Read of bit 0 (x bits 1, 1, 0): rows 0, 1 at 0.2 V → 4 cells; bit 1 (1, 0, 1): rows 0, 2 → 4 cells.
    array = 8 · (0.2 V)² · 3 µS · 10 ns = 9.6 fJ.
    dac   = 2 reads · 3 rows · 0.39 pJ = 2.34 pJ.
    adc   = 2 reads · 2 outputs · 2 slices = 8 conversions · max(1 pJ, 30 fJ·2⁴) = 8 pJ.
    digital = 2 outputs · (1 tile · 2 reads · 2 slices − 1) = 6 adds; accumulator 4 + 1 + 1 + log2(4) = 8 bits
              → 0.03 pJ each = 0.18 pJ.  Total 10.5296 pJ.
    latency: reads 2 · 10 ns = 20 ns; conversions 2 reads · min(cols_per_adc = 2, 2 outputs · 2 slices) · (4 + 1) ns
             = 20 ns → 40 ns; with 8 columns per ADC all 4 signals share one ADC: 2 · 4 · 5 ns = 40 ns → 60 ns."""
    mm, led, y = _hand_layer(gen, cols_per_adc=2)
    rec = {r["component"]: r for r in led.records()}
    assert rec["array"]["energy_J"] == pytest.approx(9.6e-15, rel=1e-12)
    assert rec["dac"]["energy_J"] == pytest.approx(2.34e-12, rel=1e-12) and rec["dac"]["events"] == 6
    assert rec["adc"]["energy_J"] == pytest.approx(8e-12, rel=1e-12) and rec["adc"]["events"] == 8
    assert mm.accumulator_bits() == 8
    assert rec["digital"]["energy_J"] == pytest.approx(0.18e-12, rel=1e-12) and rec["digital"]["events"] == 6
    assert led.per_inference()["total"] == pytest.approx(10.5296e-12, rel=1e-12)
    assert rec["array"]["latency_s"] == pytest.approx(20e-9, rel=1e-12)
    assert rec["adc"]["latency_s"] == pytest.approx(20e-9, rel=1e-12)
    assert led.latency_s() == pytest.approx(40e-9, rel=1e-12)
    assert y.shape == (1, 2)
    # shared columns: conversions of one ADC run in sequence
    _, led8, _ = _hand_layer(gen, cols_per_adc=8)
    assert led8.latency_s() == pytest.approx(60e-9, rel=1e-12)
    _, led1, _ = _hand_layer(gen, cols_per_adc=1)
    assert led1.latency_s() == pytest.approx(30e-9, rel=1e-12)  # 20 ns + 2 · 1 · 5 ns


def test_breakdown_adds_up_to_totals(gen):
    """Layer × component breakdown: energies sum to the total and latencies to latency_s (1e-9 relative)."""
    led = EnergyLedger()
    for k, (scheme, mode) in enumerate([("differential", "amplitude"), ("offset", "bit_serial")]):
        w = torch.randn(40, 300, generator=gen)
        x = torch.rand(16, 300, generator=gen)
        mm = MappedMatrix(
            w, IdealDevice(levels=4), CrossbarSpec(rows=128, cols=64, scheme=scheme, weight_bits=8, bits_per_cell=2),
            DAC(bits=4, mode=mode), ADC(bits=6, cols_per_adc=16), generator=gen, name=f"layer{k}",
        )
        mm.calibrate(x)
        mm.matmul(x, led)
    led.count_inferences(16)
    df = led.breakdown()
    assert set(df.component) == {"array", "dac", "adc", "digital"} and set(df.layer) == {"layer0", "layer1"}
    total = led.per_inference()["total"]
    assert abs(df.energy_per_inference_J.sum() - total) <= 1e-9 * total
    assert abs(df.latency_s.sum() - led.latency_s()) <= 1e-9 * led.latency_s()
    assert (df.energy_J / 16 - df.energy_per_inference_J).abs().max() <= 1e-9 * total


# ---------------------------------------------------------------------------------------- ADC
def test_adc_static_gain_and_offset_statistics():
    """Per-ADC gain 1 + N(0, σ_g) and offset N(0, σ_o) LSB drawn once: sample std within 5 standard errors
    (SE of a std over n draws ≈ σ/√(2n)); the same draw is reused for every conversion."""
    adc = ADC(bits=12, range_mode="fixed", i_range=1.0, gain_sigma=0.02, offset_sigma_lsb=1.5)
    gen = torch.Generator().manual_seed(7)
    n = 20000
    gain, off = adc.draw_static((n,), gen)
    for vals, sigma, mean in ((gain, 0.02, 1.0), (off, 1.5, 0.0)):
        se = sigma / math.sqrt(2 * n)
        assert abs(float(vals.std()) - sigma) < 5 * se
        assert abs(float(vals.mean()) - mean) < 5 * sigma / math.sqrt(n)
    # applied: Q(gain·I + offset·LSB), within half an LSB (12 bits: quantisation is not the point here)
    i = torch.full((n,), 0.3, dtype=torch.float64)
    lsb = adc.lsb()
    assert lsb == pytest.approx(2.0 / 4095)
    out = adc(i, gain, off)
    assert float((out - (gain * 0.3 + off * lsb)).abs().max()) <= lsb / 2 + 1e-12
    assert ADC(bits=8).draw_static((3,), gen) is None  # no errors: nothing drawn


def test_adc_conversion_noise_statistics():
    """Per-conversion noise σ = 2 LSB on a constant input: the output std is √(σ² + LSB²/12) within 5 SE."""
    adc = ADC(bits=10, range_mode="fixed", i_range=1.0, noise_sigma_lsb=2.0)
    gen = torch.Generator().manual_seed(3)
    n = 40000
    out = adc(torch.full((n,), 0.1234, dtype=torch.float64), generator=gen)
    lsb = adc.lsb()
    sigma = math.sqrt(2.0**2 + 1 / 12) * lsb
    assert abs(float(out.std()) - sigma) < 5 * sigma / math.sqrt(2 * n)
    assert abs(float(out.mean()) - 0.1234) < 5 * sigma / math.sqrt(n) + lsb / 2
    # deterministic under the generator
    a = adc(torch.zeros(5, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    b = adc(torch.zeros(5, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_mapped_matrix_adc_errors_per_physical_adc(gen):
    """cols_per_adc = 4: signals 0–3 of an array share one ADC, hence one gain; different arrays differ."""
    w = torch.eye(8, dtype=torch.float64)
    adc = ADC(bits=None, gain_sigma=0.1, cols_per_adc=4)
    mm = MappedMatrix(w, IdealDevice(), CrossbarSpec(rows=8, cols=8), DAC(bits=None), adc, generator=gen, dtype=torch.float64)
    mm.calibrate(w)
    assert mm.n_adc_per_array == 1 and mm.n_tiles_out == 2
    y = mm.matmul(w)  # identity input: y[j, j] = gain of the ADC converting output j
    d = torch.diagonal(y)
    assert torch.allclose(d[:4], d[0].expand(4)) and torch.allclose(d[4:], d[4].expand(4))
    assert not torch.isclose(d[0], d[4])


def test_neurosim_sar_energy_hand_calculation():
    """NeuroSim SAR (REFERENCES Part C (a)), 32 nm LSTP (a = 1.1294 µW, b = 8.8998 µW), 8 bits:
    P = (1.1294·8 + 8.8998) µW = 17.9350 µW; E = P·(8 + 1)·1 ns = 0.161415 pJ; t_conv = 9 ns.
    With the column term for R_col = 100 kΩ (c = 0.079449 W, d = 2.297): + 0.079449·exp(−2.297·5) W."""
    assert neurosim_sar_energy_J(8, 32) == pytest.approx(17.935e-6 * 9e-9, rel=1e-12)
    adc = ADC(bits=8, energy_model="neurosim_sar", tech_node_nm=32)
    assert adc.energy_per_conversion_J == pytest.approx(1.61415e-13, rel=1e-12)
    assert adc.conversion_time_s == pytest.approx(9e-9)
    p_col = 0.079449 * math.exp(-2.297 * 5)
    assert neurosim_sar_energy_J(8, 32, r_col_ohm=1e5) == pytest.approx((17.935e-6 + p_col) * 9e-9, rel=1e-12)
    # HP roadmap, 22 nm, 5 bits: (0.7213·5 + 3.3041) µW · 6 ns
    assert neurosim_sar_energy_J(5, 22, roadmap="hp") == pytest.approx((0.7213 * 5 + 3.3041) * 1e-6 * 6e-9, rel=1e-12)
    with pytest.raises(ValueError, match="tech_node_nm: got 28"):
        ADC(bits=8, energy_model="neurosim_sar", tech_node_nm=28)


def test_sense_amp_and_fixed_energy_models():
    sa = ADC(bits=1, energy_model="sense_amp")
    assert sa.energy_per_conversion_J == SENSE_AMP_E_J == 10e-15
    out = ADC(bits=1, range_mode="fixed", i_range=1e-6, energy_model="sense_amp")(torch.tensor([-3e-7, 2e-7]))
    assert torch.equal(out, torch.tensor([-1e-6, 1e-6]))  # a sign detector on a signed range
    with pytest.raises(ValueError, match="sense amplifier is a 1-bit"):
        ADC(bits=4, energy_model="sense_amp")
    isaac = ADC(bits=8, energy_model="fixed", e_conv_J=ISAAC_ADC_E_CONV_J, t_conv_s=1 / 1.28e9)
    assert isaac.energy_per_conversion_J == pytest.approx(1.5625e-12)
    with pytest.raises(ValueError, match="e_conv_J"):
        ADC(bits=8, energy_model="fixed")


def test_layout_errors_name_the_key():
    with pytest.raises(ValueError, match=r"crossbar\.cols: got 8; .*needs 8 columns per output \+ 2 reference = 10"):
        CrossbarSpec(rows=4, cols=8, scheme="offset", weight_bits=8, bits_per_cell=1)
    with pytest.raises(ValueError, match=r"mapping\.bits_per_cell: .*needs mapping\.weight_bits"):
        CrossbarSpec(bits_per_cell=2)
    with pytest.raises(ValueError, match=r"mapping\.scheme: got 'pairs'"):
        CrossbarSpec(scheme="pairs")
    with pytest.raises(ValueError, match=r"input_mode: got 'pwm'"):
        DAC(mode="pwm")


# ------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "data,pattern",
    [
        ({"mapping": {"scheme": "pairs"}}, r"mapping\.scheme: got 'pairs'; must be one of 'differential', 'offset'"),
        ({"mapping": {"bits_per_cell": 2}}, r"mapping\.bits_per_cell: got 2; .*needs mapping\.weight_bits"),
        ({"mapping": {"weight_bits": 1}}, r"mapping\.weight_bits: got 1; must be an integer ≥ 2"),
        ({"crossbar": {"input_mode": "pwm"}}, r"crossbar\.input_mode: got 'pwm'; must be one of 'amplitude', 'bit_serial', 'spikes'"),
        ({"crossbar": {"input_mode": "bit_serial", "dac": {"bits": None}}}, r"crossbar\.dac\.bits: got None; input_mode 'bit_serial' needs"),
        ({"crossbar": {"adc": {"energy_model": "walden"}}}, r"crossbar\.adc\.energy_model: got 'walden'; must be one of 'survey', 'neurosim_sar', 'sense_amp', 'fixed'"),
        ({"crossbar": {"adc": {"energy_model": "sense_amp"}}}, r"crossbar\.adc\.energy_model: got 'sense_amp'; a sense amplifier is a 1-bit converter \(adc\.bits is 8, needs 1\)"),
        ({"crossbar": {"adc": {"energy_model": "fixed"}}}, r"crossbar\.adc\.e_conv_J: got None; energy_model 'fixed' needs"),
        ({"crossbar": {"adc": {"energy_model": "neurosim_sar", "tech_node_nm": 28}}}, r"crossbar\.adc\.tech_node_nm: got 28; allowed for roadmap 'lstp': 130, 90"),
        ({"crossbar": {"adc": {"cols_per_adc": 0}}}, r"crossbar\.adc\.cols_per_adc: got 0"),
        ({"crossbar": {"adc": {"bits": None, "noise_sigma_lsb": 1.0}}}, r"crossbar\.adc\.bits: got None \(lossless\); .*noise_sigma_lsb .*need a resolution"),
        ({"crossbar": {"cols": 8}, "mapping": {"scheme": "offset", "weight_bits": 8, "bits_per_cell": 1}}, r"crossbar\.cols: got 8; .*= 10"),
    ],
)
def test_config_errors_name_key_value_and_allowed(data, pattern):
    from xbarsim import ConfigError, validate_config

    with pytest.raises(ConfigError, match=pattern):
        validate_config(data)


def test_config_builds_the_peripherals():
    from xbarsim import validate_config
    from xbarsim.experiment import build_network

    cfg = validate_config(
        {
            "mapping": {"scheme": "offset", "weight_bits": 6, "bits_per_cell": 3},
            "crossbar": {"rows": 16, "cols": 16, "input_mode": "bit_serial", "dac": {"bits": 4},
                         "adc": {"bits": 6, "cols_per_adc": 4, "energy_model": "neurosim_sar", "tech_node_nm": 22, "gain_sigma": 0.01}},
        }
    )
    model = torch.nn.Sequential(torch.nn.Linear(20, 5))
    net = build_network(cfg, model, torch.Generator().manual_seed(0))
    mm = net.mapped[0]
    assert mm.coding.n_slices == 2 and mm.coding.n_ref == 2 and mm.dac.mode == "bit_serial" and mm.dac.n_slices == 4
    assert mm.adc.cols_per_adc == 4 and mm.adc.energy_per_conversion_J == pytest.approx(neurosim_sar_energy_J(6, 22))
    assert mm._adc_gain is not None

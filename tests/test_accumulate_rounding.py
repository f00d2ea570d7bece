"""``rounding: accumulate`` — mixed-precision writes (Nandakumar et al., Front. Neurosci. 14:406, 2020): a digital accumulator per
synapse, whole pulses when it reaches a local step, the remainder kept."""

from __future__ import annotations

import pytest
import torch

from algorithms.learning import CrossbarSynapses
from circuits import ADC, DAC, CrossbarSpec, MappedMatrix
from device_models import IdealDevice, load_preset
from xbarsim.config import validate_config

LEVELS = 16
STEP = 1.0 / (LEVELS - 1)  # weight change of one pulse of the 16-level ideal cell, w ∈ [0, 1]


def _chip(w0: torch.Tensor, device) -> MappedMatrix:
    r = w0.shape[0]
    return MappedMatrix(w0.transpose(1, 2).contiguous(), device, spec=CrossbarSpec(scheme="unipolar", rows=8, cols=8),
                        dac=DAC(mode="spikes"), adc=ADC(bits=None),
                        generator=[torch.Generator().manual_seed(7 + k) for k in range(r)], dtype=torch.float64,
                        w_max=1.0, replicas=r)


def _levelled(n_in=4, n_out=3, r=1):
    w0 = torch.full((r, n_in, n_out), 7 * STEP, dtype=torch.float64)  # on a level, far from both ends
    return CrossbarSynapses(_chip(w0, IdealDevice(levels=LEVELS)), rounding="accumulate"), w0


def _write(syn, dw):
    syn.add(dw)
    syn.flush()


def test_small_updates_wait_in_the_accumulator_until_they_make_a_whole_pulse():
    """0.4 step three times: no pulse, no pulse, one pulse (1.2 → 1 step written, 0.2 kept); then −0.6 step:
    nothing (−0.4 kept), −0.7 step: one depressing pulse (−0.1 kept). One cell of a 4×3 layer, hand-counted."""
    syn, w0 = _levelled()
    dw = torch.zeros_like(w0)
    counts = []
    for frac in (0.4, 0.4, 0.4, -0.6, -0.7):
        dw.zero_()
        dw[0, 2, 1] = frac * STEP
        before = syn.pulses_pos, syn.pulses_neg
        _write(syn, dw)
        counts.append((syn.pulses_pos - before[0], syn.pulses_neg - before[1]))
    assert counts == [(0, 0), (0, 0), (1, 0), (0, 0), (0, 1)]
    w = syn.weights()
    assert float(w[0, 2, 1]) == pytest.approx(7 * STEP, abs=1e-12)  # +1 step, then −1 step
    assert float(syn.residual[0, 2, 1]) == pytest.approx(-0.1 * STEP, abs=1e-12)
    others = torch.ones_like(w, dtype=torch.bool)
    others[0, 2, 1] = False
    assert torch.equal(w[others], w0[others]) and not bool(syn.residual[others].any())


@pytest.mark.parametrize("n_cols", [1, 3])  # 1 of 3 columns: the column-sliced write; all 3: the whole-array write
def test_array_plus_accumulator_equals_the_software_weights(n_cols):
    """On a linear levelled cell away from its ends, the weights on the array plus the accumulator equal the
    plain sum of every Δw (to rounding), and |χ| < one step: nothing the rule asked for is lost or invented."""
    syn, w0 = _levelled(n_in=6, n_out=3, r=2)
    g = torch.Generator().manual_seed(0)
    total = w0.clone()
    for _ in range(12):
        dw = torch.zeros_like(w0)
        dw[:, :, :n_cols] = (torch.rand(2, 6, n_cols, generator=g, dtype=torch.float64) - 0.5) * 1.6 * STEP
        total += dw
        _write(syn, dw)
    assert torch.allclose(syn.weights() + syn.residual, total, atol=1e-12)
    assert float(syn.residual.abs().max()) < STEP
    levels = syn.weights() / STEP
    assert torch.allclose(levels, levels.round(), atol=1e-9)  # the array holds whole levels only
    assert syn.pulses > 0


def test_opposite_updates_cancel_before_any_pulse_on_a_noisy_device():
    """TaOx/HfOx RRAM (nonlinear, 3.7 % c2c per pulse): +0.3 and −0.3 of a step, alternately, 20 times. The
    accumulator cancels them — no pulse, the conductances untouched; stochastic rounding pulses about
    0.3 × 20 = 6 times and each pulse kicks the cell by its c2c noise."""
    dev = load_preset("rram_taox_hfox")
    w0 = torch.full((1, 4, 3), 0.5, dtype=torch.float64)
    res = {}
    for rounding in ("accumulate", "stochastic"):
        mm = _chip(w0, dev)
        syn = CrossbarSynapses(mm, rounding=rounding)
        g0 = mm.crossbar.g.clone()
        step = float(mm.pulse_step_w(+1)[0, 1, 2])
        for k in range(20):
            dw = torch.zeros_like(w0)
            dw[0, 2, 1] = (0.3 if k % 2 == 0 else -0.3) * step
            _write(syn, dw)
        res[rounding] = (syn.pulses, bool(torch.equal(mm.crossbar.g, g0)))
    assert res["accumulate"] == (0.0, True)
    assert res["stochastic"][0] >= 1 and not res["stochastic"][1]


def test_the_key_is_checked():
    with pytest.raises(ValueError, match=r"algorithm\.rounding: got 'sometimes'.*accumulate"):
        validate_config({"algorithm": {"name": "stdp", "rounding": "sometimes"}})
    assert validate_config({"algorithm": {"name": "asp", "rounding": "accumulate"}}).algorithm.rounding == "accumulate"
    with pytest.raises(ValueError, match="rounding"):
        CrossbarSynapses(_chip(torch.full((1, 2, 2), 0.5, dtype=torch.float64), IdealDevice()), rounding="sometimes")


def test_mapped_matrix_update_with_an_accumulator():
    """``MappedMatrix.update(rounding="accumulate", residual=χ)``: 0.4 step + χ 0.7 step → one pulse, χ 0.1 step;
    a masked cell keeps its χ and gets no pulse; the accumulator is required with that rounding and refused
    with the others."""
    mm = _chip(torch.full((1, 2, 2), 7 * STEP, dtype=torch.float64), IdealDevice(levels=LEVELS))
    chi = torch.full((1, 2, 2), 0.7 * STEP, dtype=torch.float64)  # [R, out, in]
    mask = torch.ones(1, 2, 2, dtype=torch.bool)
    mask[0, 1, 1] = False
    n = mm.update(torch.full((1, 2, 2), 0.4 * STEP, dtype=torch.float64), rounding="accumulate", residual=chi,
                  mask=mask)
    assert n[0].tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert chi[0, 0, 0] == pytest.approx(0.1 * STEP, abs=1e-12) and chi[0, 1, 1] == pytest.approx(0.7 * STEP, abs=1e-12)
    with pytest.raises(ValueError, match="residual"):
        mm.update(torch.zeros(1, 2, 2, dtype=torch.float64), rounding="accumulate")
    with pytest.raises(ValueError, match="residual"):
        mm.update(torch.zeros(1, 2, 2, dtype=torch.float64), rounding="stochastic", residual=chi)

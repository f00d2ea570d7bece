"""Data converters at the array edge: DAC (inputs) and ADC (column outputs).

ADC energy per conversion, by ``energy_model``:

* ``survey`` (default): the Walden figure of merit with an energy floor,
  ``E = max(E_floor, FOM_W · 2^bits)`` (Walden, IEEE JSAC 17(4), 1999; defaults from the
  Murmann ADC survey, SAR designs 2015+: FOM_W ≈ 30 fJ/step median at 5–8 b, and a ≈ 1 pJ
  floor for low-resolution GS/s SARs — see docs/circuits.md).
* ``neurosim_sar``: the NeuroSim SAR fit by technology node, ``E = P·(bits + 1)·1 ns`` with
  ``P = (a·bits + b)·1 µW`` (DNN+NeuroSim V1.4 ``SarADC.cpp`` [src]; docs/circuits.md). The
  fit's column term ``c·exp(−d·log10 R_col)`` (the column current-to-voltage divider, which
  contains the cell read current) is left out by default because xbarsim counts the array read
  energy exactly in the ``array`` component; :func:`neurosim_sar_energy_J` takes ``r_col_ohm``
  to include it.
* ``sense_amp``: a 1-bit current sense amplifier for binary reads, 10 fJ per sense
  (1–20 fJ at 22–45 nm, docs/circuits.md [est]).
* ``fixed``: a given energy per conversion ``e_conv_J`` (e.g. ISAAC's published 1.56 pJ).

Conversion time ``t_conv_s`` defaults to the NeuroSim SAR timing ``(bits + 1)·1 ns`` (one cycle
per bit plus one) and to 1 ns for the sense amplifier [est].

Non-idealities (all off by default): a static gain error ``1 + N(0, gain_sigma)`` and offset
``N(0, offset_sigma_lsb)`` LSB drawn once per physical ADC, and a per-conversion input-referred
Gaussian noise of ``noise_sigma_lsb`` LSB; the converted value is
``Q(gain·I + (offset + noise)·LSB)`` with ``Q`` the clipping uniform quantiser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from .constants import (
    NEUROSIM_COLS_PER_ADC,
    NEUROSIM_SAR_CYCLE_S,
    NEUROSIM_SAR_HP,
    NEUROSIM_SAR_LSTP,
    SENSE_AMP_E_J,
    SENSE_AMP_T_S,
)

__all__ = [
    "ADC",
    "ADC_ENERGY_MODELS",
    "DAC",
    "INPUT_MODES",
    "neurosim_sar_energy_J",
    "neurosim_sar_power_W",
    "quantize_uniform",
]

ADC_ENERGY_MODELS = ("survey", "neurosim_sar", "sense_amp", "fixed")
INPUT_MODES = ("amplitude", "bit_serial", "spikes")
_SAR_TABLES = {"lstp": NEUROSIM_SAR_LSTP, "hp": NEUROSIM_SAR_HP}


def quantize_uniform(x: Tensor, lo: Tensor | float, hi: Tensor | float, bits: int) -> Tensor:
    """Clip ``x`` to ``[lo, hi]`` and round to the nearest of ``2**bits`` equally spaced codes.

    Code ``k`` stands for ``lo + k·LSB`` with ``LSB = (hi − lo)/(2**bits − 1)``; inside the
    range the error is at most LSB/2, outside it the output clips to ``lo`` or ``hi``.
    """
    lo = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
    hi = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
    lsb = (hi - lo) / (2**bits - 1)
    lsb = torch.where(lsb > 0, lsb, torch.ones_like(lsb))
    if lo.numel() == 1 and hi.numel() == 1 and lo.dim() <= x.dim() and hi.dim() <= x.dim():
        # scalar range: clamp with Python numbers (the values in x's dtype, as above), the fast kernel
        lo_s, hi_s, lsb_s = lo.reshape(()), hi.reshape(()), lsb.reshape(())
        xc = torch.clamp(x, float(lo_s), float(hi_s))
        return xc.sub_(lo_s).div_(lsb_s).round_().mul_(lsb_s).add_(lo_s)
    xc = torch.clamp(x, lo, hi)  # == minimum(maximum(x, lo), hi); one pass, then in place on the copy
    return xc.sub_(lo).div_(lsb).round_().mul_(lsb).add_(lo)


def _sar_constants(tech_node_nm: int, roadmap: str) -> tuple[float, float, float, float]:
    table = _SAR_TABLES.get(roadmap)
    if table is None:
        raise ValueError(f"adc.roadmap: got {roadmap!r}; allowed: {', '.join(map(repr, _SAR_TABLES))}")
    if tech_node_nm not in table:
        raise ValueError(f"adc.tech_node_nm: got {tech_node_nm!r}; allowed for roadmap {roadmap!r}: {', '.join(map(str, table))}")
    return table[tech_node_nm]


def neurosim_sar_power_W(bits: int, tech_node_nm: int = 32, roadmap: str = "lstp", r_col_ohm: float | None = None) -> float:
    """NeuroSim SAR-ADC power [W]: ``(a·log2 L + b)·1e-6 + c·exp(−d·log10 R_col)`` with ``L = 2^bits``.

    DNN+NeuroSim V1.4 ``SarADC.cpp`` [src] (docs/circuits.md); ``a, b`` [µW], ``c`` [W], ``d`` per
    node and roadmap (``"lstp"``, the V1.4 default, or ``"hp"``). ``r_col_ohm`` is the column
    resistance already scaled by ``0.5/V_read`` as in the source; ``None`` leaves the column term out
    (xbarsim counts the cell read energy exactly in the ``array`` component). Temperature 300 K.
    """
    a, b, c, d = _sar_constants(tech_node_nm, roadmap)
    p = (a * bits + b) * 1e-6
    if r_col_ohm is not None:
        p += c * math.exp(-d * math.log10(r_col_ohm))
    return p


def neurosim_sar_energy_J(bits: int, tech_node_nm: int = 32, roadmap: str = "lstp", r_col_ohm: float | None = None) -> float:
    """NeuroSim SAR energy per conversion [J]: ``P·(log2 L + 1)·1 ns`` (one 1-ns cycle per bit, plus one) [src]."""
    return neurosim_sar_power_W(bits, tech_node_nm, roadmap, r_col_ohm) * (bits + 1) * NEUROSIM_SAR_CYCLE_S


def _percentile(a: Tensor, percentile: float) -> Tensor:
    """The ``percentile`` of a flat non-empty tensor over ALL its values, linear interpolation between
    order statistics (``torch.quantile``'s default), by two ``kthvalue`` selections: no 2^24-element
    limit, so large layers are not calibrated on their first tiles only."""
    pos = (a.numel() - 1) * percentile / 100.0
    lo = math.floor(pos)
    v_lo = torch.kthvalue(a, lo + 1).values
    if pos == lo:
        return v_lo
    v_hi = torch.kthvalue(a, lo + 2).values
    return v_lo + (pos - lo) * (v_hi - v_lo)


@dataclass
class ADC:
    """Column analog-to-digital converter.

    Parameters
    ----------
    bits:
        Resolution; ``None`` is a lossless (infinite-resolution) converter with no energy or delay.
    range_mode:
        How the full-scale current is chosen: ``"calibrate"`` (a percentile of |I|
        seen on calibration data), ``"max"`` (the theoretical maximum of the array:
        all inputs at full scale, all cells at the largest difference) or
        ``"fixed"`` (``i_range`` amperes).
    percentile:
        Percentile of |I| used by ``"calibrate"`` (e.g. 99.99).
    i_range:
        Full-scale current [A] for ``"fixed"``; set by calibration otherwise.
    signed:
        Range ``[−i_range, i_range]`` (differential outputs) or ``[0, i_range]``.
    fom_J_per_step, e_floor_J:
        ``survey`` energy model ``E = max(e_floor_J, fom_J_per_step·2^bits)`` per conversion.
        Defaults: 30 fJ/conv-step and 1 pJ (Murmann survey, SAR 2015+; docs/circuits.md).
    energy_model:
        ``"survey"``, ``"neurosim_sar"`` (``tech_node_nm``, ``roadmap``), ``"sense_amp"`` (1-bit only)
        or ``"fixed"`` (``e_conv_J``); see the module docstring for the equations and sources.
    e_conv_J:
        Energy per conversion [J] for ``"fixed"``; for ``"sense_amp"`` it replaces the 10 fJ default.
    t_conv_s:
        Conversion time [s]; ``None``: ``(bits + 1)·1 ns`` (NeuroSim SAR timing), 1 ns for ``sense_amp``.
    cols_per_adc:
        Column outputs multiplexed onto one ADC (a differential pair or an offset column counts as
        one output); the ADC converts them one after another, so it sets the conversion latency of a
        read. Default 8 (DNN+NeuroSim V1.4 ``numColMuxed`` [code]).
    gain_sigma, offset_sigma_lsb:
        Static per-ADC gain error (relative) and offset [LSB], drawn once per physical ADC.
    noise_sigma_lsb:
        Input-referred noise per conversion [LSB].
    """

    # Schema of every field (YAML ``crossbar.adc.<name>``): ``metadata`` holds description, unit, bounds
    # (ge/gt/le/lt), choices, nullable; ``yaml`` renames a key, ``internal`` keeps it out of the YAML.
    bits: int | None = field(default=8, metadata=dict(description="resolution (null: lossless)", unit="bit", ge=1, le=16, nullable=True))
    range_mode: Literal["calibrate", "max", "fixed"] = field(default="calibrate", metadata=dict(
        description="full scale: calibrate (percentile of |I| on calibration data), max (theoretical maximum), "
        "fixed (i_range)", yaml="range"))
    percentile: float = field(default=99.99, metadata=dict(description="percentile of |I| for range: calibrate", unit="%", gt=0, le=100))
    i_range: float | None = field(default=None, metadata=dict(description="full-scale current for range: fixed", unit="A", gt=0, nullable=True))
    signed: bool = field(default=True, metadata=dict(description="signed range (set by the mapping)", internal=True))
    fom_J_per_step: float = field(default=30e-15, metadata=dict(description="survey: Walden figure of merit", unit="J", ge=0))
    e_floor_J: float = field(default=1e-12, metadata=dict(description="survey: energy floor per conversion", unit="J", ge=0))
    energy_model: Literal["survey", "neurosim_sar", "sense_amp", "fixed"] = field(default="survey", metadata=dict(
        description="survey: max(e_floor_J, fom_J_per_step·2^bits); neurosim_sar: by tech_node_nm; sense_amp: 1-bit SA; "
        "fixed: e_conv_J"))
    tech_node_nm: int = field(default=32, metadata=dict(description="neurosim_sar: technology node", unit="nm", ge=1))
    roadmap: Literal["lstp", "hp"] = field(default="lstp", metadata=dict(description="neurosim_sar: ITRS roadmap of the fit"))
    e_conv_J: float | None = field(default=None, metadata=dict(
        description="energy per conversion (fixed; sense_amp override)", unit="J", ge=0, nullable=True))
    t_conv_s: float | None = field(default=None, metadata=dict(
        description="conversion time (null: (bits+1)·1 ns, NeuroSim SAR)", unit="s", ge=0, nullable=True))
    cols_per_adc: int = field(default=NEUROSIM_COLS_PER_ADC, metadata=dict(
        description="column outputs multiplexed onto one ADC (NeuroSim numColMuxed = 8)", ge=1))
    gain_sigma: float = field(default=0.0, metadata=dict(description="static per-ADC gain error, relative σ", ge=0))
    offset_sigma_lsb: float = field(default=0.0, metadata=dict(description="static per-ADC offset σ", unit="LSB", ge=0))
    noise_sigma_lsb: float = field(default=0.0, metadata=dict(description="per-conversion noise σ", unit="LSB", ge=0))
    _range: Tensor | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.bits is not None and (int(self.bits) != self.bits or self.bits < 1):
            raise ValueError(f"adc.bits: got {self.bits!r}; must be an integer ≥ 1 or None (lossless)")
        if self.range_mode not in ("calibrate", "max", "fixed"):
            raise ValueError(f"adc.range_mode: got {self.range_mode!r}; allowed: 'calibrate', 'max', 'fixed'")
        if self.range_mode == "fixed":
            if self.i_range is None or not self.i_range > 0:
                raise ValueError(f"adc.i_range: got {self.i_range!r}; range_mode 'fixed' needs a current > 0 A")
        if not 0 < self.percentile <= 100:
            raise ValueError(f"adc.percentile: got {self.percentile!r}; must be in (0, 100]")
        if self.energy_model not in ADC_ENERGY_MODELS:
            raise ValueError(f"adc.energy_model: got {self.energy_model!r}; allowed: {', '.join(map(repr, ADC_ENERGY_MODELS))}")
        if self.energy_model == "neurosim_sar":
            _sar_constants(self.tech_node_nm, self.roadmap)
        if self.energy_model == "sense_amp" and self.bits not in (1, None):
            raise ValueError(f"adc.energy_model: got 'sense_amp'; a sense amplifier is a 1-bit converter (adc.bits is {self.bits!r}, needs 1)")
        if self.energy_model == "fixed" and (self.e_conv_J is None or not self.e_conv_J >= 0):
            raise ValueError(f"adc.e_conv_J: got {self.e_conv_J!r}; energy_model 'fixed' needs an energy per conversion ≥ 0 J")
        if int(self.cols_per_adc) != self.cols_per_adc or self.cols_per_adc < 1:
            raise ValueError(f"adc.cols_per_adc: got {self.cols_per_adc!r}; must be an integer ≥ 1")
        for name in ("gain_sigma", "offset_sigma_lsb", "noise_sigma_lsb"):
            val = getattr(self, name)
            if not (val >= 0 and math.isfinite(val)):
                raise ValueError(f"adc.{name}: got {val!r}; must be a finite number ≥ 0")
        if self.bits is None and (self.offset_sigma_lsb > 0 or self.noise_sigma_lsb > 0):
            raise ValueError("adc.bits: got None (lossless); offset_sigma_lsb and noise_sigma_lsb are in LSB and need a resolution")
        if self.t_conv_s is not None and not self.t_conv_s >= 0:
            raise ValueError(f"adc.t_conv_s: got {self.t_conv_s!r}; must be ≥ 0 s")

    # -- cost --------------------------------------------------------------------------------
    @property
    def energy_per_conversion_J(self) -> float:
        """Energy of one conversion [J] under ``energy_model`` (0 for a lossless converter)."""
        if self.bits is None:
            return 0.0
        if self.energy_model == "fixed":
            return float(self.e_conv_J)
        if self.energy_model == "sense_amp":
            return float(self.e_conv_J) if self.e_conv_J is not None else SENSE_AMP_E_J
        if self.energy_model == "neurosim_sar":
            return neurosim_sar_energy_J(int(self.bits), self.tech_node_nm, self.roadmap)
        return max(self.e_floor_J, self.fom_J_per_step * 2.0**self.bits)

    @property
    def conversion_time_s(self) -> float:
        """Time of one conversion [s]: ``t_conv_s`` or the model's default (0 for a lossless converter)."""
        if self.bits is None:
            return 0.0
        if self.t_conv_s is not None:
            return float(self.t_conv_s)
        if self.energy_model == "sense_amp":
            return SENSE_AMP_T_S
        return (int(self.bits) + 1) * NEUROSIM_SAR_CYCLE_S

    # -- range -------------------------------------------------------------------------------
    def full_scale(self) -> Tensor | float | None:
        if self.range_mode == "fixed":
            return self.i_range
        return self._range

    def set_range(self, i_range: Tensor | float) -> None:
        """Set the full-scale current [A] (used by calibration and the theoretical maximum)."""
        self._range = torch.as_tensor(i_range)

    def calibrate(self, currents: Tensor) -> None:
        """Set the range to the configured percentile of |I| over ``currents`` (range_mode 'calibrate')."""
        if self.range_mode != "calibrate":
            return
        a = currents.detach().abs().flatten().to(torch.float64)
        r = _percentile(a, self.percentile) if a.numel() else torch.tensor(0.0)
        if not r > 0:
            r = a.max() if a.numel() and a.max() > 0 else torch.tensor(1e-12, dtype=torch.float64)
        self._range = r

    def lsb(self) -> float:
        """One LSB [A]: the full span divided by ``2^bits − 1`` (needs a range and a resolution)."""
        r = self.full_scale()
        if r is None or self.bits is None:
            raise RuntimeError("ADC LSB undefined: the range is not set or the converter is lossless")
        span = 2 * float(r) if self.signed else float(r)
        return span / (2 ** int(self.bits) - 1)

    # -- non-idealities ------------------------------------------------------------------------
    @property
    def has_static_errors(self) -> bool:
        return self.gain_sigma > 0 or self.offset_sigma_lsb > 0

    def draw_static(self, shape: tuple, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor] | None:
        """Per-ADC static errors for ``shape`` physical ADCs: ``(gain, offset_lsb)``, drawn once.

        ``gain = 1 + gain_sigma·N(0, 1)``, ``offset_lsb = offset_sigma_lsb·N(0, 1)``. Returns ``None``
        (and draws nothing, so the generator stream is unchanged) when both sigmas are zero.
        """
        if not self.has_static_errors:
            return None
        z = torch.randn((2, *shape), generator=generator, device=generator.device, dtype=dtype)
        return 1.0 + self.gain_sigma * z[0], self.offset_sigma_lsb * z[1]

    def __call__(
        self,
        i: Tensor,
        gain: Tensor | None = None,
        offset_lsb: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Digitise currents [A] (returned in amperes, quantised and clipped).

        ``gain`` and ``offset_lsb`` (broadcastable to ``i``) are the static errors of the ADC that
        converts each element; per-conversion noise of ``noise_sigma_lsb`` LSB is drawn from
        ``generator``.
        """
        if gain is not None:
            i = i * gain.to(i.dtype)
        if self.bits is None:
            return i
        r = self.full_scale()
        if r is None:
            raise RuntimeError("ADC range not set: calibrate the mapped matrix first or use range_mode 'max'/'fixed'")
        r = torch.as_tensor(r, dtype=i.dtype, device=i.device)
        lo = -r if self.signed else torch.zeros_like(r)
        if offset_lsb is not None or self.noise_sigma_lsb > 0:
            lsb = (r - lo) / (2 ** int(self.bits) - 1)
            if offset_lsb is not None:
                i = i + offset_lsb.to(i.dtype) * lsb
            if self.noise_sigma_lsb > 0:
                if generator is None:
                    raise ValueError("adc.noise_sigma_lsb > 0 needs a torch.Generator for the conversion noise")
                z = torch.randn(i.shape, generator=generator, device=i.device, dtype=i.dtype)
                i = i + (self.noise_sigma_lsb * lsb) * z
        return quantize_uniform(i, lo, r, int(self.bits))


@dataclass
class DAC:
    """Input digital-to-analog conversion: amplitude, bit-serial or spikes (docs/circuits.md).

    ``mode="amplitude"`` (default): ``v = v_read · q_bits(clip(x/x_max, −1, 1))`` — ``|x|/x_max``
    is rounded to ``2**bits − 1`` equal steps, the sign drives a negative read voltage; one read.
    ``bits=None`` is an ideal DAC (no quantisation, no energy).

    ``mode="bit_serial"``: ``|x|`` is quantised to the integer ``x_int = round(|x|/x_max·(2^bits − 1))``
    and applied one bit per read, LSB first, by 1-bit row drivers (``±v_read`` for a 1 bit, 0 V
    otherwise; sign-magnitude). The partial results of the ``bits`` reads are digitised and
    recombined by shift-and-add, ``y = x_max/(2^bits − 1) · Σ_j 2^j·y_j`` (ISAAC, Shafiee et al.
    ISCA 2016; NeuroSim ``numBitInput``).

    ``mode="spikes"``: binary inputs (0/1, or ±1 for signed spikes) drive the rows directly at
    ``x·v_read``: a spike *is* a read pulse, there is no DAC and no DAC energy (docs/circuits.md).
    With ``pulses = n > 1`` (set by the engine, not by YAML) the input is **count-coded**: ``x`` takes
    the values ``k/n`` (``k = 0 … n``, signed allowed) and the row receives ``k`` identical read pulses
    of ``v_read`` within one read window of ``n`` pulse slots (pulse ``p`` drives the rows with
    ``|k| ≥ p``). On a linear array the charge a column integrates is ``k`` times that of one pulse, so
    the ADC sees ``Σ_p I_p`` and the read returns ``x`` exactly (``u = k``, ``x_scale = 1/n``); the read
    takes ``n·t_read`` and the read energy is the sum over the pulses. This is the spiking-network
    pooling of ``algorithms.snn``: the ``k`` spikes of a ``√n×√n`` average-pooling window, summed by a
    small counter, drive one row (design choice of this simulator [est]; no DAC, no amplitude levels).

    ``x_max`` is set by calibration (the largest |x| seen) unless given; it is 1 for spikes.

    Energy: ``e_1bit_J`` per 1-bit row drive (0.39 pJ: ISAAC budgets 4 mW for the 8×128 one-bit
    row DACs of an in-situ MAC unit that reads every 100 ns [lit]); an amplitude DAC costs
    ``e_1bit_J·bits`` per conversion [est], a bit-serial input ``e_1bit_J`` per row and bit.
    """

    bits: int | None = field(default=8, metadata=dict(
        description="amplitude DAC resolution, or input bits for bit_serial (null: ideal)", unit="bit", ge=1, le=16, nullable=True))
    x_max: float | None = field(default=None, metadata=dict(
        description="input full scale (null: calibrated, the largest |x|)", gt=0, nullable=True))
    e_1bit_J: float = field(default=0.39e-12, metadata=dict(description="energy per 1-bit row drive (ISAAC DAC budget)", unit="J", ge=0))
    mode: Literal["amplitude", "bit_serial", "spikes"] = field(default="amplitude", metadata=dict(
        description="amplitude DAC (one read), bit_serial (one read per dac.bits), spikes (binary, no DAC)",
        section="crossbar", yaml="input_mode"))
    pulses: int = field(default=1, metadata=dict(
        description="spikes: read pulses per input in one read (count-coded inputs k/pulses; 1: binary spikes)", ge=1,
        internal=True))

    def __post_init__(self):
        if self.bits is not None and (int(self.bits) != self.bits or self.bits < 1):
            raise ValueError(f"dac.bits: got {self.bits!r}; must be an integer ≥ 1 or None (ideal)")
        if self.x_max is not None and not self.x_max > 0:
            raise ValueError(f"dac.x_max: got {self.x_max!r}; must be > 0")
        if self.mode not in INPUT_MODES:
            raise ValueError(f"crossbar.input_mode: got {self.mode!r}; allowed: {', '.join(map(repr, INPUT_MODES))}")
        if self.mode == "bit_serial" and self.bits is None:
            raise ValueError("dac.bits: got None; input_mode 'bit_serial' needs a number of input bits ≥ 1")
        if self.mode == "spikes" and self.x_max is None:
            self.x_max = 1.0
        if isinstance(self.pulses, bool) or int(self.pulses) != self.pulses or self.pulses < 1:
            raise ValueError(f"dac.pulses: got {self.pulses!r}; must be an integer ≥ 1")
        if self.pulses != 1 and self.mode != "spikes":
            raise ValueError(f"dac.pulses: got {self.pulses!r}; count-coded inputs need input_mode 'spikes' (got {self.mode!r})")
        self.pulses = int(self.pulses)

    @property
    def n_slices(self) -> int:
        """Reads per input vector: ``bits`` for bit-serial inputs, 1 otherwise."""
        return int(self.bits) if self.mode == "bit_serial" else 1

    @property
    def energy_per_conversion_J(self) -> float:
        """Energy [J] per row drive: one amplitude conversion, one input bit (bit-serial), 0 (spikes)."""
        if self.mode == "spikes" or self.bits is None:
            return 0.0
        if self.mode == "bit_serial":
            return self.e_1bit_J
        return self.e_1bit_J * self.bits

    def calibrate(self, x: Tensor) -> None:
        if self.x_max is None:
            m = float(x.detach().abs().max()) if x.numel() else 0.0
            self.x_max = m if m > 0 else 1.0

    def normalise(self, x: Tensor) -> Tensor:
        """``x/x_max`` clipped to [−1, 1] and quantised: the fraction of ``v_read`` applied to each row."""
        if self.x_max is None:
            raise RuntimeError("DAC range not set: calibrate the mapped matrix first or give dac.x_max")
        u = (x / self.x_max).clamp(-1.0, 1.0)
        if self.bits is None:
            return u
        n = 2 ** int(self.bits) - 1
        return torch.round(u * n) / n

    def slices(self, x: Tensor) -> tuple[Tensor, list[float], float]:
        """Row drive patterns for ``x [B, in]``: ``(u [J, B, in], weights [J], x_scale)``.

        ``u`` is the signed fraction of ``v_read`` on each row in each of the ``J`` reads, and
        ``x ≈ x_scale · Σ_j weights[j]·u[j]`` (exact up to the input quantisation).
        """
        if self.mode == "amplitude":
            return self.normalise(x).unsqueeze(0), [1.0], float(self.x_max)
        if self.mode == "spikes":
            if self.pulses > 1:  # count-coded: x = k/n drives k pulses
                u = x * self.pulses
                if not bool(((u == torch.round(u)) & (u.abs() <= self.pulses)).all()):
                    raise ValueError(f"crossbar.input_mode 'spikes' with {self.pulses} pulses: inputs must be k/{self.pulses}, "
                                     f"k an integer in [-{self.pulses}, {self.pulses}]")
                return u.unsqueeze(0), [1.0], 1.0 / self.pulses
            if not bool(((x == 0) | (x.abs() == 1)).all()):
                raise ValueError("crossbar.input_mode 'spikes': inputs must be binary spikes (0/1, or ±1)")
            return x.unsqueeze(0), [1.0], 1.0
        if self.x_max is None:
            raise RuntimeError("DAC range not set: calibrate the mapped matrix first or give dac.x_max")
        m = int(self.bits)
        n = 2**m - 1
        x_int = torch.round((x.abs() / self.x_max).clamp(max=1.0) * n)
        pw = 2.0 ** torch.arange(m, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        bits = torch.remainder(torch.floor(x_int.unsqueeze(0) / pw), 2.0)
        return bits * torch.sign(x).unsqueeze(0), [2.0**j for j in range(m)], float(self.x_max) / n

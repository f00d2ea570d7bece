"""Data converters at the array edge: DAC (inputs) and ADC (column outputs).

Energy per conversion follows the Walden figure of merit with an energy floor,
``E = max(E_floor, FOM_W · 2^bits)`` (Walden, IEEE JSAC 17(4), 1999; defaults from
the Murmann ADC survey, SAR designs 2015+: FOM_W ≈ 30 fJ/step median at 5–8 b, and a
≈ 1 pJ floor for low-resolution GS/s SARs — REFERENCES Part C (b)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

__all__ = ["ADC", "DAC", "quantize_uniform"]


def quantize_uniform(x: Tensor, lo: Tensor | float, hi: Tensor | float, bits: int) -> Tensor:
    """Clip ``x`` to ``[lo, hi]`` and round to the nearest of ``2**bits`` equally spaced codes.

    Code ``k`` stands for ``lo + k·LSB`` with ``LSB = (hi − lo)/(2**bits − 1)``; inside the
    range the error is at most LSB/2, outside it the output clips to ``lo`` or ``hi``.
    """
    lo = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
    hi = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
    lsb = (hi - lo) / (2**bits - 1)
    lsb = torch.where(lsb > 0, lsb, torch.ones_like(lsb))
    xc = torch.minimum(torch.maximum(x, lo), hi)
    return lo + torch.round((xc - lo) / lsb) * lsb


@dataclass
class ADC:
    """Column analog-to-digital converter.

    Parameters
    ----------
    bits:
        Resolution; ``None`` is a lossless (infinite-resolution) converter.
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
        Energy model ``E = max(e_floor_J, fom_J_per_step·2^bits)`` per conversion.
        Defaults: 30 fJ/conv-step and 1 pJ (Murmann survey, SAR 2015+; REFERENCES Part C).
    """

    bits: int | None = 8
    range_mode: Literal["calibrate", "max", "fixed"] = "calibrate"
    percentile: float = 99.99
    i_range: float | None = None
    signed: bool = True
    fom_J_per_step: float = 30e-15
    e_floor_J: float = 1e-12
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

    @property
    def energy_per_conversion_J(self) -> float:
        if self.bits is None:
            return 0.0
        return max(self.e_floor_J, self.fom_J_per_step * 2.0**self.bits)

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
        r = torch.quantile(a[: 2**24], self.percentile / 100.0) if a.numel() else torch.tensor(0.0)
        if not r > 0:
            r = a.max() if a.numel() and a.max() > 0 else torch.tensor(1e-12, dtype=torch.float64)
        self._range = r

    def __call__(self, i: Tensor) -> Tensor:
        """Digitise currents [A] (returned in amperes, quantised and clipped)."""
        if self.bits is None:
            return i
        r = self.full_scale()
        if r is None:
            raise RuntimeError("ADC range not set: calibrate the mapped matrix first or use range_mode 'max'/'fixed'")
        r = torch.as_tensor(r, dtype=i.dtype, device=i.device)
        lo = -r if self.signed else torch.zeros_like(r)
        return quantize_uniform(i, lo, r, int(self.bits))


@dataclass
class DAC:
    """Input digital-to-analog converter (amplitude coding, sign-magnitude).

    ``v = v_read · q_bits(clip(x/x_max, −1, 1))``: ``|x|/x_max`` is rounded to
    ``2**bits − 1`` equal steps, the sign drives a negative read voltage.
    ``bits=None`` is an ideal DAC (no quantisation, energy not modelled). ``x_max`` is set by calibration (the largest
    |x| seen) unless given.

    Energy per conversion ``e_conv_J`` [J] defaults to 0.39 pJ·bits: ISAAC
    (Shafiee et al., ISCA 2016) budgets 4 mW for the 8×128 one-bit row DACs of an
    in-situ MAC unit that reads every 100 ns, i.e. ≈ 0.39 pJ per one-bit
    conversion; scaling with bits is an engineering estimate [est].
    """

    bits: int | None = 8
    x_max: float | None = None
    e_1bit_J: float = 0.39e-12

    def __post_init__(self):
        if self.bits is not None and (int(self.bits) != self.bits or self.bits < 1):
            raise ValueError(f"dac.bits: got {self.bits!r}; must be an integer ≥ 1 or None (ideal)")
        if self.x_max is not None and not self.x_max > 0:
            raise ValueError(f"dac.x_max: got {self.x_max!r}; must be > 0")

    @property
    def energy_per_conversion_J(self) -> float:
        return 0.0 if self.bits is None else self.e_1bit_J * self.bits

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
